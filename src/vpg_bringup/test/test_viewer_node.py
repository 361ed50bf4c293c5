"""The viewer node in-process, real rclpy: lazy subscriptions, forwarding, /pick_all results."""

import threading
import time

import numpy as np
import pytest
import rclpy
from rclpy.action import ActionClient, ActionServer
from rclpy.executors import MultiThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from vpg_bringup.recording import decode_cdr
from vpg_bringup.viewer_client import ViewerClient
from vpg_bringup.viewer_node import ViewerNode
from vpg_interfaces.action import PickAll


@pytest.fixture
def graph():
    context = rclpy.Context()
    rclpy.init(context=context)
    viewer = ViewerNode(context=context,
                        parameter_overrides=[Parameter('port', value=0),
                                             Parameter('max_rate_hz', value=0.0)])
    peer = rclpy.create_node('peer', context=context)
    executor = MultiThreadedExecutor(num_threads=2, context=context)
    executor.add_node(viewer)
    executor.add_node(peer)
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            executor.spin_once(timeout_sec=0.05)

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    yield viewer, peer
    stop.set()
    thread.join(timeout=5)
    viewer.stop()
    executor.shutdown()
    viewer.destroy_node()
    peer.destroy_node()
    rclpy.shutdown(context=context)


def wait_for(predicate, timeout=10.0, action=None):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        if action:
            action()
        time.sleep(0.05)
    return True


def heatmap(value):
    image = Image(height=224, width=224, encoding='rgb8', step=224 * 3)
    image.data = np.full(224 * 224 * 3, value, np.uint8).tobytes()
    return image


def test_subscribes_only_while_a_client_watches_and_forwards_cdr(graph):
    viewer, peer = graph
    publisher = peer.create_publisher(Image, 'q_heatmaps/grasp', 1)
    time.sleep(0.5)
    assert publisher.get_subscription_count() == 0  # no client: nothing subscribed
    with ViewerClient(viewer.url().replace('localhost', '127.0.0.1')) as client:
        channel = client.wait_for_channels(['/q_heatmaps/grasp'])['/q_heatmaps/grasp']
        assert channel['schemaName'] == 'sensor_msgs/msg/Image'
        time.sleep(0.3)
        assert publisher.get_subscription_count() == 0  # advertised, not yet subscribed
        client.subscribe(['/q_heatmaps/grasp'])
        assert wait_for(lambda: publisher.get_subscription_count() == 1)
        publisher.publish(heatmap(200))
        topic, _, data = client.receive(timeout=10)
        image = decode_cdr('sensor_msgs/msg/Image', data)
        assert topic == '/q_heatmaps/grasp'
        assert (image.height, image.width, image.encoding) == (224, 224, 'rgb8')
        assert bytes(image.data) == bytes([200]) * (224 * 224 * 3)
    assert wait_for(lambda: publisher.get_subscription_count() == 0), \
        'the subscription outlived its last client'


def test_publishes_each_finished_pick_all_result_latched(graph):
    viewer, peer = graph

    def execute(goal_handle):
        goal_handle.succeed()
        return PickAll.Result(objects_removed=2, actions=3, reason_code=1,
                              reason='table cleared')

    ActionServer(peer, PickAll, 'pick_all', execute)
    action = ActionClient(peer, PickAll, 'pick_all')
    assert action.wait_for_server(timeout_sec=10)
    results = []
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
    sent = action.send_goal_async(PickAll.Goal(max_actions=3, max_consecutive_failures=1))
    assert wait_for(sent.done)
    assert wait_for(sent.result().get_result_async().done)
    # A late subscriber still gets the last result (transient local).
    peer.create_subscription(PickAll.Impl.GetResultService.Response, 'pick_all/result',
                             results.append, latched)
    assert wait_for(lambda: results, 15), 'no /pick_all result published'
    assert (results[-1].status, results[-1].result.actions, results[-1].result.reason) == (
        4, 3, 'table cleared')
    with ViewerClient(viewer.url().replace('localhost', '127.0.0.1')) as client:
        client.subscribe(['/pick_all/result'])
        topic, _, data = client.receive(timeout=10)
        decoded = decode_cdr('vpg_interfaces/action/PickAll_GetResult_Response', data)
        assert (topic, decoded.objects_removed, decoded.reason_code) == (
            '/pick_all/result', 2, 1)


def test_mismatched_topics_and_types_are_refused():
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        with pytest.raises(ValueError, match='one type per topic'):
            ViewerNode(context=context, parameter_overrides=[
                Parameter('port', value=0), Parameter('topics', value=['a', 'b']),
                Parameter('types', value=['sensor_msgs/msg/Image'])])
    finally:
        rclpy.shutdown(context=context)
