"""Conversions between seconds, nanoseconds and builtin_interfaces Time / Duration."""

import math

from builtin_interfaces.msg import Duration, Time

NS_PER_S = 1_000_000_000


def to_nanoseconds(stamp):
    """Nanoseconds of a Time or Duration message (sec, nanosec)."""
    return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)


def split_seconds(seconds):
    """(sec, nanosec) of a time in seconds, nanosec in [0, 1e9); ValueError if not finite."""
    if not math.isfinite(seconds):
        raise ValueError(f'time must be finite, got {seconds}')
    return divmod(int(round(seconds * 1e9)), NS_PER_S)


def time_msg(seconds):
    """Return the builtin_interfaces/Time of a time in seconds."""
    sec, nanosec = split_seconds(seconds)
    return Time(sec=sec, nanosec=nanosec)


def duration_msg(seconds):
    """Return the builtin_interfaces/Duration of a span in seconds."""
    sec, nanosec = split_seconds(seconds)
    return Duration(sec=sec, nanosec=nanosec)


def to_seconds(stamp):
    """Seconds (float) of a Time or Duration message."""
    return int(stamp.sec) + int(stamp.nanosec) * 1e-9
