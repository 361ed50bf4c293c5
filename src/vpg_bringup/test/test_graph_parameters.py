"""
Every node, parameter file and parameter the graphs and config/*.yaml name exists.

Executables are checked against each package's setup.py console_scripts (read with ast). The
parameters a node declares are read by calling its module's `declare_parameters` with a
recording stand-in for the node, so the list is the node's own; `use_sim_time` is declared by
rclpy for every node. A value must also have the declared default's type: rclpy refuses an
integer for a double parameter at start-up.
"""

import ast
import importlib
import inspect
from pathlib import Path
import re

import pytest
from vpg_bringup import graph
import yaml

PACKAGE_DIR = Path(__file__).resolve().parents[1]
SRC_DIR = PACKAGE_DIR.parent
CONFIG_DIR = PACKAGE_DIR / 'config'
NODE_FILES = sorted(CONFIG_DIR.glob('*.yaml'))
RCLPY_PARAMETERS = {'use_sim_time': False}
# Values for the required arguments of graph functions (any function named *_graph or *_spec).
REQUIRED_ARGUMENTS = {'calibration_file': '/cal.yaml', 'path': '/tmp/run.mcap',
                      'run_dir': '/tmp/run', 'cells': 2}


def graph_functions():
    return sorted(name for name, value in vars(graph).items()
                  if inspect.isfunction(value) and not name.startswith('_')
                  and (name.endswith('_graph') or name.endswith('_spec')))


def call_graph_function(name):
    """Call graph.<name> with the table's required arguments and every optional node on."""
    function = getattr(graph, name)
    kwargs = {}
    for parameter in inspect.signature(function).parameters.values():
        if parameter.default is inspect.Parameter.empty:
            assert parameter.name in REQUIRED_ARGUMENTS, (
                f'graph.{name} needs {parameter.name}: add a value to REQUIRED_ARGUMENTS')
            kwargs[parameter.name] = REQUIRED_ARGUMENTS[parameter.name]
        elif parameter.name in ('trainer', 'policy', 'record') and parameter.default is False:
            kwargs[parameter.name] = True
        elif parameter.name in REQUIRED_ARGUMENTS:
            kwargs[parameter.name] = REQUIRED_ARGUMENTS[parameter.name]
    result = function(**kwargs)
    return [result] if isinstance(result, graph.NodeSpec) else list(result)


def all_specs():
    specs = []
    for name in graph_functions():
        specs += [(name, spec) for spec in call_graph_function(name)]
    return specs


def console_scripts(package):
    """Return {executable: 'module:function'} from src/<package>/setup.py."""
    tree = ast.parse((SRC_DIR / package / 'setup.py').read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, 'id', '') == 'setup':
            for keyword in node.keywords:
                if keyword.arg == 'entry_points':
                    entries = ast.literal_eval(keyword.value).get('console_scripts', [])
                    return dict(re.fullmatch(r'\s*(\S+)\s*=\s*(\S+)\s*', entry).groups()
                                for entry in entries)
    return {}


class RecordingNode:
    """Stands in for rclpy's Node in declare_parameters: records names and defaults."""

    def __init__(self):
        self.declared = {}

    def declare_parameter(self, name, value=None, descriptor=None, **kwargs):
        self.declared[name] = value
        return _Value(value)

    def get_parameter(self, name):
        return _Value(self.declared[name])


class _Value:
    """A parameter as rclpy returns it: .value."""

    def __init__(self, value):
        self.value = value


def declared_parameters(package, executable):
    """{name: default} of what the node behind `ros2 run package executable` declares."""
    target = console_scripts(package)[executable]
    module = importlib.import_module(target.split(':')[0])
    assert hasattr(module, 'declare_parameters'), (
        f'{target} has no declare_parameters(node): its parameters cannot be checked')
    node = RecordingNode()
    try:
        module.declare_parameters(node)
    except ValueError:
        pass  # required values (paths, run folders) are validated after being declared
    assert node.declared, f'{target}: declare_parameters declared nothing'
    return {**RCLPY_PARAMETERS, **node.declared}


def flatten(parameters, prefix=''):
    """ROS parameter YAML nesting -> dotted names."""
    flat = {}
    for key, value in parameters.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f'{prefix}{key}.'))
        else:
            flat[f'{prefix}{key}'] = value
    return flat


def same_type(value, default):
    """Whether rclpy accepts value for a parameter declared with default."""
    if default is None:
        return True
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple)) and all(
            same_type(item, default[0]) for item in value) if default else True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    return type(value) is type(default)


def specs_by_node_name():
    nodes = {}
    for _, spec in all_specs():
        nodes.setdefault(spec.name, set()).add((spec.package, spec.executable))
    return nodes


def test_graph_functions_are_found():
    assert {'sim_graph', 'real_graph', 'gazebo_graph', 'trainer_spec'} <= set(graph_functions())


@pytest.mark.parametrize('function', graph_functions())
def test_every_executable_is_a_console_script_of_its_package(function):
    for spec in call_graph_function(function):
        if spec.command:
            continue
        scripts = console_scripts(spec.package)
        assert spec.executable in scripts, (
            f'graph.{function}: {spec.package} has no console script {spec.executable!r} '
            f'(has {sorted(scripts)})')


@pytest.mark.parametrize('function', graph_functions())
def test_every_parameter_file_exists_in_config(function):
    for spec in call_graph_function(function):
        for name in spec.parameter_files:
            path = Path(name) if Path(name).is_absolute() else CONFIG_DIR / name
            assert path.is_file(), f'graph.{function}: {spec.name} reads missing {path}'
            nodes = {re.fullmatch(r'/\*\*/(\w+)', key).group(1)
                     for key in yaml.safe_load(path.read_text())}
            assert spec.name in nodes, f'{name} has no /**/{spec.name} section'


@pytest.mark.parametrize('function', graph_functions())
def test_every_parameter_a_graph_sets_is_declared_with_that_type(function):
    for spec in call_graph_function(function):
        declared = declared_parameters(spec.package, spec.executable)
        for key, value in spec.parameters.items():
            assert key in declared, f'graph.{function}: {spec.name} declares no {key!r}'
            assert same_type(value, declared[key]), (
                f'graph.{function}: {spec.name}.{key} = {value!r}, declared as '
                f'{type(declared[key]).__name__}')


@pytest.mark.parametrize('path', NODE_FILES, ids=lambda p: p.name)
def test_parameter_file_sections_are_nodes_with_declared_parameters(path):
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict) and data, f'{path.name}: expected /**/node sections'
    nodes = specs_by_node_name()
    for key, section in data.items():
        match = re.fullmatch(r'/\*\*/(\w+)', key)
        assert match, f'{path.name}: section {key!r} is not /**/<node name>'
        assert set(section) == {'ros__parameters'}, f'{path.name}: {key} has {set(section)}'
        name = match.group(1)
        assert name in nodes, f'{path.name}: no graph starts a node named {name!r}'
        for package, executable in nodes[name]:
            declared = declared_parameters(package, executable)
            for parameter, value in flatten(section['ros__parameters']).items():
                assert parameter in declared, (
                    f'{path.name}: {name} ({package}/{executable}) declares no {parameter!r}')
                assert same_type(value, declared[parameter]), (
                    f'{path.name}: {name}.{parameter} = {value!r}, declared as '
                    f'{type(declared[parameter]).__name__} {declared[parameter]!r}')


def test_the_recording_node_catches_unknown_parameters():
    declared = declared_parameters('vpg_policy', 'policy')
    assert 'weights_path' in declared and 'use_sim_time' in declared
    assert 'no_such_parameter' not in declared
    assert not same_type(1, 0.5) and not same_type(True, 1) and same_type([1.0], [0.0])


def test_real_and_gazebo_files_drive_the_arm_the_graph_names():
    real = yaml.safe_load((CONFIG_DIR / 'real.yaml').read_text())
    executor = real['/**/executor']['ros__parameters']
    assert executor['motion_backend'] in graph.MOTION_BACKENDS
    assert executor['robot.model'] in graph.ROBOT_MODELS
    heightmap = real['/**/heightmap']['ros__parameters']
    assert heightmap['depth_topic'] == '/camera/camera/aligned_depth_to_color/image_raw'
    gazebo = yaml.safe_load((CONFIG_DIR / 'gazebo.yaml').read_text())
    assert gazebo['/**/executor']['ros__parameters']['motion_backend'] == 'joint_trajectory'


def test_weights_are_served_with_the_policy_parameters_of_their_record(tmp_path):
    weights = tmp_path / 'vpg.safetensors'
    (tmp_path / 'vpg.json').write_text(
        '{"policy_parameters": {"action_mask_grasp_inset": 0.006, "grasp_centring": 0.016}}')
    graphs = {'sim_graph': graph.sim_graph(weights=str(weights)),
              'real_graph': graph.real_graph('/cal.yaml', weights=str(weights)),
              'gazebo_graph': graph.gazebo_graph(weights=str(weights), run_dir='/tmp/run'),
              'training_graph': graph.training_graph('/tmp/run', weights=str(weights),
                                                     policy_parameters={'grasp_centring': 0.0})}
    for name, specs in graphs.items():
        policy = [spec for spec in specs if spec.executable == 'policy'][0]
        assert policy.parameters['weights_path'] == str(weights), name
        assert policy.parameters['action_mask_grasp_inset'] == 0.006, name
        # the caller's own values win (training_graph's policy_parameters)
        centring = 0.0 if name == 'training_graph' else 0.016
        assert policy.parameters['grasp_centring'] == centring, name


@pytest.mark.parametrize('record', sorted((PACKAGE_DIR.parents[1] / 'weights').glob('*.json')),
                         ids=lambda p: p.name)
def test_shipped_records_name_declared_policy_parameters(record):
    from vpg_policy.weights_record import trained_policy_parameters
    declared = declared_parameters('vpg_policy', 'policy')
    for key, value in trained_policy_parameters(record.with_suffix('.safetensors')).items():
        assert key in declared, f'{record.name}: the policy declares no {key!r}'
        assert same_type(value, declared[key]), f'{record.name}: {key} = {value!r}'
