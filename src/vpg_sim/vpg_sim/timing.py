"""
When the cell publishes and how fast it runs: periodic events, real-time pacing, camera frames.

All times are plain floats (seconds): simulated time from the cell, wall time from a monotonic
clock passed in by the caller. Pure Python, so the node's physics loop stays a thin driver.
"""

import math

_EPS = 1e-9


class Periodic:
    """Fires at multiples of a period of simulated time (never twice for one multiple)."""

    def __init__(self, rate_hz, start=0.0):
        self.period = 1.0 / rate_hz if rate_hz > 0 else math.inf
        self.next_time = start if rate_hz > 0 else math.inf

    def due(self, now):
        """Tell (once per period) whether now reached the next multiple; then move it on."""
        if now < self.next_time - _EPS:
            return False
        self.next_time = (math.floor(now / self.period + 1e-6) + 1) * self.period
        return True


class Pacer:
    """
    Keeps simulated time at `rate` times wall time; rate 0 means as fast as possible.

    After a rate change it starts afresh from the current times. When the simulation falls
    more than `max_lag` wall seconds behind, it carries on from there instead of racing to
    catch up.
    """

    def __init__(self, max_lag=0.25):
        self.max_lag = max_lag
        self._rate = None
        self._anchor = (0.0, 0.0)  # (wall, sim)

    def delay(self, sim_now, wall_now, rate):
        """Wall seconds to wait before simulating past sim_now (0 when behind or unpaced)."""
        if rate != self._rate:
            self._rate = rate
            self._anchor = (wall_now, sim_now)
        if rate <= 0.0:
            return 0.0
        wall_anchor, sim_anchor = self._anchor
        delay = wall_anchor + (sim_now - sim_anchor) / rate - wall_now
        if delay < -self.max_lag:
            self._anchor = (wall_now, sim_now)
            return 0.0
        return max(0.0, delay)


def pace_rate(real_time_factor, idle_real_time_factor, at_rest):
    """
    Rate to run at: real_time_factor, capped at idle_real_time_factor while at rest.

    0 means unlimited for either factor; an idle factor of 0 disables the cap.
    """
    if at_rest and idle_real_time_factor > 0.0 and (
            real_time_factor == 0.0 or real_time_factor > idle_real_time_factor):
        return idle_real_time_factor
    return real_time_factor


class FrameScheduler:
    """
    Decides which camera frames to render.

    Regular frames fall due at rate_hz of simulated time; one is rendered only if the
    renderer is idle and, unless the cell is at rest, the last frame is at least
    1 / max_wall_rate_hz wall seconds old (max_wall_rate_hz 0: no limit), so that
    faster-than-real-time motion does not spend its CPU on frames. In addition, once per rest
    period, after the cell has stayed at rest for rest_dwell simulated seconds, one frame is
    always rendered: a consumer waiting for a still view after a motion gets it at once
    instead of at the next regular frame.
    """

    def __init__(self, rate_hz, max_wall_rate_hz, rest_dwell=0.03, start=0.0):
        self._regular = Periodic(rate_hz, start)
        self._min_wall_gap = 1.0 / max_wall_rate_hz if max_wall_rate_hz > 0 else 0.0
        self._rest_dwell = rest_dwell
        self._rest_since = None
        self._rest_frame_sent = True  # no rest frame before the first motion
        self._last_wall = -math.inf

    def update(self, sim_now, wall_now, at_rest, renderer_busy):
        """
        Return (render, rest_frame) for this moment.

        rest_frame says the frame is the one for a rest period; it should replace a frame
        still waiting for the renderer rather than be dropped.
        """
        if not at_rest:
            self._rest_since, self._rest_frame_sent = None, False
        elif self._rest_since is None:
            self._rest_since = sim_now
        rest_frame = (at_rest and not self._rest_frame_sent
                      and sim_now - self._rest_since >= self._rest_dwell - _EPS)
        # The wall-rate cap is for motion faster than real time; at rest the cell runs at
        # its idle rate, and a consumer waiting for a fresh still view should not wait longer.
        regular = (self._regular.due(sim_now) and not renderer_busy
                   and (at_rest or wall_now - self._last_wall >= self._min_wall_gap))
        if rest_frame:
            self._rest_frame_sent = True
        if rest_frame or regular:
            self._last_wall = wall_now
            return True, rest_frame
        return False, False

    @property
    def next_time(self):
        """Return the simulated time of the next regular frame."""
        return self._regular.next_time
