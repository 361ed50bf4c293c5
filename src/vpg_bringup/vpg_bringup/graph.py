"""
The node graphs, described once and without ROS.

Which nodes, executables, namespaces, remappings and parameter files make up a graph. The launch
files (launch/*.launch.py) and the runner for machines without `ros2 launch`
(vpg_bringup.runner) both build their processes from these descriptions, so the two cannot
drift apart.
"""

from dataclasses import dataclass, field
import os


@dataclass(frozen=True)
class NodeSpec:
    """One node process: `ros2 run <package> <executable>` with its ROS arguments."""

    package: str
    executable: str
    name: str
    namespace: str = ''
    parameter_files: tuple = ()
    """Parameter YAML files (absolute paths, or names in vpg_bringup's config folder)."""
    parameters: dict = field(default_factory=dict)
    """Parameter overrides, applied after the files."""
    remappings: tuple = ()
    """(from, to) topic or service name pairs."""
    command: tuple = ()
    """Explicit command instead of the package executable (tests and tools)."""

    def ros_arguments(self, config_dir):
        """Build the `--ros-args ...` list equivalent to what launch_ros would pass."""
        args = ['--ros-args', '-r', f'__node:={self.name}']
        if self.namespace:
            args += ['-r', f'__ns:={self.namespace}']
        for path in self.parameter_files:
            args += ['--params-file', resolve_config(path, config_dir)]
        for key, value in self.parameters.items():
            args += ['-p', f'{key}:={format_parameter(value)}']
        for source, target in self.remappings:
            args += ['-r', f'{source}:={target}']
        return args


def resolve_config(path, config_dir):
    return path if os.path.isabs(path) else os.path.join(config_dir, path)


def format_parameter(value):
    """Write a parameter value as `-p name:=value` expects it (YAML)."""
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, (list, tuple)):
        return '[' + ','.join(format_parameter(v) for v in value) + ']'
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'" if value else "''"
    return repr(value)


def namespaced(cell):
    return f'/{cell}' if cell else ''


def sim_graph(cell='', seed=0, num_objects=10, weights='', device='auto', real_time_factor=0.0,
              use_sim_time=True, calibration_file='', policy=True, extra=()):
    """
    Describe the MuJoCo cell: sim, heightmap, policy and executor, in namespace `cell`.

    Parameter values come from config/sim.yaml; the arguments override the common ones.
    """
    ns = namespaced(cell)
    common = {'use_sim_time': use_sim_time}
    camera = {'calibration_file': calibration_file or sim_calibration_file()}
    nodes = [
        NodeSpec('vpg_sim', 'sim', 'sim', ns, ('sim.yaml',),
                 {**common, 'seed': seed, 'num_objects': num_objects,
                  'real_time_factor': real_time_factor}, remappings=_driver_topics(ns)),
        NodeSpec('vpg_perception', 'heightmap', 'heightmap', ns, ('sim.yaml',),
                 {**common, **camera}, remappings=_camera_topics(ns)),
        NodeSpec('vpg_executor', 'executor', 'executor', ns, ('sim.yaml',),
                 {**common, 'cell_name': cell or 'cell0'}, remappings=_driver_topics(ns)),
    ]
    if policy:
        nodes.insert(2, NodeSpec('vpg_policy', 'policy', 'policy', ns, ('sim.yaml',),
                                 {**common, 'weights_path': weights, 'device': device}))
    return nodes + list(extra)


def sim_calibration_file():
    """Return the path of the MuJoCo camera's true calibration, installed with vpg_sim."""
    from ament_index_python.packages import get_package_share_directory
    return os.path.join(get_package_share_directory('vpg_sim'), 'config',
                        'camera_calibration.yaml')


def _driver_topics(ns):
    """Keep the drivers' absolute topic names inside a cell's namespace (many cells)."""
    if not ns:
        return ()
    return (('/joint_states', f'{ns}/joint_states'),
            ('/scaled_joint_trajectory_controller/joint_trajectory',
             f'{ns}/scaled_joint_trajectory_controller/joint_trajectory'),
            ('/robotiq_gripper_controller/gripper_cmd',
             f'{ns}/robotiq_gripper_controller/gripper_cmd')) + _camera_topics(ns)


def _camera_topics(ns):
    if not ns:
        return ()
    topics = ('/camera/camera/color/image_raw', '/camera/camera/color/camera_info',
              '/camera/camera/aligned_depth_to_color/image_raw',
              '/camera/camera/aligned_depth_to_color/camera_info')
    return tuple((topic, f'{ns}{topic}') for topic in topics)
