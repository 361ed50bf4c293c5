"""MCAP recording: the rosbag2-style writer, its reader, and the recorder node in a process."""

import os
import shutil
import signal
import subprocess
import sys
import time

from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from visualization_msgs.msg import Marker, MarkerArray
from vpg_bringup.graph import recorder_spec, sim_graph
from vpg_bringup.recording import (DEFINITION_DELIMITER, DefinitionNotFound, is_complete,
                                   McapRecorder, MessageDefinitions, OfferedQos,
                                   read_messages, summarize)
from vpg_interfaces.msg import Heightmap, PrimitiveAction, TrainerStatus, Transition
from vpg_perception.conversions import heightmap_to_msg
from vpg_perception.grid import HeightmapGrid
import yaml

HEIGHTMAP = 'vpg_interfaces/msg/Heightmap'
TRANSITION = 'vpg_interfaces/msg/Transition'
IMAGE = 'sensor_msgs/msg/Image'
MARKERS = 'visualization_msgs/msg/MarkerArray'
STATUS = 'vpg_interfaces/msg/TrainerStatus'


class FakeClock:

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def make_heightmap(seed, stamp_sec=0):
    rng = np.random.default_rng(seed)
    grid = HeightmapGrid()
    color = rng.integers(0, 256, size=grid.shape + (3,), dtype=np.uint8)
    height = rng.uniform(0.0, 0.1, size=grid.shape).astype(np.float32)
    header = Header(stamp=Time(sec=stamp_sec, nanosec=5), frame_id='base')
    return heightmap_to_msg(color, height, grid, header), color, height


def make_transition(step, seed=0):
    before, _, height = make_heightmap(seed)
    msg = Transition(cell_name='cell7', episode_id=2, step=step, reward=0.5, push_changed=True,
                     changed_pixels=300 + step, weights_version=9, heightmap_before=before)
    msg.action.primitive = PrimitiveAction.GRASP
    msg.action.rotation_index = 3
    msg.action.position = Point(x=-0.6, y=0.1, z=0.02)
    return msg, height


def make_image(value, encoding='rgb8'):
    data = np.full((4, 6, 3), value, dtype=np.uint8)
    return Image(height=4, width=6, encoding=encoding, step=18, data=data.tobytes())


def make_markers(x):
    marker = Marker(ns='chosen_action', id=1, type=Marker.ARROW, action=Marker.ADD)
    marker.pose.position.x = x
    marker.points = [Point(x=1.0, y=2.0, z=3.0)]
    marker.text = 'grasp'
    return MarkerArray(markers=[marker])


# ---- message definitions ---------------------------------------------------------------

def write_msgs(root, files):
    for name, text in files.items():
        package, type_name = name.split('/')
        folder = root / package / 'msg'
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f'{type_name}.msg').write_text(text)
    return MessageDefinitions(share_directory=lambda package: str(root / package))


def test_full_text_concatenates_nested_types_depth_first_in_sorted_order(tmp_path):
    a_text = '# Top.\nb/B x\nC[] cs  # same package\nuint8 K=1\nstring<=5 s\nb/B[4] fixed\n'
    c_text = 'b/B y\nfloat64 z\n'
    b_text = 'int32 v\n'
    definitions = write_msgs(tmp_path, {'a/A': a_text, 'a/C': c_text, 'b/B': b_text})
    expected = (a_text + '\n' + DEFINITION_DELIMITER + 'MSG: a/C\n' + c_text
                + '\n' + DEFINITION_DELIMITER + 'MSG: b/B\n' + b_text)
    assert definitions.full_text('a/msg/A') == expected
    assert definitions.full_text('a/A') == expected
    assert definitions.dependencies(a_text, 'a') == ['a/C', 'b/B']


def test_missing_definitions_and_bad_names_raise(tmp_path):
    definitions = write_msgs(tmp_path, {'a/A': 'a/Missing m\n'})
    with pytest.raises(DefinitionNotFound, match='a/Missing'):
        definitions.full_text('a/msg/A')
    with pytest.raises(DefinitionNotFound):
        MessageDefinitions().full_text('no_such_package_here/msg/Thing')
    with pytest.raises(ValueError):
        definitions.full_text('not a type')


def test_installed_definitions_hold_every_nested_type():
    definitions = MessageDefinitions()
    text = definitions.full_text(TRANSITION)
    blocks = text.split('\n' + DEFINITION_DELIMITER)
    nested = [block.split('\n', 1)[0] for block in blocks[1:]]
    assert nested == ['MSG: std_msgs/Header', 'MSG: builtin_interfaces/Time',
                      'MSG: vpg_interfaces/Heightmap', 'MSG: sensor_msgs/Image',
                      'MSG: vpg_interfaces/PrimitiveAction', 'MSG: geometry_msgs/Point']
    assert blocks[0] == definitions.msg_text(TRANSITION)
    for block in blocks[1:]:
        header, body = block.split('\n', 1)
        assert body == definitions.msg_text(header[len('MSG: '):])
    assert definitions.type_hash(TRANSITION).startswith('RIHS01_')
    assert definitions.type_hash('no_such_package_here/msg/Thing') == ''


# ---- writer and reader -----------------------------------------------------------------

def test_round_trip_of_real_messages(tmp_path):
    path = tmp_path / 'out' / 'run.mcap'
    heightmap, color, height = make_heightmap(seed=1, stamp_sec=12)
    transition, transition_height = make_transition(step=41, seed=2)
    push, grasp = make_image(7), make_image(200)
    markers = make_markers(-0.55)
    qos = [OfferedQos(history='keep_last', depth=100, reliability='reliable')]
    with McapRecorder(path) as recorder:
        recorder.write('/heightmap', HEIGHTMAP, serialize_message(heightmap), 1_000)
        recorder.write('/q_heatmaps/push', IMAGE, serialize_message(push), 2_000, 1_900)
        recorder.write('/q_heatmaps/grasp', IMAGE, serialize_message(grasp), 2_000)
        recorder.write('/action_markers', MARKERS, serialize_message(markers), 3_000)
        recorder.write('/transitions', TRANSITION, serialize_message(transition), 4_000,
                       offered_qos=qos)
    assert recorder.counts == {'/heightmap': 1, '/q_heatmaps/push': 1, '/q_heatmaps/grasp': 1,
                               '/action_markers': 1, '/transitions': 1}

    # Read with the mcap library and the mcap_ros2 decoder alone, as Foxglove tools would.
    with open(path, 'rb') as stream:
        reader = make_reader(stream, decoder_factories=[DecoderFactory()])
        assert reader.get_header().profile == 'ros2'
        summary = reader.get_summary()
        schemas = {s.name: s for s in summary.schemas.values()}
        assert sorted(schemas) == [IMAGE, MARKERS, HEIGHTMAP, TRANSITION]
        assert {s.encoding for s in schemas.values()} == {'ros2msg'}
        definitions = MessageDefinitions()
        for name, schema in schemas.items():
            assert schema.data.decode() == definitions.full_text(name)
        channels = {c.topic: c for c in summary.channels.values()}
        assert {c.message_encoding for c in channels.values()} == {'cdr'}
        assert schemas[IMAGE].id == channels['/q_heatmaps/push'].schema_id \
            == channels['/q_heatmaps/grasp'].schema_id
        offered = yaml.safe_load(channels['/transitions'].metadata['offered_qos_profiles'])
        assert offered[0]['history'] == 'keep_last' and offered[0]['depth'] == 100
        assert offered[0]['reliability'] == 'reliable'
        assert offered[0]['deadline'] == {'sec': 0, 'nsec': 0}
        assert channels['/transitions'].metadata['topic_type_hash'] == \
            definitions.type_hash(TRANSITION)
        assert summary.statistics.message_count == 5
        decoded = {channel.topic: (message, ros) for _, channel, message, ros
                   in reader.iter_decoded_messages()}

    msg, ros = decoded['/heightmap']
    assert msg.log_time == 1_000 and msg.publish_time == 1_000
    assert ros.header.stamp.sec == 12 and ros.header.frame_id == 'base'
    assert ros.resolution == pytest.approx(0.002) and ros.height.encoding == '32FC1'
    np.testing.assert_array_equal(
        np.frombuffer(ros.height.data, np.float32).reshape(height.shape), height)
    np.testing.assert_array_equal(
        np.frombuffer(ros.color.data, np.uint8).reshape(color.shape), color)
    msg, ros = decoded['/q_heatmaps/push']
    assert msg.publish_time == 1_900 and ros.width == 6 and set(ros.data) == {7}
    assert set(decoded['/q_heatmaps/grasp'][1].data) == {200}
    marker = decoded['/action_markers'][1].markers[0]
    assert marker.ns == 'chosen_action' and marker.type == Marker.ARROW
    assert marker.pose.position.x == pytest.approx(-0.55) and marker.text == 'grasp'
    assert marker.points[0].z == pytest.approx(3.0)
    ros = decoded['/transitions'][1]
    assert ros.step == 41 and ros.cell_name == 'cell7' and ros.changed_pixels == 341
    assert ros.action.primitive == PrimitiveAction.GRASP and ros.action.rotation_index == 3
    assert ros.action.position.x == pytest.approx(-0.6)
    np.testing.assert_array_equal(np.frombuffer(ros.heightmap_before.height.data, np.float32)
                                  .reshape(transition_height.shape), transition_height)

    # The bytes are the CDR rclpy published (up to alignment padding, which the serializer
    # does not zero): `ros2 bag play` would send these.
    back = {m.topic: m for m in read_messages(path)}
    assert deserialize_message(back['/transitions'].data, Transition) == \
        deserialize_message(serialize_message(transition), Transition)
    assert deserialize_message(back['/action_markers'].data, MarkerArray) == markers
    assert back['/heightmap'].message.header.stamp.sec == 12
    assert [m.topic for m in read_messages(path, decode=False)] == [
        '/heightmap', '/q_heatmaps/push', '/q_heatmaps/grasp', '/action_markers',
        '/transitions']
    result = summarize(path, decode=True)
    assert result.complete and result.profile == 'ros2'
    assert result.counts == recorder.counts
    assert result.types['/action_markers'] == MARKERS
    assert set(result.schema_encodings.values()) == {'ros2msg'}
    assert set(result.message_encodings.values()) == {'cdr'}


def test_misuse_raises(tmp_path):
    recorder = McapRecorder(tmp_path / 'a.mcap')
    recorder.write('/q', IMAGE, serialize_message(make_image(1)), 1)
    with pytest.raises(ValueError, match='recorded as sensor_msgs/msg/Image'):
        recorder.write('/q', STATUS, serialize_message(TrainerStatus()), 2)
    recorder.finish()
    recorder.finish()
    with pytest.raises(RuntimeError):
        recorder.write('/q', IMAGE, serialize_message(make_image(1)), 3)
    with pytest.raises(ValueError):
        McapRecorder(tmp_path / 'b.mcap', compression='bz2')
    assert summarize(tmp_path / 'a.mcap').counts == {'/q': 1}


def test_unfinished_recording_is_read_up_to_its_last_flushed_chunk(tmp_path):
    """A recorder killed before finish() leaves no footer; flushed messages stay readable."""
    path = tmp_path / 'killed.mcap'
    clock = FakeClock()
    recorder = McapRecorder(path, flush_period=3600.0, clock=clock)
    for step in range(3):
        recorder.write('/transitions', TRANSITION, serialize_message(make_transition(step)[0]),
                       1_000 + step)
    recorder.write('/trainer_status', STATUS, serialize_message(TrainerStatus(updates=5)), 1_010)
    recorder.flush()
    for step in range(3, 5):
        recorder.write('/transitions', TRANSITION, serialize_message(make_transition(step)[0]),
                       2_000 + step)
    # What is on disk now is what a SIGKILL would leave behind.
    killed = tmp_path / 'copy.mcap'
    shutil.copyfile(path, killed)
    assert not is_complete(killed)
    result = summarize(killed, decode=True)
    assert not result.complete and result.profile == 'ros2'
    assert result.counts == {'/transitions': 3, '/trainer_status': 1}
    steps = [m.message.step for m in read_messages(killed, topics='/transitions')]
    assert steps == [0, 1, 2]

    # A chunk cut short by the kill is dropped, the chunks before it are kept.
    recorder.flush()
    data = path.read_bytes()
    torn = tmp_path / 'torn.mcap'
    torn.write_bytes(data[:len(data) - 100])
    assert summarize(torn).counts == {'/transitions': 3, '/trainer_status': 1}

    recorder.finish()
    result = summarize(path, decode=True)
    assert result.complete
    assert result.counts == {'/transitions': 5, '/trainer_status': 1}


def test_flush_period_bounds_what_stays_in_memory(tmp_path):
    path = tmp_path / 'periodic.mcap'
    clock = FakeClock()
    recorder = McapRecorder(path, flush_period=1.0, clock=clock)
    data = serialize_message(make_image(3))
    recorder.write('/q', IMAGE, data, 1)
    assert summarize(path).counts == {}, 'a tiny chunk was written before flush_period'
    clock.now = 0.5
    recorder.write('/q', IMAGE, data, 2)
    recorder.flush_if_due()
    assert summarize(path).counts == {}
    clock.now = 1.2
    recorder.flush_if_due()
    assert summarize(path).counts == {'/q': 2}
    clock.now = 1.5
    recorder.write('/q', IMAGE, data, 3)
    clock.now = 2.3
    recorder.write('/q', IMAGE, data, 4)
    assert summarize(path).counts == {'/q': 4}
    recorder.finish()
    assert summarize(path).complete


def test_recorder_spec_joins_a_graph_in_a_cell_namespace(tmp_path):
    spec = recorder_spec('results/x.mcap', namespace='cell2')
    assert (spec.package, spec.executable, spec.name) == ('vpg_bringup', 'record', 'recorder')
    assert spec.namespace == '/cell2'
    assert spec.parameters['path'] == os.path.abspath('results/x.mcap')
    args = spec.ros_arguments(str(tmp_path))
    assert ['-r', '__ns:=/cell2'] == args[3:5]
    assert f"path:='{os.path.abspath('results/x.mcap')}'" in args
    assert recorder_spec('a.mcap', '/cell2').namespace == '/cell2'
    assert recorder_spec('a.mcap').namespace == ''
    graph = sim_graph(cell='cell2', calibration_file='/c.yaml', extra=[spec])
    assert graph[-1] is spec and len({s.name for s in graph}) == len(graph)


# ---- the recorder node in its own process -------------------------------------------------

@pytest.fixture
def ros_node():
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('recording_test_publisher', namespace='/cell7', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    yield node, executor
    executor.shutdown()
    node.destroy_node()
    rclpy.shutdown(context=context)


def start_recorder(path, *extra):
    command = [sys.executable, '-m', 'vpg_bringup.recorder_node', '--ros-args',
               '-r', '__ns:=/cell7', '-p', f'path:={path}', '-p', 'flush_period:=0.2',
               *extra]
    # os.environ is copied whole: the ROS wheels re-exec python with their library path.
    return subprocess.Popen(command, env=dict(os.environ), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def recorded_counts(path):
    """Messages per topic in the (possibly unfinished) file; {} before its header is on disk."""
    try:
        return summarize(path).counts
    except (OSError, ValueError, EOFError):
        return {}


def settled_counts(path, quiet=1.0, timeout=20.0):
    """Return the counts once unchanged for `quiet` seconds (messages were in flight)."""
    last = recorded_counts(path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = recorded_counts(path)
        if now == last:
            return now
        last = now
    return last


def poll(predicate, timeout, period=0.1, action=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if action is not None:
            action()
        if predicate():
            return True
        time.sleep(period)
    return False


def publishers(node):
    """Create publishers with the QoS the heightmap, policy, executor and trainer use."""
    reliable = ReliabilityPolicy.RELIABLE
    return {
        'heightmap': node.create_publisher(Heightmap, 'heightmap',
                                           QoSProfile(depth=2, reliability=reliable)),
        'q_heatmaps/push': node.create_publisher(Image, 'q_heatmaps/push', 1),
        'q_heatmaps/grasp': node.create_publisher(Image, 'q_heatmaps/grasp', 1),
        'action_markers': node.create_publisher(MarkerArray, 'action_markers', 1),
        'transitions': node.create_publisher(Transition, 'transitions',
                                             QoSProfile(depth=100, reliability=reliable)),
        'trainer_status': node.create_publisher(TrainerStatus, 'trainer_status', 10),
    }


def wait_matched(executor, pubs, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(pub.get_subscription_count() > 0 for pub in pubs):
            return True
        executor.spin_once(timeout_sec=0.05)
    return False


def stop(proc, sig, timeout=15):
    proc.send_signal(sig)
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
        pytest.fail(f'recorder did not stop on {sig!r} within {timeout} s:\n{output}')
    return proc.returncode, output


@pytest.mark.slow
@pytest.mark.parametrize('stop_signal', [signal.SIGINT, signal.SIGTERM],
                         ids=['SIGINT', 'SIGTERM'])
def test_recorder_node_records_namespaced_topics_and_stops_cleanly(ros_node, tmp_path,
                                                                   stop_signal):
    node, executor = ros_node
    path = tmp_path / 'cell7.mcap'
    pubs = publishers(node)
    outside = node.create_publisher(Transition, '/transitions', 10)
    warm_up = {
        'heightmap': make_heightmap(seed=9, stamp_sec=1000)[0],
        'q_heatmaps/push': make_image(255), 'q_heatmaps/grasp': make_image(255),
        'action_markers': make_markers(1.0), 'trainer_status': TrainerStatus(updates=1000),
        'transitions': make_transition(step=1000)[0],
    }

    def publish_warm_up():
        for topic, msg in warm_up.items():
            pubs[topic].publish(msg)

    proc = start_recorder(path)
    try:
        assert wait_matched(executor, pubs.values()), 'recorder never subscribed to all topics'
        # Matched on our side does not mean matched on the recorder's: the keep-last-1
        # publishers would drop a first message sent too early. Repeat a recognisable
        # warm-up message per topic until each one shows up in the file.
        assert poll(lambda: len(recorded_counts(path)) == len(pubs), 20, 0.3,
                    publish_warm_up), f'warm-ups not all recorded: {recorded_counts(path)}'
        before = settled_counts(path)
        heightmaps = [make_heightmap(seed=i, stamp_sec=i) for i in range(3)]
        for i, (msg, _, _) in enumerate(heightmaps):
            pubs['heightmap'].publish(msg)
            pubs['q_heatmaps/push'].publish(make_image(10 + i))
            pubs['q_heatmaps/grasp'].publish(make_image(20 + i))
            pubs['action_markers'].publish(make_markers(-0.5 - 0.01 * i))
            pubs['transitions'].publish(make_transition(step=i, seed=i)[0])
            pubs['trainer_status'].publish(TrainerStatus(transitions_received=i + 1))
            outside.publish(make_transition(step=99)[0])
            time.sleep(0.1)  # keep-last-1 publishers: let each message go out
        expected = {topic: count + 3 for topic, count in before.items()}
        assert poll(lambda: recorded_counts(path) == expected, 20), \
            f'the flushed (unfinished) file holds {recorded_counts(path)}, not {expected}'
    finally:
        code, output = stop(proc, stop_signal)
    assert code == 0, output
    total = sum(expected.values())
    assert f'wrote {total} messages' in output, output
    assert f"/cell7/transitions {expected['/cell7/transitions']}" in output, output

    result = summarize(path, decode=True)
    assert result.complete
    assert result.counts == expected
    assert sorted(expected) == sorted(f'/cell7/{topic}' for topic in pubs)
    assert result.types['/cell7/heightmap'] == HEIGHTMAP
    assert result.types['/cell7/trainer_status'] == STATUS
    back = list(read_messages(path))
    steps = [m.message.step for m in back if m.topic == '/cell7/transitions']
    assert steps[-3:] == [0, 1, 2] and set(steps[:-3]) == {1000}
    maps = [m for m in back if m.topic == '/cell7/heightmap']
    assert [m.message.header.stamp.sec for m in maps[-3:]] == [0, 1, 2]
    np.testing.assert_array_equal(
        np.frombuffer(maps[-3].message.height.data, np.float32).reshape(heightmaps[0][2].shape),
        heightmaps[0][2])
    assert deserialize_message(maps[-3].data, Heightmap) == \
        deserialize_message(serialize_message(heightmaps[0][0]), Heightmap)
    assert [set(m.message.data) for m in back if m.topic == '/cell7/q_heatmaps/grasp'][-3:] == [
        {20}, {21}, {22}]
    assert [m.message.markers[0].pose.position.x for m in back
            if m.topic == '/cell7/action_markers'][-3:] == pytest.approx([-0.5, -0.51, -0.52])
    assert [m.message.transitions_received for m in back
            if m.topic == '/cell7/trainer_status'][-3:] == [1, 2, 3]
    assert all(m.publish_time_ns <= m.log_time_ns for m in back)
    with open(path, 'rb') as stream:
        channels = make_reader(stream).get_summary().channels.values()
    offered = yaml.safe_load(next(c for c in channels if c.topic == '/cell7/transitions')
                             .metadata['offered_qos_profiles'])
    assert [p['reliability'] for p in offered] == ['reliable']


@pytest.mark.slow
def test_killed_recorder_leaves_a_readable_file(ros_node, tmp_path):
    node, executor = ros_node
    path = tmp_path / 'killed.mcap'
    pub = publishers(node)['transitions']
    proc = start_recorder(path, '-p', 'topics:=[transitions]',
                          '-p', f"types:=['{TRANSITION}']")
    try:
        assert wait_matched(executor, [pub]), 'recorder never subscribed'
        for step in range(4):
            pub.publish(make_transition(step)[0])
        expected = {'/cell7/transitions': 4}
        assert poll(lambda: recorded_counts(path) == expected, 20), recorded_counts(path)
    finally:
        proc.kill()
        output, _ = proc.communicate(timeout=10)
    assert proc.returncode == -signal.SIGKILL, output
    result = summarize(path, decode=True)
    assert not result.complete
    assert result.counts == expected
    assert [m.message.step for m in read_messages(path)] == [0, 1, 2, 3]


@pytest.mark.parametrize('extra, problem', [
    ([], 'parameter `path`'),
    (['-p', 'path:=x.mcap', '-p', 'topics:=[a, b]'], '`topics` has 2 entries'),
    (['-p', 'path:=x.mcap', '-p', 'topics:=[a]', '-p', "types:=['nopkg_here/msg/A']"],
     "'nopkg_here/msg/A' is not installed"),
])
def test_recorder_node_refuses_bad_parameters(tmp_path, extra, problem):
    command = [sys.executable, '-m', 'vpg_bringup.recorder_node', '--ros-args', *extra]
    done = subprocess.run(command, env=dict(os.environ), cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 1
    assert 'cannot start' in done.stderr + done.stdout and problem in done.stderr + done.stdout
    assert not (tmp_path / 'x.mcap').exists()
