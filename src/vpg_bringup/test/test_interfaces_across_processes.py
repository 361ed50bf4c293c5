"""vpg_interfaces messages and the PickAll action work between separate ROS 2 processes."""

import math
import os
from pathlib import Path
import subprocess
import sys
import time

from action_msgs.msg import GoalStatus
import numpy as np
import pytest
import rclpy
from rclpy.action import ActionClient
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from vpg_interfaces.action import PickAll
from vpg_interfaces.msg import PrimitiveAction, Transition

NODES = Path(__file__).resolve().parent / 'nodes'


@pytest.fixture
def ros_node():
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('interfaces_test_client', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    yield node, executor
    executor.shutdown()
    node.destroy_node()
    rclpy.shutdown(context=context)


def start_node_process(script):
    # os.environ is copied whole: the ROS wheels re-exec python with their library path.
    proc = subprocess.Popen([sys.executable, str(NODES / script)], env=dict(os.environ))
    return proc


def stop_node_process(proc):
    """Stop a helper node; True when it was still running (it did not crash in the test)."""
    alive = proc.poll() is None
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return alive


def spin_until(executor, predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.05)
        if predicate():
            return True
    return False


def make_transition():
    msg = Transition(cell_name='cell0', episode_id=3, step=41, reward=0.5,
                     push_changed=True, changed_pixels=812, weights_version=12)
    height = (np.arange(224 * 224, dtype=np.float32).reshape(224, 224) * 1e-5)
    msg.heightmap_before.height = Image(height=224, width=224, encoding='32FC1', step=224 * 4,
                                        data=height.tobytes())
    msg.heightmap_before.resolution = 0.002
    msg.action.primitive = PrimitiveAction.PUSH
    msg.action.rotation_index = 5
    msg.action.num_rotations = 16
    msg.action.angle = 5 * 2 * math.pi / 16
    msg.action.position.x = -0.5
    return msg, height


def test_transition_round_trip_between_processes(ros_node):
    node, executor = ros_node
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    received = []
    node.create_subscription(Transition, 'pong', received.append, qos)
    pub = node.create_publisher(Transition, 'ping', qos)
    echo = start_node_process('transition_echo.py')
    try:
        assert spin_until(executor, lambda: pub.get_subscription_count() > 0, 20), \
            'echo process never subscribed to ping'
        sent, height = make_transition()
        pub.publish(sent)
        assert spin_until(executor, lambda: received, 10), 'no Transition came back'
    finally:
        assert stop_node_process(echo), 'echo node died during the test'
    back = received[0]
    assert back.step == 42
    assert back.cell_name == 'cell0' and back.weights_version == 12
    assert back.action.rotation_index == 5 and back.action.primitive == PrimitiveAction.PUSH
    assert back.action.angle == pytest.approx(5 * 2 * math.pi / 16)
    got = np.frombuffer(bytes(back.heightmap_before.height.data), dtype=np.float32)
    np.testing.assert_array_equal(got.reshape(224, 224), height)


def send_goal(node, executor, client, goal, feedback=None):
    future = client.send_goal_async(goal, feedback_callback=feedback)
    assert spin_until(executor, future.done, 10), 'goal response timed out'
    return future.result()


def handshake(executor, client, attempts=5):
    """
    Send a goal the server rejects until its answer arrives; returns that answer.

    wait_for_server() says the client has discovered the server, not that the server has
    discovered the client's response reader: Fast DDS drops a response whose reader it has not
    matched within 100 ms ("client will not receive response"), which a loaded machine can
    hit on the first goal. A rejected goal changes nothing, so resending it is safe.
    """
    for _ in range(attempts):
        future = client.send_goal_async(PickAll.Goal(max_actions=0))
        if spin_until(executor, future.done, 3):
            return future.result()
    raise AssertionError(f'no goal response in {attempts} attempts of 3 s')


def test_pick_all_goal_feedback_result_and_cancel(ros_node):
    node, executor = ros_node
    client = ActionClient(node, PickAll, 'pick_all')
    server = start_node_process('pick_all_fake_server.py')
    try:
        assert client.wait_for_server(timeout_sec=20), 'pick_all server not found'

        assert not handshake(executor, client).accepted

        feedback = []
        handle = send_goal(node, executor, client,
                           PickAll.Goal(max_actions=3, max_consecutive_failures=2),
                           feedback=lambda fb: feedback.append(fb.feedback))
        assert handle.accepted
        result_future = handle.get_result_async()
        assert spin_until(executor, result_future.done, 20)
        outcome = result_future.result()
        assert outcome.status == GoalStatus.STATUS_SUCCEEDED
        assert outcome.result.reason_code == PickAll.Result.TABLE_CLEARED
        assert outcome.result.objects_removed == 3 and outcome.result.table_cleared
        assert [fb.step for fb in feedback] == [1, 2, 3]
        assert feedback[-1].weights_version == 7

        feedback.clear()
        handle = send_goal(node, executor, client, PickAll.Goal(max_actions=100),
                           feedback=lambda fb: feedback.append(fb.feedback))
        assert spin_until(executor, lambda: len(feedback) >= 2, 20)
        cancel_future = handle.cancel_goal_async()
        assert spin_until(executor, cancel_future.done, 10)
        assert len(cancel_future.result().goals_canceling) == 1
        result_future = handle.get_result_async()
        assert spin_until(executor, result_future.done, 10)
        outcome = result_future.result()
        assert outcome.status == GoalStatus.STATUS_CANCELED
        assert outcome.result.reason_code == PickAll.Result.CANCELED
        assert outcome.result.actions < 100
    finally:
        client.destroy()
        assert stop_node_process(server), 'pick_all server died during the test'
