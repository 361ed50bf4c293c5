"""
How a guarded move sees that the arm is blocked: off its timed path, stalled, or in contact.

With a tool wrench arriving (ur_robot_driver's force_torque_sensor_broadcaster, or the MuJoCo
cell's copy of it) a guarded move stops as soon as the force along the tool axis has changed by
more than `contact_force` since the move began (the sensor is tared by the move itself: its
offset drifts, only the change counts). Without a recent wrench, and for every move besides, an
arm that leaves its timed path or stands still short of its target counts as blocked.
"""

import numpy as np


class TrackedPath:
    """
    Where a trajectory should have the joints: how far off the arm is, allowing for delay.

    times (N,) from 0 and positions (N, J) are the commanded samples with the start state
    first; between samples the path is taken as linear.
    """

    def __init__(self, times, positions, lag, samples=400):
        self.times = np.asarray(times, dtype=float)
        self.positions = np.asarray(positions, dtype=float)
        self.lag = float(lag)
        # One dense sampling of the path serves leave_time and nearest_time.
        self._grid = np.linspace(0.0, self.times[-1], samples)
        self._dense = np.stack([np.interp(self._grid, self.times, column)
                                for column in self.positions.T], axis=1)

    def at(self, t):
        """Commanded joints at time t (clamped to the path's ends)."""
        return np.array([np.interp(t, self.times, column) for column in self.positions.T])

    def leave_time(self, distance):
        """First time (s) at which any joint is `distance` from the start (0 if never)."""
        moved = np.max(np.abs(self._dense - self.positions[0]), axis=1)
        index = np.flatnonzero(moved >= distance)
        return float(self._grid[index[0]]) if index.size else 0.0

    def nearest_time(self, q):
        """Path time (s) whose position is nearest q (largest joint distance)."""
        distance = np.max(np.abs(self._dense - np.asarray(q, dtype=float)), axis=1)
        return float(self._grid[np.argmin(distance)])

    def error(self, q, t):
        """Largest distance (rad) of any joint from the path swept during [t - lag, t + lag]."""
        lo_t, hi_t = t - self.lag, t + self.lag
        inside = (self.times > lo_t) & (self.times < hi_t)
        window = np.vstack([self.at(lo_t), self.positions[inside], self.at(hi_t)])
        q = np.asarray(q, dtype=float)
        below = window.min(axis=0) - q
        above = q - window.max(axis=0)
        return float(np.max(np.maximum(np.maximum(below, above), 0.0)))


class StallDetector:
    """Tell an arm that stopped short of its target (pressing on something) from a slow one."""

    def __init__(self, after, window, motion):
        self.after, self.window, self.motion = float(after), float(window), float(motion)
        self._history = []

    def update(self, q, t):
        """Record joints q at time t; True once it has stood still for `window` after `after`."""
        if t < self.after:
            self._history.clear()
            return False
        self._history.append((t, np.array(q, dtype=float)))
        while len(self._history) > 1 and self._history[1][0] <= t - self.window:
            self._history.pop(0)
        t0, q0 = self._history[0]
        return t - t0 >= self.window and float(np.max(np.abs(q - q0))) < self.motion


class ContactMonitor:
    """
    Tells when the tool touched something: the force along the tool axis left its tare.

    baseline: the force (3,) N averaged just before the move; axis: unit tool axis (3,) in
    the sensor frame. Readings stamped after `after` are checked, each once, in the order
    they arrived (an older reading that arrives late is still checked); when they stop coming
    it reports nothing, and the path/stall guard that runs beside it decides.
    """

    def __init__(self, joint_states, baseline, axis, after, threshold):
        self.joint_states = joint_states
        self.baseline = np.asarray(baseline, dtype=float)
        self.axis = np.asarray(axis, dtype=float)
        self.threshold = float(threshold)
        self._after = float(after)
        self._arrival, _ = joint_states.wrenches_arrived_after(0)
        self.peak = 0.0
        """Largest tool-axis force change seen (N)."""

    def touched(self):
        """Whether a reading since the last call exceeds the threshold."""
        self._arrival, readings = self.joint_states.wrenches_arrived_after(self._arrival)
        for stamp, force in readings:
            if stamp <= self._after:
                continue
            change = abs(float((force - self.baseline) @ self.axis))
            self.peak = max(self.peak, change)
            if change > self.threshold:
                return True
        return False
