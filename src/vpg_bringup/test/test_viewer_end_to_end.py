"""The viewer node in the MuJoCo graph, watched through a Foxglove WebSocket client."""

import io
import socket

from mcap.records import Schema
from mcap_ros2.decoder import DecoderFactory
import numpy as np
import pytest
from vpg_bringup.graph import sim_graph, viewer_spec
from vpg_bringup.pick_all_client import PickAllClient
from vpg_bringup.recording import _parsable_schema
from vpg_bringup.runner import GraphRunner
from vpg_bringup.viewer_client import ViewerClient
from vpg_common.client_node import ClientNode
from vpg_interfaces.action import PickAll

HEIGHTMAP_SIZE = 224


def free_port():
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


def decoder(channel):
    """Decode a channel's CDR messages with its advertised ros2msg schema (as Foxglove does)."""
    schema = Schema(id=channel['id'], name=channel['schemaName'],
                    encoding=channel['schemaEncoding'], data=channel['schema'].encode())
    return DecoderFactory().decoder_for(channel['encoding'], _parsable_schema(schema))


def image_array(image):
    """Return a decoded sensor_msgs/Image as an array (rows, cols, channels)."""
    dtype, channels = {'rgb8': (np.uint8, 3), '32FC1': (np.float32, 1)}[image.encoding]
    row = np.frombuffer(bytes(image.data), dtype=dtype).reshape(image.height, -1)
    return row[:, :image.width * channels].reshape(image.height, image.width, channels)


def receive_each(client, topics, timeout):
    """Return the first message received on each of `topics`, as raw bytes."""
    got = {}
    while not set(topics) <= set(got):
        topic, _, data = client.receive(timeout=timeout)
        got.setdefault(topic, data)
    return got


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_foxglove_client_sees_heightmaps_q_heatmaps_and_the_result_of_pick_all():
    port = free_port()
    log = io.StringIO()
    runner = GraphRunner(sim_graph(seed=0, num_objects=3, weights='',
                                   extra=[viewer_spec(port=port,
                                                      parameters={'use_sim_time': True})]),
                         output=log)
    spun = ClientNode('viewer_e2e')
    runner.start()
    try:
        pick_all = PickAllClient(spun.node, runner)
        pick_all.wait_ready(180.0)
        with ViewerClient(f'ws://127.0.0.1:{port}', open_timeout=60.0) as client:
            assert client.subprotocol == 'foxglove.sdk.v1'
            topics = ['/heightmap', '/q_heatmaps/grasp', '/pick_all/result']
            channels = client.wait_for_channels(topics)
            assert all(c['encoding'] == 'cdr' and c['schemaEncoding'] == 'ros2msg'
                       for c in channels.values())
            assert channels['/heightmap']['schemaName'] == 'vpg_interfaces/msg/Heightmap'
            client.subscribe(topics)
            # The heightmap comes with the camera; a Q heatmap only with a decision.
            heightmap = decoder(channels['/heightmap'])(
                receive_each(client, ['/heightmap'], 60.0)['/heightmap'])
            assert image_array(heightmap.color).shape == (HEIGHTMAP_SIZE, HEIGHTMAP_SIZE, 3)
            heights = image_array(heightmap.height)
            assert heights.shape == (HEIGHTMAP_SIZE, HEIGHTMAP_SIZE, 1)
            assert np.isfinite(heights).all() and heights.max() > 0.01  # blocks on the table

            outcome = pick_all.run(PickAll.Goal(max_actions=1, max_consecutive_failures=5),
                                   timeout=300.0, count_objects=False)
            assert outcome.actions == 1, outcome.reason
            got = receive_each(client, ['/q_heatmaps/grasp', '/pick_all/result'], 60.0)
            grasp = decoder(channels['/q_heatmaps/grasp'])(got['/q_heatmaps/grasp'])
            assert image_array(grasp).shape == (HEIGHTMAP_SIZE, HEIGHTMAP_SIZE, 3)
            assert image_array(grasp).std() > 0  # a heatmap, not a blank frame
            result = decoder(channels['/pick_all/result'])(got['/pick_all/result'])
            assert (result.status, result.actions, result.reason_code) == (
                4, outcome.actions, outcome.reason_code)
    finally:
        spun.close()
        codes = runner.stop()
        print(log.getvalue()[-20000:])
    assert not [name for name, code in codes.items() if code not in (0, -15, -2)], codes
