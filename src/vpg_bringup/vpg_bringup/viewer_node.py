"""
ROS 2 node `viewer`: serves the cell live to Foxglove or Lichtblick (Foxglove WebSocket protocol).

A thin node over vpg_bringup.viewer: it subscribes raw (CDR bytes, no deserialization) to a
topic only while a client is subscribed to its channel, and forwards each message. It also
watches `pick_all/_action/status` and, when a goal finishes, asks the action server for its
result and publishes it on `pick_all/result` (transient local), so the last result can be
shown (and recorded) like any topic.

The protocol has no authentication: the server binds to 127.0.0.1 unless `host` says otherwise.

    python -m vpg_bringup.viewer_node --ros-args -p port:=8765
"""

from dataclasses import dataclass
from functools import partial

from action_msgs.msg import GoalStatusArray
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterType
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from vpg_bringup.recorder_node import message_class
from vpg_bringup.recording import DefinitionNotFound, MessageDefinitions
from vpg_bringup.viewer import (check_topics, DEFAULT_HOST, DEFAULT_PORT, DEFAULT_TOPICS,
                                TerminalGoals, ViewerServer, ViewerTopic)
from vpg_common.node_runner import run_node
from vpg_common.parameters import declare
from vpg_interfaces.action import PickAll

RESULT_TOPIC = 'pick_all/result'


@dataclass(frozen=True)
class ViewerParams:
    """The node's parameters (see declare_parameters for their meaning)."""

    host: str
    port: int
    topics: tuple
    types: tuple
    latched_topics: tuple
    max_rate_hz: float
    message_backlog: int
    publish_results: bool


def declare_parameters(node):
    """Declare every parameter once (type, default, description, range); return the params."""
    def descriptor(description, **extra):
        return description, extra

    specs = [
        ('host', DEFAULT_HOST, descriptor(
            'Address to listen on. The Foxglove WebSocket protocol has no authentication: '
            'anyone who reaches the port sees every served topic. 0.0.0.0 serves every '
            'network interface.')),
        ('port', DEFAULT_PORT, descriptor(
            'TCP port of the WebSocket server (0: any free port, logged at start).',
            integer_range=[IntegerRange(from_value=0, to_value=65535)])),
        ('topics', [t.topic for t in DEFAULT_TOPICS], descriptor(
            'Topics to serve; relative names resolve in the node namespace. Each is '
            'subscribed only while a client is subscribed to it.')),
        ('types', [t.type_name for t in DEFAULT_TOPICS], descriptor(
            "Message type of the topic at the same index, e.g. 'sensor_msgs/msg/Image'.")),
        ('latched_topics', [t.topic for t in DEFAULT_TOPICS if t.latched], descriptor(
            'Topics (as written in `topics`) whose publishers are transient local: subscribed '
            'reliable + transient local, last message sent to each new client.',
            type=ParameterType.PARAMETER_STRING_ARRAY)),
        ('max_rate_hz', 10.0, descriptor(
            'At most this many messages per second per topic go to clients (latched topics '
            'excepted); later ones are dropped. 0: no limit.',
            floating_point_range=[FloatingPointRange(from_value=0.0, to_value=1000.0)])),
        ('message_backlog', 16, descriptor(
            'Messages queued per client; when a client reads too slowly the oldest are '
            'dropped, so a stalled client holds at most this many messages.',
            integer_range=[IntegerRange(from_value=1, to_value=4096)])),
        ('publish_results', True, descriptor(
            f'Fetch the result of every finished /pick_all goal and publish it on '
            f'`{RESULT_TOPIC}` (transient local), for the layout and recordings.')),
    ]
    values = declare(node, [(name, value, *spec) for name, value, spec in specs])
    params = ViewerParams(**{key: tuple(value) if isinstance(value, list) else value
                             for key, value in values.items()})
    check_parameters(params)
    return params


def check_parameters(params):
    """Raise ValueError naming the problem when the parameters cannot work together."""
    if len(params.topics) != len(params.types):
        raise ValueError(f'`topics` has {len(params.topics)} entries but `types` has '
                         f'{len(params.types)}: give one type per topic')
    unknown = sorted(set(params.latched_topics) - set(params.topics))
    if unknown:
        raise ValueError(f'`latched_topics` names topics not in `topics`: {unknown}')
    check_topics(viewer_topics(params))


def viewer_topics(params):
    return [ViewerTopic(topic, type_name, topic in params.latched_topics)
            for topic, type_name in zip(params.topics, params.types)]


class ViewerNode(Node):

    def __init__(self, **kwargs):
        super().__init__('viewer', **kwargs)
        self._params = p = declare_parameters(self)
        topics = viewer_topics(p)
        self._classes = {t.topic: message_class(t.type_name) for t in topics}
        self._resolved = {t.topic: self.resolve_topic_name(t.topic) for t in topics}
        self._topics = {self._resolved[t.topic]: t for t in topics}
        self._ros_subscriptions = {}
        # Triggered from the server's threads; its callback runs in this node's executor.
        self._changed = self.create_guard_condition(self._apply_changes)
        self._server = ViewerServer(
            [(self._resolved[t.topic], t.type_name, t.latched) for t in topics],
            MessageDefinitions(), host=p.host, port=p.port,
            message_backlog=p.message_backlog, max_rate_hz=p.max_rate_hz,
            on_change=self._changed.trigger)
        if p.publish_results:
            self._watch_results()
        self.get_logger().info(
            f'serving {len(topics)} topics at {self._server.url()} (Foxglove: '
            f'{self._server.app_url()}); the protocol has no authentication, bound to {p.host}')

    @property
    def server(self):
        return self._server

    def url(self):
        return self._server.url()

    def _apply_changes(self):
        added, removed = self._server.changes()
        for topic in removed:
            subscription = self._ros_subscriptions.pop(topic, None)
            if subscription is not None:
                self.destroy_subscription(subscription)
        for topic in added:
            spec = self._topics[topic]
            if spec.latched:
                qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                                 durability=DurabilityPolicy.TRANSIENT_LOCAL)
            else:
                # Newest only, never a reliable reader a publisher must wait for.
                qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
            self._ros_subscriptions[topic] = self.create_subscription(
                self._classes[spec.topic], topic, partial(self._forward, topic), qos, raw=True)
        if added or removed:
            self.get_logger().info(f'clients now watch {sorted(self._server.wanted())}')

    def _forward(self, topic, data):
        self._server.log(topic, data, self.get_clock().now().nanoseconds)

    def _watch_results(self):
        self._terminal = TerminalGoals()
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self._result_pub = self.create_publisher(
            PickAll.Impl.GetResultService.Response, RESULT_TOPIC, latched)
        self._result_client = self.create_client(
            PickAll.Impl.GetResultService, 'pick_all/_action/get_result')
        # The action server's status publisher is reliable and transient local, depth 1.
        self.create_subscription(GoalStatusArray, 'pick_all/_action/status',
                                 self._on_status, latched)

    def _on_status(self, msg):
        finished = self._terminal.update(
            (bytes(s.goal_info.goal_id.uuid), s.status) for s in msg.status_list)
        for goal_id in finished:
            request = PickAll.Impl.GetResultService.Request()
            request.goal_id.uuid = list(goal_id)
            self._result_client.call_async(request).add_done_callback(self._on_result)

    def _on_result(self, future):
        try:
            response = future.result()
        except Exception as error:  # noqa: B902 - a failed call must not stop the viewer
            self.get_logger().warn(f'cannot fetch a /pick_all result: {error}')
            return
        self._result_pub.publish(response)
        self.get_logger().info(f'/pick_all finished: {response.result.reason} (status '
                               f'{response.status}); published on {RESULT_TOPIC}')

    def stop(self):
        self._server.stop()


def main(args=None):
    return run_node(ViewerNode, 'viewer', args=args,
                    startup_errors=(ValueError, DefinitionNotFound, OSError))


if __name__ == '__main__':
    raise SystemExit(main())
