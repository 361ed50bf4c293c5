"""VPG's evaluation of a pick-all policy in the MuJoCo cell, through the node graph."""
