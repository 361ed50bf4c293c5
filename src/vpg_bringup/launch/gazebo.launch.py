"""
Launch the Gazebo cell for training: gz sim, the UR with a 2F-85, an RGB-D camera, our nodes.

- ros_gz_sim's gz_sim.launch.py runs worlds/vpg_cell.sdf (table, blocks, RGB-D camera);
- robot_state_publisher publishes urdf/vpg_cell_gz.urdf.xacro and ros_gz_sim's `create` spawns
  it from the robot_description topic; gz_ros2_control runs its controllers
  (config/drivers/gz_controllers.yaml), which controller_manager's spawner starts;
- ros_gz_bridge's parameter_bridge maps /clock and the camera onto realsense2_camera's topic
  names (config/drivers/gz_bridge.yaml);
- our nodes and the trainer are those of vpg_bringup.graph.gazebo_graph, on sim time.

    ros2 launch vpg_bringup gazebo.launch.py gui:=false weights:=/path/vpg.safetensors
"""

import os

from launch import LaunchDescription
from launch.actions import AppendEnvironmentVariable, IncludeLaunchDescription, OpaqueFunction
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import Command, FindExecutable, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare
from vpg_bringup.graph import gazebo_graph
from vpg_bringup.launch_description import (argument_values, as_bool, config_directory,
                                            declare_arguments, node_actions, rviz_actions,
                                            share_directory)

ARGUMENTS = (
    ('ur_type', 'ur5', 'UR type: ur5 or ur5e (the arms the executor has kinematics for)'),
    ('weights', '', 'Policy weights (.safetensors) to start from; empty = random initialisation'),
    ('device', 'auto', "Policy device: 'auto' (cuda when available), 'cpu' or 'cuda'"),
    ('trainer', 'true', 'Run the trainer, learning from the Gazebo cell'),
    ('run_dir', os.path.expanduser(os.path.join('~', 'vpg_runs', 'gazebo')),
     'With trainer:=true: the training run folder (resumed when it exists)'),
    ('gui', 'true', 'Start the Gazebo GUI; false runs the server only (headless)'),
    ('rviz', 'false', 'Start RViz with rviz/vpg.rviz'),
)

CONTROLLERS = ('joint_state_broadcaster', 'joint_trajectory_controller',
               'robotiq_gripper_controller')


def graph(values):
    """Return our NodeSpecs for the launch argument values (strings)."""
    return gazebo_graph(weights=values['weights'], device=values['device'],
                        ur_type=values['ur_type'], trainer=as_bool(values['trainer']),
                        run_dir=values['run_dir'])


def simulation(values):
    """Return the actions starting Gazebo, the robot, its controllers and the bridge."""
    share = share_directory()
    world = os.path.join(share, 'worlds', 'vpg_cell.sdf')
    gz_args = ('-r -v 3 ' if as_bool(values['gui']) else '-s -r -v 3 ') + world
    gazebo = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(
            PathJoinSubstitution([FindPackageShare('ros_gz_sim'), 'launch', 'gz_sim.launch.py'])),
        launch_arguments={'gz_args': gz_args, 'on_exit_shutdown': 'true'}.items())
    description = Command([
        PathJoinSubstitution([FindExecutable(name='xacro')]), ' ',
        os.path.join(share, 'urdf', 'vpg_cell_gz.urdf.xacro'), ' ',
        'name:=ur ', 'ur_type:=', values['ur_type'], ' ',
        'simulation_controllers:=', os.path.join(config_directory(), 'drivers',
                                                 'gz_controllers.yaml')])
    robot_state_publisher = Node(
        package='robot_state_publisher', executable='robot_state_publisher', output='screen',
        parameters=[{'robot_description': ParameterValue(description, value_type=str),
                     'use_sim_time': True}])
    spawn = Node(package='ros_gz_sim', executable='create', output='screen',
                 arguments=['-topic', 'robot_description', '-name', 'ur',
                            '-allow_renaming', 'true'])
    bridge = Node(package='ros_gz_bridge', executable='parameter_bridge', name='gz_bridge',
                  output='screen',
                  parameters=[{'config_file': os.path.join(config_directory(), 'drivers',
                                                           'gz_bridge.yaml')}])
    spawners = [Node(package='controller_manager', executable='spawner', output='screen',
                     arguments=[controller, '--controller-manager', '/controller_manager',
                                '--controller-manager-timeout', '60'])
                for controller in CONTROLLERS]
    # The gripper's meshes are package:// URIs: Gazebo finds them under the share folder.
    resources = AppendEnvironmentVariable(
        'GZ_SIM_RESOURCE_PATH',
        PathJoinSubstitution([FindPackageShare('robotiq_description'), '..']))
    return [resources, gazebo, robot_state_publisher, spawn, bridge] + spawners


def launch_setup(context):
    values = argument_values(context, ARGUMENTS)
    specs = graph(values)  # checks the arguments before anything starts
    return simulation(values) + node_actions(specs) + rviz_actions(values['rviz'],
                                                                   use_sim_time=True)


def generate_launch_description():
    return LaunchDescription(declare_arguments(ARGUMENTS)
                             + [OpaqueFunction(function=launch_setup)])
