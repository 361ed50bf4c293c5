"""The viewer's ROS-free core: topic table, subscription counting, drop policy, schemas, server."""

import gc
import os
import threading
import time

from mcap.records import Schema
from mcap_ros2.decoder import DecoderFactory
import psutil
import pytest
from rclpy.serialization import serialize_message
from vpg_bringup.recorder_node import message_class
from vpg_bringup.recording import _parsable_schema, decode_cdr, MessageDefinitions
from vpg_bringup.viewer import (check_topics, DEFAULT_TOPICS, SubscriptionCounter,
                                TerminalGoals, Throttle, ViewerServer, ViewerTopic)
from vpg_bringup.viewer_client import ViewerClient
from websockets.exceptions import InvalidStatus

STRING_DEFINITION = 'string data\n'


class FakeDefinitions:
    """Schema texts for made-up test types (the real ones need the ament index)."""

    def full_text(self, type_name):
        return STRING_DEFINITION


def cdr_string(text):
    """CDR (little endian) of a std_msgs/String: encapsulation header, length, bytes, NUL."""
    data = text.encode() + b'\0'
    return b'\x00\x01\x00\x00' + len(data).to_bytes(4, 'little') + data


def test_default_topics_cover_the_cell_and_are_valid():
    check_topics(DEFAULT_TOPICS)
    names = {t.topic for t in DEFAULT_TOPICS}
    assert {'/camera/camera/color/image_raw', 'heightmap', 'heightmap/color', 'q_heatmaps/push',
            'q_heatmaps/grasp', 'action_markers', '/joint_states',
            'pick_all/_action/feedback', 'pick_all/result'} <= names


def test_every_default_topic_schema_decodes_what_ros_serializes():
    """The ros2msg text (action parts too) matches the CDR layout rclpy puts on the wire."""
    definitions = MessageDefinitions()
    factory = DecoderFactory()
    for schema_id, topic in enumerate(DEFAULT_TOPICS, start=1):
        schema = Schema(id=schema_id, name=topic.type_name, encoding='ros2msg',
                        data=definitions.full_text(topic.type_name).encode())
        message = message_class(topic.type_name)()
        decoded = factory.decoder_for('cdr', _parsable_schema(schema))(
            serialize_message(message))
        assert decoded is not None, topic


def decode(type_name, message):
    return decode_cdr(type_name, serialize_message(message))


def test_action_parts_decode_with_their_fields_inline_as_foxglove_bridge_shows_them():
    from vpg_interfaces.action import PickAll
    feedback = PickAll.Impl.FeedbackMessage()
    feedback.goal_id.uuid = list(range(16))
    feedback.feedback.step, feedback.feedback.reward = 3, 0.5
    feedback.feedback.grasp_success = True
    feedback.feedback.action.row, feedback.feedback.action.position.x = 7, -0.25
    decoded = decode('vpg_interfaces/action/PickAll_FeedbackMessage', feedback)
    assert bytes(decoded.goal_id.uuid) == bytes(range(16))
    assert (decoded.step, decoded.reward, decoded.grasp_success) == (3, 0.5, True)
    assert (decoded.action.row, decoded.action.position.x) == (7, -0.25)
    result = PickAll.Impl.GetResultService.Response(status=4)
    result.result.objects_removed, result.result.reason = 9, 'table cleared'
    decoded = decode('vpg_interfaces/action/PickAll_GetResult_Response', result)
    assert (decoded.status, decoded.objects_removed, decoded.reason) == (
        4, 9, 'table cleared')


@pytest.mark.parametrize('topics, error', [
    ([], 'no topics'),
    ([ViewerTopic('a', 'std_msgs/msg/String'), ViewerTopic('a', 'std_msgs/msg/String')],
     'twice'),
    ([ViewerTopic('a', 'not a type')], 'not a ROS message type'),
])
def test_bad_topic_tables_are_refused(topics, error):
    with pytest.raises(ValueError, match=error):
        check_topics(topics)


def test_subscription_counter_subscribes_on_first_client_and_unsubscribes_after_last():
    counter = SubscriptionCounter()
    assert counter.subscribe('/a', 1) is True
    assert counter.subscribe('/a', 2) is False
    assert counter.changes() == (['/a'], [])
    assert counter.changes() == ([], [])
    assert counter.unsubscribe('/a', 1) is False
    assert counter.unsubscribe('/a', 2) is True
    assert counter.changes() == ([], ['/a'])
    # A client that came and went between two looks leaves nothing to do.
    counter.subscribe('/b', 3)
    counter.unsubscribe('/b', 3)
    assert counter.changes() == ([], [])


def test_throttle_drops_messages_that_come_too_soon():
    now = [0.0]
    throttle = Throttle(10.0, clock=lambda: now[0])
    assert throttle.admit('/cam')
    now[0] = 0.05
    assert not throttle.admit('/cam')
    assert throttle.admit('/joint_states')
    now[0] = 0.1
    assert throttle.admit('/cam')
    assert Throttle(0.0).admit('/cam') and Throttle(0.0).admit('/cam')
    with pytest.raises(ValueError):
        Throttle(-1.0)


def test_terminal_goals_reports_each_finished_goal_once():
    goals = TerminalGoals(remember=2)
    a, b, c = b'a' * 16, b'b' * 16, b'c' * 16
    assert goals.update([(a, 2)]) == []          # executing
    assert goals.update([(a, 4), (b, 2)]) == [a]  # succeeded
    assert goals.update([(a, 4), (b, 6)]) == [b]  # aborted
    assert goals.update([(a, 4), (b, 6), (c, 5)]) == [c]


@pytest.fixture
def server():
    changed = threading.Event()
    server = ViewerServer([('/chatter', 'std_msgs/msg/String', False),
                           ('/status', 'std_msgs/msg/String', True)],
                          FakeDefinitions(), port=0, max_rate_hz=0.0, message_backlog=4,
                          on_change=changed.set)
    server.changed = changed
    yield server
    server.stop()


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_server_advertises_ros2_schemas_and_sends_cdr_to_subscribers(server):
    assert server.url().startswith('ws://localhost:')
    with ViewerClient(server.url()) as client:
        assert client.subprotocol == 'foxglove.sdk.v1'
        channel = client.wait_for_channels(['/chatter'])['/chatter']
        assert (channel['encoding'], channel['schemaName'], channel['schemaEncoding'],
                channel['schema']) == ('cdr', 'std_msgs/msg/String', 'ros2msg',
                                       STRING_DEFINITION)
        assert server.log('/chatter', cdr_string('before'), 1) is False  # nobody listens
        client.subscribe(['/chatter'])
        assert server.changed.wait(5)
        assert server.changes() == (['/chatter'], [])
        assert wait_for(lambda: server.log('/chatter', cdr_string('hello'), 42))
        topic, log_time, data = client.receive(timeout=5)
        assert (topic, log_time, data) == ('/chatter', 42, cdr_string('hello'))
    assert wait_for(lambda: server.changes()[1] == ['/chatter'])


def test_clients_offering_only_the_former_subprotocol_name_are_refused(server):
    """The SDK accepts foxglove.sdk.v1 only; the README says which clients that leaves out."""
    with pytest.raises(InvalidStatus, match='400'):
        ViewerClient(server.url(), subprotocols=('foxglove.websocket.v1',))


def test_latched_channel_sends_its_last_message_to_a_late_client(server):
    server.log('/status', cdr_string('done'), 7)
    with ViewerClient(server.url()) as client:
        client.subscribe(['/status'])
        assert wait_for(lambda: server.changes()[0] == ['/status'])
        topic, log_time, data = client.receive(timeout=5)
        assert (topic, log_time, data) == ('/status', 7, cdr_string('done'))


def test_port_in_use_is_a_clear_error(server):
    with pytest.raises(OSError, match='cannot serve'):
        ViewerServer([('/x', 'std_msgs/msg/String', False)], FakeDefinitions(),
                     port=server.port).stop()


def test_a_client_that_stops_reading_does_not_grow_the_server_memory():
    """
    1000 MiB sent to a stalled client on loopback: the server keeps a bounded backlog.

    With the default backlog (16) the server grew by about 33 MiB here; with the SDK's own
    default (1024 messages) it grew by about 1 GiB, which is why the viewer sets it.
    """
    server = ViewerServer([('/images', 'std_msgs/msg/String', False)], FakeDefinitions(),
                          port=0, max_rate_hz=0.0)
    process = psutil.Process(os.getpid())
    payload = cdr_string('x' * (1 << 20))  # 1 MiB per message, like a camera frame
    try:
        with ViewerClient(server.url()) as client:
            client.subscribe(['/images'])
            assert wait_for(lambda: server.changes()[0] == ['/images'])
            # The client now reads nothing more; its socket fills, then the server's queue.
            gc.collect()
            sent, start_rss, peak_rss = 0, process.memory_info().rss, 0
            for i in range(1000):
                sent += server.log('/images', payload, i)
                if i % 50 == 0:
                    peak_rss = max(peak_rss, process.memory_info().rss)
            time.sleep(0.5)
            peak_rss = max(peak_rss, process.memory_info().rss)
            growth_mib = (peak_rss - start_rss) / (1 << 20)
            assert sent == 1000, 'the stalled client was dropped instead of throttled'
            # Unbounded queueing would hold ~1000 MiB; 16 messages + socket buffers ~35.
            assert growth_mib < 150, f'server memory grew by {growth_mib:.0f} MiB'
    finally:
        server.stop()


def layout_topics(node):
    """Every topic a Foxglove layout's panels name, without message paths."""
    found = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ('imageTopic', 'topicPath', 'value') and isinstance(value, str):
                found.add(value.split('.', 1)[0])
            elif key == 'topics' and isinstance(value, dict):
                found.update(value)
            else:
                found |= layout_topics(value)
    elif isinstance(node, list):
        for item in node:
            found |= layout_topics(item)
    return found


def test_shipped_layout_shows_served_topics_and_what_the_demo_records():
    import json
    from pathlib import Path
    from vpg_bringup.recorder_node import DEFAULT_TOPICS as RECORDED
    from vpg_bringup.viewer import LAYOUT_TOPICS
    layout = json.loads((Path(__file__).parents[1] / 'foxglove' / 'vpg.json').read_text())

    def panels(tree):
        if isinstance(tree, str):
            return [tree]
        return panels(tree['first']) + panels(tree['second'])

    placed = panels(layout['layout'])
    assert sorted(placed) == sorted(layout['configById'])
    assert {'Image', '3D', 'Plot', 'RawMessages'} == {p.split('!')[0] for p in placed}
    topics = layout_topics(layout['configById'])
    served = {t.topic if t.topic.startswith('/') else '/' + t.topic for t in DEFAULT_TOPICS}
    assert topics <= served, topics - served
    recorded = {'/' + t for t, _ in RECORDED + LAYOUT_TOPICS}
    # The demo's recording holds all but the camera stream (1 MB frames).
    assert topics - recorded == {'/camera/camera/color/image_raw'}
    images = {c['imageMode']['imageTopic'] for c in layout['configById'].values()
              if 'imageMode' in c and 'imageTopic' in c['imageMode']}
    assert {'/q_heatmaps/grasp', '/q_heatmaps/push', '/heightmap/color'} <= images


def test_viewer_spec_joins_a_cell_with_its_drivers_topics_and_clock():
    from vpg_bringup.graph import viewer_spec
    spec = viewer_spec('cell1', port=9000)
    assert (spec.package, spec.executable, spec.namespace) == ('vpg_bringup', 'viewer', '/cell1')
    assert spec.parameters == {'host': '127.0.0.1', 'port': 9000}
    remaps = dict(spec.remappings)
    assert remaps['/joint_states'] == '/cell1/joint_states'
    assert remaps['/camera/camera/color/image_raw'] == '/cell1/camera/camera/color/image_raw'
    assert remaps['/clock'] == '/cell1/clock'
    assert viewer_spec().remappings == ()
