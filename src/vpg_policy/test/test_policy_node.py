"""The policy node on real rclpy: service, visuals, weight updates, and updates under load."""

import hashlib
import os
from pathlib import Path
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from rcl_interfaces.msg import Log
import rclpy
from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from visualization_msgs.msg import Marker, MarkerArray
from vpg_interfaces.msg import ModelUpdate, PrimitiveAction
from vpg_interfaces.srv import ChoosePrimitive
from vpg_perception.conversions import heightmap_to_msg, image_to_numpy
from vpg_perception.grid import HeightmapGrid
from vpg_policy.policy_node import PolicyNode
from vpg_policy.q_network import build_q_network
from vpg_policy.q_network_base import QNetworkConfig
from vpg_policy.weights import save_weights, serialize_weights, WeightsError

TINY = QNetworkConfig(num_rotations=4, stem_channels=4, trunk_channels=4, trunk_dilations=(1,),
                      feature_channels=4, head_channels=4, head_dilations=(1,))
# 32 x 32 px over VPG's workspace, for fast tests.
SMALL_GRID = HeightmapGrid(resolution=0.014)
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


def tagged_model(version, config=TINY):
    """Build a network whose grasp Q is 10 * version everywhere and push Q -1."""
    model = build_q_network('vpg', config, seed=version)
    for head, value in ((model.grasp_head, 10.0 * version), (model.push_head, -1.0)):
        head.q.weight.data.zero_()
        head.q.bias.data.fill_(value)
    return model


def heightmap_msg(grid=SMALL_GRID, seed=0):
    rng = np.random.default_rng(seed)
    rows, cols = grid.shape
    color = rng.integers(0, 256, (rows, cols, 3), dtype=np.uint8)
    height = np.zeros((rows, cols), np.float32)
    height[rows // 3:rows // 2, cols // 3:cols // 2] = 0.04
    return heightmap_to_msg(color, height, grid, Header(frame_id='base_link')), height


def spin_until(executor, predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        executor.spin_once(timeout_sec=0.02)
    return predicate()


class Harness:
    """The policy node spinning on its own MultiThreadedExecutor, and a client node."""

    def __init__(self, context, overrides):
        self.node = PolicyNode(context=context, parameter_overrides=overrides)
        self.node_executor = MultiThreadedExecutor(num_threads=3, context=context)
        self.node_executor.add_node(self.node)
        self.thread = threading.Thread(target=self.node_executor.spin, daemon=True)
        self.thread.start()
        self.client_node = rclpy.create_node('policy_test_client', context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.client_node)
        self.client = self.client_node.create_client(ChoosePrimitive, 'choose_primitive')
        self.updates = self.client_node.create_publisher(ModelUpdate, 'model_updates', RELIABLE)
        self.logs = []
        self.client_node.create_subscription(
            Log, '/rosout', lambda m: self.logs.append(m) if m.name == 'policy' else None,
            QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE,
                       durability=DurabilityPolicy.TRANSIENT_LOCAL))
        assert self.client.wait_for_service(timeout_sec=10.0), 'choose_primitive not offered'
        assert spin_until(self.executor, lambda: self.updates.get_subscription_count() > 0, 10)

    def call(self, heightmap, epsilon=0.0, allowed=0, seed=0, timeout=10.0):
        request = ChoosePrimitive.Request(heightmap=heightmap, epsilon=epsilon, allowed=allowed,
                                          seed=seed)
        future = self.client.call_async(request)
        assert spin_until(self.executor, future.done, timeout), 'no answer from the policy'
        return future.result()

    def wait_for_log(self, text, timeout=10.0):
        found = spin_until(self.executor, lambda: any(text in m.msg for m in self.logs),
                           timeout)
        assert found, f'no policy log containing {text!r}; got {[m.msg for m in self.logs]}'
        return next(m for m in self.logs if text in m.msg)

    def close(self):
        self.node_executor.shutdown()
        self.thread.join(timeout=10)
        self.executor.shutdown()
        self.client_node.destroy_node()
        self.node.destroy_node()


@pytest.fixture
def context():
    context = rclpy.Context()
    rclpy.init(context=context)
    yield context
    rclpy.shutdown(context=context)


@pytest.fixture
def tiny_weights(tmp_path):
    path = tmp_path / 'v1.safetensors'
    save_weights(path, tagged_model(1), version=1)
    return path


def file_update(path, version, sha256=None):
    data = Path(path).read_bytes()
    return ModelUpdate(version=version, sha256=sha256 or hashlib.sha256(data).hexdigest(),
                       uri=f'file://{path}', variant='vpg')


def inline_update(data, version, sha256=None):
    return ModelUpdate(version=version, sha256=sha256 or hashlib.sha256(data).hexdigest(),
                       variant='vpg', data=data)


def test_service_answers_and_publishes_heatmaps_and_markers(context):
    harness = Harness(context, [Parameter('seed', value=3)])
    try:
        images, markers = {}, []
        for name in ('push', 'grasp'):
            harness.client_node.create_subscription(
                Image, f'q_heatmaps/{name}', lambda m, n=name: images.__setitem__(n, m), 1)
        harness.client_node.create_subscription(MarkerArray, 'action_markers', markers.append, 1)
        grid = HeightmapGrid()
        msg, height = heightmap_msg(grid)
        spin_until(harness.executor, lambda: harness.node.count_subscribers('action_markers'),
                   5)

        response = harness.call(msg)

        assert response.success, response.message
        action = response.action
        assert action.num_rotations == 16 and 0 <= action.rotation_index < 16
        assert action.weights_version == 0 and not action.exploratory
        assert action.header.frame_id == 'base_link'
        assert action.primitive in (PrimitiveAction.PUSH, PrimitiveAction.GRASP)
        expected = grid.pixel_to_point(action.row, action.col, height[action.row, action.col])
        np.testing.assert_allclose([action.position.x, action.position.y, action.position.z],
                                   expected, atol=1e-6)
        best = max(response.max_push_q, response.max_grasp_q)
        assert action.q_value == pytest.approx(best)
        assert spin_until(harness.executor, lambda: len(images) == 2 and markers, 10)
        for image in images.values():
            assert image.encoding == 'rgb8' and (image.height, image.width) == (224, 224)
            assert image_to_numpy(image).std() > 0
        shown = markers[-1].markers
        assert shown[0].action == Marker.DELETEALL
        assert shown[1].header.frame_id == 'base_link'
        assert shown[1].type == (Marker.ARROW if action.primitive == PrimitiveAction.PUSH
                                 else Marker.LINE_LIST)
        harness.wait_for_log('RANDOMLY INITIALISED')
    finally:
        harness.close()


def test_bad_requests_fail_clearly_and_the_node_keeps_serving(context, tiny_weights):
    harness = Harness(context, [Parameter('weights_path', value=str(tiny_weights)),
                                Parameter('num_rotations', value=4)])
    try:
        good, _ = heightmap_msg()
        truncated, _ = heightmap_msg()
        truncated.height.data = bytes(truncated.height.data)[:-4]
        nan_map, _ = heightmap_msg()
        nan_map.height.data = np.full((32, 32), np.nan, np.float32).tobytes()
        wrong_bounds, _ = heightmap_msg()
        wrong_bounds.resolution = 0.01
        odd, _ = heightmap_msg(HeightmapGrid(resolution=0.448 / 30))
        for msg, kwargs, text in [
                (truncated, {}, 'invalid heightmap'), (nan_map, {}, 'finite'),
                (wrong_bounds, {}, 'invalid heightmap'), (odd, {}, 'multiple of 4'),
                (good, {'epsilon': 2.0}, 'epsilon'), (good, {'allowed': 7}, 'allowed')]:
            response = harness.call(msg, **kwargs)
            assert not response.success and text in response.message, response.message
        response = harness.call(good)
        assert response.success, response.message
        assert response.action.primitive == PrimitiveAction.GRASP
        assert response.max_grasp_q == pytest.approx(10.0)
        assert harness.call(good, allowed=1).action.primitive == PrimitiveAction.PUSH
        explored = harness.call(good, epsilon=1.0, seed=5)
        assert explored.success and explored.action.exploratory
    finally:
        harness.close()


def test_updates_swap_and_bad_ones_are_rejected(context, tmp_path, tiny_weights):
    harness = Harness(context, [Parameter('weights_path', value=str(tiny_weights)),
                                Parameter('num_rotations', value=4),
                                Parameter('publish_heatmaps', value=False)])
    try:
        msg, _ = heightmap_msg()
        assert harness.call(msg).action.weights_version == 1

        def publish_and_wait(update, text):
            harness.updates.publish(update)
            return harness.wait_for_log(text)

        path = tmp_path / 'v2.safetensors'
        save_weights(path, tagged_model(2), version=2)
        publish_and_wait(file_update(path, 2), 'now serving weights version 2')
        response = harness.call(msg)
        assert response.action.weights_version == 2
        assert response.max_grasp_q == pytest.approx(20.0)

        data = serialize_weights(tagged_model(3), 3)
        publish_and_wait(inline_update(data, 3), 'now serving weights version 3')
        assert harness.call(msg).max_grasp_q == pytest.approx(30.0)

        bad = [
            (inline_update(data[:-100], 4), 'truncated'),
            (inline_update(data, 5, sha256='ab' * 32), 'sha256'),
            (inline_update(serialize_weights(tagged_model(6, QNetworkConfig()), 6), 6),
             'another'),
            (inline_update(data, 7), 'record 3'),
            (file_update(path, 8, sha256='0' * 64), 'sha256'),
            (ModelUpdate(version=9, sha256='0' * 64, uri='http://example.com/w'), 'uri'),
            (ModelUpdate(version=10, sha256='0' * 64, uri=str(tmp_path / 'missing')),
             'cannot read'),
            (inline_update(b'\x00' * 100, 11), 'safetensors'),
        ]
        for update, reason in bad:
            log = publish_and_wait(update, f'rejected model update version {update.version}')
            assert reason in log.msg and 'still serving version 3' in log.msg, log.msg
            assert log.level == Log.ERROR
        publish_and_wait(inline_update(serialize_weights(tagged_model(2), 2), 2),
                         'ignoring model update version 2')
        response = harness.call(msg)
        assert response.action.weights_version == 3
        assert response.max_grasp_q == pytest.approx(30.0)
    finally:
        harness.close()


def test_startup_rejects_weights_for_another_variant_or_rotation_count(context, tiny_weights):
    with pytest.raises(WeightsError, match='num_rotations'):
        PolicyNode(context=context,
                   parameter_overrides=[Parameter('weights_path', value=str(tiny_weights))])


def test_1000_requests_while_10_updates_arrive(context, tmp_path, tiny_weights):
    harness = Harness(context, [Parameter('weights_path', value=str(tiny_weights)),
                                Parameter('num_rotations', value=4)])
    try:
        msg, _ = heightmap_msg()
        # Out of order on purpose: 4 after 5, 8 after 9 must be ignored.
        order = [2, 3, 5, 4, 6, 7, 9, 8, 10, 11]
        updates = []
        for version in order:
            if version % 2:
                path = tmp_path / f'v{version}.safetensors'
                save_weights(path, tagged_model(version), version)
                updates.append(file_update(path, version))
            else:
                updates.append(inline_update(serialize_weights(tagged_model(version), version),
                                             version))
        versions, failures = [], []
        pending = []
        for i in range(1000):
            if i % 90 == 45 and updates:
                harness.updates.publish(updates.pop(0))  # loads while requests run
            pending.append(harness.client.call_async(
                ChoosePrimitive.Request(heightmap=msg, epsilon=0.1 if i % 3 else 0.0)))
            if len(pending) == 4 or i == 999:  # a few requests in flight at once
                for future in pending:
                    assert spin_until(harness.executor, future.done, 10), f'request {i} hung'
                    response = future.result()
                    if not response.success:
                        failures.append(response.message)
                        continue
                    version = response.action.weights_version
                    # The weights that answered are the ones the response names.
                    assert response.max_grasp_q == pytest.approx(10.0 * version)
                    versions.append(version)
                pending = []
        assert not failures, failures[:3]
        assert len(versions) == 1000
        assert all(b >= a for a, b in zip(versions, versions[1:])), 'version went backwards'
        assert len(set(versions)) >= 5, sorted(set(versions))
        assert harness.wait_for_log('now serving weights version 11')
        assert harness.call(msg).action.weights_version == 11
        ignored = [m.msg for m in harness.logs if 'ignoring model update' in m.msg]
        assert len(ignored) == 2, ignored
    finally:
        harness.close()


def test_node_runs_as_a_process(tmp_path, tiny_weights):
    context = rclpy.Context()
    rclpy.init(context=context)
    proc = subprocess.Popen(
        [sys.executable, '-m', 'vpg_policy.policy_node', '--ros-args',
         '-p', f'weights_path:={tiny_weights}', '-p', 'num_rotations:=4'],
        env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        node = rclpy.create_node('policy_process_client', context=context)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        client = node.create_client(ChoosePrimitive, 'choose_primitive')
        assert client.wait_for_service(timeout_sec=30.0), 'policy process never served'
        msg, _ = heightmap_msg()
        future = client.call_async(ChoosePrimitive.Request(heightmap=msg))
        assert spin_until(executor, future.done, 10)
        assert future.result().success and future.result().action.weights_version == 1
        # SIGTERM with decisions in flight: they finish, and the process ends cleanly well
        # inside the 10 s GraphRunner gives before killing it.
        for seed in range(3):
            client.call_async(ChoosePrimitive.Request(heightmap=msg, seed=seed))
        executor.spin_once(timeout_sec=0.05)
        executor.shutdown()
        node.destroy_node()
    finally:
        stop_sent = time.monotonic()
        proc.terminate()
        try:
            output = proc.communicate(timeout=10)[0]
        except subprocess.TimeoutExpired:
            proc.kill()
            output = proc.communicate()[0]
        rclpy.shutdown(context=context)
    assert proc.returncode == 0, output
    assert time.monotonic() - stop_sent < 10.0, output
    assert 'loaded weights version 1' in output
