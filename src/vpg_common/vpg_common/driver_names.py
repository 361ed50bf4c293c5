"""
The names the real drivers publish and serve, for our nodes and the cell that stands in.

One copy, so the executor, the heightmap node, the calibrate and preflight tools, the launch
graph and the MuJoCo cell cannot drift apart; the tests keep the literal strings, so a change
here that leaves the drivers' names fails them. Sources: ur_robot_driver (Jazzy/Kilted,
config/ur_controllers.yaml: scaled_joint_trajectory_controller, force_torque_sensor_broadcaster
with frame tool0_controller, tcp_pose_broadcaster; tool_contact_controller), ros2_robotiq_gripper
(robotiq_gripper_controller, joint robotiq_85_left_knuckle_joint) and realsense2_camera launched
with camera_namespace and camera_name `camera` and align_depth.enable.
"""

UR_JOINTS = ('shoulder_pan_joint', 'shoulder_lift_joint', 'elbow_joint', 'wrist_1_joint',
             'wrist_2_joint', 'wrist_3_joint')
"""The UR arm's joints, base to tool, as /joint_states names them."""
JOINT_STATES_TOPIC = '/joint_states'
TRAJECTORY_TOPIC = '/scaled_joint_trajectory_controller/joint_trajectory'
WRENCH_TOPIC = '/force_torque_sensor_broadcaster/wrench'
WRENCH_FRAME = 'tool0_controller'
TCP_POSE_TOPIC = '/tcp_pose_broadcaster/pose'
"""geometry_msgs/PoseStamped of tool0 as the robot controller computes it (frame `base`)."""
TOOL_CONTACT_ACTION = '/tool_contact_controller/detect_tool_contact'
"""ur_msgs/action/ToolContact: while a goal is active the robot stops on a tool contact."""

GRIPPER_ACTION = '/robotiq_gripper_controller/gripper_cmd'
GRIPPER_JOINT = 'robotiq_85_left_knuckle_joint'

COLOR_TOPIC = '/camera/camera/color/image_raw'
COLOR_INFO_TOPIC = '/camera/camera/color/camera_info'
DEPTH_TOPIC = '/camera/camera/aligned_depth_to_color/image_raw'
DEPTH_INFO_TOPIC = '/camera/camera/aligned_depth_to_color/camera_info'
CAMERA_FRAME = 'camera_color_optical_frame'
"""Frame of the colour image and of the depth aligned to it."""
