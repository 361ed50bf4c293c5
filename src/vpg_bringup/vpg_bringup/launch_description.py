"""
Turn graph descriptions (vpg_bringup.graph) into launch actions; shared by launch/*.launch.py.

`node_kwargs` is pure: it maps a NodeSpec onto the keyword arguments of launch_ros.actions.Node
in the order the runner (NodeSpec.ros_arguments) gives the same things on the command line:
parameter files, then overrides, then remappings. The functions that build actions import
`launch` and `launch_ros` when called, so this module imports on machines without them.
"""

import os

from vpg_bringup.graph import resolve_config

RVIZ_CONFIG = 'vpg.rviz'
_TRUE = ('true', '1', 'yes', 'on')
_FALSE = ('false', '0', 'no', 'off')


def share_directory():
    from ament_index_python.packages import get_package_share_directory
    return get_package_share_directory('vpg_bringup')


def config_directory():
    return os.path.join(share_directory(), 'config')


def node_kwargs(spec, config_dir):
    """
    Return the launch_ros.actions.Node keyword arguments that start `spec`.

    parameters: the parameter files (relative names resolved in config_dir), then one dict of
    overrides when there are any. namespace is left out for the root namespace, as the runner
    leaves out `__ns`. Raises ValueError for a spec with an explicit command (runner-only).
    """
    if spec.command:
        raise ValueError(f'node {spec.name!r} has an explicit command; launch files start '
                         'package executables only')
    parameters = [resolve_config(path, config_dir) for path in spec.parameter_files]
    if spec.parameters:
        parameters.append(dict(spec.parameters))
    kwargs = {'package': spec.package, 'executable': spec.executable, 'name': spec.name,
              'parameters': parameters, 'remappings': [tuple(pair) for pair in spec.remappings],
              'output': 'screen'}
    if spec.namespace:
        kwargs['namespace'] = spec.namespace
    if spec.enclave:
        kwargs['ros_arguments'] = ['--enclave', spec.enclave]
    return kwargs


def as_bool(text):
    """Read a launch argument as a bool ('true'/'false', case-insensitive; also 1/0, yes/no)."""
    value = str(text).strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f'expected true or false, got {text!r}')


def as_int(name, text):
    """Read a launch argument as an int, naming the argument when it is not one."""
    try:
        return int(str(text).strip())
    except ValueError:
        raise ValueError(f'launch argument {name} must be an integer, got {text!r}') from None


def node_actions(specs, config_dir=None, extra_parameters=None):
    """
    Build one launch_ros Node action per spec.

    extra_parameters: node name -> list of parameter entries appended after the spec's (e.g.
    the MoveIt configuration the executor's moveit_py reads). String overrides are wrapped in
    ParameterValue(value_type=str) so launch_ros does not re-read them as YAML.
    """
    from launch_ros.actions import Node
    from launch_ros.parameter_descriptions import ParameterValue
    config_dir = config_dir or config_directory()
    extra_parameters = extra_parameters or {}
    actions = []
    for spec in specs:
        kwargs = node_kwargs(spec, config_dir)
        kwargs['parameters'] = [_typed(entry, ParameterValue) for entry in kwargs['parameters']]
        kwargs['parameters'] += list(extra_parameters.get(spec.name, ()))
        actions.append(Node(**kwargs))
    return actions


def _typed(entry, parameter_value):
    if not isinstance(entry, dict):
        return entry
    return {key: parameter_value(value, value_type=str) if isinstance(value, str) else value
            for key, value in entry.items()}


def declare_arguments(arguments):
    """
    Declare launch arguments from (name, default, description) rows.

    A default of None makes the argument required.
    """
    from launch.actions import DeclareLaunchArgument
    actions = []
    for name, default, description in arguments:
        if default is None:
            actions.append(DeclareLaunchArgument(name, description=description))
        else:
            actions.append(DeclareLaunchArgument(name, default_value=default,
                                                 description=description))
    return actions


def argument_values(context, arguments):
    """Return {name: string value} of the declared arguments in a launch context."""
    from launch.substitutions import LaunchConfiguration
    return {name: LaunchConfiguration(name).perform(context) for name, _, _ in arguments}


def rviz_actions(enabled, use_sim_time=False, namespace='', enclave=''):
    """
    Start rviz2 with rviz/vpg.rviz when enabled ('true'/'false' or a bool).

    The configuration's topics are relative, so in a cell's namespace RViz shows that cell.
    enclave: its SROS2 enclave (robot cell), empty = the default one.
    """
    if not (enabled if isinstance(enabled, bool) else as_bool(enabled)):
        return []
    from launch_ros.actions import Node
    kwargs = {'namespace': namespace} if namespace else {}
    if enclave:
        kwargs['ros_arguments'] = ['--enclave', enclave]
    return [Node(package='rviz2', executable='rviz2', name='rviz2', output='log',
                 arguments=['-d', os.path.join(share_directory(), 'rviz', RVIZ_CONFIG)],
                 parameters=[{'use_sim_time': use_sim_time}], **kwargs)]
