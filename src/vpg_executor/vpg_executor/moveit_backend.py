"""
MoveIt 2 motion backend: top-down TCP moves planned by MoveIt and executed through moveit_py.

Written against moveit_py as released with MoveIt 2 for ROS 2 kilted (the bindings in
moveit2's `moveit_py/src/moveit/...` are the same on the `jazzy` and `main` branches; humble's
`MoveItPy.execute` took a group name and is not supported). The calls used:

- `moveit.planning.MoveItPy(node_name=..., launch_params_filepaths=[...])`,
  `MoveItPy.get_planning_component(planning_component_name)`,
  `MoveItPy.execute(robot_trajectory=..., controllers=[...])` -> ExecutionStatus (truthy on
  SUCCEEDED, `.status` names it), `MoveItPy.get_planning_scene_monitor()`.
- `PlanningComponent.set_start_state_to_current_state()`, `.get_start_state()` -> RobotState,
  `.set_goal_state(pose_stamped_msg=..., pose_link=...)` or `.set_goal_state(robot_state=...)`,
  `.plan(single_plan_parameters=...)` -> MotionPlanResponse (truthy on SUCCESS, `.error_code`
  a moveit_msgs MoveItErrorCodes, `.trajectory` a RobotTrajectory).
- `moveit.planning.PlanRequestParameters(moveit_py, namespace)` with `planning_pipeline`,
  `planner_id`, `planning_time`, `planning_attempts`, `max_velocity_scaling_factor`,
  `max_acceleration_scaling_factor`.
- RobotState `joint_positions` (name -> value), `update()`, `copy.copy`; RobotTrajectory
  `len`, `[i]` -> RobotState, `get_waypoint_durations()`.

Free moves use the collision-aware default pipeline (OMPL); `linear=True` moves use Pilz LIN,
a straight line of the tool0 origin, which keeps the TCP (on tool0's z axis) on a straight line
too. The pose goal is tool0's pose, computed from the TCP pose exactly as the joint-trajectory
backend does (TcpKinematics), in the `base` frame of ur_description (the UR controller's base
frame the kinematics and the heightmap use); MoveIt resolves that frame from the robot model.

Safety: every target passes the SafetyEnvelope before MoveIt is called; every planned
trajectory is checked before it is executed (joint limits and joint speed at every waypoint,
and for pose moves the TCP inside the envelope box along the whole path). A free move whose
path leaves the box is replanned as a straight line, as the joint-trajectory backend does.
The TCP path is computed with this package's kinematics for TrajectoryConfig.model, so that
model must be the arm MoveIt's robot description describes. The gripper is not driven by
MoveIt: it uses the same injected command callable and joint-state reading as the
joint-trajectory backend.
"""

import copy
from dataclasses import dataclass
import math

from geometry_msgs.msg import Pose, PoseStamped
import numpy as np
from vpg_common.driver_names import UR_JOINTS
from vpg_executor.motion import MotionBackend, MotionError, ParallelGripper, TcpKinematics
from vpg_executor.safety import TargetRejected

# moveit_msgs/msg/MoveItErrorCodes.msg (ros2 branch): value -> name, for readable errors.
MOVEIT_ERROR_CODES = {
    1: 'SUCCESS', 99999: 'FAILURE', -1: 'PLANNING_FAILED', -2: 'INVALID_MOTION_PLAN',
    -3: 'MOTION_PLAN_INVALIDATED_BY_ENVIRONMENT_CHANGE', -4: 'CONTROL_FAILED',
    -5: 'UNABLE_TO_AQUIRE_SENSOR_DATA', -6: 'TIMED_OUT', -7: 'PREEMPTED',
    -10: 'START_STATE_IN_COLLISION', -11: 'START_STATE_VIOLATES_PATH_CONSTRAINTS',
    -26: 'START_STATE_INVALID', -12: 'GOAL_IN_COLLISION', -13: 'GOAL_VIOLATES_PATH_CONSTRAINTS',
    -14: 'GOAL_CONSTRAINTS_VIOLATED', -27: 'GOAL_STATE_INVALID', -28: 'UNRECOGNIZED_GOAL_TYPE',
    -15: 'INVALID_GROUP_NAME', -16: 'INVALID_GOAL_CONSTRAINTS', -17: 'INVALID_ROBOT_STATE',
    -18: 'INVALID_LINK_NAME', -19: 'INVALID_OBJECT_NAME', -21: 'FRAME_TRANSFORM_FAILURE',
    -22: 'COLLISION_CHECKING_UNAVAILABLE', -23: 'ROBOT_STATE_STALE', -24: 'SENSOR_INFO_STALE',
    -25: 'COMMUNICATION_FAILURE', -29: 'CRASH', -30: 'ABORT', -31: 'NO_IK_SOLUTION',
}

TABLE_OBJECT_ID = 'vpg_table'
UR_JOINT_VELOCITY_LIMIT = math.pi
"""rad/s, every joint of the UR5 and UR5e: `max_velocity: !degrees 180.0` in ur_description's
config/ur5/joint_limits.yaml and config/ur5e/joint_limits.yaml (ur_moveit_config's
joint_limits.yaml adds only acceleration limits), the limits MoveIt's time parametrisation
scales by max_velocity_scaling."""


def check_velocity_scaling(scaling, joint_velocity_limit, max_joint_speed):
    """
    Refuse a MoveIt velocity scaling whose plans would break the safety envelope's joint speed.

    MoveIt times a plan up to scaling x joint_velocity_limit (rad/s); the backend rejects every
    plan faster than max_joint_speed, so a larger product would make most plans fail at run
    time. Raises ValueError naming the largest scaling that fits.
    """
    if joint_velocity_limit <= 0:
        raise ValueError(f'moveit.joint_velocity_limit must be > 0, got {joint_velocity_limit}')
    fastest = scaling * joint_velocity_limit
    if fastest > max_joint_speed * (1 + 1e-9):
        raise ValueError(
            f'moveit.max_velocity_scaling {scaling} x joint velocity limit '
            f'{joint_velocity_limit:.3f} rad/s = {fastest:.3f} rad/s exceeds '
            f'safety.max_joint_speed {max_joint_speed} rad/s: MoveIt would plan moves the '
            f'executor refuses; use at most {max_joint_speed / joint_velocity_limit:.3f}')


@dataclass(frozen=True)
class MoveItConfig:
    """Settings of the MoveIt backend (the TCP, model and gripper come from TrajectoryConfig)."""

    node_name: str = 'moveit_py'
    """Name of the node MoveItPy starts; its parameters (robot description, pipelines) are read
    from `params_files`."""
    params_files: tuple = ()
    """Parameter files for that node (e.g. MoveItConfigsBuilder('ur', package_name=
    'ur_moveit_config') output dumped to YAML); empty = this process's --params-file arguments."""
    planning_group: str = 'ur_manipulator'
    """Planning group of the arm (ur_moveit_config's name)."""
    tool_link: str = 'tool0'
    """Link whose pose the goals set."""
    pose_frame: str = 'base'
    """Frame of the TCP targets: ur_description's `base` (UR controller base, z up)."""
    free_pipeline: str = 'ompl'
    """Collision-aware pipeline for free moves and joint goals."""
    free_planner_id: str = ''
    """Planner of free_pipeline; empty = the pipeline's default planner."""
    linear_pipeline: str = 'pilz_industrial_motion_planner'
    linear_planner_id: str = 'LIN'
    """Straight-line planner for linear moves."""
    planning_time: float = 2.0
    """Seconds a planner may take per request."""
    planning_attempts: int = 1
    max_velocity_scaling: float = 0.2
    """Fraction of the robot model's joint (Pilz: Cartesian) velocity limits, (0, 1]."""
    max_acceleration_scaling: float = 0.2
    """Fraction of the robot model's acceleration limits, (0, 1]."""
    controllers: tuple = ()
    """Controllers MoveIt executes on; empty = MoveIt's default controllers for the group."""
    path_tolerance: float = 0.005
    """How far (m) a planned TCP path may stray outside the envelope box (tracking noise)."""
    table: bool = True
    """Add the table as a collision object (turn off if the robot description has one)."""
    table_top_z: float = -0.01
    """Height of the table top in pose_frame, m (just below the robot base)."""
    table_size: tuple = (2.0, 2.0, 0.05)
    """Table box x, y, thickness (m), centred under the robot base."""

    def __post_init__(self):
        for name in ('max_velocity_scaling', 'max_acceleration_scaling'):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ValueError(f'moveit {name} must be in (0, 1], got {getattr(self, name)}')
        if not self.planning_time > 0 or self.planning_attempts < 1:
            raise ValueError('moveit planning_time must be > 0 and planning_attempts >= 1')
        if not self.path_tolerance >= 0:
            raise ValueError('moveit path_tolerance must be >= 0')
        if len(self.table_size) != 3 or not np.all(np.asarray(self.table_size) > 0):
            raise ValueError(f'moveit table_size needs 3 positive lengths, got {self.table_size}')


def import_moveit_py():
    """Return moveit_py's (MoveItPy, PlanRequestParameters), or raise ImportError naming it."""
    try:
        from moveit.planning import MoveItPy, PlanRequestParameters
    except ImportError as error:
        raise ImportError(
            "motion_backend 'moveit' needs moveit_py, MoveIt 2's Python API (ros-<distro>-"
            f'moveit-py), which cannot be imported here ({error}); install it or use '
            "motion_backend 'joint_trajectory'") from error
    return MoveItPy, PlanRequestParameters


def quaternion_xyzw(rotation):
    """Return the unit quaternion (x, y, z, w), w >= 0, of a 3x3 rotation matrix."""
    m = np.asarray(rotation, dtype=np.float64)
    trace = np.trace(m)
    if trace > 0:
        s = 2.0 * np.sqrt(trace + 1.0)
        q = [(m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, s / 4]
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = [s / 4, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s, (m[2, 1] - m[1, 2]) / s]
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = [(m[0, 1] + m[1, 0]) / s, s / 4, (m[1, 2] + m[2, 1]) / s, (m[0, 2] - m[2, 0]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = [(m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, s / 4, (m[1, 0] - m[0, 1]) / s]
    q = np.array(q) / np.linalg.norm(q)
    return -q if q[3] < 0 else q


def pose_stamped(transform, frame_id):
    """geometry_msgs PoseStamped of a 4x4 transform expressed in frame_id."""
    msg = PoseStamped()
    msg.header.frame_id = frame_id
    msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = (
        float(v) for v in transform[:3, 3])
    x, y, z, w = (float(v) for v in quaternion_xyzw(transform[:3, :3]))
    msg.pose.orientation.x, msg.pose.orientation.y = x, y
    msg.pose.orientation.z, msg.pose.orientation.w = z, w
    return msg


def error_code_text(error_code):
    """'NAME (value): message' of a MoveItErrorCodes message."""
    value = int(getattr(error_code, 'val', error_code))
    text = f'{MOVEIT_ERROR_CODES.get(value, "UNKNOWN_ERROR_CODE")} ({value})'
    message = getattr(error_code, 'message', '')
    return f'{text}: {message}' if message else text


class MoveItBackend(MotionBackend):
    """
    Plans with MoveIt and executes through it; the same TCP geometry and gripper as the others.

    moveit: a MoveItPy instance, or None to start one (imports moveit_py only then).
    plan_request_parameters: the PlanRequestParameters class to use with an injected moveit.
    joint_states / gripper_command: as for JointTrajectoryBackend, for the gripper only.
    """

    def __init__(self, config, envelope, moveit=None, joint_states=None, gripper_command=None,
                 settings=MoveItConfig(), plan_request_parameters=None,
                 joint_names=UR_JOINTS):
        self.config = config
        self.envelope = envelope
        self.settings = settings
        self.kinematics = TcpKinematics(config)
        self.gripper = ParallelGripper(config, joint_states, gripper_command)
        self.joint_names = tuple(joint_names)
        self._owns_moveit = moveit is None
        if moveit is None:
            moveit_py, default_parameters = import_moveit_py()
            plan_request_parameters = plan_request_parameters or default_parameters
            kwargs = {'node_name': settings.node_name}
            if settings.params_files:
                kwargs['launch_params_filepaths'] = [str(p) for p in settings.params_files]
            moveit = moveit_py(**kwargs)
        elif plan_request_parameters is None:
            raise ValueError('an injected MoveItPy needs plan_request_parameters '
                             '(moveit.planning.PlanRequestParameters or a stand-in)')
        self.moveit = moveit
        self.arm = moveit.get_planning_component(settings.planning_group)
        self.free_parameters = self._plan_parameters(
            plan_request_parameters, settings.free_pipeline, settings.free_planner_id)
        self.linear_parameters = self._plan_parameters(
            plan_request_parameters, settings.linear_pipeline, settings.linear_planner_id)
        if settings.table:
            self.add_table()
        self.commanded = []  # (kind, target) log of what was executed, newest last (bounded)

    def _plan_parameters(self, factory, pipeline, planner_id):
        parameters = factory(self.moveit, '')
        parameters.planning_pipeline = pipeline
        parameters.planner_id = planner_id
        parameters.planning_time = float(self.settings.planning_time)
        parameters.planning_attempts = int(self.settings.planning_attempts)
        parameters.max_velocity_scaling_factor = float(self.settings.max_velocity_scaling)
        parameters.max_acceleration_scaling_factor = float(self.settings.max_acceleration_scaling)
        return parameters

    def add_table(self):
        """Put the table into MoveIt's planning scene so free moves keep every link above it."""
        try:
            from moveit_msgs.msg import CollisionObject
            from shape_msgs.msg import SolidPrimitive
        except ImportError as error:
            raise ImportError(f'the MoveIt table collision object needs moveit_msgs and '
                              f'shape_msgs ({error})') from error
        size_x, size_y, thickness = (float(v) for v in self.settings.table_size)
        table = CollisionObject()
        table.header.frame_id = self.settings.pose_frame
        table.id = TABLE_OBJECT_ID
        box = SolidPrimitive()
        box.type = SolidPrimitive.BOX
        box.dimensions = [size_x, size_y, thickness]
        pose = Pose()
        pose.position.z = float(self.settings.table_top_z) - thickness / 2
        pose.orientation.w = 1.0
        table.primitives.append(box)
        table.primitive_poses.append(pose)
        table.operation = CollisionObject.ADD
        with self.moveit.get_planning_scene_monitor().read_write() as scene:
            scene.apply_collision_object(table)
            scene.current_state.update()

    def close(self):
        """Shut down the MoveItPy instance this backend started (not an injected one)."""
        if self._owns_moveit:
            self.moveit.shutdown()

    # --- states and trajectories ----------------------------------------------------------
    def _joints_of(self, state):
        positions = state.joint_positions
        missing = [name for name in self.joint_names if name not in positions]
        if missing:
            raise MotionError(f'MoveIt robot state has no joints {missing}')
        return np.array([positions[name] for name in self.joint_names], dtype=np.float64)

    def _start_state(self):
        self.arm.set_start_state_to_current_state()
        state = self.arm.get_start_state()
        if state is None:
            raise MotionError('MoveIt has no current robot state (are joint states arriving?)')
        return state

    def current_joints(self):
        """Arm joint angles of MoveIt's current robot state."""
        return self._joints_of(self._start_state())

    def _plan(self, parameters, **goal):
        """Plan from the current state to goal; return (trajectory, waypoint joints (N, 6))."""
        self.arm.set_start_state_to_current_state()
        if not self.arm.set_goal_state(**goal):
            raise MotionError(f'MoveIt refused the goal {sorted(goal)}')
        result = self.arm.plan(single_plan_parameters=parameters)
        if not result:
            raise MotionError(f'MoveIt planning with {parameters.planning_pipeline} '
                              f'{parameters.planner_id or "(default planner)"} failed: '
                              f'{error_code_text(result.error_code)}')
        trajectory = result.trajectory
        count = len(trajectory) if trajectory is not None else 0
        if count == 0:
            raise MotionError('MoveIt returned an empty trajectory')
        waypoints = np.array([self._joints_of(trajectory[i]) for i in range(count)])
        durations = np.asarray(trajectory.get_waypoint_durations(), dtype=np.float64)
        if durations.shape != (count,):
            raise MotionError(f'MoveIt trajectory has {count} waypoints but '
                              f'{durations.size} durations')
        self._check_joint_motion(waypoints, durations)
        return trajectory, waypoints

    def _check_joint_motion(self, waypoints, durations):
        """Refuse a planned trajectory that leaves the joint limits or moves a joint too fast."""
        for q in waypoints:
            try:
                self.envelope.check_joints(q)
            except TargetRejected as error:
                raise MotionError(f'planned trajectory leaves the envelope: {error}') from error
        steps = np.max(np.abs(np.diff(waypoints, axis=0)), axis=1)
        times = durations[1:]
        moving = steps > 1e-9
        if np.any(moving & ~(times > 0)):
            raise MotionError('planned trajectory moves a joint in zero time')
        if np.any(moving):
            speed = float(np.max(steps[moving] / times[moving]))
            if speed > self.envelope.max_joint_speed * (1 + 1e-6):
                raise MotionError(
                    f'planned joint speed {speed:.3f} rad/s exceeds the envelope limit of '
                    f'{self.envelope.max_joint_speed} rad/s; lower the MoveIt velocity scaling')

    def _tcp_path_inside(self, waypoints, samples=10):
        """Whether the TCP stays in the envelope box along the joint path, segments sampled."""
        s = np.linspace(0.0, 1.0, samples, endpoint=False)
        segments = waypoints[:-1, None, :] + s[None, :, None] * np.diff(waypoints, axis=0)[
            :, None, :]
        path = np.vstack([segments.reshape(-1, waypoints.shape[1]), waypoints[-1:]])
        return self.kinematics.path_inside(path, self.envelope, tol=self.settings.path_tolerance)

    def _execute(self, trajectory, waypoints):
        self.commanded.append(('joints', waypoints[-1].copy()))
        del self.commanded[:-1000]
        status = self.moveit.execute(robot_trajectory=trajectory,
                                     controllers=list(self.settings.controllers))
        if not status:
            raise MotionError(f'MoveIt execution failed: {getattr(status, "status", status)}')

    # --- MotionBackend --------------------------------------------------------------------
    def move_to(self, pose, linear=False, guarded=False, speed=None):
        """
        Move the TCP to pose: tool0 pose goal, OMPL (free) or Pilz LIN (linear=True).

        guarded and speed are accepted for the interface but not told apart: MoveIt reports a
        blocked arm as a failed execution (the controller's path tolerance), raised as
        MotionError, and its planners' velocity scaling sets the speed.

        The jaw yaw is taken modulo pi (a parallel gripper is symmetric) to turn the wrist
        least. A free move whose TCP path would leave the envelope box is replanned as a
        straight line (the box is convex, so the line stays inside).
        """
        pose = self.envelope.check_pose(pose)
        pose = self.kinematics.nearest_equivalent_yaw(pose, self.current_joints())
        goal = {'pose_stamped_msg': pose_stamped(self.kinematics.tool0_pose(pose),
                                                 self.settings.pose_frame),
                'pose_link': self.settings.tool_link}
        if not linear:
            trajectory, waypoints = self._plan(self.free_parameters, **goal)
            if self._tcp_path_inside(waypoints):
                self._execute(trajectory, waypoints)
                return True
        trajectory, waypoints = self._plan(self.linear_parameters, **goal)
        if not self._tcp_path_inside(waypoints):
            raise MotionError(f'straight-line path to {pose} leaves the envelope box '
                              '(does the arm start outside it?)')
        self._execute(trajectory, waypoints)
        return True

    def current_tcp_position(self):
        return self.kinematics.tcp_position(self.current_joints())

    def current_tcp_yaw(self):
        return self.kinematics.tcp_yaw(self.current_joints())

    def move_joints(self, q):
        """Move to a joint configuration with a joint-state goal on the free pipeline."""
        q = self.envelope.check_joints(q)
        goal = copy.copy(self._start_state())
        goal.joint_positions = {name: float(v) for name, v in zip(self.joint_names, q)}
        goal.update()
        trajectory, waypoints = self._plan(self.free_parameters, robot_state=goal)
        self._execute(trajectory, waypoints)

    def set_gripper(self, closed):
        return self.gripper.set_closed(closed)

    def gripper_closure(self):
        return self.gripper.closure()


__all__ = ['MOVEIT_ERROR_CODES', 'MoveItBackend', 'MoveItConfig', 'error_code_text',
           'import_moveit_py', 'pose_stamped', 'quaternion_xyzw']
