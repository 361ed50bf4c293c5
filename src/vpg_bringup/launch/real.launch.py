"""
Launch the robot cell: UR driver, Robotiq gripper, RealSense, MoveIt and our nodes.

Drivers, each from its own package's launch file or configuration:
- ur_robot_driver's ur_control.launch.py, with the robot description of
  urdf/vpg_cell.urdf.xacro (the UR plus the Robotiq 2F-85 and its ros2_control hardware) through
  launch/vpg_cell_rsp.launch.py, and RViz off (ours is `rviz:=true`);
- the gripper's controllers (ros2_robotiq_gripper's robotiq_gripper_controller and
  robotiq_activation_controller) spawned into the UR's controller manager;
- realsense2_camera's rs_launch.py as /camera/camera with depth aligned to colour;
- for motion_backend moveit: the MoveIt configuration (ur_moveit_config plus
  urdf/vpg_cell.srdf.xacro and config/drivers/moveit_py.yaml) given to the executor, whose
  moveit_py plans every move; `launch_move_group:=true` adds ur_moveit_config's move_group.
Our nodes are those of vpg_bringup.graph.real_graph.

    ros2 launch vpg_bringup real.launch.py robot_ip:=192.168.56.101 \
        calibration_file:=$HOME/vpg/camera_calibration.yaml weights:=$HOME/vpg/vpg.safetensors
"""

import os

from launch import LaunchDescription
from launch.actions import IncludeLaunchDescription, OpaqueFunction
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare
from vpg_bringup.graph import real_graph, viewer_spec
from vpg_bringup.launch_description import (argument_values, as_bool, as_int,
                                            config_directory, declare_arguments, node_actions,
                                            rviz_actions, share_directory)

ARGUMENTS = (
    ('robot_ip', None, 'IP address of the UR controller'),
    ('calibration_file', None,
     'Camera calibration YAML written by `ros2 run vpg_executor calibrate`'),
    ('ur_type', 'ur5', 'UR type: ur5 or ur5e (the arms the executor has kinematics for)'),
    ('weights', '', 'Policy weights (.safetensors); empty = random initialisation'),
    ('motion_backend', 'moveit',
     "'moveit' (moveit_py plans every move) or 'joint_trajectory' (analytic IK straight to "
     'the scaled joint trajectory controller)'),
    ('device', 'auto', "Policy device: 'auto' (cuda when available), 'cpu' or 'cuda'"),
    ('trainer', 'false', 'Also run the trainer, learning from the robot'),
    ('run_dir', os.path.expanduser(os.path.join('~', 'vpg_runs', 'real')),
     'With trainer:=true: the training run folder (resumed when it exists)'),
    ('use_mock_hardware', 'false',
     'Mock the arm and the gripper in ros2_control (dry run without the robot)'),
    ('launch_move_group', 'false',
     "Also start ur_moveit_config's move_group (e.g. for RViz's MotionPlanning panel); the "
     'executor plans with its own moveit_py either way'),
    ('rviz', 'false', 'Start RViz with rviz/vpg.rviz'),
    ('viewer', 'false', 'Serve the cell live to Foxglove or Lichtblick (Foxglove WebSocket '
     'protocol, no authentication, localhost only)'),
    ('viewer_port', '8765', 'With viewer:=true: TCP port of the WebSocket server'),
)

GRIPPER_CONTROLLERS = ('robotiq_gripper_controller', 'robotiq_activation_controller')


def graph(values):
    """Return our NodeSpecs for the launch argument values (strings)."""
    viewer = [viewer_spec(port=as_int('viewer_port', values['viewer_port']))] \
        if as_bool(values['viewer']) else []
    return real_graph(calibration_file=values['calibration_file'], weights=values['weights'],
                      device=values['device'], motion_backend=values['motion_backend'],
                      ur_type=values['ur_type'], trainer=as_bool(values['trainer']),
                      run_dir=values['run_dir'], extra=viewer)


def _include(package, launch_file, arguments):
    source = PythonLaunchDescriptionSource(
        PathJoinSubstitution([FindPackageShare(package), 'launch', launch_file]))
    return IncludeLaunchDescription(source, launch_arguments=arguments.items())


def drivers(values):
    """Return the actions starting the arm, gripper and camera drivers."""
    arm = _include('ur_robot_driver', 'ur_control.launch.py', {
        'ur_type': values['ur_type'],
        'robot_ip': values['robot_ip'],
        'use_mock_hardware': values['use_mock_hardware'],
        'initial_joint_controller': 'scaled_joint_trajectory_controller',
        'launch_rviz': 'false',
        'description_launchfile': os.path.join(share_directory(), 'launch',
                                               'vpg_cell_rsp.launch.py'),
    })
    gripper = Node(
        package='controller_manager', executable='spawner', name='gripper_spawner',
        output='screen',
        arguments=[*GRIPPER_CONTROLLERS, '--controller-manager', '/controller_manager',
                   '--controller-manager-timeout', '60', '--param-file',
                   os.path.join(config_directory(), 'drivers', 'robotiq_controllers.yaml')])
    camera = _include('realsense2_camera', 'rs_launch.py', {
        'camera_namespace': 'camera',
        'camera_name': 'camera',
        'enable_color': 'true',
        'enable_depth': 'true',
        'align_depth.enable': 'true',
        'enable_sync': 'true',
        'rgb_camera.color_profile': '640,480,30',
        'depth_module.depth_profile': '640,480,30',
        'pointcloud.enable': 'false',
    })
    return [arm, gripper, camera]


def moveit_configs(ur_type):
    """Return the MoveIt configuration of the cell (moveit_configs_utils, imported here)."""
    from moveit_configs_utils import MoveItConfigsBuilder
    share = share_directory()
    return (MoveItConfigsBuilder(robot_name='ur', package_name='ur_moveit_config')
            .robot_description_semantic(os.path.join(share, 'urdf', 'vpg_cell.srdf.xacro'),
                                        {'name': ur_type})
            .moveit_cpp(os.path.join(config_directory(), 'drivers', 'moveit_py.yaml'))
            .to_moveit_configs())


def launch_setup(context):
    values = argument_values(context, ARGUMENTS)
    specs = graph(values)  # checks the arguments before anything starts
    actions = drivers(values)
    extra_parameters = {}
    if values['motion_backend'] == 'moveit':
        # The robot description comes from robot_state_publisher's topic.
        # ur_moveit_config turns execution-duration monitoring off; on, MoveIt aborts a
        # trajectory that runs far past its duration (pendant paused, speed slider at 0)
        # instead of leaving the executor waiting without end.
        extra_parameters['executor'] = [moveit_configs(values['ur_type']).to_dict(), {
            'trajectory_execution.execution_duration_monitoring': True,
            'trajectory_execution.allowed_execution_duration_scaling': 3.0}]
        if as_bool(values['launch_move_group']):
            actions.append(_include('ur_moveit_config', 'ur_moveit.launch.py', {
                'ur_type': values['ur_type'], 'launch_rviz': 'false', 'use_sim_time': 'false'}))
    return (actions + node_actions(specs, extra_parameters=extra_parameters)
            + rviz_actions(values['rviz']))


def generate_launch_description():
    return LaunchDescription(declare_arguments(ARGUMENTS)
                             + [OpaqueFunction(function=launch_setup)])
