"""
A minimal Foxglove WebSocket client: what Foxglove or Lichtblick does, for tests and benchmarks.

Speaks the protocol's v1 messages (github.com/foxglove/ws-protocol, docs/spec.md): the server
sends `serverInfo` and `advertise` (JSON text frames), the client sends `subscribe` with its own
subscription ids, and messages arrive as binary frames: opcode 0x01, uint32 subscription id,
uint64 log time (ns), then the message bytes (here CDR), all little endian.

    with ViewerClient('ws://localhost:8765') as client:
        client.subscribe(['/q_heatmaps/grasp'])
        topic, log_time_ns, data = client.receive(timeout=10)
"""

import json
import struct
import time

from websockets.sync.client import connect

SUBPROTOCOLS = ('foxglove.sdk.v1', 'foxglove.websocket.v1')
"""Offered in this order, as current Foxglove and Lichtblick releases do."""
MESSAGE_DATA = 0x01
_MESSAGE_HEADER = struct.Struct('<BIQ')


class ViewerClient:
    """
    One connection to a Foxglove WebSocket server; not thread-safe.

    channels: {topic: advertised channel (dict with id, topic, encoding, schemaName,
    schemaEncoding, schema)} as advertised so far.
    """

    def __init__(self, url, subprotocols=SUBPROTOCOLS, open_timeout=10.0):
        self._ws = connect(url, subprotocols=list(subprotocols), max_size=None,
                           open_timeout=open_timeout, legacy=True)
        self.subprotocol = self._ws.subprotocol
        self.server_info = None
        self.channels = {}
        self._subscriptions = {}

    def wait_for_channels(self, topics, timeout=10.0):
        """Read control messages until every topic is advertised; TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        while not set(topics) <= set(self.channels):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f'not advertised within {timeout:.0f} s: '
                                   f'{sorted(set(topics) - set(self.channels))}')
            self._handle(self._ws.recv(timeout=left))
        return {topic: self.channels[topic] for topic in topics}

    def subscribe(self, topics, timeout=10.0):
        """Subscribe to the channels of `topics` (waiting for their advertisement)."""
        channels = self.wait_for_channels(topics, timeout)
        subscriptions = []
        for topic, channel in channels.items():
            subscription_id = len(self._subscriptions) + 1
            self._subscriptions[subscription_id] = topic
            subscriptions.append({'id': subscription_id, 'channelId': channel['id']})
        self._ws.send(json.dumps({'op': 'subscribe', 'subscriptions': subscriptions}))

    def receive(self, timeout=10.0):
        """Return the next message as (topic, log time ns, bytes); TimeoutError if none."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f'no message within {timeout:.0f} s')
            message = self._handle(self._ws.recv(timeout=left))
            if message is not None:
                return message

    def _handle(self, frame):
        if isinstance(frame, str):
            message = json.loads(frame)
            if message.get('op') == 'serverInfo':
                self.server_info = message
            elif message.get('op') == 'advertise':
                for channel in message['channels']:
                    self.channels[channel['topic']] = channel
            elif message.get('op') == 'unadvertise':
                gone = set(message['channelIds'])
                self.channels = {t: c for t, c in self.channels.items() if c['id'] not in gone}
            return None
        if not frame or frame[0] != MESSAGE_DATA:
            return None
        _, subscription_id, log_time = _MESSAGE_HEADER.unpack_from(frame)
        topic = self._subscriptions.get(subscription_id)
        return None if topic is None else (topic, log_time, frame[_MESSAGE_HEADER.size:])

    def close(self):
        self._ws.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
