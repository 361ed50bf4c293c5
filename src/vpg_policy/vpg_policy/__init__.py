"""Push/grasp Q-networks over 16 rotations and the node that serves their decisions."""
