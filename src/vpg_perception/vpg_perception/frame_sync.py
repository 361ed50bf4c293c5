"""
Pairing of colour and depth frames by timestamp, as message_filters' approximate policy does.

message_filters is not installable everywhere this stack runs, and the node needs only this:
two streams, each in stamp order, paired when their stamps differ by at most a tolerance, the
newest pair winning. Pure Python; stamps are integer nanoseconds.
"""

from collections import deque
from dataclasses import dataclass
import enum


class Stream(enum.Enum):
    """The two streams to pair."""

    COLOR = 'colour'
    DEPTH = 'depth'

    @property
    def other(self):
        return Stream.DEPTH if self is Stream.COLOR else Stream.COLOR


@dataclass(frozen=True)
class Unmatched:
    """
    A frame dropped without a partner.

    nearest_ns: smallest stamp difference to a frame of the other stream still waiting.
    """

    stream: Stream
    stamp_ns: int
    nearest_ns: int


class FramePairer:
    """
    Pairs two stamped streams; not thread-safe.

    Frames wait in a short queue per stream. A frame that can no longer be matched (the other
    stream has moved past it by more than the tolerance) is dropped and reported as Unmatched,
    unless the other stream had not started yet. A stamp older than the newest one of its own
    stream (a restarted camera or simulation) clears both queues.
    """

    def __init__(self, tolerance_ns, queue_size=10):
        if tolerance_ns < 0:
            raise ValueError(f'tolerance must be >= 0, got {tolerance_ns} ns')
        self.tolerance_ns = int(tolerance_ns)
        self._queues = {stream: deque(maxlen=queue_size) for stream in Stream}
        self._first_stamp = dict.fromkeys(Stream)

    def add(self, stream, stamp_ns, frame):
        """
        Queue a frame; returns (pair, unmatched).

        pair: (colour frame, depth frame, colour stamp) of the newest matching pair, or None;
        frames older than a returned pair are discarded silently. unmatched: list of Unmatched.
        """
        queue = self._queues[stream]
        if queue and stamp_ns < queue[-1][0]:
            self.clear()
        if self._first_stamp[stream] is None:
            self._first_stamp[stream] = stamp_ns
        queue.append((stamp_ns, frame))
        unmatched = self._drop_stale()
        return self._newest_pair(), unmatched

    def clear(self):
        """Forget all waiting frames (e.g. after the clock jumped back)."""
        for queue in self._queues.values():
            queue.clear()
        self._first_stamp = dict.fromkeys(Stream)

    def _drop_stale(self):
        unmatched = []
        for stream in Stream:
            queue, others = self._queues[stream], self._queues[stream.other]
            if not others:
                continue
            newest_other = others[-1][0]
            while queue and queue[0][0] < newest_other - self.tolerance_ns:
                stamp, _ = queue[0]
                nearest = min(abs(stamp - other) for other, _ in others)
                if nearest <= self.tolerance_ns:
                    break  # still has a partner; _newest_pair will take it
                queue.popleft()
                first_other = self._first_stamp[stream.other]
                if first_other is not None and first_other <= stamp:
                    unmatched.append(Unmatched(stream, stamp, nearest))
        return unmatched

    def _newest_pair(self):
        colors, depths = self._queues[Stream.COLOR], self._queues[Stream.DEPTH]
        best = None
        for i, (color_stamp, _) in enumerate(colors):
            for j, (depth_stamp, _) in enumerate(depths):
                if abs(color_stamp - depth_stamp) <= self.tolerance_ns:
                    if best is None or min(color_stamp, depth_stamp) > best[0]:
                        best = (min(color_stamp, depth_stamp), i, j)
        if best is None:
            return None
        _, i, j = best
        color_stamp, color = colors[i]
        _, depth = depths[j]
        for _ in range(i + 1):
            colors.popleft()
        for _ in range(j + 1):
            depths.popleft()
        return color, depth, color_stamp
