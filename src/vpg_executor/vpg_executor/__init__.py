"""Push and grasp primitives on a UR5 with a parallel gripper, and the pick_all action."""
