"""
The node graphs, described once and without ROS.

Which nodes, executables, namespaces, remappings and parameter files make up a graph. The launch
files (launch/*.launch.py) and the runner for machines without `ros2 launch`
(vpg_bringup.runner) both build their processes from these descriptions, so the two cannot
drift apart.
"""

from dataclasses import dataclass, field, replace
import os

from ament_index_python.packages import get_package_share_directory
from vpg_common.driver_names import (COLOR_INFO_TOPIC, COLOR_TOPIC, DEPTH_INFO_TOPIC, DEPTH_TOPIC,
                                     GRIPPER_ACTION, JOINT_STATES_TOPIC, TCP_POSE_TOPIC,
                                     TOOL_CONTACT_ACTION, TRAJECTORY_TOPIC, WRENCH_TOPIC)
from vpg_policy.weights_record import trained_policy_parameters


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
    enclave: str = ''
    """SROS2 enclave (`--enclave`), whose keys and permissions the node uses when
    ROS_SECURITY_ENABLE is true; empty = the default (root) enclave."""

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
        if self.enclave:
            args += ['--enclave', self.enclave]
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


def policy_node_parameters(weights, device):
    """
    Return the policy node's parameters for serving `weights` on `device`.

    They include the parameters the weights were trained with (action mask, grasp centring),
    read from the record shipped beside them (vpg_policy.weights_record),
    so that shipped weights choose among the same actions wherever they are served.
    """
    return {**trained_policy_parameters(weights), 'weights_path': weights, 'device': device}


def sim_graph(cell='', seed=0, num_objects=10, weights='', device='auto', real_time_factor=0.0,
              use_sim_time=True, calibration_file='', policy=True, extra=()):
    """
    Describe the MuJoCo cell: sim, heightmap, policy and executor, in namespace `cell`.

    Parameter values come from config/sim.yaml; the arguments override the common ones.
    """
    ns = namespaced(cell)
    common = {'use_sim_time': use_sim_time}
    camera = {'calibration_file': calibration_file or sim_calibration_file()}
    # Each cell's simulator is the clock of that cell alone.
    clock = (('/clock', f'{ns}/clock'),) if ns else ()
    nodes = [
        # The simulator publishes /clock and stamps with the cell's own time: on use_sim_time
        # it would only subscribe to itself, and rclpy's MultiThreadedExecutor then spun
        # on that subscription's handler (70 % of a core, starving the physics thread).
        NodeSpec('vpg_sim', 'sim', 'sim', ns, ('sim.yaml',),
                 {'seed': seed, 'num_objects': num_objects,
                  'real_time_factor': real_time_factor},
                 remappings=_driver_topics(ns) + clock),
        NodeSpec('vpg_perception', 'heightmap', 'heightmap', ns, ('sim.yaml',),
                 {**common, **camera}, remappings=_camera_topics(ns) + clock),
        NodeSpec('vpg_executor', 'executor', 'executor', ns, ('sim.yaml',),
                 {**common, 'cell_name': cell or 'cell0'},
                 remappings=_driver_topics(ns) + clock),
    ]
    if policy:
        nodes.insert(2, NodeSpec('vpg_policy', 'policy', 'policy', ns, ('sim.yaml',),
                                 {**common, **policy_node_parameters(weights, device)},
                                 remappings=clock))
    return nodes + list(extra)


def sim_calibration_file():
    """Return the path of the MuJoCo camera's true calibration, installed with vpg_sim."""
    return os.path.join(get_package_share_directory('vpg_sim'), 'config',
                        'camera_calibration.yaml')


def _driver_topics(ns):
    """Keep the drivers' absolute topic names inside a cell's namespace (many cells)."""
    if not ns:
        return ()
    topics = (JOINT_STATES_TOPIC, TRAJECTORY_TOPIC, GRIPPER_ACTION, TCP_POSE_TOPIC, WRENCH_TOPIC,
              TOOL_CONTACT_ACTION)
    return tuple((topic, f'{ns}{topic}') for topic in topics) + _camera_topics(ns)


def _camera_topics(ns):
    if not ns:
        return ()
    topics = (COLOR_TOPIC, COLOR_INFO_TOPIC, DEPTH_TOPIC, DEPTH_INFO_TOPIC)
    return tuple((topic, f'{ns}{topic}') for topic in topics)


def recorder_spec(path, namespace='', topics=None):
    """
    Describe the MCAP recorder (`record`) writing `path`, in `namespace` ('cell0' or '/cell0').

    Its default topics are relative, so in a cell's namespace it records that cell.
    topics: (topic, type name) pairs to record instead of the recorder's default ones.
    """
    ns = namespace if not namespace or namespace.startswith('/') else f'/{namespace}'
    parameters = {'path': os.path.abspath(path)}
    if topics:
        parameters['topics'] = [topic for topic, _ in topics]
        parameters['types'] = [type_name for _, type_name in topics]
    return NodeSpec('vpg_bringup', 'record', 'recorder', ns, parameters=parameters)


def viewer_spec(namespace='', port=8765, host='127.0.0.1', parameters=None):
    """
    Describe the live viewer (`viewer`, Foxglove WebSocket protocol) on `host`:`port`.

    Optional in every graph. In a cell's namespace ('cell0' or '/cell0') its relative topics
    resolve in that cell and the drivers' absolute topics are remapped as the cell's are. The
    protocol has no authentication: keep the default host unless the network is trusted.
    """
    ns = namespace if not namespace or namespace.startswith('/') else f'/{namespace}'
    clock = (('/clock', f'{ns}/clock'),) if ns else ()
    return NodeSpec('vpg_bringup', 'viewer', 'viewer', ns,
                    parameters={'host': host, 'port': int(port), **(parameters or {})},
                    remappings=_driver_topics(ns) + clock)


ROBOT_MODELS = ('ur5', 'ur5e')
"""UR types the executor's kinematics know and ur_robot_driver can drive."""
DEFAULT_UR_TYPE = 'ur5e'
"""The robot cell's arm (a UR5e); launch/real.launch.py and docker/compose.real.yaml default
to it, and the executor's kinematics follow the same argument."""
MOTION_BACKENDS = ('moveit', 'joint_trajectory')
ENCLAVE_ROOT = '/vpg'
"""SROS2 enclaves of the robot cell (config/security/vpg_policy.xml) live under this path."""


def enclave(name):
    """Return the SROS2 enclave path of a robot-cell process group, e.g. /vpg/executor."""
    return f'{ENCLAVE_ROOT}/{name}'


def real_graph(calibration_file, weights='', device='auto', motion_backend='moveit',
               ur_type=DEFAULT_UR_TYPE, trainer=False, run_dir='', extra=()):
    """
    Describe our nodes in the robot cell: heightmap, policy, executor and optionally the trainer.

    Each node runs in its own SROS2 enclave (enclave(name)), which config/security/
    vpg_policy.xml grants exactly what that node needs.

    The drivers (ur_robot_driver, realsense2_camera, the Robotiq gripper controller, MoveIt)
    are started by launch/real.launch.py; parameter values come from config/real.yaml and the
    arguments override them. The trainer (run folder `run_dir`) learns from the executor's
    transitions and sends the policy new weights. Raises ValueError without a calibration
    file, for an arm or motion backend the executor cannot drive, or a trainer without run_dir.
    """
    if not calibration_file:
        raise ValueError('the robot cell needs calibration_file: the camera calibration YAML '
                         'written by `ros2 run vpg_bringup calibrate`')
    _check_choice('ur_type', ur_type, ROBOT_MODELS)
    _check_choice('motion_backend', motion_backend, MOTION_BACKENDS)
    _check_run_dir(trainer, run_dir)
    nodes = [
        NodeSpec('vpg_perception', 'heightmap', 'heightmap', '', ('real.yaml',),
                 {'calibration_file': calibration_file}, enclave=enclave('heightmap')),
        NodeSpec('vpg_policy', 'policy', 'policy', '', ('real.yaml',),
                 policy_node_parameters(weights, device), enclave=enclave('policy')),
        NodeSpec('vpg_executor', 'executor', 'executor', '', ('real.yaml',),
                 {'motion_backend': motion_backend, 'robot.model': ur_type},
                 enclave=enclave('executor')),
    ]
    if trainer:
        nodes.append(replace(trainer_spec(parameters={'run_dir': run_dir}),
                             enclave=enclave('trainer')))
    return nodes + list(extra)


def gazebo_graph(calibration_file='', weights='', device='auto', ur_type='ur5', trainer=True,
                 run_dir='', extra=()):
    """
    Describe our nodes and the trainer in the Gazebo cell (launch/gazebo.launch.py).

    Every node runs on Gazebo's /clock. Parameter values come from config/gazebo.yaml; the
    camera calibration defaults to the true pose of the world file's camera. The trainer
    (run folder `run_dir`, required with it) learns from the cell.
    """
    _check_choice('ur_type', ur_type, ROBOT_MODELS)
    _check_run_dir(trainer, run_dir)
    common = {'use_sim_time': True}
    nodes = [
        NodeSpec('vpg_perception', 'heightmap', 'heightmap', '', ('gazebo.yaml',),
                 {**common, 'calibration_file': calibration_file or gazebo_calibration_file()}),
        NodeSpec('vpg_policy', 'policy', 'policy', '', ('gazebo.yaml',),
                 {**common, **policy_node_parameters(weights, device)}),
        NodeSpec('vpg_executor', 'executor', 'executor', '', ('gazebo.yaml',),
                 {**common, 'robot.model': ur_type}),
    ]
    if trainer:
        nodes.append(trainer_spec(parameters={**common, 'run_dir': run_dir}))
    return nodes + list(extra)


def gazebo_calibration_file():
    """Return the path of the Gazebo camera's true calibration, installed with vpg_bringup."""
    return os.path.join(get_package_share_directory('vpg_bringup'), 'config', 'calibration',
                        'gazebo_camera.yaml')


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f'{name} must be one of {", ".join(choices)}, got {value!r}')


def _check_run_dir(trainer, run_dir):
    if trainer and not run_dir:
        raise ValueError('the trainer needs run_dir: the folder of the training run')


def trainer_spec(namespace='', parameters=None):
    """Describe the trainer node (config/trainer.yaml, then `parameters`)."""
    ns = namespace if not namespace or namespace.startswith('/') else f'/{namespace}'
    return NodeSpec('vpg_trainer', 'trainer', 'trainer', ns, ('trainer.yaml',),
                    dict(parameters or {}))


def training_graph(run_dir, cells=1, seed=0, num_objects=10, weights='', device='auto',
                   start_step=0, trainer_parameters=None, policy_parameters=None,
                   randomize=True):
    """
    Describe a training run: `cells` MuJoCo cells feeding one trainer.

    One cell runs in the root namespace; with several, cell k runs in /cell<k> and its
    executor's transitions and its policy's model updates are remapped onto the root
    `/transitions` and `/model_updates`, so one trainer learns from all and every policy
    receives every new version. start_step: actions already taken (resumes the exploration
    schedule). randomize: each cell draws its scenes' physics, light, camera pose and depth
    scale anew (vpg_sim.randomization), seeded by seed, cell and start_step.
    """
    if cells < 1:
        raise ValueError(f'cells must be >= 1, got {cells}')
    nodes = []
    for k in range(cells):
        cell = f'cell{k}' if cells > 1 else ''
        ns = namespaced(cell)
        for spec in sim_graph(cell=cell, seed=seed + 1000 * k, num_objects=num_objects,
                              weights=weights, device=device):
            remaps, params = spec.remappings, dict(spec.parameters)
            if spec.executable == 'sim':
                params['randomize'] = bool(randomize)
                params['randomization_seed'] = (seed + 1000 * k + 7919 * start_step) % 2 ** 31
            if spec.executable == 'executor':
                params['exploration.start_step'] = int(start_step)
                if ns:
                    remaps += (('transitions', '/transitions'),)
            if spec.executable == 'policy':
                params.update(policy_parameters or {})
                if ns:
                    remaps += (('model_updates', '/model_updates'),)
            nodes.append(replace(spec, parameters=params, remappings=remaps))
    # The trainer belongs to no cell: it keeps wall time.
    nodes.append(trainer_spec(parameters={'run_dir': run_dir, 'seed': seed,
                                          **(trainer_parameters or {})}))
    return nodes
