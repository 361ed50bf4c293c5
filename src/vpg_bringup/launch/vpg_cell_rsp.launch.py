"""
Robot description of the robot cell, for ur_control.launch.py's `description_launchfile`.

Runs ur_robot_driver's ur_rsp.launch.py (robot_state_publisher with all of the driver's xacro
arguments) on urdf/vpg_cell.urdf.xacro: the UR of ur_robot_driver's ur.urdf.xacro plus the
Robotiq 2F-85 and its ros2_control hardware, so the UR's controller manager runs the gripper too.
ur_control.launch.py passes robot_ip and ur_type; every other argument of ur_rsp.launch.py
(kinematics_params_file, tf_prefix, use_mock_hardware, ...) can be given on the command line.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    rsp = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(
            PathJoinSubstitution([FindPackageShare('ur_robot_driver'), 'launch',
                                  'ur_rsp.launch.py'])),
        launch_arguments={
            'ur_type': LaunchConfiguration('ur_type'),
            'robot_ip': LaunchConfiguration('robot_ip'),
            'description_file': PathJoinSubstitution(
                [FindPackageShare('vpg_bringup'), 'urdf', 'vpg_cell.urdf.xacro']),
        }.items())
    return LaunchDescription([
        DeclareLaunchArgument('ur_type', description='UR type (ur5, ur5e, ...)'),
        DeclareLaunchArgument('robot_ip', description='IP address of the UR controller'),
        rsp,
    ])
