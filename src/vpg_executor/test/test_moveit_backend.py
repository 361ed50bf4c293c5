"""
The MoveIt backend against a fake with moveit_py's interface (kilted bindings).

The fake keeps the real argument names and result shapes: MoveItPy(node_name=...,
launch_params_filepaths=...), get_planning_component(planning_component_name),
execute(robot_trajectory, controllers) -> ExecutionStatus, PlanningComponent.set_goal_state(
configuration_name=, robot_state=, pose_stamped_msg=, pose_link=, motion_plan_constraints=),
plan(single_plan_parameters=, ...) -> MotionPlanResponse (truthy on SUCCESS, error_code.val),
PlanRequestParameters(moveit_py, namespace), RobotState.joint_positions / update / copy,
RobotTrajectory len / [i] / get_waypoint_durations(). Its planner is a UR5e: inverse
kinematics to the goal, a joint-space line for OMPL, a tool0 straight line for Pilz LIN.
"""

import copy
import sys
import types

import numpy as np
import pytest
from vpg_common.driver_names import UR_JOINTS
from vpg_executor.motion import JointStateCache, MotionError, TrajectoryConfig
from vpg_executor.moveit_backend import (error_code_text, MoveItBackend, MoveItConfig,
                                         quaternion_xyzw)
from vpg_executor.primitives import PrimitiveConfig, PrimitiveExecutor
from vpg_executor.safety import SafetyEnvelope, TargetRejected, TopDownPose
from vpg_executor.ur_kinematics import (forward_kinematics, inverse_kinematics, MODELS,
                                        nearest_solution)

HOME = np.array([0.0, -1.5708, 1.5708, -1.5708, -1.5708, 0.0])
FINGER = 'robotiq_85_left_knuckle_joint'
MODEL = 'ur5e'
SUCCESS, FAILURE, FRAME_TRANSFORM_FAILURE, INVALID_LINK_NAME = 1, 99999, -21, -18
INVALID_GOAL_CONSTRAINTS, NO_IK_SOLUTION = -16, -31


# --- the fake moveit_py -----------------------------------------------------------------------
class FakeErrorCode:
    """moveit_msgs/MoveItErrorCodes (ros2): val, message, source."""

    def __init__(self, val, message='', source=''):
        self.val, self.message, self.source = val, message, source


class FakeRobotState:
    """moveit.core.robot_state.RobotState: variables by name."""

    def __init__(self, positions):
        self._positions = dict(positions)
        self.updated = False

    @property
    def joint_positions(self):
        return dict(self._positions)

    @joint_positions.setter
    def joint_positions(self, values):
        for name, value in values.items():  # setVariablePosition per entry, like the binding
            if name not in self._positions:
                raise KeyError(name)
            self._positions[name] = float(value)

    def update(self, force=False, type='all'):  # noqa: A002 (the binding's argument name)
        self.updated = True

    def __copy__(self):
        return FakeRobotState(self._positions)


class FakeRobotTrajectory:
    """moveit.core.robot_trajectory.RobotTrajectory."""

    def __init__(self, group, states, durations):
        self.joint_model_group_name = group
        self._states = states
        self._durations = list(durations)

    def __len__(self):
        return len(self._states)

    def __getitem__(self, idx):
        return self._states[idx]

    def get_waypoint_durations(self):
        return list(self._durations)

    @property
    def duration(self):
        return float(sum(self._durations))


class FakeMotionPlanResponse:
    """moveit.core.planning_interface.MotionPlanResponse."""

    def __init__(self, error_code, trajectory=None, planner_id=''):
        self.error_code = error_code
        self.trajectory = trajectory
        self.planner_id = planner_id
        self.planning_time = 0.01

    def __bool__(self):
        return self.error_code.val == SUCCESS


class FakeExecutionStatus:
    """moveit.core.controller_manager.ExecutionStatus."""

    def __init__(self, status):
        self.status = status

    def __bool__(self):
        return self.status == 'SUCCEEDED'


class FakePlanRequestParameters:
    """moveit.planning.PlanRequestParameters(moveit_py, namespace) with load()'s defaults."""

    def __init__(self, moveit_py, namespace):
        self.namespace = namespace
        self.planner_id = ''
        self.planning_pipeline = ''
        self.planning_time = 1.0
        self.planning_attempts = 5
        self.max_velocity_scaling_factor = 1.0
        self.max_acceleration_scaling_factor = 1.0


def quat_to_matrix(x, y, z, w):
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def pose_msg_matrix(pose):
    transform = np.eye(4)
    o = pose.orientation
    transform[:3, :3] = quat_to_matrix(o.x, o.y, o.z, o.w)
    transform[:3, 3] = [pose.position.x, pose.position.y, pose.position.z]
    return transform


class FakePlanningComponent:
    """moveit.planning.PlanningComponent for one group, planning on the fake UR5e."""

    def __init__(self, group, robot):
        self.group = group
        self.robot = robot
        self._start = None
        self._goal = None

    def set_start_state_to_current_state(self):
        self.robot.calls.append(('set_start_state_to_current_state', {}))
        self._start = None

    def get_start_state(self):
        self.robot.calls.append(('get_start_state', {}))
        return self._start or FakeRobotState(self.robot.state)

    def set_goal_state(self, configuration_name=None, robot_state=None, pose_stamped_msg=None,
                       pose_link=None, motion_plan_constraints=None):
        goal = {'configuration_name': configuration_name, 'robot_state': robot_state,
                'pose_stamped_msg': pose_stamped_msg, 'pose_link': pose_link,
                'motion_plan_constraints': motion_plan_constraints}
        goal = {key: value for key, value in goal.items() if value is not None}
        self.robot.calls.append(('set_goal_state', goal))
        if (pose_stamped_msg is None) != (pose_link is None):
            raise ValueError('Must specify both message and corresponding link')
        if not goal:
            raise ValueError('Must specify at least one argument')
        if len(goal) > (2 if pose_stamped_msg is not None else 1):
            raise ValueError('Cannot specify more than one kind of goal')
        self._goal = goal
        return True

    def plan(self, single_plan_parameters=None, multi_plan_parameters=None,
             planning_scene=None, solution_selection_function=None,
             stopping_criterion_callback=None):
        params = single_plan_parameters
        self.robot.calls.append(('plan', {'single_plan_parameters': params}))
        self.robot.plans.append({'parameters': copy.copy(vars(params)) if params else None,
                                 'goal': self._goal})
        return self.robot.solve(self._goal, params)


class FakeScene:
    """moveit.core.planning_scene.PlanningScene: records collision objects."""

    def __init__(self, robot):
        self.robot = robot
        self.current_state = FakeRobotState(robot.state)

    def apply_collision_object(self, collision_object_msg):
        self.robot.collision_objects.append(collision_object_msg)


class FakeSceneContext:
    """PlanningSceneMonitor.read_write()'s context manager."""

    def __init__(self, robot):
        self.robot = robot

    def __enter__(self):
        return FakeScene(self.robot)

    def __exit__(self, kind, value, traceback):
        return False


class FakePlanningSceneMonitor:
    """moveit.planning.PlanningSceneMonitor."""

    def __init__(self, robot):
        self.robot = robot

    def read_write(self):
        return FakeSceneContext(self.robot)


class FakeMoveItPy:
    """moveit.planning.MoveItPy driving an instant UR5e (execution jumps to the end)."""

    group = 'ur_manipulator'

    def __init__(self, node_name='moveit_py', name_space='', launch_params_filepaths=None,
                 config_dict=None, provide_planning_service=True, remappings=None):
        self.node_name = node_name
        self.launch_params_filepaths = launch_params_filepaths
        self.params = MODELS[MODEL]
        self.state = dict(zip(UR_JOINTS, HOME))
        self.state[FINGER] = 0.0
        self.calls, self.plans, self.executed, self.collision_objects = [], [], [], []
        self.joint_speed = 0.5  # rad/s of the fake time parameterization
        self.fail_next_plan = None  # an error code value
        self.execution_status = 'SUCCEEDED'
        self.detour = False  # OMPL paths swing the shoulder out of the workspace and back

    def get_planning_component(self, planning_component_name):
        self.calls.append(('get_planning_component', {'name': planning_component_name}))
        return FakePlanningComponent(planning_component_name, self)

    def get_planning_scene_monitor(self):
        return FakePlanningSceneMonitor(self)

    def get_robot_model(self):
        raise AssertionError('the backend should not need the robot model')

    def execute(self, robot_trajectory, controllers):
        self.calls.append(('execute', {'controllers': controllers}))
        if self.execution_status != 'SUCCEEDED':
            return FakeExecutionStatus(self.execution_status)
        self.executed.append(robot_trajectory)
        self.state.update(robot_trajectory[len(robot_trajectory) - 1].joint_positions)
        return FakeExecutionStatus('SUCCEEDED')

    def shutdown(self):
        self.calls.append(('shutdown', {}))

    # --- the fake planner -----------------------------------------------------------------
    def q_now(self):
        return np.array([self.state[name] for name in UR_JOINTS])

    def ik(self, tool0, seed):
        return nearest_solution(inverse_kinematics(tool0, self.params), seed)

    def solve(self, goal, params):
        if self.fail_next_plan is not None:
            code, self.fail_next_plan = self.fail_next_plan, None
            return FakeMotionPlanResponse(FakeErrorCode(code, 'fake failure', 'fake'))
        if goal is None:
            return FakeMotionPlanResponse(FakeErrorCode(INVALID_GOAL_CONSTRAINTS))
        q0 = self.q_now()
        if 'robot_state' in goal:
            q_goal = np.array([goal['robot_state'].joint_positions[n] for n in UR_JOINTS])
            tool0_goal = forward_kinematics(q_goal, self.params)
        else:
            if goal['pose_stamped_msg'].header.frame_id != 'base':
                return FakeMotionPlanResponse(FakeErrorCode(FRAME_TRANSFORM_FAILURE))
            if goal['pose_link'] != 'tool0':
                return FakeMotionPlanResponse(FakeErrorCode(INVALID_LINK_NAME))
            tool0_goal = pose_msg_matrix(goal['pose_stamped_msg'].pose)
            q_goal = self.ik(tool0_goal, q0)
            if q_goal is None:
                return FakeMotionPlanResponse(FakeErrorCode(NO_IK_SOLUTION))
        if params.planning_pipeline == 'ompl':
            path = [q0, q_goal]
            if self.detour:
                path = [q0, (q0 + q_goal) / 2 + np.array([1.5, 0, 0, 0, 0, 0]), q_goal]
            waypoints = [q0]
            for a, b in zip(path[:-1], path[1:]):
                count = max(1, int(np.ceil(np.max(np.abs(b - a)) / 0.05)))
                waypoints += [a + (b - a) * i / count for i in range(1, count + 1)]
        elif (params.planning_pipeline, params.planner_id) == (
                'pilz_industrial_motion_planner', 'LIN'):
            waypoints = self.straight_line(q0, tool0_goal)
            if waypoints is None:
                return FakeMotionPlanResponse(FakeErrorCode(NO_IK_SOLUTION))
        else:
            return FakeMotionPlanResponse(FakeErrorCode(FAILURE, 'unknown pipeline'))
        return FakeMotionPlanResponse(FakeErrorCode(SUCCESS), self.trajectory(waypoints),
                                      params.planner_id)

    def straight_line(self, q0, tool0_goal):
        """Tool0 origin on a line, orientation turning about its (vertical) z axis."""
        start = forward_kinematics(q0, self.params)
        relative = start[:3, :3].T @ tool0_goal[:3, :3]
        angle = np.arctan2(relative[1, 0], relative[0, 0])
        distance = np.linalg.norm(tool0_goal[:3, 3] - start[:3, 3])
        count = max(1, int(np.ceil(max(distance / 0.01, abs(angle) / 0.05))))
        waypoints, q = [q0], q0
        for i in range(1, count + 1):
            s = i / count
            c, si = np.cos(s * angle), np.sin(s * angle)
            pose = np.eye(4)
            pose[:3, :3] = start[:3, :3] @ np.array([[c, -si, 0], [si, c, 0], [0, 0, 1]])
            pose[:3, 3] = start[:3, 3] + s * (tool0_goal[:3, 3] - start[:3, 3])
            q = self.ik(pose, q)
            if q is None:
                return None
            waypoints.append(q)
        return waypoints

    def trajectory(self, waypoints):
        states, durations = [], [0.0]
        for q in waypoints:
            state = dict(self.state)
            state.update(zip(UR_JOINTS, q))
            states.append(FakeRobotState(state))
        for a, b in zip(waypoints[:-1], waypoints[1:]):
            durations.append(max(np.max(np.abs(b - a)) / self.joint_speed, 1e-3))
        return FakeRobotTrajectory(self.group, states, durations)


@pytest.fixture(autouse=True)
def collision_object_messages(monkeypatch):
    """moveit_msgs / shape_msgs stand-ins where those packages are not installed."""
    try:
        import moveit_msgs.msg  # noqa: F401
        import shape_msgs.msg  # noqa: F401
        return
    except ImportError:
        pass
    from std_msgs.msg import Header

    class CollisionObject:
        ADD = 0

        def __init__(self):
            self.header, self.id, self.operation = Header(), '', 0
            self.primitives, self.primitive_poses = [], []

    class SolidPrimitive:
        BOX = 1

        def __init__(self):
            self.type, self.dimensions = 0, []

    for package, name, cls in (('moveit_msgs', 'CollisionObject', CollisionObject),
                               ('shape_msgs', 'SolidPrimitive', SolidPrimitive)):
        msg = types.ModuleType(f'{package}.msg')
        setattr(msg, name, cls)
        root = types.ModuleType(package)
        root.msg = msg
        monkeypatch.setitem(sys.modules, package, root)
        monkeypatch.setitem(sys.modules, f'{package}.msg', msg)


class Fingers:
    """Gripper command + joint states, as the executor node wires them."""

    def __init__(self, grip_stop=None):
        self.cache = JointStateCache()
        self.cache.update([FINGER], [0.0])
        self.grip_stop = grip_stop

    def command(self, position, max_effort):
        if self.grip_stop is not None and position > self.grip_stop:
            position = self.grip_stop
        self.cache.update([FINGER], [position])


def make_backend(settings=MoveItConfig(), envelope=None, fingers=None):
    robot = FakeMoveItPy()
    fingers = fingers or Fingers()
    backend = MoveItBackend(TrajectoryConfig(model=MODEL), envelope or SafetyEnvelope(),
                            moveit=robot, joint_states=fingers.cache,
                            gripper_command=fingers.command, settings=settings,
                            plan_request_parameters=FakePlanRequestParameters)
    robot.calls.clear()
    return backend, robot


def tcp_of(q, config=TrajectoryConfig(model=MODEL)):
    """TCP position from forward kinematics and the documented offset along tool0's z."""
    tool0 = forward_kinematics(q, MODELS[MODEL])
    return tool0[:3, 3] + config.tcp_offset * tool0[:3, 2]


# --- tests ----------------------------------------------------------------------------------
@pytest.mark.parametrize('yaw', [0.0, 0.7, -1.2, 1.45])
def test_pose_goal_is_the_tool0_pose_of_the_top_down_tcp_pose(yaw):
    backend, robot = make_backend()
    target = TopDownPose(-0.45, 0.12, 0.08, yaw)
    backend.move_to(target)
    goal = robot.plans[-1]['goal']
    assert set(goal) == {'pose_stamped_msg', 'pose_link'}
    assert goal['pose_link'] == 'tool0'
    msg = goal['pose_stamped_msg']
    assert msg.header.frame_id == 'base'
    config = TrajectoryConfig(model=MODEL)
    # tool0 sits tcp_offset straight above the TCP, its z axis pointing down.
    p = msg.pose.position
    np.testing.assert_allclose([p.x, p.y, p.z], target.position + [0, 0, config.tcp_offset],
                               atol=1e-9)
    o = msg.pose.orientation
    assert np.linalg.norm([o.x, o.y, o.z, o.w]) == pytest.approx(1.0)
    rotation = quat_to_matrix(o.x, o.y, o.z, o.w)
    np.testing.assert_allclose(rotation[:, 2], [0, 0, -1], atol=1e-9)
    # The jaws close along tool0's y axis turned by tcp_yaw_offset about z: (cos, sin) of the
    # yaw, up to the sign a symmetric gripper does not care about.
    c, s = np.cos(config.tcp_yaw_offset), np.sin(config.tcp_yaw_offset)
    jaw = rotation @ np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ [0, 1, 0]
    assert abs(jaw @ [np.cos(yaw), np.sin(yaw), 0]) == pytest.approx(1.0, abs=1e-9)
    # The fake planner solved that goal: the executed arm puts the TCP on the target.
    assert robot.plans[-1]['parameters']['planning_pipeline'] == 'ompl'
    np.testing.assert_allclose(tcp_of(robot.q_now()), target.position, atol=1e-6)


def test_yaw_is_taken_modulo_pi_to_turn_the_wrist_least():
    backend, robot = make_backend()
    now = backend.kinematics.tcp_yaw(robot.q_now())
    backend.move_to(TopDownPose(-0.5, 0.0, 0.1, now + np.pi - 0.2))
    o = robot.plans[-1]['goal']['pose_stamped_msg'].pose.orientation
    rotation = quat_to_matrix(o.x, o.y, o.z, o.w)
    c, s = np.cos(-np.pi / 2), np.sin(-np.pi / 2)
    jaw = rotation @ np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ [0, 1, 0]
    np.testing.assert_allclose(jaw[:2], [np.cos(now - 0.2), np.sin(now - 0.2)], atol=1e-9)


def test_quaternion_matches_the_rotation_for_many_rotations():
    rng = np.random.default_rng(7)
    for _ in range(200):
        q = rng.normal(size=4)
        q /= np.linalg.norm(q)
        rotation = quat_to_matrix(*q)
        back = quaternion_xyzw(rotation)
        assert back[3] >= 0
        np.testing.assert_allclose(quat_to_matrix(*back), rotation, atol=1e-9)


def test_linear_move_uses_pilz_lin_with_the_configured_scaling():
    settings = MoveItConfig(max_velocity_scaling=0.15, max_acceleration_scaling=0.05,
                            planning_time=3.0)
    backend, robot = make_backend(settings)
    backend.move_to(TopDownPose(-0.5, -0.1, 0.15, 0.0))
    backend.move_to(TopDownPose(-0.5, -0.1, 0.04, 0.0), linear=True)
    free, linear = robot.plans[-2]['parameters'], robot.plans[-1]['parameters']
    assert (free['planning_pipeline'], free['planner_id']) == ('ompl', '')
    assert linear['planning_pipeline'] == 'pilz_industrial_motion_planner'
    assert linear['planner_id'] == 'LIN'
    for params in (free, linear):
        assert params['max_velocity_scaling_factor'] == 0.15
        assert params['max_acceleration_scaling_factor'] == 0.05
        assert params['planning_time'] == 3.0
        assert params['planning_attempts'] == 1
    assert len(robot.executed) == 2
    np.testing.assert_allclose(tcp_of(robot.q_now()), [-0.5, -0.1, 0.04], atol=1e-6)


def test_failed_plan_raises_with_moveit_error_code_and_executes_nothing():
    backend, robot = make_backend()
    robot.fail_next_plan = NO_IK_SOLUTION
    with pytest.raises(MotionError, match=r'NO_IK_SOLUTION \(-31\): fake failure'):
        backend.move_to(TopDownPose(-0.5, 0.0, 0.1, 0.0))
    assert robot.executed == []
    assert not any(name == 'execute' for name, _ in robot.calls)
    robot.fail_next_plan = -10
    with pytest.raises(MotionError, match=r'START_STATE_IN_COLLISION \(-10\)'):
        backend.move_joints(HOME)
    assert robot.executed == []


def test_execution_failure_raises_motion_error():
    backend, robot = make_backend()
    robot.execution_status = 'ABORTED'
    with pytest.raises(MotionError, match='ABORTED'):
        backend.move_to(TopDownPose(-0.5, 0.0, 0.1, 0.0))


@pytest.mark.parametrize('pose', [TopDownPose(-0.05, 0.0, 0.1, 0.0),
                                  TopDownPose(-0.5, 0.6, 0.1, 0.0),
                                  TopDownPose(-0.5, 0.0, 0.9, 0.0),
                                  TopDownPose(np.nan, 0.0, 0.1, 0.0),
                                  TopDownPose(-0.5, 0.0, 0.1, np.inf)])
def test_pose_outside_the_envelope_is_refused_before_any_moveit_call(pose):
    backend, robot = make_backend()
    with pytest.raises(TargetRejected):
        backend.move_to(pose)
    assert robot.calls == []


@pytest.mark.parametrize('q', [HOME + [0, 0, 4.0, 0, 0, 0], HOME[:5],
                               HOME + [np.nan, 0, 0, 0, 0, 0]])
def test_joint_target_outside_the_limits_is_refused_before_any_moveit_call(q):
    backend, robot = make_backend()
    with pytest.raises(TargetRejected):
        backend.move_joints(q)
    assert robot.calls == []


def test_target_below_the_floor_is_raised_to_z_min_in_the_goal():
    envelope = SafetyEnvelope()
    backend, robot = make_backend(envelope=envelope)
    backend.move_to(TopDownPose(-0.5, 0.0, -0.2, 0.0))
    z = robot.plans[-1]['goal']['pose_stamped_msg'].pose.position.z
    assert z == pytest.approx(envelope.z_min + TrajectoryConfig().tcp_offset)


def test_move_joints_uses_a_joint_state_goal():
    backend, robot = make_backend()
    q = HOME + np.array([0.3, 0.1, -0.2, 0.1, 0.0, -0.4])
    backend.move_joints(q)
    goal = robot.plans[-1]['goal']
    assert set(goal) == {'robot_state'}
    state = goal['robot_state']
    assert state.updated
    np.testing.assert_allclose([state.joint_positions[n] for n in UR_JOINTS], q)
    assert state.joint_positions[FINGER] == 0.0  # the rest of the state left as it was
    assert robot.plans[-1]['parameters']['planning_pipeline'] == 'ompl'
    np.testing.assert_allclose(robot.q_now(), q, atol=1e-12)


def test_free_move_leaving_the_envelope_is_replanned_as_a_straight_line():
    backend, robot = make_backend()
    robot.detour = True
    target = TopDownPose(-0.6, 0.2, 0.1, 0.3)
    backend.move_to(target)
    pipelines = [plan['parameters']['planning_pipeline'] for plan in robot.plans]
    assert pipelines == ['ompl', 'pilz_industrial_motion_planner']
    assert len(robot.executed) == 1
    env = SafetyEnvelope()
    done = robot.executed[0]
    for i in range(len(done)):
        tcp = tcp_of(np.array([done[i].joint_positions[n] for n in UR_JOINTS]))
        assert env.x_min - 0.005 <= tcp[0] <= env.x_max + 0.005
        assert env.y_min - 0.005 <= tcp[1] <= env.y_max + 0.005
    np.testing.assert_allclose(tcp_of(robot.q_now()), target.position, atol=1e-6)


def test_trajectory_faster_than_the_envelope_allows_is_refused():
    backend, robot = make_backend(envelope=SafetyEnvelope(max_joint_speed=1.0))
    robot.joint_speed = 2.5
    with pytest.raises(MotionError, match='joint speed'):
        backend.move_joints(HOME + [0.5, 0, 0, 0, 0, 0])
    assert robot.executed == []


def test_trajectory_outside_the_joint_limits_is_refused():
    lower = (-1.0, -2 * np.pi, -np.pi, -2 * np.pi, -2 * np.pi, -2 * np.pi)
    backend, robot = make_backend(envelope=SafetyEnvelope(joint_lower=lower))
    robot.state['shoulder_pan_joint'] = -0.9
    solve = robot.solve

    def overshoot(goal, params):
        """Plan, then push one waypoint past the envelope's shoulder_pan limit."""
        result = solve(goal, params)
        result.trajectory[1].joint_positions = {'shoulder_pan_joint': -1.2}
        return result

    robot.solve = overshoot
    with pytest.raises(MotionError, match='joint limits'):
        backend.move_joints(HOME + [-0.5, 0, 0, 0, 0, 0])
    assert robot.executed == []


def test_table_is_added_to_the_planning_scene_in_the_base_frame():
    settings = MoveItConfig(table_top_z=-0.02, table_size=(1.5, 1.2, 0.04))
    _, robot = make_backend(settings)
    assert len(robot.collision_objects) == 1
    table = robot.collision_objects[0]
    assert table.header.frame_id == 'base'
    box, pose = table.primitives[0], table.primitive_poses[0]
    assert box.type == type(box).BOX
    assert list(box.dimensions) == [1.5, 1.2, 0.04]
    assert pose.position.z + box.dimensions[2] / 2 == pytest.approx(-0.02)
    assert table.operation == type(table).ADD
    _, robot = make_backend(MoveItConfig(table=False))
    assert robot.collision_objects == []


def test_grasp_primitive_runs_on_the_moveit_backend():
    fingers = Fingers(grip_stop=0.4)
    backend, robot = make_backend(fingers=fingers)
    outcome = PrimitiveExecutor(backend, PrimitiveConfig()).grasp((-0.5, 0.05, 0.03), 0.4)
    assert outcome.success
    assert outcome.closure == pytest.approx(0.4 / TrajectoryConfig().gripper_closed_position)
    pipelines = [(p['parameters']['planning_pipeline'], p['parameters']['planner_id'])
                 for p in robot.plans]
    lin = ('pilz_industrial_motion_planner', 'LIN')
    assert pipelines == [('ompl', ''), lin, lin, ('ompl', '')]
    np.testing.assert_allclose(tcp_of(robot.q_now()), PrimitiveConfig().dropoff, atol=1e-6)
    assert backend.gripper_closure() == 0.0  # released at the drop-off


def test_lazy_import_names_moveit_py_when_it_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, 'moveit', None)  # import moveit -> ImportError
    with pytest.raises(ImportError, match='moveit_py'):
        MoveItBackend(TrajectoryConfig(), SafetyEnvelope())
    # An injected MoveItPy never touches the import.
    backend = MoveItBackend(TrajectoryConfig(model=MODEL), SafetyEnvelope(),
                            moveit=FakeMoveItPy(), settings=MoveItConfig(table=False),
                            plan_request_parameters=FakePlanRequestParameters)
    assert backend.arm.group == 'ur_manipulator'


def test_lazy_import_starts_moveit_py_with_the_configured_node(monkeypatch):
    started = []

    class StartedMoveItPy(FakeMoveItPy):
        """Records how the backend starts it."""

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            started.append(kwargs)

    planning = types.ModuleType('moveit.planning')
    planning.MoveItPy = StartedMoveItPy
    planning.PlanRequestParameters = FakePlanRequestParameters
    root = types.ModuleType('moveit')
    root.planning = planning
    monkeypatch.setitem(sys.modules, 'moveit', root)
    monkeypatch.setitem(sys.modules, 'moveit.planning', planning)
    settings = MoveItConfig(node_name='vpg_moveit', params_files=('/tmp/ur_moveit.yaml',),
                            table=False)
    backend = MoveItBackend(TrajectoryConfig(model=MODEL), SafetyEnvelope(), settings=settings)
    assert started == [{'node_name': 'vpg_moveit',
                        'launch_params_filepaths': ['/tmp/ur_moveit.yaml']}]
    backend.close()
    assert backend.moveit.calls[-1] == ('shutdown', {})


def test_injected_moveit_needs_plan_request_parameters():
    with pytest.raises(ValueError, match='plan_request_parameters'):
        MoveItBackend(TrajectoryConfig(), SafetyEnvelope(), moveit=FakeMoveItPy())


def test_invalid_settings_are_refused():
    with pytest.raises(ValueError, match='max_velocity_scaling'):
        MoveItConfig(max_velocity_scaling=0.0)
    with pytest.raises(ValueError, match='max_acceleration_scaling'):
        MoveItConfig(max_acceleration_scaling=1.5)
    with pytest.raises(ValueError, match='table_size'):
        MoveItConfig(table_size=(1.0, 1.0))


def test_error_code_text_names_known_and_unknown_codes():
    assert error_code_text(FakeErrorCode(-12)) == 'GOAL_IN_COLLISION (-12)'
    assert error_code_text(FakeErrorCode(-999, 'odd')) == 'UNKNOWN_ERROR_CODE (-999): odd'
