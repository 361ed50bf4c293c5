"""MuJoCo UR5e + 2F-85 + RGB-D cell that speaks the real drivers' ROS topics."""
