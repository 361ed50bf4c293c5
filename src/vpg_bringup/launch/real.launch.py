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

SROS2: every process runs in an enclave of config/security/vpg_policy.xml (our nodes through
`--enclave`, the included drivers through ROS_SECURITY_ENCLAVE_OVERRIDE in a scoped group);
with ROS_SECURITY_ENABLE=true, ROS_SECURITY_STRATEGY=Enforce and ROS_SECURITY_KEYSTORE set,
each may only do what the policy grants it (README, "On a real cell").

    ros2 launch vpg_bringup real.launch.py robot_ip:=192.168.56.101 \
        calibration_file:=$HOME/vpg/camera_calibration.yaml weights:=$HOME/vpg/vpg.safetensors
"""

import os

from launch import LaunchDescription
from launch.actions import (GroupAction, IncludeLaunchDescription, OpaqueFunction,
                            SetEnvironmentVariable)
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare
from vpg_bringup.graph import DEFAULT_UR_TYPE, enclave, real_graph, viewer_spec
from vpg_bringup.launch_description import (argument_values, as_bool, as_int,
                                            config_directory, declare_arguments, node_actions,
                                            rviz_actions, share_directory)

ARGUMENTS = (
    ('robot_ip', None, 'IP address of the UR controller'),
    ('calibration_file', None,
     'Camera calibration YAML written by `ros2 run vpg_bringup calibrate`'),
    ('ur_type', DEFAULT_UR_TYPE,
     "UR type: ur5e (default) or ur5; the driver's description and the executor's kinematics "
     'both follow it'),
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
    ('gripper_com_port', '/dev/ttyUSB0',
     "The 2F-85's serial device: its RS-485 USB adapter, or with use_tool_communication:=true "
     "the UR's tool-communication device (/tmp/ttyUR)"),
    ('use_tool_communication', 'false',
     "Gripper on the e-Series wrist connector: ur_robot_driver's tool communication (24 V, "
     '115200 baud, Robotiq settings) bridges it to gripper_com_port'),
    ('execution_duration_monitoring', 'false',
     'moveit backend: let MoveIt abort a trajectory running 3x past its planned duration. Off '
     "as in ur_moveit_config: the scaled controller runs slower with the pendant's speed "
     'slider, and a stopped UR program already ends the trajectory (controller_stopper)'),
)

GRIPPER_COM_PORT_VARIABLE = 'VPG_GRIPPER_COM_PORT'
"""Read by urdf/vpg_cell.urdf.xacro (`$(optenv ...)`): ur_rsp.launch.py passes its own fixed
set of xacro arguments, so the port reaches the description through the environment."""
TOOL_DEVICE = '/tmp/ttyUR'

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


def in_enclave(name, actions):
    """Run actions (included launch files, nodes) in SROS2 enclave `name`, scoped to them."""
    return GroupAction([SetEnvironmentVariable('ROS_SECURITY_ENCLAVE_OVERRIDE', enclave(name)),
                        *actions], scoped=True)


def drivers(values):
    """Return the actions starting the arm, gripper and camera drivers."""
    arm_arguments = {
        'ur_type': values['ur_type'],
        'robot_ip': values['robot_ip'],
        'use_mock_hardware': values['use_mock_hardware'],
        'initial_joint_controller': 'scaled_joint_trajectory_controller',
        'launch_rviz': 'false',
        'description_launchfile': os.path.join(share_directory(), 'launch',
                                               'vpg_cell_rsp.launch.py'),
    }
    if as_bool(values['use_tool_communication']):
        # ur_control.launch.py's tool_* defaults are the 2F-85's settings (115200 baud, no
        # parity, 1 stop bit, idle chars 1.5 / 3.5); the gripper needs 24 V.
        arm_arguments.update({'use_tool_communication': 'true', 'tool_voltage': '24',
                              'tool_device_name': values['gripper_com_port']})
    arm = _include('ur_robot_driver', 'ur_control.launch.py', arm_arguments)
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
    return [SetEnvironmentVariable(GRIPPER_COM_PORT_VARIABLE, values['gripper_com_port']),
            in_enclave('arm', [arm, gripper]), in_enclave('camera', [camera])]


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
        # The robot description comes from robot_state_publisher's topic. Execution-duration
        # monitoring: off by default, as ur_moveit_config ships it (moveit_controllers.yaml:
        # "May lead to unexpectedly aborted goals with scaled JTC"); see the argument.
        extra_parameters['executor'] = [moveit_configs(values['ur_type']).to_dict(), {
            'trajectory_execution.execution_duration_monitoring':
                as_bool(values['execution_duration_monitoring']),
            'trajectory_execution.allowed_execution_duration_scaling': 3.0}]
        if as_bool(values['launch_move_group']):
            actions.append(in_enclave('move_group', [
                _include('ur_moveit_config', 'ur_moveit.launch.py', {
                    'ur_type': values['ur_type'], 'launch_rviz': 'false',
                    'use_sim_time': 'false'})]))
    return (actions + node_actions(specs, extra_parameters=extra_parameters)
            + rviz_actions(values['rviz'], enclave=enclave('viewer')))


def generate_launch_description():
    return LaunchDescription(declare_arguments(ARGUMENTS)
                             + [OpaqueFunction(function=launch_setup)])
