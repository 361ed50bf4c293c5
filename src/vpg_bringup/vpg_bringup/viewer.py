"""
Live viewing of the cell in Foxglove or Lichtblick, over the Foxglove WebSocket protocol.

The server is the Foxglove SDK's (PyPI `foxglove-sdk`, the implementation foxglove_bridge 3.x is
built on; subprotocol `foxglove.sdk.v1`, the messages of ws-protocol v1). Every channel carries
ROS 2 messages as they came off the wire: message encoding 'cdr', schema encoding 'ros2msg'
with the complete definition of the ROS type (vpg_bringup.recording.MessageDefinitions), and the
channel's name is the resolved ROS topic. A layout made on a robot with foxglove_bridge therefore
works here unchanged, and so does the MCAP recording of the same topics.

What a slow or absent client may cost the graph, and why it is bounded:
- nothing is subscribed in ROS until a client subscribes to a channel (SubscriptionCounter),
  and the ROS subscription goes again with the last client, so with no client the viewer only
  exists;
- each ROS subscription keeps the newest message only (depth 1) and is best effort, so a busy
  viewer drops old frames instead of holding back a publisher;
- Throttle forwards at most max_rate_hz messages per topic (camera, joint states);
- the SDK queues at most `message_backlog` messages per client and drops the oldest when a client
  reads too slowly, so a stalled client holds a bounded amount of memory.

No rclpy here: messages come in as CDR bytes with their topic.
"""

from dataclasses import dataclass
import threading
import time

import foxglove
from vpg_bringup.recording import full_type_name
from vpg_common.driver_names import COLOR_TOPIC, JOINT_STATES_TOPIC

DEFAULT_HOST = '127.0.0.1'
DEFAULT_PORT = 8765
SUBPROTOCOL = 'foxglove.sdk.v1'
"""What the SDK's server accepts (foxglove_bridge 3.x too); older clients offer only
'foxglove.websocket.v1', the same protocol under its former name, and are refused."""
TERMINAL_GOAL_STATUSES = frozenset((4, 5, 6))
"""action_msgs/GoalStatus SUCCEEDED, CANCELED, ABORTED."""


@dataclass(frozen=True)
class ViewerTopic:
    """One ROS topic served as a Foxglove channel."""

    topic: str
    """As configured; relative names resolve in the viewer's namespace."""
    type_name: str
    """ROS message type, 'pkg/msg/Type' (or an action part, 'pkg/action/Name_FeedbackMessage')."""
    latched: bool = False
    """The publisher is transient local (keeps its last message for late subscribers): the
    viewer subscribes likewise and sends the last message to every new client."""


DEFAULT_TOPICS = (
    ViewerTopic(COLOR_TOPIC, 'sensor_msgs/msg/Image'),
    ViewerTopic('heightmap', 'vpg_interfaces/msg/Heightmap'),
    ViewerTopic('heightmap/color', 'sensor_msgs/msg/Image'),
    ViewerTopic('heightmap/height_colored', 'sensor_msgs/msg/Image'),
    ViewerTopic('q_heatmaps/push', 'sensor_msgs/msg/Image'),
    ViewerTopic('q_heatmaps/grasp', 'sensor_msgs/msg/Image'),
    ViewerTopic('action_markers', 'visualization_msgs/msg/MarkerArray'),
    ViewerTopic(JOINT_STATES_TOPIC, 'sensor_msgs/msg/JointState'),
    ViewerTopic('pick_all/_action/feedback', 'vpg_interfaces/action/PickAll_FeedbackMessage'),
    ViewerTopic('pick_all/_action/status', 'action_msgs/msg/GoalStatusArray', latched=True),
    ViewerTopic('pick_all/result', 'vpg_interfaces/action/PickAll_GetResult_Response',
                latched=True),
)
"""Camera colour image, heightmaps, both Q heatmaps, action markers, joint states, the
/pick_all feedback and status, and the last /pick_all result (published by the viewer node)."""

LAYOUT_TOPICS = (
    ('heightmap/color', 'sensor_msgs/msg/Image'),
    ('pick_all/_action/feedback', 'vpg_interfaces/action/PickAll_FeedbackMessage'),
    ('pick_all/result', 'vpg_interfaces/action/PickAll_GetResult_Response'),
)
"""(topic, type) the shipped layout (foxglove/vpg.json) shows beyond the recorder's default
topics: recording these as well lets the same layout open the MCAP file."""


def check_topics(topics):
    """Raise ValueError when a topic is listed twice or a type name is malformed."""
    names = [t.topic for t in topics]
    if not names:
        raise ValueError('no topics to serve')
    if len(set(names)) != len(names):
        raise ValueError(f'a topic is listed twice: {names}')
    for topic in topics:
        full_type_name(topic.type_name)


class SubscriptionCounter:
    """
    Which channels have at least one client, counted per client; thread-safe.

    The server calls subscribe/unsubscribe from its own threads; the node asks changes() from
    its executor and subscribes or unsubscribes in ROS accordingly.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._clients = {}
        self._applied = set()

    def subscribe(self, topic, client_id):
        """Count `client_id` on `topic`; True when it is the topic's first client."""
        with self._lock:
            clients = self._clients.setdefault(topic, set())
            first = not clients
            clients.add(client_id)
            return first

    def unsubscribe(self, topic, client_id):
        """Forget `client_id` on `topic`; True when no client is left on it."""
        with self._lock:
            clients = self._clients.get(topic, set())
            clients.discard(client_id)
            if clients:
                return False
            self._clients.pop(topic, None)
            return True

    def wanted(self):
        """Return the topics with at least one client."""
        with self._lock:
            return {topic for topic, clients in self._clients.items() if clients}

    def changes(self):
        """
        Return (to_subscribe, to_unsubscribe) since the last call, as sorted lists.

        A client that came and went between two calls leaves nothing to do.
        """
        wanted = self.wanted()
        added, removed = sorted(wanted - self._applied), sorted(self._applied - wanted)
        self._applied = wanted
        return added, removed


class Throttle:
    """
    At most `max_rate_hz` messages per topic; a message that comes sooner is dropped.

    max_rate_hz 0 lets everything through. clock: monotonic seconds (tests).
    """

    def __init__(self, max_rate_hz, clock=time.monotonic):
        if max_rate_hz < 0:
            raise ValueError(f'max_rate_hz must be >= 0, got {max_rate_hz}')
        self._interval = 1.0 / max_rate_hz if max_rate_hz else 0.0
        self._clock = clock
        self._last = {}

    def admit(self, topic):
        """Return True when a message on `topic` may go out now (and count it as sent)."""
        if not self._interval:
            return True
        now = self._clock()
        last = self._last.get(topic)
        if last is not None and now - last < self._interval:
            return False
        self._last[topic] = now
        return True


class TerminalGoals:
    """Tells which goals of an action's status array have just finished, each once."""

    def __init__(self, remember=100):
        self._seen = []
        self._remember = remember

    def update(self, statuses):
        """
        Return the goal ids (bytes) that are terminal in `statuses` and were not reported yet.

        statuses: (goal id bytes, action_msgs/GoalStatus status code) pairs.
        """
        new = []
        for goal_id, status in statuses:
            goal_id = bytes(goal_id)
            if status in TERMINAL_GOAL_STATUSES and goal_id not in self._seen:
                self._seen.append(goal_id)
                new.append(goal_id)
        del self._seen[:-self._remember]
        return new


class ViewerServer:
    """
    A Foxglove WebSocket server with one ros2msg/cdr channel per topic.

    channels: (channel name, ROS type name, latched) for each topic; the channel name is the
        resolved ROS topic.
    definitions: vpg_bringup.recording.MessageDefinitions (schema texts).
    message_backlog: messages queued per client before the oldest is dropped.
    max_rate_hz: Throttle of every channel that is not latched.
    on_change: called (from a server thread) when a channel gains its first client or loses
        its last; the owner then calls changes(). Keep it short and thread-safe.

    Raises OSError when the port cannot be bound (the SDK's RuntimeError is turned into it).
    """

    def __init__(self, channels, definitions, host=DEFAULT_HOST, port=DEFAULT_PORT,
                 message_backlog=16, max_rate_hz=10.0, on_change=None, name='vpg_ros2'):
        if message_backlog < 1:
            raise ValueError(f'message_backlog must be >= 1, got {message_backlog}')
        self._counter = SubscriptionCounter()
        self._throttle = Throttle(max_rate_hz)
        self._on_change = on_change or (lambda: None)
        self._context = foxglove.Context()
        self._latched = {}
        self._replay = set()
        self._lock = threading.Lock()
        self._channels = {}
        for topic, type_name, latched in channels:
            schema = foxglove.Schema(name=full_type_name(type_name), encoding='ros2msg',
                                     data=definitions.full_text(type_name).encode())
            self._channels[topic] = foxglove.Channel(topic, message_encoding='cdr',
                                                     schema=schema, context=self._context)
            if latched:
                self._latched[topic] = None
        try:
            self._server = foxglove.start_server(
                name=name, host=host, port=port, context=self._context,
                server_listener=_Listener(self), message_backlog_size=int(message_backlog))
        except RuntimeError as error:
            raise OSError(f'cannot serve on {host}:{port}: {error}') from error
        self.host = host

    @property
    def port(self):
        return self._server.port

    def url(self):
        """Return the ws:// address a client opens."""
        host = 'localhost' if self.host in ('127.0.0.1', '::1') else self.host
        return f'ws://{host}:{self.port}'

    def app_url(self):
        """Return the Foxglove web app's address that opens this server (None once stopped)."""
        return self._server.app_url()

    def topics(self):
        return list(self._channels)

    def wanted(self):
        """Return the channels with at least one client."""
        return self._counter.wanted()

    def changes(self):
        """
        Return (to_subscribe, to_unsubscribe) since the last call (SubscriptionCounter).

        Also sends the last message of each latched channel that gained a client since.
        """
        with self._lock:
            replay, self._replay = self._replay, set()
        for topic in sorted(replay):
            last = self._latched.get(topic)
            if last is not None:
                self._channels[topic].log(last[0], log_time=last[1])
        return self._counter.changes()

    def log(self, topic, data, log_time_ns):
        """
        Send one CDR message to the clients of `topic`; False if dropped or nobody listens.

        Latched channels keep their last message for clients that subscribe later.
        """
        channel = self._channels[topic]
        if topic in self._latched:
            self._latched[topic] = (bytes(data), int(log_time_ns))
        elif not self._throttle.admit(topic):
            return False
        if not channel.has_sinks():
            return False
        channel.log(bytes(data), log_time=int(log_time_ns))
        return True

    def stop(self):
        self._server.stop()

    def _subscribed(self, topic, client_id):
        if topic not in self._channels:
            return
        first = self._counter.subscribe(topic, client_id)
        if topic in self._latched:
            with self._lock:
                self._replay.add(topic)
        if first or topic in self._latched:
            self._on_change()

    def _unsubscribed(self, topic, client_id):
        if topic in self._channels and self._counter.unsubscribe(topic, client_id):
            self._on_change()


class _Listener:
    """The SDK's ServerListener: forwards (un)subscriptions to the ViewerServer."""

    def __init__(self, server):
        self._server = server

    def on_subscribe(self, client, channel):
        self._server._subscribed(channel.topic, client.id)

    def on_unsubscribe(self, client, channel):
        self._server._unsubscribed(channel.topic, client.id)
