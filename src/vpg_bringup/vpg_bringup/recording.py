"""
MCAP recordings of ROS 2 topics, written the way rosbag2's MCAP storage writes them.

A recording holds serialized (CDR) messages as they came off the wire, so Foxglove and
`ros2 bag info/play` (rosbag2_storage_mcap) read it directly: header profile 'ros2', one schema
per message type named like 'vpg_interfaces/msg/Heightmap' with encoding 'ros2msg' and the
complete message definition (the type's .msg text, then every nested type's .msg text after a
line of 80 '=' and a 'MSG: pkg/Type' line, as rosbag2's LocalMessageDefinitionSource builds
it), one channel per topic with message encoding 'cdr' and the channel metadata rosbag2 reads
back (offered_qos_profiles, topic_type_hash).

Crash behaviour: messages are buffered in chunks; a chunk reaches the file when it is full
(chunk_size) or at the latest flush_period seconds after the previous flush. If the writer is
never finished (SIGKILL, power loss), the file lacks its summary and footer: read_messages()
and summarize() then scan it linearly and return every message of the chunks that reached
the disk, so at most about flush_period seconds of messages are lost.

No rclpy here: messages come in as bytes and type names; the definitions are read from the
installed share/<package>/msg/*.msg files.
"""

from dataclasses import dataclass, field
import io
import json
import os
import re
import struct
import threading
import time

from ament_index_python.packages import get_package_share_directory, PackageNotFoundError
from mcap.exceptions import McapError
from mcap.reader import make_reader, NonSeekingReader
from mcap.records import Schema
from mcap.writer import CompressionType, Writer
from mcap_ros2.decoder import DecoderFactory
import yaml

PROFILE = 'ros2'
SCHEMA_ENCODING = 'ros2msg'
MESSAGE_ENCODING = 'cdr'
DEFINITION_DELIMITER = '=' * 80 + '\n'
LIBRARY = 'vpg_bringup.recording'
_MAGIC = b'\x89MCAP0\r\n'

PRIMITIVE_TYPES = frozenset((
    'bool', 'byte', 'char', 'float32', 'float64', 'int8', 'uint8', 'int16', 'uint16', 'int32',
    'uint32', 'int64', 'uint64', 'string'))
# The field types of a .msg text ("std_msgs/Header" in "std_msgs/Header header", "Marker" in
# "Marker[] markers"); the same pattern rosbag2 uses, so both find the same dependencies.
_MSG_FIELD_TYPE = re.compile(r'(?:^|\n)\s*([a-zA-Z0-9_/]+)(?:\[[^\]]*\])?\s+')
_ROS_NAME = r'[a-zA-Z][a-zA-Z0-9_]*'
_TYPE_NAME = re.compile(rf'^({_ROS_NAME})/(?:({_ROS_NAME})/)?({_ROS_NAME})$')
_COMPRESSION = {'zstd': CompressionType.ZSTD, 'lz4': CompressionType.LZ4,
                'none': CompressionType.NONE}


class DefinitionNotFound(LookupError):
    """No installed .msg file defines a message type (or one of its nested types)."""


def split_type_name(type_name):
    """
    Split 'pkg/msg/Type' (or 'pkg/Type') into ('pkg', 'msg', 'Type').

    Raises ValueError for anything else.
    """
    match = _TYPE_NAME.match(type_name)
    if not match:
        raise ValueError(f'not a ROS message type name: {type_name!r} '
                         "(expected 'package/msg/Type')")
    package, namespace, name = match.groups()
    return package, namespace or 'msg', name


def full_type_name(type_name):
    """Return 'pkg/msg/Type' for 'pkg/Type' or 'pkg/msg/Type' (the MCAP schema name)."""
    return '/'.join(split_type_name(type_name))


ACTION_PARTS = ('_FeedbackMessage', '_GetResult_Request', '_GetResult_Response',
                '_SendGoal_Request', '_SendGoal_Response', '_Goal', '_Result', '_Feedback')
"""Suffixes of the message types rosidl generates for an action (rclpy: Action.Impl...)."""


def split_action_part(name):
    """
    Split 'PickAll_FeedbackMessage' into ('PickAll', '_FeedbackMessage').

    Raises DefinitionNotFound for a name that is no part of an action.
    """
    for suffix in ACTION_PARTS:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[:-len(suffix)], suffix
    raise DefinitionNotFound(f'{name!r} is not a part of an action (expected one of '
                             f'{", ".join(ACTION_PARTS)} after the action name)')


def action_part_text(action_text, part):
    """
    Return the ros2msg text of one part of an action from its .action text.

    The wire messages of an action wrap its goal, result and feedback sections: the feedback
    message is a goal id and the feedback, the result response a status and the result, and
    so on (design.ros2.org/articles/actions.html). The wrapped section is written inline, as
    foxglove_bridge's message definition cache does, so its fields sit at the top level
    (`/pick_all/_action/feedback.reward`); CDR lays out a nested struct like its fields, so
    the bytes decode the same either way.
    """
    sections = [[]]
    for line in action_text.splitlines():
        if line.strip() == '---':
            sections.append([])
        else:
            sections[-1].append(line)
    if len(sections) != 3:
        raise DefinitionNotFound(f'an action definition has 3 sections, this one {len(sections)}')
    goal, result, feedback = ('\n'.join(lines) + '\n' for lines in sections)
    uuid = 'unique_identifier_msgs/UUID goal_id\n'
    return {
        '_Goal': goal, '_Result': result, '_Feedback': feedback,
        '_FeedbackMessage': uuid + feedback,
        '_GetResult_Request': uuid,
        '_GetResult_Response': 'int8 status\n' + result,
        '_SendGoal_Request': uuid + goal,
        '_SendGoal_Response': 'bool accepted\nbuiltin_interfaces/msg/Time stamp\n',
    }[part]


def _ament_share_directory(package):
    try:
        return get_package_share_directory(package)
    except PackageNotFoundError as error:
        raise DefinitionNotFound(f'package {package!r} is not installed') from error


class MessageDefinitions:
    """
    Complete ros2msg definitions and type hashes of installed message types, cached.

    share_directory(package) -> folder holding msg/<Type>.msg; the ament index by default.
    """

    def __init__(self, share_directory=_ament_share_directory):
        self._share_directory = share_directory
        self._texts = {}

    def msg_text(self, type_name):
        """
        Return the .msg text of `type_name` ('pkg/Type', 'pkg/msg/Type' or an action part).

        An action's parts ('pkg/action/Name_FeedbackMessage', '..._GetResult_Response', ...)
        have no .msg file: their text is cut from the .action file as foxglove_bridge does
        (see action_part_text), so a layout made on a robot finds the same fields here.
        """
        key = full_type_name(type_name)
        if key not in self._texts:
            package, namespace, name = split_type_name(key)
            if namespace == 'action':
                self._texts[key] = self._action_part_text(package, name, type_name)
                return self._texts[key]
            path = os.path.join(self._share_directory(package), namespace, name + '.msg')
            try:
                with open(path, encoding='utf-8') as stream:
                    self._texts[key] = stream.read()
            except OSError as error:
                raise DefinitionNotFound(
                    f'no message definition for {type_name!r} ({path}: {error.strerror})'
                ) from error
        return self._texts[key]

    def _action_part_text(self, package, name, type_name):
        action, part = split_action_part(name)
        path = os.path.join(self._share_directory(package), 'action', action + '.action')
        try:
            with open(path, encoding='utf-8') as stream:
                text = stream.read()
        except OSError as error:
            raise DefinitionNotFound(
                f'no action definition for {type_name!r} ({path}: {error.strerror})'
            ) from error
        return action_part_text(text, part)

    @staticmethod
    def dependencies(text, package):
        """Return the non-primitive field types of a .msg text, sorted, as 'pkg/Type'."""
        found = set()
        for match in _MSG_FIELD_TYPE.finditer(text):
            name = match.group(1)
            if name in PRIMITIVE_TYPES:
                continue
            found.add(name if '/' in name else f'{package}/{name}')
        return sorted(found)

    def full_text(self, type_name, max_depth=50):
        """
        Return the complete ros2msg definition of `type_name` (str), as rosbag2 stores it.

        The type's own .msg text comes first; each nested type follows once, depth first in
        sorted order, after a newline, a line of 80 '=' and a line 'MSG: pkg/Type'. Raises
        DefinitionNotFound when a .msg file is missing.
        """
        seen = set()

        def append(name, depth):
            if depth <= 0:
                raise DefinitionNotFound(f'nesting too deep resolving {type_name!r}')
            text = self.msg_text(name)
            result = text
            for dependency in self.dependencies(text, split_type_name(name)[0]):
                if dependency not in seen:
                    seen.add(dependency)
                    result += '\n' + DEFINITION_DELIMITER + f'MSG: {dependency}\n'
                    result += append(dependency, depth - 1)
            return result

        return append(type_name, max_depth)

    def type_hash(self, type_name):
        """Return the RIHS01 type hash rosidl generated for `type_name`, or '' if unknown."""
        name = full_type_name(type_name)
        package, namespace, short = split_type_name(name)
        if namespace == 'action':
            # One .json per action holds the hashes of all its parts.
            try:
                short = split_action_part(short)[0]
            except DefinitionNotFound:
                return ''
        try:
            path = os.path.join(self._share_directory(package), namespace, short + '.json')
            with open(path, encoding='utf-8') as stream:
                hashes = json.load(stream).get('type_hashes', [])
        except (OSError, ValueError, DefinitionNotFound):
            return ''
        return next((h.get('hash_string', '') for h in hashes if h.get('type_name') == name), '')


@dataclass(frozen=True)
class OfferedQos:
    """One publisher's QoS as rosbag2 stores it in offered_qos_profiles (metadata version 9+)."""

    history: str = 'unknown'
    """'keep_last', 'keep_all', 'system_default' or 'unknown' (DDS does not share history)."""
    depth: int = 0
    reliability: str = 'reliable'
    """'reliable', 'best_effort' or 'system_default'."""
    durability: str = 'volatile'
    """'volatile', 'transient_local' or 'system_default'."""
    deadline_ns: int = 0
    """Nanoseconds; 0 means unspecified (rmw default)."""
    lifespan_ns: int = 0
    liveliness: str = 'automatic'
    liveliness_lease_duration_ns: int = 0
    avoid_ros_namespace_conventions: bool = False


def qos_profiles_yaml(profiles):
    """Return the offered_qos_profiles channel metadata: a YAML list of OfferedQos."""
    def duration(ns):
        return {'sec': int(ns) // 1_000_000_000, 'nsec': int(ns) % 1_000_000_000}

    return yaml.safe_dump([{
        'history': p.history, 'depth': int(p.depth), 'reliability': p.reliability,
        'durability': p.durability, 'deadline': duration(p.deadline_ns),
        'lifespan': duration(p.lifespan_ns), 'liveliness': p.liveliness,
        'liveliness_lease_duration': duration(p.liveliness_lease_duration_ns),
        'avoid_ros_namespace_conventions': bool(p.avoid_ros_namespace_conventions),
    } for p in profiles], sort_keys=False) if profiles else ''


class McapRecorder:
    """
    Write serialized ROS 2 messages into one MCAP file (profile 'ros2'); thread-safe.

    path: output file (its folder is created; an existing file is replaced).
    chunk_size: bytes of messages per chunk before it is compressed and written.
    compression: 'zstd', 'lz4' or 'none'.
    flush_period: seconds after which buffered messages are written out even if the chunk is
        not full (bounds what a killed recorder loses); 0 flushes after every message.
    definitions: MessageDefinitions to take schema texts from.
    clock: monotonic time source in seconds (tests).

    Call finish() (or use it as a context manager) to write the summary and footer; a file
    whose recorder was killed before that is still readable by read_messages().
    """

    def __init__(self, path, chunk_size=1024 * 1024, compression='zstd', flush_period=1.0,
                 definitions=None, clock=time.monotonic):
        if compression not in _COMPRESSION:
            raise ValueError(f'compression must be one of {sorted(_COMPRESSION)}, '
                             f'not {compression!r}')
        if chunk_size <= 0 or flush_period < 0:
            raise ValueError('chunk_size must be > 0 and flush_period >= 0')
        self.path = str(path)
        self.flush_period = float(flush_period)
        self.definitions = definitions or MessageDefinitions()
        self._clock = clock
        self._lock = threading.Lock()
        self._schemas = {}
        self._channels = {}
        self._types = {}
        self.counts = {}
        """Messages written per topic."""
        folder = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(folder, exist_ok=True)
        self._stream = open(self.path, 'wb')
        started = False
        try:
            self._writer = Writer(self._stream, chunk_size=chunk_size,
                                  compression=_COMPRESSION[compression])
            self._writer.start(profile=PROFILE, library=LIBRARY)
            self._stream.flush()
            started = True
        finally:
            if not started:
                self._stream.close()
        self._last_flush = clock()
        self._pending = False
        self._finished = False

    @property
    def finished(self):
        return self._finished

    def topics(self):
        """Return {topic: full type name} of the topics registered so far."""
        return dict(self._types)

    def has_topic(self, topic):
        return topic in self._types

    def add_topic(self, topic, type_name, offered_qos=()):
        """
        Register `topic` with message type `type_name` (schema once per type); idempotent.

        offered_qos: OfferedQos of the publishers, stored for `ros2 bag play`. Raises
        ValueError when the topic is already registered with another type and
        DefinitionNotFound when the type's definition is not installed.
        """
        name = full_type_name(type_name)
        with self._lock:
            self._check_open()
            return self._add_topic(topic, name, offered_qos)

    def _add_topic(self, topic, name, offered_qos):
        known = self._types.get(topic)
        if known is not None:
            if known != name:
                raise ValueError(f'topic {topic!r} is recorded as {known}, not {name}')
            return self._channels[topic]
        schema_id = self._schemas.get(name)
        if schema_id is None:
            text = self.definitions.full_text(name)
            schema_id = self._writer.register_schema(name, SCHEMA_ENCODING, text.encode())
            self._schemas[name] = schema_id
        metadata = {'offered_qos_profiles': qos_profiles_yaml(tuple(offered_qos)),
                    'topic_type_hash': self.definitions.type_hash(name)}
        channel_id = self._writer.register_channel(topic, MESSAGE_ENCODING, schema_id,
                                                   metadata)
        self._channels[topic] = channel_id
        self._types[topic] = name
        self.counts.setdefault(topic, 0)
        return channel_id

    def write(self, topic, type_name, data, log_time_ns, publish_time_ns=None, sequence=0,
              offered_qos=()):
        """
        Append one CDR-serialized message (bytes) received on `topic` at log_time_ns.

        The topic is registered on first use (offered_qos is only used then).
        publish_time_ns defaults to log_time_ns. Raises RuntimeError after finish().
        """
        name = full_type_name(type_name)
        with self._lock:
            self._check_open()
            channel_id = self._channels.get(topic)
            if channel_id is None or self._types[topic] != name:
                channel_id = self._add_topic(topic, name, offered_qos)
            log_time_ns = int(log_time_ns)
            self._writer.add_message(
                channel_id=channel_id, log_time=log_time_ns, data=bytes(data),
                publish_time=log_time_ns if publish_time_ns is None else int(publish_time_ns),
                sequence=int(sequence) & 0xFFFFFFFF)
            self.counts[topic] += 1
            self._pending = True
            self._flush_if_due()

    def flush_if_due(self):
        """Write buffered messages out if flush_period has passed since the last flush."""
        with self._lock:
            if not self._finished:
                self._flush_if_due()

    def _flush_if_due(self):
        if self._pending and self._clock() - self._last_flush >= self.flush_period:
            self._flush()

    def flush(self):
        """Write the chunk in progress and flush the file (not an fsync)."""
        with self._lock:
            if not self._finished:
                self._flush()

    def _flush(self):
        self._writer.flush()
        self._last_flush = self._clock()
        self._pending = False

    def finish(self):
        """Write the summary and footer and close the file; safe to call more than once."""
        with self._lock:
            if self._finished:
                return
            self._finished = True
            try:
                self._writer.finish()
                self._stream.flush()
                os.fsync(self._stream.fileno())
            finally:
                self._stream.close()

    def _check_open(self):
        if self._finished:
            raise RuntimeError(f'recording {self.path} is already finished')

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.finish()
        return False


@dataclass(frozen=True)
class RecordedMessage:
    """One message read back from a recording."""

    topic: str
    type_name: str
    log_time_ns: int
    publish_time_ns: int
    data: bytes
    """The CDR bytes as recorded."""
    message: object = None
    """The message decoded by mcap_ros2 (attribute access like a ROS message), if asked."""


@dataclass
class RecordingSummary:
    """What a recording holds, counted by reading every message back."""

    path: str
    profile: str
    complete: bool
    """False when the file has no footer (its recorder was killed): the tail may be missing."""
    counts: dict = field(default_factory=dict)
    """{topic: messages}"""
    types: dict = field(default_factory=dict)
    """{topic: full type name}"""
    schema_encodings: dict = field(default_factory=dict)
    """{type name: schema encoding}"""
    message_encodings: dict = field(default_factory=dict)
    """{topic: message encoding}"""


def is_complete(path):
    """Return True when the file ends with a footer and the closing magic (writer finished)."""
    with open(path, 'rb') as stream:
        try:
            stream.seek(-len(_MAGIC), io.SEEK_END)
        except OSError:
            return False
        if stream.read() != _MAGIC:
            return False
        stream.seek(0)
        try:
            make_reader(stream).get_summary()
        except (McapError, ValueError, EOFError, KeyError, struct.error):
            return False
    return True


def _records(path, topics, complete):
    """Yield (schema, channel, message) records; linear scan for an unfinished file."""
    topics = [topics] if isinstance(topics, str) else topics
    with open(path, 'rb') as stream:
        if complete:
            yield from make_reader(stream).iter_messages(topics=topics, log_time_order=True)
            return
        reader = NonSeekingReader(stream)
        try:
            yield from reader.iter_messages(topics=topics, log_time_order=False)
        except (McapError, ValueError, EOFError, struct.error):
            # The first record the killed writer did not finish: everything before it is kept.
            return


def read_messages(path, topics=None, decode=True):
    """
    Yield the RecordedMessage of a recording, in log time order (file order if unfinished).

    topics: a topic or list of topics to keep (None: all). decode: also decode each message
    with mcap_ros2 (needs the schema's ros2msg text). A file whose writer never finished is
    read up to its last complete chunk (see is_complete()).
    """
    factory = DecoderFactory() if decode else None
    for schema, channel, record in _records(str(path), topics, is_complete(str(path))):
        message = _decode(factory, schema, channel, record) if decode else None
        yield RecordedMessage(topic=channel.topic, type_name=schema.name if schema else '',
                              log_time_ns=record.log_time, publish_time_ns=record.publish_time,
                              data=bytes(record.data), message=message)


def summarize(path, decode=False):
    """Return a RecordingSummary of `path` by reading every message (decoding them if asked)."""
    path = str(path)
    with open(path, 'rb') as stream:
        profile = make_reader(stream).get_header().profile
    summary = RecordingSummary(path=path, profile=profile, complete=is_complete(path))
    factory = DecoderFactory() if decode else None
    for schema, channel, record in _records(path, None, summary.complete):
        summary.counts[channel.topic] = summary.counts.get(channel.topic, 0) + 1
        summary.types[channel.topic] = schema.name if schema else ''
        summary.message_encodings[channel.topic] = channel.message_encoding
        if schema is not None:
            summary.schema_encodings[schema.name] = schema.encoding
        if decode:
            _decode(factory, schema, channel, record)
    return summary


def decode_cdr(type_name, data, definitions=None):
    """
    Decode CDR bytes of `type_name` with its installed ros2msg definition (mcap_ros2).

    Returns an object with the message's fields as attributes, as Foxglove reads them (an
    action part's wrapped section inline, see action_part_text). Raises DefinitionNotFound.
    """
    definitions = definitions or MessageDefinitions()
    schema = Schema(id=1, name=full_type_name(type_name), encoding=SCHEMA_ENCODING,
                    data=definitions.full_text(type_name).encode())
    return DecoderFactory().decoder_for(MESSAGE_ENCODING, _parsable_schema(schema))(data)


def _decode(factory, schema, channel, record):
    decoder = factory.decoder_for(channel.message_encoding, _parsable_schema(schema))
    if decoder is None:
        raise McapError(f'cannot decode messages of {channel.topic!r} (message encoding '
                        f'{channel.message_encoding!r}, schema '
                        f'{schema.encoding if schema else None!r})')
    return decoder(record.data)


def _parsable_schema(schema):
    """
    Return `schema`, renamed if mcap_ros2 could not parse its name.

    mcap_ros2's parser takes only CamelCase type names, so an action part such as
    'vpg_interfaces/action/PickAll_FeedbackMessage' is decoded under the name without its
    underscores; the name plays no part in the layout of the bytes.
    """
    if schema is None or '_' not in schema.name.rsplit('/', 1)[-1]:
        return schema
    package, _, name = schema.name.rpartition('/')
    return Schema(id=schema.id, name=f'{package}/{name.replace("_", "")}',
                  encoding=schema.encoding, data=schema.data)
