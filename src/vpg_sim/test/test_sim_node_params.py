"""The `sim` node in-process: parameters, interface names, start-up scene, real-time pacing."""

import math
import threading
import time

import pytest
import rclpy
from rclpy.action import ActionClient
from rclpy.exceptions import InvalidParameterValueException
from rclpy.executors import MultiThreadedExecutor
from rclpy.parameter import Parameter
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState
from vpg_common.driver_names import GRIPPER_ACTION, GRIPPER_JOINT
from vpg_common.gripper_action import action_type
from vpg_interfaces.srv import CountObjects
from vpg_sim import blocks
from vpg_sim.cell import CellUnstable
from vpg_sim.sim_node import PublishGuard, SimNode
from vpg_sim.sim_parameters import GRIPPER_INTERFACES


@pytest.fixture
def context():
    context = rclpy.Context()
    rclpy.init(context=context)
    yield context
    rclpy.shutdown(context=context)


def run(context, overrides, cli_args=None):
    """Start a SimNode and a client node on a background executor; yield both."""
    node = SimNode(context=context, parameter_overrides=overrides, cli_args=cli_args)
    client = rclpy.create_node('sim_params_client', context=context)
    executor = MultiThreadedExecutor(num_threads=3, context=context)
    executor.add_node(node)
    executor.add_node(client)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    return node, client, executor, thread


def stop(node, client, executor, thread):
    executor.shutdown()
    thread.join(timeout=10)
    node.destroy_node()
    client.destroy_node()


def test_parameters_declared_with_descriptions_and_interfaces_named(context, tmp_path):
    case = tmp_path / 'case.txt'
    case.write_text('4.obj 1 0 0 -0.5 0.0 0.0255 0 0 0\n'
                    '6.obj 0 1 0 -0.6 0.1 0.0505 0 0 0\n'
                    'cube 0 0 1 -0.95 0.4 0.0255 0 0 0\n')
    parts = run(context, [Parameter('test_case_file', value=str(case)),
                          Parameter('real_time_factor', value=0.0)])
    node, client = parts[0], parts[1]
    try:
        for name in ('seed', 'num_objects', 'test_case_file', 'real_time_factor',
                     'idle_real_time_factor', 'camera_rate_hz', 'joint_state_rate_hz',
                     'depth_model', 'randomize', 'randomization_seed',
                     'calibration_marker'):
            descriptor = node.describe_parameter(name)
            assert descriptor.description and descriptor.read_only, name
        assert node.params.real_time_factor == 0.0
        assert node.params.camera_rate_hz == 5.0
        services = dict(client.get_service_names_and_types())
        deadline = time.monotonic() + 10
        while '/sim/count_objects' not in services and time.monotonic() < deadline:
            time.sleep(0.1)
            services = dict(client.get_service_names_and_types())
        assert services['/sim/reset_scene'] == ['vpg_interfaces/srv/ResetScene']
        assert services['/sim/count_objects'] == ['vpg_interfaces/srv/CountObjects']
        actions = [n for n, _ in client.get_topic_names_and_types()
                   if n.startswith('/robotiq_gripper_controller/gripper_cmd/')]
        assert actions, 'gripper action not advertised'

        count = client.create_client(CountObjects, '/sim/count_objects')
        assert count.wait_for_service(timeout_sec=10)
        future = count.call_async(CountObjects.Request())
        deadline = time.monotonic() + 10
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.05)
        result = future.result()
        assert (result.in_workspace, result.removed, result.out_of_workspace) == (2, 0, 1)
    finally:
        stop(*parts)


def test_out_of_range_parameter_refused_at_start(context):
    with pytest.raises(InvalidParameterValueException):
        SimNode(context=context, parameter_overrides=[Parameter('real_time_factor', value=-1.0)])


def test_bad_test_case_file_refused_at_start(context, tmp_path):
    case = tmp_path / 'case.txt'
    case.write_text('9.obj 1 0 0 -0.5 0 0.025 0 0 0\n')
    with pytest.raises(blocks.TestCaseError):
        SimNode(context=context, parameter_overrides=[Parameter('test_case_file',
                                                                value=str(case))])


def test_real_time_factor_one_never_runs_ahead_of_the_wall_clock(context):
    parts = run(context, [Parameter('num_objects', value=0),
                          Parameter('real_time_factor', value=1.0)])
    client = parts[1]
    clocks = []
    client.create_subscription(Clock, '/clock', clocks.append, 100)
    try:
        deadline = time.monotonic() + 10
        while not clocks and time.monotonic() < deadline:
            time.sleep(0.05)
        assert clocks, 'no /clock'
        first = clocks[-1].clock
        wall_start = time.monotonic()
        time.sleep(1.5)
        last = clocks[-1].clock
        wall = time.monotonic() - wall_start
        simulated = (last.sec - first.sec) + (last.nanosec - first.nanosec) * 1e-9
        # Paced: never ahead of real time (one clock period of slack); behind only if starved.
        assert 0.3 * wall < simulated <= wall + 0.03
    finally:
        stop(*parts)


def _wait(future, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not future.done() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert future.done(), 'no answer in time'
    return future.result()


def _goal(action, interface, positions):
    goal = action.Goal()
    if interface == 'gripper_command':
        goal.command.position = positions[0]
    else:
        goal.command = JointState(name=[GRIPPER_JOINT] * len(positions),
                                  position=list(positions))
    return goal


@pytest.mark.parametrize('interface', GRIPPER_INTERFACES)
def test_gripper_serves_either_action_type(context, interface):
    # A name of its own per action type: the graph may still list the other test's server.
    name = f'/gripper_{interface}/gripper_cmd'
    parts = run(context, [Parameter('gripper.interface', value=interface),
                          Parameter('real_time_factor', value=0.0),
                          Parameter('num_objects', value=0)],
                cli_args=['--ros-args', '-r', f'{GRIPPER_ACTION}:={name}'])
    client = parts[1]
    try:
        action = action_type(interface)
        feedback_type = (f'{action.__module__.split(".")[0]}/action/'
                         f'{action.__name__}_FeedbackMessage')
        assert action.__name__ == {'gripper_command': 'GripperCommand',
                                   'parallel_gripper_command': 'ParallelGripperCommand'}[interface]
        gripper = ActionClient(client, action, name)
        assert gripper.wait_for_server(timeout_sec=30)
        topics = dict(client.get_topic_names_and_types())
        assert topics[name + '/_action/feedback'] == [feedback_type]

        handle = _wait(gripper.send_goal_async(_goal(action, interface, [0.5])))
        assert handle.accepted
        outcome = _wait(handle.get_result_async(), timeout=20)
        result = outcome.result
        position = (result.position if interface == 'gripper_command'
                    else result.state.position[0])
        assert result.reached_goal and position == pytest.approx(0.5, abs=0.02)
        if interface == 'parallel_gripper_command':
            assert list(result.state.name) == [GRIPPER_JOINT]

        assert not _wait(gripper.send_goal_async(_goal(action, interface, [math.nan]))).accepted
        if interface == 'parallel_gripper_command':  # the controller wants exactly one
            for positions in ([], [0.1, 0.2]):
                goal = _goal(action, interface, positions)
                assert not _wait(gripper.send_goal_async(goal)).accepted, positions
    finally:
        stop(*parts)


def test_unknown_gripper_interface_refused_at_start(context):
    with pytest.raises(ValueError, match='gripper.interface'):
        SimNode(context=context, parameter_overrides=[
            Parameter('gripper.interface', value='robotiq_serial')])


def test_physics_that_cannot_recover_stops_the_node():
    context = rclpy.Context()
    rclpy.init(context=context)
    node = SimNode(context=context, parameter_overrides=[Parameter('num_objects', value=0)])
    try:
        def unstable(*_args, **_kwargs):
            raise CellUnstable('physics still unstable after 11 restores in a row')
        with node._lock:
            node._cell.advance_to = unstable
        deadline = time.monotonic() + 10
        while context.ok() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not context.ok(), 'the context was not shut down'
        assert isinstance(node.failure, CellUnstable)
    finally:
        node.destroy_node()
        context.try_shutdown()


class _FlakyPublisher:
    """Refuses its next `failures` publishes as Fast DDS does when it cannot write."""

    topic_name = '/joint_states'

    def __init__(self, failures):
        self.failures = failures
        self.sent = []

    def publish(self, msg):
        from rclpy.impl.implementation_singleton import rclpy_implementation
        if self.failures:
            self.failures -= 1
            raise rclpy_implementation.RCLError('Failed to publish: cannot publish data')
        self.sent.append(msg)


class _Warnings:
    """Collects a logger's warnings."""

    def __init__(self):
        self.lines = []

    def warning(self, text, **kwargs):
        self.lines.append(text)


def test_a_failed_publish_is_dropped_and_only_a_run_of_failures_is_fatal():
    from rclpy.impl.implementation_singleton import rclpy_implementation
    log = _Warnings()
    guard = PublishGuard(log, limit=3)
    flaky = _FlakyPublisher(failures=2)
    for k in range(4):
        guard.publish(flaky, k)
    assert flaky.sent == [2, 3] and guard.dropped == 2
    assert len(log.lines) == 2 and '/joint_states' in log.lines[0] and 'dropped' in log.lines[0]
    # A success resets the run: two more single failures are dropped too.
    flaky.failures = 2
    guard.publish(flaky, 4)
    guard.publish(flaky, 5)
    guard.publish(flaky, 6)
    assert flaky.sent == [2, 3, 6] and guard.dropped == 4
    # Three in a row: the third is raised (a publisher that stays broken ends the cell).
    flaky.failures = 3
    guard.publish(flaky, 7)
    guard.publish(flaky, 8)
    with pytest.raises(rclpy_implementation.RCLError):
        guard.publish(flaky, 9)
    # While stopping, the first failure is raised for the thread's shutdown handling.
    stopping = PublishGuard(log, limit=3, stopping=lambda: True)
    with pytest.raises(rclpy_implementation.RCLError):
        stopping.publish(_FlakyPublisher(failures=1), 0)
