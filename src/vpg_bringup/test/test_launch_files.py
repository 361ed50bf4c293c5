"""
Static checks of launch/*.launch.py: they compile, and run against stand-ins for `launch`.

`launch` and `launch_ros` cannot be installed here, so each launch file is executed with small
stand-in modules in sys.modules that record what the file creates: declared arguments, included
launch files with their arguments, and Node keyword arguments. The nodes of our packages must
be exactly those the graph functions describe (the ones the runner starts), and every argument
given to an included launch file must be one that file declares. The argument names below were
read from the included files' sources (ROS 2 kilted branches); the report of the change that
added them names the commits.
"""

import ast
import importlib.util
from pathlib import Path
import sys
from types import ModuleType, SimpleNamespace

import pytest
from vpg_bringup.graph import gazebo_graph, real_graph, sim_graph, training_graph, viewer_spec
from vpg_bringup.launch_description import config_directory, node_kwargs, share_directory

PACKAGE_DIR = Path(__file__).resolve().parents[1]
LAUNCH_DIR = PACKAGE_DIR / 'launch'
LAUNCH_FILES = sorted(LAUNCH_DIR.glob('*.launch.py'))

# UniversalRobots/Universal_Robots_ROS2_Driver, branch kilted:
# ur_robot_driver/launch/ur_control.launch.py
UR_CONTROL_ARGUMENTS = {
    'activate_joint_controller', 'controller_spawner_timeout', 'controllers_file',
    'description_launchfile', 'headless_mode', 'initial_joint_controller',
    'launch_dashboard_client', 'launch_rviz', 'mock_sensor_commands', 'reverse_ip',
    'reverse_port', 'robot_ip', 'rviz_config_file', 'safety_k_position', 'safety_limits',
    'safety_pos_margin', 'script_command_port', 'script_sender_port', 'tf_prefix',
    'tool_baud_rate', 'tool_device_name', 'tool_parity', 'tool_rx_idle_chars', 'tool_stop_bits',
    'tool_tcp_port', 'tool_tx_idle_chars', 'tool_voltage', 'trajectory_port',
    'update_rate_config_file', 'ur_type', 'use_mock_hardware', 'use_tool_communication'}
UR_INITIAL_JOINT_CONTROLLERS = {
    'scaled_joint_trajectory_controller', 'joint_trajectory_controller',
    'forward_velocity_controller', 'forward_position_controller', 'freedrive_mode_controller',
    'passthrough_trajectory_controller', 'motion_primitive_forward_controller'}
# ... ur_robot_driver/launch/ur_rsp.launch.py
UR_RSP_ARGUMENTS = {
    'description_file', 'headless_mode', 'joint_limit_params_file', 'kinematics_params_file',
    'mock_sensor_commands', 'physical_params_file', 'reverse_ip', 'reverse_port', 'robot_ip',
    'safety_k_position', 'safety_limits', 'safety_pos_margin', 'script_command_port',
    'script_sender_port', 'tf_prefix', 'tool_baud_rate', 'tool_device_name', 'tool_parity',
    'tool_rx_idle_chars', 'tool_stop_bits', 'tool_tcp_port', 'tool_tx_idle_chars',
    'tool_voltage', 'trajectory_port', 'ur_type', 'use_mock_hardware', 'use_tool_communication',
    'verify_robot_model', 'visual_params_file'}
# ... ur_moveit_config/launch/ur_moveit.launch.py
UR_MOVEIT_ARGUMENTS = {'launch_rviz', 'launch_servo', 'publish_robot_description_semantic',
                       'ur_type', 'use_sim_time', 'warehouse_sqlite_path'}
# IntelRealSense/realsense-ros, branches ros2-master and ros2-development (both declare these):
# realsense2_camera/launch/rs_launch.py (a subset: the ones a cell may want to set)
RS_LAUNCH_ARGUMENTS = {
    'camera_name', 'camera_namespace', 'serial_no', 'usb_port_id', 'device_type', 'config_file',
    'json_file_path', 'initial_reset', 'log_level', 'output', 'enable_color',
    'rgb_camera.color_profile', 'rgb_camera.color_format', 'rgb_camera.enable_auto_exposure',
    'enable_depth', 'depth_module.depth_profile', 'depth_module.depth_format',
    'depth_module.enable_auto_exposure', 'enable_sync', 'enable_rgbd', 'clip_distance',
    'publish_tf', 'tf_publish_rate', 'pointcloud.enable', 'align_depth.enable',
    'decimation_filter.enable', 'spatial_filter.enable', 'temporal_filter.enable',
    'hole_filling_filter.enable', 'wait_for_device_timeout', 'reconnect_timeout'}
# gazebosim/ros_gz: ros_gz_sim/launch/gz_sim.launch.py.in
GZ_SIM_ARGUMENTS = {'gz_args', 'gz_version', 'debugger', 'on_exit_shutdown'}
INCLUDED_ARGUMENTS = {
    ('ur_robot_driver', 'ur_control.launch.py'): UR_CONTROL_ARGUMENTS,
    ('ur_robot_driver', 'ur_rsp.launch.py'): UR_RSP_ARGUMENTS,
    ('ur_moveit_config', 'ur_moveit.launch.py'): UR_MOVEIT_ARGUMENTS,
    ('realsense2_camera', 'rs_launch.py'): RS_LAUNCH_ARGUMENTS,
    ('ros_gz_sim', 'gz_sim.launch.py'): GZ_SIM_ARGUMENTS,
}
# ros-controls/ros2_control, branch kilted: controller_manager/controller_manager/spawner.py
SPAWNER_OPTIONS = {'-c', '--controller-manager', '-p', '--param-file', '--inactive',
                   '--controller-manager-timeout', '--load-only', '--activate-as-group'}
# gazebosim/ros_gz: ros_gz_sim/src/create.cpp
CREATE_OPTIONS = {'-world', '-file', '-param', '-string', '-topic', '-name', '-allow_renaming',
                  '-x', '-y', '-z', '-R', '-P', '-Y'}


# -- stand-ins for launch and launch_ros ------------------------------------------------------

class Recorded:
    """Any launch object: keeps its constructor arguments."""

    def __init__(self, *args, **kwargs):
        self.args = args
        self.kwargs = kwargs

    def __repr__(self):
        return f'{type(self).__name__}{self.args}{self.kwargs}'


class LaunchConfiguration(Recorded):
    """Its value is the context's launch configuration of that name."""

    def perform(self, context):
        return context.launch_configurations[self.args[0]]


class FindPackageShare(Recorded):
    """Stands for the package's share folder as /share/<package>."""

    def __str__(self):
        return f'/share/{self.args[0]}'


class PathJoinSubstitution(Recorded):
    """Keeps the path parts."""

    def parts(self):
        return [str(part) for part in self.args[0]]


class ParameterValue(Recorded):
    pass


def stub_modules():
    """Return {module name: stand-in module} for everything the launch files import."""
    classes = {
        'launch': ['LaunchDescription'],
        'launch.actions': ['DeclareLaunchArgument', 'IncludeLaunchDescription', 'OpaqueFunction',
                           'AppendEnvironmentVariable', 'SetEnvironmentVariable', 'GroupAction'],
        'launch.conditions': ['IfCondition', 'UnlessCondition'],
        'launch.launch_description_sources': ['PythonLaunchDescriptionSource'],
        'launch.substitutions': ['Command', 'FindExecutable'],
        'launch_ros': [],
        'launch_ros.actions': ['Node'],
        'launch_ros.substitutions': [],
        'launch_ros.parameter_descriptions': [],
        'moveit_configs_utils': [],
    }
    modules = {}
    for name, class_names in classes.items():
        module = ModuleType(name)
        for class_name in class_names:
            setattr(module, class_name, type(class_name, (Recorded,), {}))
        modules[name] = module
    modules['launch.substitutions'].LaunchConfiguration = LaunchConfiguration
    modules['launch.substitutions'].PathJoinSubstitution = PathJoinSubstitution
    modules['launch_ros.substitutions'].FindPackageShare = FindPackageShare
    modules['launch_ros.parameter_descriptions'].ParameterValue = ParameterValue
    modules['moveit_configs_utils'].MoveItConfigsBuilder = MoveItConfigsBuilder
    return modules


class MoveItConfigsBuilder(Recorded):
    """Records the builder calls; to_dict() returns them for the test to read."""

    calls = []

    def __getattr__(self, name):
        def call(*args, **kwargs):
            MoveItConfigsBuilder.calls.append((name, args, kwargs))
            return self
        return call

    def to_dict(self):
        return {'moveit_stand_in': True}


def walk(entities):
    """Yield every recorded object inside actions, launch descriptions and their arguments."""
    for entity in entities:
        if isinstance(entity, Recorded):
            yield entity
            yield from walk(entity.args)
            yield from walk(entity.kwargs.values())
        elif isinstance(entity, (list, tuple)):
            yield from walk(entity)
        elif isinstance(entity, dict):
            yield from walk(entity.values())


def strings_in(value):
    """Yield every string inside recorded objects, lists and dicts."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Recorded):
        yield from strings_in(value.args)
        yield from strings_in(value.kwargs)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from strings_in(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings_in(item)


def load_launch_file(path, modules):
    saved = {name: sys.modules.get(name) for name in modules}
    sys.modules.update(modules)
    try:
        spec = importlib.util.spec_from_file_location(
            'launch_file_' + path.name.split('.')[0], path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        for name, previous in saved.items():
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous
    return module


class LaunchRun:
    """One launch file run against the stand-ins with the given argument values."""

    def __init__(self, name, **arguments):
        self.modules = stub_modules()
        MoveItConfigsBuilder.calls = []
        saved = {name_: sys.modules.get(name_) for name_ in self.modules}
        sys.modules.update(self.modules)
        try:
            module = load_launch_file(LAUNCH_DIR / name, self.modules)
            self.description = module.generate_launch_description()
            entities = list(self.description.args[0])
            declare = self.modules['launch.actions'].DeclareLaunchArgument
            self.declared = {e.args[0]: e.kwargs for e in entities if isinstance(e, declare)}
            unknown = set(arguments) - set(self.declared)
            assert not unknown, f'{name} declares no argument(s) {unknown}'
            values = {key: kw.get('default_value') for key, kw in self.declared.items()}
            values.update(arguments)
            missing = [key for key, value in values.items() if value is None]
            assert not missing, f'required argument(s) {missing} not given'
            context = SimpleNamespace(launch_configurations=values)
            opaque = self.modules['launch.actions'].OpaqueFunction
            self.actions = list(entities)
            for entity in entities:
                if isinstance(entity, opaque):
                    self.actions += list(entity.kwargs['function'](context))
        finally:
            for name_, previous in saved.items():
                if previous is None:
                    sys.modules.pop(name_, None)
                else:
                    sys.modules[name_] = previous

    def of_type(self, module, class_name):
        cls = getattr(self.modules[module], class_name)
        return [entity for entity in walk(self.actions) if isinstance(entity, cls)]

    def nodes(self, package_prefix=''):
        return [node.kwargs for node in self.of_type('launch_ros.actions', 'Node')
                if node.kwargs['package'].startswith(package_prefix)]

    def our_nodes(self):
        """Our packages' Node kwargs with string overrides unwrapped from ParameterValue."""
        nodes = []
        for kwargs in self.nodes('vpg_'):
            kwargs = dict(kwargs)
            kwargs['parameters'] = [
                {k: v.args[0] if isinstance(v, ParameterValue) else v for k, v in p.items()}
                if isinstance(p, dict) else p for p in kwargs['parameters']]
            nodes.append(kwargs)
        return nodes

    def includes(self):
        """[(package, launch file, {argument: value})] of every IncludeLaunchDescription."""
        found = []
        for include in self.of_type('launch.actions', 'IncludeLaunchDescription'):
            path = include.args[0].args[0]
            parts = path.parts() if isinstance(path, PathJoinSubstitution) else [str(path)]
            package = parts[0].rsplit('/', 1)[-1]
            found.append((package, parts[-1], dict(include.kwargs.get('launch_arguments', ()))))
        return found


def expected(specs):
    return [node_kwargs(spec, config_directory()) for spec in specs]


# Values for each launch file's required arguments.
REQUIRED = {'real.launch.py': {'robot_ip': '10.0.0.2', 'calibration_file': '/cal.yaml'},
            'vpg_cell_rsp.launch.py': {'robot_ip': '10.0.0.2', 'ur_type': 'ur5'}}


# -- every launch file -------------------------------------------------------------------------

def test_the_three_cells_have_launch_files():
    names = {path.name for path in LAUNCH_FILES}
    assert {'real.launch.py', 'gazebo.launch.py', 'sim.launch.py'} <= names


@pytest.mark.parametrize('path', LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_compiles_and_defines_generate_launch_description(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    compile(tree, str(path), 'exec')
    functions = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert 'generate_launch_description' in functions
    assert ast.get_docstring(tree), f'{path.name} needs a module docstring saying what it starts'


@pytest.mark.parametrize('path', LAUNCH_FILES, ids=lambda p: p.name)
def test_every_launch_argument_is_described(path):
    run = LaunchRun(path.name, **REQUIRED.get(path.name, {}))
    assert run.declared
    for name, kwargs in run.declared.items():
        assert kwargs.get('description'), f'{path.name}: argument {name} has no description'


@pytest.mark.parametrize('path', LAUNCH_FILES, ids=lambda p: p.name)
def test_included_launch_files_get_only_arguments_they_declare(path):
    arguments = dict(REQUIRED.get(path.name, {}))
    for backend in ('moveit', 'joint_trajectory'):
        if path.name == 'real.launch.py':
            arguments.update(motion_backend=backend, launch_move_group='true')
        for package, launch_file, given in LaunchRun(path.name, **arguments).includes():
            known = INCLUDED_ARGUMENTS.get((package, launch_file))
            assert known is not None, f'{path.name} includes unchecked {package}/{launch_file}'
            assert set(given) <= known, (f'{path.name}: {package}/{launch_file} declares no '
                                         f'{sorted(set(given) - known)}')


def test_spawners_and_create_use_options_their_tools_have():
    for run in (LaunchRun('gazebo.launch.py'),
                LaunchRun('real.launch.py', robot_ip='10.0.0.2', calibration_file='/c.yaml')):
        for node in run.nodes('controller_manager'):
            options = {a for a in node['arguments'] if isinstance(a, str) and a.startswith('-')}
            assert node['executable'] == 'spawner' and options <= SPAWNER_OPTIONS, options
        for node in run.nodes('ros_gz_sim'):
            options = {a for a in node['arguments'] if a.startswith('-')}
            assert node['executable'] == 'create' and options <= CREATE_OPTIONS, options


def test_files_a_launch_file_points_into_this_package_exist():
    share = Path(share_directory())
    runs = [LaunchRun('sim.launch.py', rviz='true'), LaunchRun('gazebo.launch.py', rviz='true'),
            LaunchRun('real.launch.py', robot_ip='10.0.0.2', calibration_file='/c.yaml',
                      rviz='true')]
    paths = set()
    for run in runs:
        strings = list(strings_in(run.actions))
        strings += [v for _, _, given in run.includes() for v in given.values()
                    if isinstance(v, str)]
        paths |= {word for text in strings for word in text.split()
                  if word.startswith(str(share))}
    names = {Path(p).relative_to(share).as_posix() for p in paths}
    assert {'rviz/vpg.rviz', 'worlds/vpg_cell.sdf', 'urdf/vpg_cell_gz.urdf.xacro',
            'launch/vpg_cell_rsp.launch.py', 'config/drivers/gz_bridge.yaml',
            'config/drivers/gz_controllers.yaml', 'config/drivers/robotiq_controllers.yaml',
            'config/sim.yaml', 'config/gazebo.yaml', 'config/real.yaml'} <= names
    for path in paths:
        assert Path(path).is_file(), f'{path} is not installed (setup.py data_files?)'


# -- the nodes each launch file starts are the graph's -------------------------------------------

@pytest.mark.parametrize('arguments, graph_kwargs', [
    ({}, {}),
    ({'cell': 'cell2', 'seed': '7', 'num_objects': '4', 'weights': '/w.safetensors',
      'device': 'cpu'},
     {'cell': 'cell2', 'seed': 7, 'num_objects': 4, 'weights': '/w.safetensors',
      'device': 'cpu'}),
])
def test_sim_launch_starts_the_sim_graph(arguments, graph_kwargs):
    run = LaunchRun('sim.launch.py', **arguments)
    assert run.our_nodes() == expected(sim_graph(**graph_kwargs))
    assert not run.nodes('rviz2')


def test_sim_launch_adds_the_viewer_on_request():
    run = LaunchRun('sim.launch.py', viewer='true', viewer_port='9001')
    viewer = viewer_spec(port=9001, parameters={'use_sim_time': True})
    assert run.our_nodes() == expected(sim_graph() + [viewer])
    run = LaunchRun('sim.launch.py', trainer='true', cells='2', run_dir='/runs/x',
                    viewer='true')
    specs = training_graph('/runs/x', cells=2)
    assert run.our_nodes() == expected(
        specs + [viewer_spec('/cell0', parameters={'use_sim_time': True})])


def test_real_launch_adds_the_viewer_on_request():
    run = LaunchRun('real.launch.py', viewer='true', **REQUIRED['real.launch.py'])
    assert run.our_nodes()[-1] == expected([viewer_spec()])[0]


def test_sim_launch_shows_the_cell_in_rviz_on_request():
    run = LaunchRun('sim.launch.py', rviz='true', cell='cell1')
    (rviz,) = run.nodes('rviz2')
    assert rviz['namespace'] == '/cell1' and rviz['arguments'][-1].endswith('rviz/vpg.rviz')
    (rviz,) = LaunchRun('sim.launch.py', rviz='true').nodes('rviz2')
    assert 'namespace' not in rviz


@pytest.mark.parametrize('cells', [1, 3])
def test_sim_launch_with_the_trainer_starts_the_training_graph(cells):
    run = LaunchRun('sim.launch.py', trainer='true', cells=str(cells), run_dir='/runs/x',
                    seed='2', weights='/w.safetensors')
    specs = training_graph('/runs/x', cells=cells, seed=2, weights='/w.safetensors')
    assert run.our_nodes() == expected(specs)
    assert sum(node['executable'] == 'trainer' for node in run.our_nodes()) == 1
    with pytest.raises(ValueError, match='cell is for one cell'):
        LaunchRun('sim.launch.py', trainer='true', cell='cell1')


@pytest.mark.parametrize('arguments, graph_kwargs', [
    ({}, {}),
    ({'ur_type': 'ur5e', 'weights': '/w.safetensors', 'device': 'cuda', 'trainer': 'false'},
     {'ur_type': 'ur5e', 'weights': '/w.safetensors', 'device': 'cuda', 'trainer': False}),
])
def test_gazebo_launch_starts_the_gazebo_graph(arguments, graph_kwargs):
    run = LaunchRun('gazebo.launch.py', run_dir='/runs/gz', **arguments)
    assert run.our_nodes() == expected(gazebo_graph(run_dir='/runs/gz', **graph_kwargs))


def test_gazebo_launch_runs_world_bridge_and_controllers():
    run = LaunchRun('gazebo.launch.py', gui='false')
    ((package, launch_file, given),) = run.includes()
    assert (package, launch_file) == ('ros_gz_sim', 'gz_sim.launch.py')
    assert given['gz_args'].startswith('-s -r') and given['gz_args'].endswith('vpg_cell.sdf')
    assert LaunchRun('gazebo.launch.py').includes()[0][2]['gz_args'].startswith('-r')
    spawned = {node['arguments'][0] for node in run.nodes('controller_manager')}
    assert spawned == {'joint_state_broadcaster', 'joint_trajectory_controller',
                       'robotiq_gripper_controller'}
    (bridge,) = run.nodes('ros_gz_bridge')
    assert bridge['parameters'][0]['config_file'].endswith('config/drivers/gz_bridge.yaml')
    (publisher,) = run.nodes('robot_state_publisher')
    assert publisher['parameters'][0]['use_sim_time'] is True


@pytest.mark.parametrize('backend', ['moveit', 'joint_trajectory'])
def test_real_launch_starts_the_real_graph_and_the_drivers(backend):
    run = LaunchRun('real.launch.py', robot_ip='10.0.0.2', calibration_file='/cal.yaml',
                    motion_backend=backend, weights='/w.safetensors', trainer='true',
                    run_dir='/runs/real')
    specs = real_graph('/cal.yaml', weights='/w.safetensors', motion_backend=backend,
                       trainer=True, run_dir='/runs/real')
    nodes = run.our_nodes()
    # With MoveIt: the MoveIt configuration, then execution-duration monitoring (off by
    # default, as ur_moveit_config ships it: the pendant's speed slider slows the scaled JTC).
    extra = {'executor': [{'moveit_stand_in': True}, {
        'trajectory_execution.execution_duration_monitoring': False,
        'trajectory_execution.allowed_execution_duration_scaling': 3.0}]} \
        if backend == 'moveit' else {}
    assert [{**n, 'parameters': n['parameters'][:len(e['parameters'])]} for n, e in
            zip(nodes, expected(specs))] == expected(specs)
    for node in nodes:
        tail = node['parameters'][len(node_kwargs(
            next(s for s in specs if s.name == node['name']), config_directory())['parameters']):]
        assert tail == extra.get(node['name'], [])
    included = {(package, launch_file): given for package, launch_file, given in run.includes()}
    arm = included[('ur_robot_driver', 'ur_control.launch.py')]
    assert arm['robot_ip'] == '10.0.0.2' and arm['ur_type'] == 'ur5e'
    assert arm['launch_rviz'] == 'false'
    assert arm['initial_joint_controller'] in UR_INITIAL_JOINT_CONTROLLERS
    assert arm['description_launchfile'].endswith('launch/vpg_cell_rsp.launch.py')
    camera = included[('realsense2_camera', 'rs_launch.py')]
    assert (camera['camera_namespace'], camera['camera_name']) == ('camera', 'camera')
    assert camera['align_depth.enable'] == 'true'
    assert ('ur_moveit_config', 'ur_moveit.launch.py') not in included
    (gripper,) = run.nodes('controller_manager')
    assert gripper['arguments'][:2] == ['robotiq_gripper_controller',
                                        'robotiq_activation_controller']


def test_real_launch_configures_moveit_py_from_this_package():
    run = LaunchRun('real.launch.py', robot_ip='10.0.0.2', calibration_file='/cal.yaml',
                    launch_move_group='true', ur_type='ur5e')
    calls = {name: (args, kwargs) for name, args, kwargs in MoveItConfigsBuilder.calls}
    srdf, mappings = calls['robot_description_semantic'][0]
    assert Path(srdf).is_file() and srdf.endswith('urdf/vpg_cell.srdf.xacro')
    assert mappings == {'name': 'ur5e'}
    assert Path(calls['moveit_cpp'][0][0]).is_file()
    included = {(p, f): given for p, f, given in run.includes()}
    assert included[('ur_moveit_config', 'ur_moveit.launch.py')]['ur_type'] == 'ur5e'


def test_real_launch_refuses_bad_arguments_before_starting_anything():
    with pytest.raises(ValueError, match='motion_backend'):
        LaunchRun('real.launch.py', robot_ip='10.0.0.2', calibration_file='/c.yaml',
                  motion_backend='servo')
    with pytest.raises(AssertionError, match='calibration_file'):
        LaunchRun('real.launch.py', robot_ip='10.0.0.2')


def test_rsp_launch_file_gives_ur_rsp_our_description():
    run = LaunchRun('vpg_cell_rsp.launch.py', robot_ip='10.0.0.2', ur_type='ur5')
    ((package, launch_file, given),) = run.includes()
    assert (package, launch_file) == ('ur_robot_driver', 'ur_rsp.launch.py')
    description = given['description_file'].parts()
    assert description == ['/share/vpg_bringup', 'urdf', 'vpg_cell.urdf.xacro']
    assert (PACKAGE_DIR / 'urdf' / 'vpg_cell.urdf.xacro').is_file()


def test_ur_type_defaults_to_ur5e_in_the_driver_moveit_and_the_executors_kinematics():
    from vpg_executor.parameters import build_parameters
    from vpg_executor.ur_kinematics import MODELS, UR5E
    import yaml
    run = LaunchRun('real.launch.py', robot_ip='10.0.0.2', calibration_file='/cal.yaml')
    assert run.declared['ur_type']['default_value'] == 'ur5e'
    included = {(p, f): given for p, f, given in run.includes()}
    assert included[('ur_robot_driver', 'ur_control.launch.py')]['ur_type'] == 'ur5e'
    calls = {name: args for name, args, _ in MoveItConfigsBuilder.calls}
    assert calls['robot_description_semantic'][1] == {'name': 'ur5e'}
    (executor,) = [n for n in run.our_nodes() if n['name'] == 'executor']
    (config,) = [entry for entry in executor['parameters'] if isinstance(entry, str)]
    values = yaml.safe_load(Path(config).read_text())['/**/executor']['ros__parameters']
    values.update(executor_overrides(executor))
    params = build_parameters(values)
    assert params.trajectory.model == 'ur5e' and MODELS[params.trajectory.model] is UR5E
    run5 = LaunchRun('real.launch.py', robot_ip='10.0.0.2', calibration_file='/cal.yaml',
                     ur_type='ur5')
    (executor,) = [n for n in run5.our_nodes() if n['name'] == 'executor']
    assert executor_overrides(executor)['robot.model'] == 'ur5'


def executor_overrides(executor):
    """Return the graph's parameter overrides among an executor Node's parameter entries."""
    (overrides,) = [entry for entry in executor['parameters']
                    if isinstance(entry, dict) and 'robot.model' in entry]
    return overrides


def test_gripper_serial_port_reaches_the_description_and_tool_communication():
    arguments = {'robot_ip': '10.0.0.2', 'calibration_file': '/cal.yaml'}
    run = LaunchRun('real.launch.py', **arguments)
    env = {e.args[0]: e.args[1] for e in run.of_type('launch.actions', 'SetEnvironmentVariable')}
    assert env['VPG_GRIPPER_COM_PORT'] == '/dev/ttyUSB0'
    xacro = (PACKAGE_DIR / 'urdf' / 'vpg_cell.urdf.xacro').read_text()
    assert ('name="gripper_com_port" default="$(optenv VPG_GRIPPER_COM_PORT /dev/ttyUSB0)"'
            in xacro)
    included = {(p, f): given for p, f, given in run.includes()}
    assert 'use_tool_communication' not in included[('ur_robot_driver', 'ur_control.launch.py')]
    run = LaunchRun('real.launch.py', gripper_com_port='/tmp/ttyUR',
                    use_tool_communication='true', **arguments)
    env = {e.args[0]: e.args[1] for e in run.of_type('launch.actions', 'SetEnvironmentVariable')}
    assert env['VPG_GRIPPER_COM_PORT'] == '/tmp/ttyUR'
    arm = {(p, f): given for p, f, given in run.includes()}[
        ('ur_robot_driver', 'ur_control.launch.py')]
    assert (arm['use_tool_communication'], arm['tool_voltage'], arm['tool_device_name']) == (
        'true', '24', '/tmp/ttyUR')


def test_execution_duration_monitoring_is_a_launch_argument():
    run = LaunchRun('real.launch.py', robot_ip='10.0.0.2', calibration_file='/cal.yaml',
                    execution_duration_monitoring='true')
    (executor,) = [n for n in run.our_nodes() if n['name'] == 'executor']
    assert executor['parameters'][-1] == {
        'trajectory_execution.execution_duration_monitoring': True,
        'trajectory_execution.allowed_execution_duration_scaling': 3.0}


def test_package_xml_declares_every_package_the_launch_files_start_or_include():
    import xml.dom.minidom
    document = xml.dom.minidom.parse(str(PACKAGE_DIR / 'package.xml'))
    declared = {e.firstChild.data.strip() for e in document.getElementsByTagName('exec_depend')}
    runs = [LaunchRun('gazebo.launch.py', rviz='true'),
            LaunchRun('real.launch.py', robot_ip='10.0.0.2', calibration_file='/c.yaml',
                      rviz='true', launch_move_group='true')]
    used = {'moveit_configs_utils', 'xacro', 'launch', 'launch_ros'}
    for run in runs:
        used |= {package for package, _, _ in run.includes()}
        used |= {node['package'] for node in run.nodes()}
    # The controllers and hardware the configuration files name, by their packages.
    used |= {'parallel_gripper_controller', 'robotiq_controllers', 'robotiq_driver',
             'robotiq_description', 'ur_description', 'joint_state_broadcaster',
             'joint_trajectory_controller', 'gz_ros2_control'}
    assert used - declared == set()
