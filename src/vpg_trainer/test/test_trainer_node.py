"""The trainer node as its own process: acknowledgements, kill -9, bad input, ModelUpdates."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from std_msgs.msg import Header
from synthetic_transitions import SIZE, transition
from vpg_common.qos import TRANSITIONS_QOS
from vpg_interfaces.msg import ModelUpdate, PrimitiveAction, TrainerStatus, Transition
from vpg_perception.conversions import heightmap_to_msg
from vpg_perception.grid import HeightmapGrid
from vpg_policy.weights import read_weights
from vpg_trainer.replay import ReplayStore

GRID = HeightmapGrid(x_min=-0.6, x_max=-0.6 + SIZE * 0.002, y_min=-0.064,
                     y_max=-0.064 + SIZE * 0.002, z_min=0.0, z_max=0.3, resolution=0.002)


def to_msg(record, header=None):
    header = header or Header(frame_id='base')
    msg = Transition(cell_name=record.cell_name, episode_id=record.episode_id,
                     step=record.step, reward=record.reward,
                     grasp_success=record.grasp_success, push_changed=record.push_changed,
                     changed_pixels=record.changed_pixels,
                     scene_changed=record.scene_changed)
    msg.heightmap_before = heightmap_to_msg(record.color_before, record.height_before, GRID,
                                            header)
    msg.heightmap_after = heightmap_to_msg(record.color_after, record.height_after, GRID,
                                           header)
    msg.action = PrimitiveAction(primitive=record.primitive,
                                 rotation_index=record.rotation_index,
                                 num_rotations=record.num_rotations, row=record.row,
                                 col=record.col)
    return msg


class Client:

    def __init__(self):
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node('trainer_test_client', context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.pub = self.node.create_publisher(Transition, 'transitions', TRANSITIONS_QOS)
        self.status = None
        self.updates = []
        self.node.create_subscription(TrainerStatus, 'trainer_status', self._on_status, 50)
        self.node.create_subscription(ModelUpdate, 'model_updates', self.updates.append, 10)

    def _on_status(self, msg):
        self.status = msg

    def spin_until(self, predicate, timeout, process=None):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.05)
            if predicate():
                return True
            if process is not None and process.poll() is not None:
                raise AssertionError(f'trainer exited with {process.returncode}')
        return False

    def close(self):
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


def start_trainer(run_dir, **params):
    values = {'run_dir': str(run_dir), 'checkpoint_every': 2, 'batch_size': 2,
              'max_updates_per_transition': 1.0, **params}
    args = [sys.executable, '-m', 'vpg_trainer.trainer_node', '--ros-args']
    for name, value in values.items():
        args += ['-p', f'{name}:={value}']
    return subprocess.Popen(args, env=dict(os.environ))


@pytest.fixture
def client():
    c = Client()
    yield c
    c.close()


def stored(client):
    return client.status.transitions_stored if client.status else 0


@pytest.mark.slow
def test_kill_9_and_restart_keep_every_acknowledged_transition(client, tmp_path):
    rng = np.random.default_rng(0)
    run = tmp_path / 'run'
    trainer = start_trainer(run)
    try:
        assert client.spin_until(lambda: client.pub.get_subscription_count() > 0, 60, trainer)
        for k in range(6):
            client.pub.publish(to_msg(transition(rng, step=k)))
        assert client.spin_until(lambda: stored(client) >= 6, 60, trainer)
        # An update has been announced: the weights file it names is verified by its sha256.
        assert client.spin_until(lambda: client.updates, 120, trainer)
        update = client.updates[-1]
        assert read_weights(update.uri, expected_sha256=update.sha256).metadata.version == \
            update.version
        for k in range(6, 20):  # more keep streaming while it is killed
            client.pub.publish(to_msg(transition(rng, step=k)))
            client.executor.spin_once(timeout_sec=0.01)
        acknowledged = stored(client)
    finally:
        trainer.send_signal(signal.SIGKILL)
        trainer.wait(timeout=30)
    store = ReplayStore(run / 'replay.sqlite')
    on_disk = len(store)
    store.close()
    assert on_disk >= acknowledged

    # The restarted trainer gets what was published while it was down (transient local) and
    # stores each transition once: nothing published is lost, nothing is stored twice.
    client.status = None
    trainer = start_trainer(run)
    try:
        for k in range(5):
            client.pub.publish(to_msg(transition(rng, step=100 + k)))
        assert client.spin_until(lambda: stored(client) >= 25, 90, trainer), client.status
        client.spin_until(lambda: False, 2.0, trainer)  # anything extra would arrive now
        assert client.status.replay_size == 25 and client.status.transitions_stored == 25
        assert client.status.weights_version >= update.version  # resumed, not restarted
    finally:
        trainer.send_signal(signal.SIGTERM)
        assert trainer.wait(timeout=60) == 0


@pytest.mark.slow
def test_bad_transitions_are_rejected_and_the_node_lives(client, tmp_path):
    rng = np.random.default_rng(1)
    trainer = start_trainer(tmp_path / 'run')
    try:
        assert client.spin_until(lambda: client.pub.get_subscription_count() > 0, 60, trainer)
        good = to_msg(transition(rng))
        missing = Transition()  # no heightmaps, no action
        nan = to_msg(transition(rng, height_after=np.full((SIZE, SIZE), np.nan, np.float32)))
        wrong = to_msg(transition(rng))
        wrong.heightmap_before.height.encoding = 'rgb8'
        outside = to_msg(transition(rng, row=5))
        outside.action.row = SIZE + 3
        for msg in (missing, nan, wrong, outside, good):
            client.pub.publish(msg)
        assert client.spin_until(
            lambda: client.status is not None and client.status.transitions_received >= 5,
            60, trainer)
        assert client.status.transitions_rejected == 4
        assert client.status.transitions_stored == 1
        assert 'rejected transition' in client.status.last_error
        assert trainer.poll() is None
    finally:
        trainer.send_signal(signal.SIGTERM)
        assert trainer.wait(timeout=60) == 0
