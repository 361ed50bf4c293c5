"""
Every executor parameter in one table: name, default, description, range; read into configs.

The node declares each entry with its description (visible with `ros2 param describe`) and
builds the core's config dataclasses from the values; invalid values raise at start-up.
"""

from dataclasses import dataclass
import math

import numpy as np
from vpg_common.driver_names import (GRIPPER_ACTION, JOINT_STATES_TOPIC, TOOL_CONTACT_ACTION,
                                     TRAJECTORY_TOPIC, WRENCH_TOPIC)
from vpg_common.parameters import declare, defaults, float_range, int_range, one_of
from vpg_executor.gripper_action import GripperInterface, parse_interface, SettleConfig
from vpg_executor.motion import TrajectoryConfig
from vpg_executor.moveit_backend import (check_velocity_scaling, MoveItConfig,
                                         UR_JOINT_VELOCITY_LIMIT)
from vpg_executor.primitives import PrimitiveConfig
from vpg_executor.rewards import RewardConfig
from vpg_executor.safety import SafetyEnvelope

_T, _P, _R, _S = TrajectoryConfig(), PrimitiveConfig(), RewardConfig(), SafetyEnvelope()
_M = MoveItConfig()
_G = SettleConfig()

PARAMETERS = [
    # name, default, description[, constraints]
    ('motion_backend', 'joint_trajectory',
     "'joint_trajectory' (IK + the joint trajectory controller's topic) or 'moveit' (moveit_py)",
     one_of('joint_trajectory', 'moveit')),
    ('cell_name', '', 'Name of this cell in transitions; empty = the node namespace or "cell0"'),
    ('robot.model', _T.model, 'UR model for kinematics: ur5, ur5e, ur5e_menagerie (MuJoCo cell)'),
    ('robot.tcp_offset', _T.tcp_offset, 'TCP distance in front of tool0 along its z axis, m',
     float_range(0, 0.5)),
    ('robot.tcp_yaw_offset', _T.tcp_yaw_offset,
     "Angle from tool0's y axis to the jaw-closing axis about tool0's z axis, rad",
     float_range(-math.pi, math.pi)),
    ('robot.home_joints', list(_P.home_joints),
     'Joint angles (rad) of the home pose, out of the camera view'),
    ('robot.trajectory_topic', TRAJECTORY_TOPIC,
     'trajectory_msgs/JointTrajectory topic of the joint trajectory controller'),
    ('robot.joint_states_topic', JOINT_STATES_TOPIC, 'sensor_msgs/JointState topic'),
    ('robot.wrench_topic', WRENCH_TOPIC,
     'geometry_msgs/WrenchStamped of the tool force/torque sensor (ur_robot_driver: '
     'force_torque_sensor_broadcaster, frame tool0_controller); empty = none'),
    ('robot.tool_contact_action', TOOL_CONTACT_ACTION,
     "Action of ur_robot_driver's tool_contact_controller (ur_msgs/ToolContact): guarded "
     "descents arm the robot controller's own stop on tool contact with it; empty = not "
     'used. Not served: the wrench and path guards decide alone'),
    ('robot.tool_contact_timeout', 1.0,
     'Seconds to wait for the tool contact goal to be accepted, and to end after a descent',
     float_range(0.01, 10)),
    ('robot.contact_force', _T.contact_force,
     'Guarded moves stop when the force along the tool axis changed by more than this (N) '
     'since the move began; 0 = off (path/stall guard only). Default: 5x the UR5e sensor '
     'accuracy (4 N, UR5e datasheet)', float_range(0, 500)),
    ('robot.guarded_speed', _T.guarded_speed,
     'Top TCP speed of guarded straight-line moves (descents, push strokes), m/s; 0 = as fast '
     'as the joint speed limit allows', float_range(0, 1)),
    ('robot.wrench_max_age', _T.wrench_max_age,
     'A wrench older than this (s) behind the joint states is stale: path/stall guard only',
     float_range(0.001, 10)),
    ('robot.arrival_tolerance', _T.arrival_tolerance, 'Joint arrival tolerance, rad',
     float_range(0.0001, 1)),
    ('robot.arrival_timeout_margin', _T.arrival_timeout_margin,
     'Seconds to wait for arrival beyond the trajectory duration', float_range(0, 60)),
    ('gripper.action', GRIPPER_ACTION,
     'Action server of the gripper controller'),
    ('gripper.interface', 'parallel_gripper_command',
     "Its action type: 'parallel_gripper_command' (control_msgs/ParallelGripperCommand: "
     "ros2_robotiq_gripper's parallel_gripper_action_controller, Jazzy and later) or "
     "'gripper_command' (control_msgs/GripperCommand: position_controllers/"
     'GripperActionController, its configuration before Nov 2025 and on Humble)',
     one_of(*(i.value for i in GripperInterface))),
    ('gripper.joint', _T.gripper_joint, 'Finger joint reported in joint states'),
    ('gripper.closed_position', _T.gripper_closed_position,
     'Finger joint position when closed on nothing', float_range(0, 10)),
    ('gripper.max_effort', _T.gripper_max_effort, 'Gripper effort limit sent with commands',
     float_range(0, 1000)),
    ('gripper.timeout', 5.0,
     'Seconds to wait for a gripper command result and for the fingers to settle',
     float_range(0.1, 120)),
    ('gripper.settle_time', _G.still_time,
     'Seconds the finger joint must stay still before a gripper command counts as done (the '
     "controller's result may come before the fingers move)", float_range(0, 10)),
    ('gripper.settle_tolerance', _G.tolerance,
     'Finger joint motion (rad) below which it counts as still', float_range(0, 1)),
    ('gripper.target_tolerance', _G.target_tolerance,
     'Finger joint distance (rad) from the command at which it has arrived', float_range(0, 1)),
    ('gripper.motion_start_timeout', _G.start_timeout,
     'Seconds after which fingers that never moved count as blocked (settled)',
     float_range(0, 10)),
    ('safety.x_min', _S.x_min, 'Envelope box for TCP targets, base frame, m', float_range(-2, 2)),
    ('safety.x_max', _S.x_max, 'Envelope box, m', float_range(-2, 2)),
    ('safety.y_min', _S.y_min, 'Envelope box, m', float_range(-2, 2)),
    ('safety.y_max', _S.y_max, 'Envelope box, m', float_range(-2, 2)),
    ('safety.z_min', _S.z_min, 'Lowest TCP height above the table, m (lower targets are raised)',
     float_range(-0.1, 2)),
    ('safety.z_max', _S.z_max, 'Highest TCP target, m', float_range(0, 2)),
    ('safety.joint_lower', list(_S.joint_lower), 'Lower joint limits, rad'),
    ('safety.joint_upper', list(_S.joint_upper), 'Upper joint limits, rad'),
    ('safety.max_joint_speed', _S.max_joint_speed, 'Fastest joint speed commanded, rad/s',
     float_range(0.01, math.pi)),
    ('primitives.approach_height', _P.approach_height, 'Height above a target to descend from, m',
     float_range(0, 0.5)),
    ('primitives.grasp_depth', _P.grasp_depth, 'Grasp depth below the local surface, m',
     float_range(0, 0.1)),
    ('primitives.contact_lift', _P.contact_lift,
     'After a grasp descent stopped on contact, rise this far before closing, m (the 2F-85 '
     "fingertips' 13 mm dip while closing, plus margin); 0 = close where it stopped",
     float_range(0, 0.1)),
    ('primitives.push_height', _P.push_height, 'TCP height above the table while pushing, m',
     float_range(0, 0.2)),
    ('primitives.push_depth', _P.push_depth, 'Depth below an object top a push starts at, m',
     float_range(0, 0.1)),
    ('primitives.push_length', _P.push_length, 'Push stroke length, m', float_range(0.01, 0.5)),
    ('primitives.lift_height', _P.lift_height, 'TCP height after a grasp, m', float_range(0, 1)),
    ('primitives.retreat_height', _P.retreat_height,
     'Below this TCP height, go_home rises straight up to it before the joint move, m',
     float_range(0, 1)),
    ('primitives.grasp_open_threshold', _P.grasp_open_threshold,
     'Closure at or below which the fingers count as not closed', float_range(0, 1)),
    ('primitives.grasp_closed_threshold', _P.grasp_closed_threshold,
     'Closure at or above which the fingers count as closed on nothing', float_range(0, 1)),
    ('primitives.dropoff', list(_P.dropoff), 'Release point for held objects (x, y, z), m'),
    ('primitives.workspace', list(_P.workspace),
     'Box the policy targets must lie in: x_min, x_max, y_min, y_max, m'),
    ('rewards.change_threshold', _R.change_threshold, 'Changed pixels for a push to count',
     int_range(0, 1000000)),
    ('rewards.empty_threshold', _R.empty_threshold,
     'Object pixels below which the table is empty', int_range(0, 1000000)),
    ('rewards.object_height', _R.object_height, 'Height above which pixels are objects, m',
     float_range(0, 0.5)),
    ('exploration.start', 0.5, 'Epsilon schedule: max(start * decay^t, floor), t = actions',
     float_range(0, 1)),
    ('exploration.decay', 0.9998, 'Epsilon schedule decay per action', float_range(0, 1)),
    ('exploration.floor', 0.1, 'Epsilon schedule floor', float_range(0, 1)),
    ('exploration.start_step', 0, 'Actions already taken before this node started (resumes t)',
     int_range(0, 2**62)),
    ('timeouts.heightmap', 10.0, 'Seconds to wait for a fresh heightmap', float_range(0.1, 600)),
    ('timeouts.policy', 10.0, 'Seconds to wait for the policy service', float_range(0.1, 600)),
    ('timeouts.retries', 1,
     'Times a perception or policy request is sent again after it got no answer in time '
     '(a response lost in transport); each try waits its full timeout', int_range(0, 10)),
    ('timeouts.services_at_start', 30.0,
     'Seconds a goal waits for perception and policy services to appear', float_range(0, 3600)),
    ('max_actions_limit', 10000, 'Largest max_actions a goal may ask for',
     int_range(1, 1000000000)),
    ('moveit.node_name', _M.node_name, 'Name of the MoveItPy node (motion_backend moveit)'),
    ('moveit.params_file', '', "MoveItPy parameter YAML; empty = this process's --params-file"),
    ('moveit.planning_group', _M.planning_group, 'MoveIt planning group of the arm'),
    ('moveit.tool_link', _M.tool_link, 'Link whose pose goals are set (the flange)'),
    ('moveit.pose_frame', _M.pose_frame, 'Frame of pose goals (UR base frame)'),
    ('moveit.free_pipeline', _M.free_pipeline, 'Planning pipeline for free moves'),
    ('moveit.free_planner_id', _M.free_planner_id, 'Planner id for free moves; empty = default'),
    ('moveit.linear_pipeline', _M.linear_pipeline, 'Planning pipeline for straight-line moves'),
    ('moveit.linear_planner_id', _M.linear_planner_id, 'Planner id for straight-line moves'),
    ('moveit.planning_time', _M.planning_time, 'Seconds allowed per plan', float_range(0.01, 60)),
    ('moveit.planning_attempts', _M.planning_attempts, 'Planning attempts per request',
     int_range(1, 100)),
    ('moveit.max_velocity_scaling', _M.max_velocity_scaling, 'Velocity scaling, 0..1',
     float_range(0.001, 1)),
    ('moveit.joint_velocity_limit', UR_JOINT_VELOCITY_LIMIT,
     "The robot model's joint velocity limit MoveIt scales, rad/s (ur_description: pi for "
     'UR5 and UR5e); max_velocity_scaling x this must not exceed safety.max_joint_speed',
     float_range(0.01, 10)),
    ('moveit.max_acceleration_scaling', _M.max_acceleration_scaling,
     'Acceleration scaling, 0..1', float_range(0.001, 1)),
    ('moveit.path_tolerance', _M.path_tolerance,
     'How far a planned TCP path may leave the envelope box, m', float_range(0, 0.5)),
    ('moveit.table', _M.table, 'Add the table to the planning scene as a collision box'),
    ('moveit.table_top_z', _M.table_top_z, 'Height of the table top in the base frame, m',
     float_range(-2, 2)),
    ('moveit.table_size', list(_M.table_size), 'Table box size x, y, z, m'),
]


@dataclass(frozen=True)
class ExecutorParameters:
    """Everything the executor node reads at start-up."""

    motion_backend: str
    cell_name: str
    trajectory: TrajectoryConfig
    envelope: SafetyEnvelope
    primitives: PrimitiveConfig
    rewards: RewardConfig
    moveit: MoveItConfig
    values: dict
    gripper_settle: SettleConfig = _G


def declare_parameters(node):
    """Declare every parameter on node and return the validated ExecutorParameters."""
    return build_parameters(declare(node, PARAMETERS, read_only=False))


def build_parameters(values):
    """Turn a name -> value mapping (defaults filled in) into ExecutorParameters."""
    merged = defaults(PARAMETERS)
    merged.update(values)
    v = merged
    parse_interface(v['gripper.interface'])
    if v['motion_backend'] not in ('joint_trajectory', 'moveit'):
        raise ValueError(f"motion_backend must be 'joint_trajectory' or 'moveit', "
                         f"got {v['motion_backend']!r}")
    if (not v['robot.contact_force'] >= 0 or not v['robot.wrench_max_age'] > 0
            or not v['robot.guarded_speed'] >= 0):
        raise ValueError('robot.contact_force and robot.guarded_speed must be >= 0 and '
                         'robot.wrench_max_age > 0')
    for name, length in (('robot.home_joints', 6), ('safety.joint_lower', 6),
                         ('safety.joint_upper', 6), ('primitives.dropoff', 3),
                         ('primitives.workspace', 4)):
        if len(v[name]) != length or not np.all(np.isfinite(v[name])):
            raise ValueError(f'{name} needs {length} finite numbers, got {v[name]}')
    trajectory = TrajectoryConfig(
        model=v['robot.model'], tcp_offset=v['robot.tcp_offset'],
        tcp_yaw_offset=v['robot.tcp_yaw_offset'],
        arrival_tolerance=v['robot.arrival_tolerance'],
        arrival_timeout_margin=v['robot.arrival_timeout_margin'],
        contact_force=v['robot.contact_force'], wrench_max_age=v['robot.wrench_max_age'],
        guarded_speed=v['robot.guarded_speed'],
        gripper_closed_position=v['gripper.closed_position'], gripper_joint=v['gripper.joint'],
        gripper_max_effort=v['gripper.max_effort'])
    envelope = SafetyEnvelope(
        x_min=v['safety.x_min'], x_max=v['safety.x_max'], y_min=v['safety.y_min'],
        y_max=v['safety.y_max'], z_min=v['safety.z_min'], z_max=v['safety.z_max'],
        joint_lower=tuple(v['safety.joint_lower']), joint_upper=tuple(v['safety.joint_upper']),
        max_joint_speed=v['safety.max_joint_speed'])
    primitives = PrimitiveConfig(
        approach_height=v['primitives.approach_height'],
        grasp_depth=v['primitives.grasp_depth'], push_height=v['primitives.push_height'],
        contact_lift=v['primitives.contact_lift'],
        push_depth=v['primitives.push_depth'], push_length=v['primitives.push_length'],
        lift_height=v['primitives.lift_height'], retreat_height=v['primitives.retreat_height'],
        grasp_open_threshold=v['primitives.grasp_open_threshold'],
        grasp_closed_threshold=v['primitives.grasp_closed_threshold'],
        dropoff=tuple(v['primitives.dropoff']), workspace=tuple(v['primitives.workspace']),
        home_joints=tuple(v['robot.home_joints']))
    rewards = RewardConfig(change_threshold=v['rewards.change_threshold'],
                           empty_threshold=v['rewards.empty_threshold'],
                           object_height=v['rewards.object_height'])
    moveit = MoveItConfig(
        node_name=v['moveit.node_name'],
        params_files=(v['moveit.params_file'],) if v['moveit.params_file'] else (),
        planning_group=v['moveit.planning_group'], tool_link=v['moveit.tool_link'],
        pose_frame=v['moveit.pose_frame'], free_pipeline=v['moveit.free_pipeline'],
        free_planner_id=v['moveit.free_planner_id'],
        linear_pipeline=v['moveit.linear_pipeline'],
        linear_planner_id=v['moveit.linear_planner_id'],
        planning_time=v['moveit.planning_time'], planning_attempts=v['moveit.planning_attempts'],
        max_velocity_scaling=v['moveit.max_velocity_scaling'],
        max_acceleration_scaling=v['moveit.max_acceleration_scaling'],
        path_tolerance=v['moveit.path_tolerance'], table=v['moveit.table'],
        table_top_z=v['moveit.table_top_z'], table_size=tuple(v['moveit.table_size']))
    if v['motion_backend'] == 'moveit':
        check_velocity_scaling(moveit.max_velocity_scaling, v['moveit.joint_velocity_limit'],
                               envelope.max_joint_speed)
    settle = SettleConfig(still_time=v['gripper.settle_time'],
                          tolerance=v['gripper.settle_tolerance'],
                          target_tolerance=v['gripper.target_tolerance'],
                          start_timeout=v['gripper.motion_start_timeout'])
    return ExecutorParameters(v['motion_backend'], v['cell_name'], trajectory, envelope,
                              primitives, rewards, moveit, v, settle)
