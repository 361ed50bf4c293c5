"""
ROS 2 node `recorder`: writes a list of topics into an MCAP file that Foxglove and `ros2 bag` read.

Subscribes raw (the serialized CDR bytes go to the file untouched, no deserialization) to each
topic of `topics` with the message type at the same index of `types`; relative names resolve in
the node's namespace, so one recorder per cell records that cell. QoS: reliable (what every
publisher of the defaults offers), best effort for the topics listed in `best_effort_topics`.
The file layout is rosbag2's (vpg_bringup.recording). Log time is the node clock on receipt
(wall time unless use_sim_time), publish time the publisher's source timestamp.

Stops on SIGINT/SIGTERM after finishing the file, and logs how many messages per topic it
wrote. If it is killed instead, the file stays readable up to the last flush (flush_period).

    python -m vpg_bringup.recorder_node --ros-args -p path:=results/run.mcap
"""

from dataclasses import dataclass
from functools import partial
import importlib

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterType
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy

from vpg_bringup.recording import (DefinitionNotFound, McapRecorder, OfferedQos,
                                   split_action_part, split_type_name)
from vpg_common.node_runner import run_node
from vpg_common.parameters import declare

DEFAULT_TOPICS = (
    ('heightmap', 'vpg_interfaces/msg/Heightmap'),
    ('q_heatmaps/push', 'sensor_msgs/msg/Image'),
    ('q_heatmaps/grasp', 'sensor_msgs/msg/Image'),
    ('action_markers', 'visualization_msgs/msg/MarkerArray'),
    ('transitions', 'vpg_interfaces/msg/Transition'),
    ('trainer_status', 'vpg_interfaces/msg/TrainerStatus'),
)


@dataclass(frozen=True)
class RecorderParams:
    """The node's parameters (see declare_parameters for their meaning)."""

    path: str
    topics: tuple
    types: tuple
    best_effort_topics: tuple
    depth: int
    chunk_size: int
    compression: str
    flush_period: float


def declare_parameters(node):
    """Declare every parameter once (type, default, description, range); return the params."""
    def descriptor(description, **extra):
        return description, extra

    specs = [
        ('path', '', descriptor(
            'Output .mcap file (its folder is created; an existing file is replaced). '
            'Required.')),
        ('topics', [t for t, _ in DEFAULT_TOPICS], descriptor(
            'Topics to record; relative names resolve in the node namespace.')),
        ('types', [t for _, t in DEFAULT_TOPICS], descriptor(
            "Message type of the topic at the same index, e.g. 'sensor_msgs/msg/Image'.")),
        ('best_effort_topics', [], descriptor(
            'Topics (as written in `topics`) whose publishers are best effort; the others are '
            'subscribed reliable.', type=ParameterType.PARAMETER_STRING_ARRAY)),
        ('depth', 100, descriptor(
            'Subscription queue depth per topic: messages held while the file write lags.',
            integer_range=[IntegerRange(from_value=1, to_value=10000)])),
        ('chunk_size', 1024 * 1024, descriptor(
            'Bytes of messages per MCAP chunk before it is compressed and written.',
            integer_range=[IntegerRange(from_value=1024, to_value=1 << 30)])),
        ('compression', 'zstd', descriptor("Chunk compression: 'zstd', 'lz4' or 'none'.")),
        ('flush_period', 1.0, descriptor(
            'Seconds (wall time) after which buffered messages are written out even if the '
            'chunk is not full: at most this much is lost if the recorder is killed.',
            floating_point_range=[FloatingPointRange(from_value=0.0, to_value=3600.0)])),
    ]
    values = declare(node, [(name, value, *spec) for name, value, spec in specs])
    params = RecorderParams(**{key: tuple(value) if isinstance(value, list) else value
                               for key, value in values.items()})
    check_parameters(params)
    return params


def check_parameters(params):
    """Raise ValueError naming the problem when the parameters cannot work together."""
    if not params.path:
        raise ValueError('parameter `path` (output .mcap file) is required')
    if not params.topics:
        raise ValueError('parameter `topics` is empty: nothing to record')
    if len(params.topics) != len(params.types):
        raise ValueError(f'`topics` has {len(params.topics)} entries but `types` has '
                         f'{len(params.types)}: give one type per topic')
    if len(set(params.topics)) != len(params.topics):
        raise ValueError(f'`topics` lists a topic twice: {list(params.topics)}')
    unknown = sorted(set(params.best_effort_topics) - set(params.topics))
    if unknown:
        raise ValueError(f'`best_effort_topics` names topics not in `topics`: {unknown}')
    if params.compression not in ('zstd', 'lz4', 'none'):
        raise ValueError(f"`compression` must be 'zstd', 'lz4' or 'none', "
                         f'not {params.compression!r}')


# Where rclpy keeps the message classes of an action's parts (recording.ACTION_PARTS).
_ACTION_PART_CLASSES = {
    '_FeedbackMessage': ('Impl', 'FeedbackMessage'),
    '_GetResult_Request': ('Impl', 'GetResultService', 'Request'),
    '_GetResult_Response': ('Impl', 'GetResultService', 'Response'),
    '_SendGoal_Request': ('Impl', 'SendGoalService', 'Request'),
    '_SendGoal_Response': ('Impl', 'SendGoalService', 'Response'),
    '_Goal': ('Goal',), '_Result': ('Result',), '_Feedback': ('Feedback',),
}


def message_class(type_name):
    """
    Import the Python class of 'pkg/msg/Type'; ValueError if it is not installed.

    Parts of an action ('pkg/action/PickAll_FeedbackMessage') are found through the action's
    class (PickAll.Impl.FeedbackMessage), which is what topics such as
    `pick_all/_action/feedback` carry.
    """
    package, namespace, name = split_type_name(type_name)
    try:
        module = importlib.import_module(f'{package}.{namespace}')
        if namespace != 'action' or hasattr(module, name):
            return getattr(module, name)
        action, part = split_action_part(name)
        found = getattr(module, action)
        for attribute in _ACTION_PART_CLASSES[part]:
            found = getattr(found, attribute)
        return found
    except (ImportError, AttributeError, DefinitionNotFound) as error:
        raise ValueError(f'message type {type_name!r} is not installed ({error})') from error


def offered_qos(profile):
    """Turn an rclpy QoSProfile (from the graph) into the recording's OfferedQos."""
    return OfferedQos(
        history=profile.history.name.lower(), depth=int(profile.depth),
        reliability=profile.reliability.name.lower(),
        durability=profile.durability.name.lower(),
        deadline_ns=profile.deadline.nanoseconds, lifespan_ns=profile.lifespan.nanoseconds,
        liveliness=profile.liveliness.name.lower(),
        liveliness_lease_duration_ns=profile.liveliness_lease_duration.nanoseconds,
        avoid_ros_namespace_conventions=bool(profile.avoid_ros_namespace_conventions))


class RecorderNode(Node):

    def __init__(self, **kwargs):
        super().__init__('recorder', **kwargs)
        self._params = p = declare_parameters(self)
        classes = [message_class(type_name) for type_name in p.types]
        self._recorder = McapRecorder(p.path, chunk_size=p.chunk_size,
                                      compression=p.compression, flush_period=p.flush_period)
        try:
            for type_name in p.types:
                # A type whose definition is missing would only fail at its first message.
                self._recorder.definitions.full_text(type_name)
        except DefinitionNotFound:
            self._recorder.finish()
            raise
        self._subscriptions_by_topic = {}
        for topic, type_name, msg_class in zip(p.topics, p.types, classes):
            reliability = (ReliabilityPolicy.BEST_EFFORT if topic in p.best_effort_topics
                           else ReliabilityPolicy.RELIABLE)
            subscription = self.create_subscription(
                msg_class, topic, partial(self._on_message, topic, type_name),
                QoSProfile(depth=p.depth, reliability=reliability), raw=True)
            self._subscriptions_by_topic[topic] = subscription
        # Wall-clock timer: with use_sim_time a stalled /clock must not stop the flushing.
        self._flush_timer = self.create_timer(
            max(p.flush_period, 0.05), self._recorder.flush_if_due,
            clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.get_logger().info(
            f'recording {len(p.topics)} topics to {p.path}: ' + ', '.join(
                s.topic_name for s in self._subscriptions_by_topic.values()))

    @property
    def recorder(self):
        return self._recorder

    def _on_message(self, topic, type_name, data, info):
        if self._recorder.finished:
            return
        resolved = self._subscriptions_by_topic[topic].topic_name
        offered = ()
        if not self._recorder.has_topic(resolved):
            offered = [offered_qos(endpoint.qos_profile)
                       for endpoint in self.get_publishers_info_by_topic(resolved)]
        log_time = self.get_clock().now().nanoseconds
        try:
            self._recorder.write(resolved, type_name, data, log_time,
                                 publish_time_ns=info.get('source_timestamp') or log_time,
                                 sequence=info.get('publication_sequence_number') or 0,
                                 offered_qos=offered)
        except (OSError, ValueError) as error:
            self.get_logger().error(f'cannot record a message on {resolved}: {error}',
                                    throttle_duration_sec=5.0)

    def stop(self):
        """Finish the file (summary, footer); return a line saying what was written per topic."""
        self._recorder.finish()
        counts = self._recorder.counts
        topics = [s.topic_name for s in self._subscriptions_by_topic.values()]
        return f'wrote {sum(counts.values())} messages to {self._params.path}: ' + ', '.join(
            f'{topic} {counts.get(topic, 0)}' for topic in topics)


def main(args=None):
    return run_node(RecorderNode, 'recorder', args=args,
                    startup_errors=(ValueError, DefinitionNotFound, OSError))


if __name__ == '__main__':
    raise SystemExit(main())
