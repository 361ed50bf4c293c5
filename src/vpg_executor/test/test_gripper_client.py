"""
The executor node's clients: gripper (fake controllers of either action type), policy retry.

The fake controller answers at once, as parallel_gripper_action_controller does with
ros2_robotiq_gripper (its "stall" ends a goal stall_timeout after acceptance, before the
fingers move); fake fingers feed the knuckle position and move only after a delay.
"""

import itertools
import threading
import time

import pytest
import rclpy
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.executors import MultiThreadedExecutor
from rclpy.parameter import Parameter
from vpg_executor.executor_node import ExecutorNode
from vpg_executor.gripper_action import action_type, GripperInterface
from vpg_executor.motion import MotionError

ACTION = '/fake_gripper/gripper_cmd'
_instances = itertools.count()
JOINT = 'robotiq_85_left_knuckle_joint'


class FakeController:
    """Serves the gripper action; `mode` says how goals end: succeed, abort or hang."""

    def __init__(self, node, interface, mode, action=ACTION):
        self.interface, self.mode = GripperInterface(interface), mode
        self.action = action_type(interface)
        self.goals, self.cancelled = [], threading.Event()
        self.server = ActionServer(
            node, self.action, action, execute_callback=self._execute,
            goal_callback=lambda _: GoalResponse.ACCEPT,
            cancel_callback=self._cancel, callback_group=ReentrantCallbackGroup())

    def _cancel(self, _):
        self.cancelled.set()
        return CancelResponse.ACCEPT

    def _result(self, position):
        result = self.action.Result()
        if self.interface is GripperInterface.GRIPPER_COMMAND:
            result.position = position
        else:
            result.state.name, result.state.position = [JOINT], [position]
        return result

    def _execute(self, handle):
        goal = handle.request.command
        self.goals.append(goal)
        position = (goal.position if self.interface is GripperInterface.GRIPPER_COMMAND
                    else goal.position[0])
        if self.mode == 'hang':
            deadline = time.monotonic() + 10
            while not handle.is_cancel_requested and time.monotonic() < deadline:
                time.sleep(0.01)
            handle.canceled()
            return self._result(position)
        if self.mode == 'abort':  # stalled on an object, a controller without allow_stalling
            handle.abort()
            return self._result(position * 0.5)
        handle.succeed()
        return self._result(position)


class FakeFingers:
    """
    Feeds the executor's joint-state cache with the knuckle at 100 Hz.

    Stamped on the wall clock, as a driver stamps /joint_states; the knuckle moves to each goal
    `delay` s after it arrived.

    speed: rad/s; stop_at: where an object stops the fingers (None: nothing in the way).
    """

    def __init__(self, cache, controller, delay=0.2, speed=1.5, stop_at=None):
        self.position, self.delay, self.speed, self.stop_at = 0.0, delay, speed, stop_at
        self._cache, self._controller = cache, controller
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def close(self):
        self._stop.set()
        self._thread.join(timeout=5)

    def _target(self):
        goal = self._controller.goals[-1]
        target = (goal.position if self._controller.interface is
                  GripperInterface.GRIPPER_COMMAND else goal.position[0])
        if self.stop_at is not None and target > self.stop_at:
            return self.stop_at
        return target

    def _run(self):
        goal_count, goal_time, last = 0, None, time.monotonic()
        while not self._stop.wait(0.01):
            now = time.monotonic()
            step, last = self.speed * (now - last), now
            if len(self._controller.goals) != goal_count:
                goal_count, goal_time = len(self._controller.goals), now
            if goal_time is not None and now - goal_time >= self.delay:
                error = self._target() - self.position
                self.position += max(-step, min(step, error))
            self._cache.update([JOINT], [self.position], time.time())


@pytest.fixture
def cell(request):
    interface, mode, *rest = request.param
    timeout = rest[0] if rest else 1.5
    fingers_kwargs = rest[1] if len(rest) > 1 else {}
    # A name of its own per test: a server of the other action type under the same name,
    # left from the test before, could still be in the discovery data.
    action = f'{ACTION}_{next(_instances)}'
    context = rclpy.Context()
    rclpy.init(context=context)
    node = ExecutorNode(context=context, parameter_overrides=[
        Parameter('gripper.action', value=action), Parameter('gripper.interface', value=interface),
        Parameter('gripper.timeout', value=timeout)])
    server_node = rclpy.create_node('fake_gripper', context=context)
    controller = FakeController(server_node, interface, mode, action)
    controller.fingers = FakeFingers(node._joint_states, controller, **fingers_kwargs)
    executor = MultiThreadedExecutor(num_threads=4, context=context)
    executor.add_node(node)
    executor.add_node(server_node)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while node._joint_states.get([JOINT]) is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert node._gripper_client.wait_for_server(timeout_sec=10.0)
        yield node, controller
    finally:
        controller.fingers.close()
        executor.shutdown()
        thread.join(timeout=10)
        node.destroy_node()
        server_node.destroy_node()
        rclpy.shutdown(context=context)


@pytest.mark.parametrize('cell', [(i.value, 'succeed') for i in GripperInterface], indirect=True)
def test_goal_of_the_configured_type_reaches_the_controller(cell):
    node, controller = cell
    node._gripper_command(0.6, 40.0)
    assert len(controller.goals) == 1
    goal = controller.goals[0]
    if controller.interface is GripperInterface.GRIPPER_COMMAND:
        assert (goal.position, goal.max_effort) == pytest.approx((0.6, 40.0))
    else:
        assert list(goal.name) == [JOINT] and list(goal.position) == pytest.approx([0.6])


@pytest.mark.parametrize('cell', [(i.value, 'succeed', 5.0) for i in GripperInterface],
                         indirect=True)
def test_command_returns_once_the_fingers_settled_not_when_the_result_came(cell):
    """The result comes at once; the fingers start 0.2 s later and need 0.53 s to close."""
    node, controller = cell
    started = time.monotonic()
    node._gripper_command(0.79, 40.0)
    elapsed = time.monotonic() - started
    assert node._joint_states.get([JOINT])[0] == pytest.approx(0.79, abs=0.02)
    assert controller.fingers.position == pytest.approx(0.79, abs=0.02)
    assert elapsed >= 0.2 + 0.79 / 1.5
    node._gripper_command(0.0, 40.0)
    assert node._joint_states.get([JOINT])[0] == pytest.approx(0.0, abs=0.02)


@pytest.mark.parametrize('cell', [('parallel_gripper_command', 'succeed', 5.0,
                                   {'stop_at': 0.4})], indirect=True)
def test_fingers_stopped_by_an_object_count_as_settled(cell):
    node, _ = cell
    started = time.monotonic()
    node._gripper_command(0.79, 40.0)
    assert node._joint_states.get([JOINT])[0] == pytest.approx(0.4, abs=0.01)
    assert time.monotonic() - started < 0.2 + 0.4 / 1.5 + 1.0


@pytest.mark.parametrize('cell', [('parallel_gripper_command', 'succeed', 5.0,
                                   {'delay': 100.0})], indirect=True)
def test_fingers_that_never_move_are_blocked_after_the_start_timeout(cell):
    node, _ = cell
    started = time.monotonic()
    node._gripper_command(0.79, 40.0)
    elapsed = time.monotonic() - started
    defaults = node.params.gripper_settle
    # start_timeout runs on the joint states' stamps (the newest is up to 10 ms old)
    assert defaults.start_timeout - 0.05 <= elapsed < defaults.start_timeout + 1.0
    assert node._joint_states.get([JOINT])[0] == pytest.approx(0.0)


@pytest.mark.parametrize('cell', [('parallel_gripper_command', 'succeed', 3.0,
                                   {'speed': 0.1})], indirect=True)
def test_fingers_still_moving_at_the_timeout_are_an_error(cell):
    node, _ = cell
    with pytest.raises(MotionError, match='fingers did not settle within gripper.timeout'):
        node._gripper_command(0.79, 40.0)


@pytest.mark.parametrize('cell', [('parallel_gripper_command', 'abort')], indirect=True)
def test_aborted_goal_is_not_an_error(cell):
    node, controller = cell
    node._gripper_command(0.79, 40.0)  # the finger joint state, not the status, is the reward
    assert len(controller.goals) == 1


@pytest.mark.parametrize('cell', [('parallel_gripper_command', 'hang')], indirect=True)
def test_goal_without_result_is_cancelled_and_reported(cell):
    node, controller = cell
    started = time.monotonic()
    with pytest.raises(MotionError, match='did not finish within 1.5 s'):
        node._gripper_command(0.79, 40.0)
    assert time.monotonic() - started < 5.0
    assert controller.cancelled.wait(5.0), 'the timed-out goal was not cancelled'


@pytest.mark.parametrize('cell', [('parallel_gripper_command', 'succeed')], indirect=True)
def test_policy_request_without_answer_is_sent_again(cell):
    from vpg_executor.pick_all import PolicyError
    from vpg_interfaces.srv import ChoosePrimitive
    node, _ = cell
    calls = []

    def choose(request, response):
        calls.append(time.monotonic())
        if len(calls) in (1, 3):
            time.sleep(1.5)  # past the 1 s timeout: as good as a lost response
        response.message = f'answer {len(calls)}'
        return response

    server = rclpy.create_node('fake_policy', context=node.context)
    server.create_service(ChoosePrimitive, 'choose_primitive', choose,
                          callback_group=ReentrantCallbackGroup())
    executor = MultiThreadedExecutor(num_threads=2, context=node.context)
    executor.add_node(server)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    try:
        response = node._call(node._policy_client, ChoosePrimitive.Request(), 1.0, 'policy',
                              PolicyError)
        assert response.message == 'answer 2' and len(calls) == 2
        node.params.values['timeouts.retries'] = 0
        with pytest.raises(PolicyError, match=r'did not answer within 1.0 s \(1 tries\)'):
            node._call(node._policy_client, ChoosePrimitive.Request(), 1.0, 'policy',
                       PolicyError)
    finally:
        executor.shutdown()
        thread.join(timeout=10)
        server.destroy_node()


@pytest.mark.parametrize('cell', [('parallel_gripper_command', 'hang', 30.0)], indirect=True)
def test_stop_ends_the_waits_of_a_goal_in_progress(cell):
    """On SIGTERM the node's stop() lets a goal's thread unwind instead of waiting it out."""
    from vpg_executor.pick_all import PolicyError
    from vpg_interfaces.srv import ChoosePrimitive
    node, controller = cell
    release = threading.Event()
    server = rclpy.create_node('silent_policy', context=node.context)
    server.create_service(ChoosePrimitive, 'choose_primitive',
                          lambda request, response: release.wait(30.0) and response,
                          callback_group=ReentrantCallbackGroup())
    executor = MultiThreadedExecutor(num_threads=2, context=node.context)
    executor.add_node(server)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    errors = []

    def wait_in(call):
        try:
            call()
        except (MotionError, PolicyError) as error:
            errors.append((time.monotonic(), str(error)))

    waits = [threading.Thread(target=wait_in, args=(call,), daemon=True) for call in (
        lambda: node._gripper_command(0.79, 40.0),  # a controller that never finishes
        lambda: node._call(node._policy_client, ChoosePrimitive.Request(), 30.0, 'policy',
                           PolicyError),  # a policy that never answers
        lambda: node._joint_states.wait_for(['shoulder_pan_joint'], lambda _: True, 30.0))]
    try:
        for thread in waits:
            thread.start()
        assert controller.cancelled.wait(0) is False
        deadline = time.monotonic() + 10
        while not controller.goals and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.5)
        stopped = time.monotonic()
        node.stop()
        for thread in waits:
            thread.join(timeout=10)
        assert len(errors) == 3, errors
        assert all('shutting down' in message for _, message in errors), errors
        assert max(at for at, _ in errors) - stopped < 2.0
        assert controller.cancelled.wait(5.0)  # the gripper goal was not left running
    finally:
        release.set()
        executor.shutdown()
        spinner.join(timeout=10)
        server.destroy_node()
