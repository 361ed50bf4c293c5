"""Node graphs of the real cell, Gazebo and MuJoCo, and a runner for machines without launch."""
