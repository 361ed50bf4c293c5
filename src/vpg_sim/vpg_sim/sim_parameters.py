"""
The sim node's parameters, declared once with type, default, description and range.

Also which gripper action types the cell can serve, since that is a parameter's choice.
"""

from dataclasses import dataclass

from rcl_interfaces.msg import ParameterDescriptor
from vpg_common.gripper_action import GripperInterface, parse_interface
from vpg_common.parameters import declare, float_range, int_range, one_of
from vpg_sim import depth_model

GRIPPER_INTERFACES = (GripperInterface.PARALLEL_GRIPPER_COMMAND.value,
                      GripperInterface.GRIPPER_COMMAND.value)
"""The gripper action types the cell can serve (vpg_common.gripper_action), default first:
the one ros2_robotiq_gripper serves from Kilted on, as the executor's default."""


@dataclass(frozen=True)
class SimParams:
    """The node's parameters (see declare_parameters for meanings)."""

    seed: int
    num_objects: int
    test_case_file: str
    real_time_factor: float
    idle_real_time_factor: float
    physics_timestep: float
    clock_rate_hz: float
    joint_state_rate_hz: float
    camera_rate_hz: float
    camera_max_wall_rate_hz: float
    depth_model: str
    randomize: bool
    randomization_seed: int
    calibration_marker: bool
    removal_height: float
    gripper_interface: str = GRIPPER_INTERFACES[0]
    wrench_rate_hz: float = 100.0
    wrench_noise_std: float = 1.0
    wrench_offset: tuple = (0.0, 0.0, 0.0)
    camera_enabled: bool = True
    tool_contact_force: float = 20.0


def declare_parameters(node):
    """Declare every parameter once (type, default, description, range); return SimParams."""
    specs = [
        ('seed', 0, 'Seed of the initial random scene and of depth noise.',
         int_range(0, 2 ** 31 - 1)),
        ('num_objects', 10, 'Random blocks dropped at start-up (unless test_case_file).',
         int_range(0, 50)),
        ('test_case_file', '', 'Test case to load at start-up (VPG line format or ours).', {}),
        ('real_time_factor', 1.0,
         'Simulated seconds per wall second while anything moves; 0 = as fast as possible.',
         float_range(0.0, 100.0)),
        ('idle_real_time_factor', 1.0,
         'At most this many simulated seconds per wall second while the cell is at rest '
         '(arm still, no gripper goal, blocks settled), to leave the CPU to other nodes; '
         '0 = no limit.', float_range(0.0, 100.0)),
        ('physics_timestep', 0.002, 'Physics step, seconds.',
         float_range(0.0005, 0.01)),
        ('clock_rate_hz', 50.0, '/clock messages per simulated second.',
         float_range(1.0, 1000.0)),
        ('joint_state_rate_hz', 100.0, '/joint_states messages per simulated second.',
         float_range(1.0, 1000.0)),
        ('camera_rate_hz', 5.0, 'Camera frames per simulated second; 0 = camera off.',
         float_range(0.0, 60.0)),
        ('camera_max_wall_rate_hz', 2.0,
         'At most this many frames per wall second (matters when faster than real time); '
         '0 = no limit. The first frame after the cell comes to rest is always rendered.',
         float_range(0.0, 60.0)),
        ('depth_model', 'd415',
         "Depth sensor model (vpg_sim.depth_model): 'd415' or 'd435' (RealSense noise, stereo "
         "shadows, dark-surface holes, 1 mm steps) or 'ideal' (exact depth in 1 mm steps).",
         one_of(*sorted(depth_model.PROFILES))),
        ('randomize', False,
         'Draw friction, masses, colours, light, camera pose and depth scale anew for each '
         'scene (vpg_sim.randomization; for training).', {}),
        ('randomization_seed', 0, "Seed of the randomisation's draws.",
         int_range(0, 2 ** 31 - 1)),
        ('calibration_marker', False,
         'Fix a 4x4 checkerboard to the tool (centre corner at scene.CALIBRATION_MARKER_OFFSET '
         'in tool0).', {}),
        ('gripper.interface', GRIPPER_INTERFACES[0],
         "Gripper action type: 'parallel_gripper_command' (ros2_robotiq_gripper from Kilted "
         "on) or 'gripper_command' (up to Jazzy).",
         one_of(*GRIPPER_INTERFACES)),
        ('removal_height', 0.1,
         'A block held by the gripper this far (m) above the table counts as removed.',
         float_range(0.02, 1.0)),
        ('wrench_rate_hz', 100.0,
         'Tool wrench messages per simulated second (the UR publishes 500 Hz); 0 = off.',
         float_range(0.0, 1000.0)),
        ('wrench_noise_std', 1.0,
         'Gaussian noise of the tool force, N per axis (torque: 0.02 N m per N).',
         float_range(0.0, 20.0)),
        ('wrench_offset', [0.0, 0.0, 0.0],
         'Constant force offset of the sensor (untared), N, tool0 frame.', {}),
        ('tool_contact_force', 20.0,
         "Serve ur_robot_driver's tool contact action: while a goal is active the cell stops "
         'the arm at the physics step where the contact force against the commanded TCP motion '
         'has grown by this much (N; UR does not publish its own threshold, this is the '
         "executor's robot.contact_force); 0 = not served.", float_range(0.0, 500.0)),
    ]
    values = declare(node, specs)
    values['gripper_interface'] = parse_interface(values.pop('gripper.interface')).value
    depth_model.profile(values['depth_model'])  # ValueError for an unknown one
    values['wrench_offset'] = tuple(float(v) for v in values['wrench_offset'])
    values['camera_enabled'] = node.declare_parameter(
        'camera_enabled', True, ParameterDescriptor(
            description='Publish camera frames; may be set at run time, false emulates a '
                        'camera that stopped streaming (fault injection).')).value
    return SimParams(**values)
