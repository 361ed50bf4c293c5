"""The executor node's clients: gripper (fake controllers of either action type), policy retry."""

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
JOINT = 'robotiq_85_left_knuckle_joint'


class FakeController:
    """Serves the gripper action; `mode` says how goals end: succeed, abort or hang."""

    def __init__(self, node, interface, mode):
        self.interface, self.mode = GripperInterface(interface), mode
        self.action = action_type(interface)
        self.goals, self.cancelled = [], threading.Event()
        self.server = ActionServer(
            node, self.action, ACTION, execute_callback=self._execute,
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


@pytest.fixture
def cell(request):
    interface, mode, *timeout = request.param
    context = rclpy.Context()
    rclpy.init(context=context)
    node = ExecutorNode(context=context, parameter_overrides=[
        Parameter('gripper.action', value=ACTION), Parameter('gripper.interface', value=interface),
        Parameter('gripper.timeout', value=(timeout or [1.5])[0])])
    server_node = rclpy.create_node('fake_gripper', context=context)
    controller = FakeController(server_node, interface, mode)
    executor = MultiThreadedExecutor(num_threads=4, context=context)
    executor.add_node(node)
    executor.add_node(server_node)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    try:
        yield node, controller
    finally:
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
