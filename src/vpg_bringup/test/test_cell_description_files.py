"""
The world, robot descriptions, bridge, controller and MoveIt files of the real and Gazebo cells.

Gazebo, xacro and the description packages are not installable here, so these checks are
static: the files parse; every `$(find pkg)/file` and every macro argument the xacro files use
exists upstream (lists read from the sources, ROS 2 kilted branches); the camera pose in the
world file is the calibration file's; the bridge puts the camera on the topics our nodes and
the MuJoCo cell use; controller, joint and action names agree with the executor's parameters.
"""

import math
from pathlib import Path
import re
import xml.dom.minidom

import numpy as np
import pytest
import rclpy
from rclpy.parameter import Parameter
from vpg_common import driver_names
from vpg_common.driver_names import UR_JOINTS
from vpg_executor.parameters import declare_parameters as executor_declare
from vpg_perception.calibration import load_calibration
from vpg_perception.heightmap_node import declare_parameters as heightmap_declare
from vpg_policy.policy_node import declare_parameters as policy_declare
from vpg_trainer.trainer_node import declare_parameters as trainer_declare
import yaml

PACKAGE_DIR = Path(__file__).resolve().parents[1]
CONFIG_DIR = PACKAGE_DIR / 'config'
DRIVERS = CONFIG_DIR / 'drivers'
URDF_DIR = PACKAGE_DIR / 'urdf'
WORLD = PACKAGE_DIR / 'worlds' / 'vpg_cell.sdf'
XACRO_FILES = sorted(URDF_DIR.glob('*.xacro'))

# Files of other packages the xacro files may include (checked in their repositories:
# Universal_Robots_ROS2_Description rolling, Universal_Robots_ROS2_Driver kilted,
# ros2_robotiq_gripper main).
UPSTREAM_FILES = {
    'ur_description': {'urdf/ur_macro.xacro', 'urdf/inc/ur_joint_control.xacro'} | {
        f'config/$(arg ur_type)/{name}.yaml' for name in (
            'joint_limits', 'default_kinematics', 'physical_parameters', 'visual_parameters')},
    'ur_robot_driver': {'urdf/ur.urdf.xacro'},
    'robotiq_description': {'urdf/ur_to_robotiq_adapter.urdf.xacro',
                            'urdf/robotiq_2f_85_macro.urdf.xacro'},
    'ur_moveit_config': {'srdf/ur_macro.srdf.xacro'},
}
# Macro parameters, from the same sources.
MACRO_PARAMETERS = {
    'ur_robot': {'name', 'tf_prefix', 'parent', 'joint_limits_parameters_file',
                 'kinematics_parameters_file', 'physical_parameters_file',
                 'visual_parameters_file', 'safety_limits', 'safety_pos_margin',
                 'safety_k_position', 'force_abs_paths'},
    'ur_joint_control_description': {'tf_prefix', 'initial_positions'},
    'ur_to_robotiq': {'prefix', 'parent', 'child', 'rotation'},
    'robotiq_gripper': {'name', 'prefix', 'parent', 'sim_gazebo', 'sim_isaac',
                        'isaac_joint_commands', 'isaac_joint_states', 'use_fake_hardware',
                        'mock_sensor_commands', 'include_ros2_control', 'com_port',
                        'gripper_speed_multiplier', 'gripper_force_multiplier',
                        'gripper_max_speed', 'gripper_max_force', 'gripper_closed_position'},
    'ur_srdf': set(),
}
# Arguments ur.urdf.xacro declares that vpg_cell.urdf.xacro uses after including it.
UR_URDF_ARGUMENTS = {'name', 'tf_prefix', 'use_mock_hardware', 'ur_type'}
UR_LINKS = {'base_link', 'base_link_inertia', 'shoulder_link', 'upper_arm_link', 'forearm_link',
            'wrist_1_link', 'wrist_2_link', 'wrist_3_link', 'ft_frame', 'base', 'flange',
            'tool0'}
GRIPPER_LINKS = {'ur_to_robotiq_link', 'robotiq_85_base_link'} | {
    f'robotiq_85_{side}_{part}' for side in ('left', 'right')
    for part in ('knuckle_link', 'finger_link', 'inner_knuckle_link', 'finger_tip_link')}
FOCAL_LENGTH_PX = 615.0  # the MuJoCo cell's camera (vpg_sim.scene), a D435 at 640x480


def load_yaml(path):
    return yaml.safe_load(path.read_text())


def parameters(section):
    return section['ros__parameters']


def executor_parameters(name):
    return parameters(load_yaml(CONFIG_DIR / name)['/**/executor'])


def flat_parameters(values, prefix=''):
    """(dotted name, value) of a ros__parameters block, nested keys joined as ROS does."""
    for key, value in values.items():
        if isinstance(value, dict):
            yield from flat_parameters(value, f'{prefix}{key}.')
        else:
            yield f'{prefix}{key}', value


# Each shipped parameter file and the nodes of ours it configures, with their declarations.
DECLARATIONS = {'executor': executor_declare, 'heightmap': heightmap_declare,
                'policy': policy_declare, 'trainer': trainer_declare}


@pytest.mark.parametrize('name', ['real.yaml', 'gazebo.yaml', 'sim.yaml', 'trainer.yaml'])
def test_parameter_files_pass_the_nodes_own_declarations(name):
    """Types and ranges as rclpy enforces them: real.yaml and gazebo.yaml never start here."""
    checked = []
    for key, section in load_yaml(CONFIG_DIR / name).items():
        node_name = key.rsplit('/', 1)[-1]
        if node_name not in DECLARATIONS:
            continue
        overrides = [Parameter(n, value=v) for n, v in flat_parameters(parameters(section))]
        if node_name == 'trainer':
            overrides.append(Parameter('run_dir', value='/nonexistent/run'))
        context = rclpy.Context()
        rclpy.init(context=context)
        try:
            node = rclpy.create_node('declaration_probe', context=context,
                                     parameter_overrides=overrides)
            DECLARATIONS[node_name](node)
            node.destroy_node()
        finally:
            rclpy.shutdown(context=context)
        checked.append(node_name)
    assert checked


# The action type each gripper controller serves, as executor gripper.interface names it.
GRIPPER_INTERFACE_OF = {
    'parallel_gripper_action_controller/GripperActionController': 'parallel_gripper_command',
    'position_controllers/GripperActionController': 'gripper_command'}


def executor_gripper_interface(executor):
    """Return the executor's gripper.interface: set in the file, else the parameter's default."""
    from vpg_executor.parameters import PARAMETERS
    defaults = {name: default for name, default, *_ in PARAMETERS}
    return executor.get('gripper.interface', defaults['gripper.interface'])


def rpy_matrix(roll, pitch, yaw):
    cr, sr, cp, sp = math.cos(roll), math.sin(roll), math.cos(pitch), math.sin(pitch)
    cy, sy = math.cos(yaw), math.sin(yaw)
    return (np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
            @ np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
            @ np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]]))


def world_model(name):
    document = xml.dom.minidom.parse(str(WORLD))
    for model in document.getElementsByTagName('model'):
        if model.getAttribute('name') == name:
            return model
    raise AssertionError(f'no model {name} in {WORLD.name}')


def text(element, tag):
    return element.getElementsByTagName(tag)[0].firstChild.data.strip()


# -- world and camera ----------------------------------------------------------------------

def test_world_camera_pose_is_the_gazebo_calibration():
    camera = world_model('camera')
    x, y, z, roll, pitch, yaw = (float(v) for v in text(camera, 'pose').split())
    world_R_link = rpy_matrix(roll, pitch, yaw)
    # Gazebo cameras look along the link's x axis (y left, z up); optical: x right, y down.
    link_R_optical = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    base_R_world = np.diag([-1.0, -1.0, 1.0])  # ur_description: base = base_link turned by pi
    base_R_optical = base_R_world @ world_R_link @ link_R_optical
    calibration = load_calibration(CONFIG_DIR / 'calibration' / 'gazebo_camera.yaml')
    np.testing.assert_allclose(calibration.base_T_camera[:3, :3], base_R_optical, atol=1e-6)
    np.testing.assert_allclose(calibration.base_T_camera[:3, 3], base_R_world @ [x, y, z],
                               atol=1e-9)
    assert calibration.frame_id == 'base' and calibration.depth_scale == 1.0
    # Looking down at the workspace centre, robot at the top of the image (as in VPG).
    optical_axis = base_R_optical[:, 2]
    assert optical_axis[2] < -0.9
    assert base_R_optical[:, 1][0] < -0.9 * np.hypot(*base_R_optical[:2, 1])


def test_world_camera_matches_the_mujoco_cells_intrinsics_and_topics():
    sensor = world_model('camera').getElementsByTagName('sensor')[0]
    assert sensor.getAttribute('type') == 'rgbd_camera'
    width, height = int(text(sensor, 'width')), int(text(sensor, 'height'))
    assert (width, height) == (640, 480)
    fx = width / 2 / math.tan(float(text(sensor, 'horizontal_fov')) / 2)
    assert fx == pytest.approx(FOCAL_LENGTH_PX, abs=0.1)
    assert text(sensor, 'topic') == 'rgbd_camera'


def test_world_blocks_lie_in_the_workspace_on_the_table():
    document = xml.dom.minidom.parse(str(WORLD))
    blocks = [m for m in document.getElementsByTagName('model')
              if m.getAttribute('name').startswith('block_')]
    assert len(blocks) >= 5
    for block in blocks:
        x, y, z = (float(v) for v in text(block, 'pose').split()[:3])
        base_x, base_y = -x, -y
        assert -0.724 < base_x < -0.276 and -0.224 < base_y < 0.224
        size_z = float(text(block, 'size').split()[2])
        assert z == pytest.approx(size_z / 2, abs=0.002)
    table = world_model('table')
    top = float(text(table, 'pose').split()[2]) + float(text(table, 'size').split()[2]) / 2
    assert top == pytest.approx(0.0)


# -- bridge ---------------------------------------------------------------------------------

def test_bridge_puts_the_camera_on_realsense_topic_names():
    bridge = load_yaml(DRIVERS / 'gz_bridge.yaml')
    for entry in bridge:
        assert set(entry) == {'ros_topic_name', 'gz_topic_name', 'ros_type_name',
                              'gz_type_name', 'direction'}
        assert entry['direction'] == 'GZ_TO_ROS'
    routes = {entry['ros_topic_name']: (entry['gz_topic_name'], entry['ros_type_name'])
              for entry in bridge}
    assert routes == {
        '/clock': ('/clock', 'rosgraph_msgs/msg/Clock'),
        driver_names.COLOR_TOPIC: ('/rgbd_camera/image', 'sensor_msgs/msg/Image'),
        driver_names.COLOR_INFO_TOPIC: ('/rgbd_camera/camera_info', 'sensor_msgs/msg/CameraInfo'),
        driver_names.DEPTH_TOPIC: ('/rgbd_camera/depth_image', 'sensor_msgs/msg/Image'),
        driver_names.DEPTH_INFO_TOPIC: ('/rgbd_camera/camera_info', 'sensor_msgs/msg/CameraInfo'),
    }
    heightmap = parameters(load_yaml(CONFIG_DIR / 'real.yaml')['/**/heightmap'])
    assert {heightmap['color_topic'], heightmap['depth_topic'],
            heightmap['camera_info_topic']} <= set(routes)


# -- controllers ----------------------------------------------------------------------------

def test_gazebo_controllers_serve_what_the_executor_uses():
    controllers = load_yaml(DRIVERS / 'gz_controllers.yaml')
    manager = parameters(controllers['controller_manager'])
    types = {name: value['type'] for name, value in manager.items() if isinstance(value, dict)}
    assert types == {
        'joint_state_broadcaster': 'joint_state_broadcaster/JointStateBroadcaster',
        'joint_trajectory_controller': 'joint_trajectory_controller/JointTrajectoryController',
        'robotiq_gripper_controller': 'parallel_gripper_action_controller/GripperActionController'}
    executor = executor_parameters('gazebo.yaml')
    trajectory_controller = executor['robot.trajectory_topic'].split('/')[1]
    assert executor['robot.trajectory_topic'] == f'/{trajectory_controller}/joint_trajectory'
    assert tuple(parameters(controllers[trajectory_controller])['joints']) == UR_JOINTS
    gripper_controller = executor['gripper.action'].split('/')[1]
    assert gripper_controller in types
    assert parameters(controllers[gripper_controller])['joint'] == executor['gripper.joint']
    assert executor_gripper_interface(executor) == GRIPPER_INTERFACE_OF[types[gripper_controller]]


def test_gazebo_launch_spawns_every_configured_controller():
    source = (PACKAGE_DIR / 'launch' / 'gazebo.launch.py').read_text()
    spawned = set(re.search(r'CONTROLLERS = \(([^)]*)\)', source).group(1).replace(
        "'", '').replace(',', ' ').split())
    manager = parameters(load_yaml(DRIVERS / 'gz_controllers.yaml')['controller_manager'])
    assert spawned == {name for name, value in manager.items() if isinstance(value, dict)}


def test_real_gripper_controllers_have_types_and_the_executors_joint():
    controllers = load_yaml(DRIVERS / 'robotiq_controllers.yaml')
    assert set(controllers) == {'robotiq_gripper_controller', 'robotiq_activation_controller'}
    assert all(parameters(section)['type'] for section in controllers.values())
    executor = executor_parameters('real.yaml')
    assert executor['gripper.action'] == '/robotiq_gripper_controller/gripper_cmd'
    assert (parameters(controllers['robotiq_gripper_controller'])['joint']
            == executor['gripper.joint'])
    controller_type = parameters(controllers['robotiq_gripper_controller'])['type']
    assert executor_gripper_interface(executor) == GRIPPER_INTERFACE_OF[controller_type]
    assert executor['robot.trajectory_topic'] == (
        '/scaled_joint_trajectory_controller/joint_trajectory')


# Interfaces of the knuckle joint the 2F-85's ros2_control hardware exports, at the commit
# docker/Dockerfile.real pins (PickNikRobotics/ros2_robotiq_gripper 3b6cf8f):
# robotiq_driver/src/hardware_interface.cpp export_state_interfaces (lines 182-185) and
# export_command_interfaces (196-206); the mock (mock_components/GenericSystem) exports what
# robotiq_description/urdf/2f_85.ros2_control.xacro declares (lines 54-60).
KNUCKLE = 'robotiq_85_left_knuckle_joint'
GRIPPER_HARDWARE_INTERFACES = {
    'robotiq_driver': {
        'command': {f'{KNUCKLE}/{name}' for name in (
            'position', 'set_gripper_max_velocity', 'set_gripper_max_effort')},
        'state': {f'{KNUCKLE}/position', f'{KNUCKLE}/velocity'}},
    'mock': {'command': {f'{KNUCKLE}/position'},
             'state': {f'{KNUCKLE}/position', f'{KNUCKLE}/velocity'}},
}
FULL_STROKE_S = 0.085 / 0.150  # 2F-85: 85 mm stroke at its top speed of 150 mm/s


def claimed_interfaces(settings):
    """
    Return the interfaces parallel_gripper_action_controller claims, (command, state).

    ros2_controllers kilted: command_interface_configuration / state_interface_configuration
    of parallel_gripper_action_controller_impl.hpp.
    """
    joint = settings['joint']
    command = {f'{joint}/position'} | {
        settings[key] for key in ('max_effort_interface', 'max_velocity_interface')
        if settings.get(key)}
    names = settings.get('state_interfaces', ['position', 'velocity'])
    state = {f'{joint}/{name}' for name in names}
    return command, state


@pytest.mark.parametrize('hardware', sorted(GRIPPER_HARDWARE_INTERFACES))
def test_real_gripper_controller_claims_only_interfaces_the_hardware_exports(hardware):
    settings = parameters(load_yaml(DRIVERS / 'robotiq_controllers.yaml')[
        'robotiq_gripper_controller'])
    command, state = claimed_interfaces(settings)
    exported = GRIPPER_HARDWARE_INTERFACES[hardware]
    assert command <= exported['command'], command - exported['command']
    assert state <= exported['state'], state - exported['state']


def test_upstream_gripper_settings_would_not_activate():
    """What the fix is for: upstream's max_*_interface names exist on neither hardware."""
    upstream = {'joint': KNUCKLE, 'max_effort_interface': f'{KNUCKLE}/effort',
                'max_velocity_interface': f'{KNUCKLE}/velocity'}
    command, _ = claimed_interfaces(upstream)
    for exported in GRIPPER_HARDWARE_INTERFACES.values():
        assert not command <= exported['command']


def test_gripper_stall_timeout_outlasts_a_full_stroke():
    settings = parameters(load_yaml(DRIVERS / 'robotiq_controllers.yaml')[
        'robotiq_gripper_controller'])
    assert settings['allow_stalling'] is True
    assert settings['stall_timeout'] > 2 * FULL_STROKE_S


def test_moveit_py_settings_name_the_executors_pipelines():
    from vpg_executor.parameters import PARAMETERS
    defaults = {name: default for name, default, *_ in PARAMETERS}
    settings = load_yaml(DRIVERS / 'moveit_py.yaml')
    assert {'planning_scene_monitor_options', 'planning_pipelines',
            'plan_request_params'} <= set(settings)
    pipelines = settings['planning_pipelines']['pipeline_names']
    assert defaults['moveit.free_pipeline'] in pipelines
    assert defaults['moveit.linear_pipeline'] in pipelines
    assert settings['planning_scene_monitor_options']['joint_state_topic'] == (
        defaults['robot.joint_states_topic'])
    executor = executor_parameters('real.yaml')
    assert (settings['plan_request_params']['max_velocity_scaling_factor']
            == executor['moveit.max_velocity_scaling'])


# -- xacro ----------------------------------------------------------------------------------

@pytest.mark.parametrize('path', XACRO_FILES, ids=lambda p: p.name)
def test_xacro_files_use_only_upstream_files_and_macro_arguments(path):
    source = path.read_text()
    document = xml.dom.minidom.parseString(source)
    for package, relative in re.findall(r'\$\(find (\w+)\)/([^"]+)"', source):
        assert relative in UPSTREAM_FILES.get(package, set()), f'{package}/{relative}'
    calls = [element for element in document.getElementsByTagName('*')
             if element.tagName.startswith('xacro:') and element.tagName not in (
                 'xacro:arg', 'xacro:include', 'xacro:if', 'xacro:unless', 'xacro:property')]
    assert calls
    for element in calls:
        macro = element.tagName.split(':', 1)[1]
        assert macro in MACRO_PARAMETERS, f'{path.name}: unknown macro {macro}'
        unknown = set(element.attributes.keys()) - MACRO_PARAMETERS[macro]
        assert not unknown, f'{path.name}: {macro} has no {unknown}'
    declared = {a.getAttribute('name') for a in document.getElementsByTagName('xacro:arg')}
    if 'ur.urdf.xacro' in source:
        declared |= UR_URDF_ARGUMENTS
    assert set(re.findall(r'\$\(arg (\w+)\)', source)) <= declared


def test_real_description_mounts_the_gripper_on_tool0_with_the_mock_switch():
    document = xml.dom.minidom.parse(str(URDF_DIR / 'vpg_cell.urdf.xacro'))
    mount = document.getElementsByTagName('xacro:ur_to_robotiq')[0]
    assert mount.getAttribute('parent') == '$(arg tf_prefix)tool0'
    gripper = document.getElementsByTagName('xacro:robotiq_gripper')[0]
    assert gripper.getAttribute('parent') == mount.getAttribute('child')
    assert gripper.getAttribute('use_fake_hardware') == '$(arg use_mock_hardware)'
    gz = xml.dom.minidom.parse(str(URDF_DIR / 'vpg_cell_gz.urdf.xacro'))
    assert gz.getElementsByTagName('xacro:robotiq_gripper')[0].getAttribute(
        'sim_gazebo') == 'true'
    plugins = {p.getAttribute('name') or p.firstChild.data.strip()
               for p in gz.getElementsByTagName('plugin')}
    assert plugins == {'gz_ros2_control::GazeboSimROS2ControlPlugin',
                       'gz_ros2_control/GazeboSimSystem'}


def test_srdf_disables_collisions_between_existing_links_only():
    document = xml.dom.minidom.parse(str(URDF_DIR / 'vpg_cell.srdf.xacro'))
    pairs = {frozenset((e.getAttribute('link1'), e.getAttribute('link2')))
             for e in document.getElementsByTagName('disable_collisions')}
    assert all(pair <= UR_LINKS | GRIPPER_LINKS for pair in pairs)
    # Every pair of gripper links, and each of them with the wrist they are fixed to.
    gripper = sorted(GRIPPER_LINKS)
    needed = {frozenset((a, b)) for i, a in enumerate(gripper) for b in gripper[i + 1:]}
    needed |= {frozenset((link, 'wrist_3_link')) for link in gripper}
    assert needed <= pairs


def test_mujoco_cell_and_executor_speak_the_same_gripper_action():
    config = load_yaml(CONFIG_DIR / 'sim.yaml')
    sim = parameters(config['/**/sim'])
    executor = executor_parameters('sim.yaml')
    assert sim['gripper.interface'] == executor_gripper_interface(executor)


def test_cell_and_executor_default_to_the_same_gripper_action():
    # Graphs without a parameters file (the end-to-end tests) rely on the defaults agreeing.
    from vpg_executor.parameters import PARAMETERS as EXECUTOR
    from vpg_sim.sim_parameters import GRIPPER_INTERFACES
    executor_default = next(default for name, default, *_ in EXECUTOR
                            if name == 'gripper.interface')
    assert GRIPPER_INTERFACES[0] == executor_default == 'parallel_gripper_command'
