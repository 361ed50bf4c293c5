"""
Joint trajectories as the UR driver's joint trajectory controller takes them: check, then follow.

A trajectory names all six arm joints (any order) and lists points with positions and
optionally velocities and accelerations, timed by time_from_start. Like ros2_controllers'
joint_trajectory_controller, segments are interpolated linearly (positions only), as cubic
(positions + velocities) or quintic (positions + velocities + accelerations) splines; before the
first point the arm moves from where it is when the trajectory starts. After the last point the
arm holds it. Pure numpy.
"""

from dataclasses import dataclass

import numpy as np


class TrajectoryError(ValueError):
    """A trajectory the controller refuses; the message says why."""


@dataclass(frozen=True)
class TrajectoryPoint:
    """One point as received: positions, velocities, accelerations (possibly empty), time (s)."""

    positions: tuple
    velocities: tuple = ()
    accelerations: tuple = ()
    time_from_start: float = 0.0


@dataclass(frozen=True)
class Trajectory:
    """
    A checked trajectory in the controller's joint order.

    times (n,) seconds from start, strictly increasing; positions (n, 6) radians; velocities
    and accelerations (n, 6) or None when the points did not carry them.
    """

    times: np.ndarray
    positions: np.ndarray
    velocities: object = None
    accelerations: object = None

    @property
    def duration(self):
        return float(self.times[-1])


def _vectors(points, field, count, joint_order, required):
    rows = [getattr(p, field) for p in points]
    if all(len(r) == 0 for r in rows) and not required:
        return None
    for index, row in enumerate(rows):
        if len(row) != count:
            raise TrajectoryError(
                f'point {index} has {len(row)} {field} for {count} joints'
                + ('' if required else f' (give {field} for every point or for none)'))
    array = np.asarray(rows, dtype=np.float64)
    if not np.all(np.isfinite(array)):
        raise TrajectoryError(f'{field} contain NaN or infinite values')
    return array[:, joint_order]


def check_trajectory(joint_names, points, joints, lower, upper, max_velocity, current,
                     start_tolerance):
    """
    Check a received trajectory and return it as a Trajectory in the order of `joints`.

    joint_names: names in the message; points: TrajectoryPoint list; joints: the controller's
    joints; lower/upper (6,) position limits (rad); max_velocity (rad/s) bounds each
    segment's mean speed and any given velocity; current (6,): the arm's positions now, used
    for the move to the first point and, when that point is at time 0, to allow at most
    start_tolerance (rad) of jump. Raises TrajectoryError with a reason.
    """
    names = list(joint_names)
    unknown = sorted(set(names) - set(joints))
    if unknown:
        raise TrajectoryError(f'unknown joint names {unknown}; expected {list(joints)}')
    if len(set(names)) != len(names):
        raise TrajectoryError(f'duplicate joint names in {names}')
    missing = [j for j in joints if j not in names]
    if missing:
        raise TrajectoryError(f'missing joints {missing}: all of {list(joints)} are required')
    if not points:
        raise TrajectoryError('trajectory has no points')
    order = [names.index(j) for j in joints]
    positions = _vectors(points, 'positions', len(names), order, required=True)
    velocities = _vectors(points, 'velocities', len(names), order, required=False)
    accelerations = _vectors(points, 'accelerations', len(names), order, required=False)
    if accelerations is not None and velocities is None:
        raise TrajectoryError('accelerations given without velocities')

    times = np.array([p.time_from_start for p in points], dtype=np.float64)
    if not np.all(np.isfinite(times)) or np.any(times < 0.0):
        raise TrajectoryError(f'time_from_start must be finite and >= 0, got {times.tolist()}')
    if np.any(np.diff(times) <= 0.0):
        raise TrajectoryError(f'time_from_start must strictly increase, got {times.tolist()}')

    lower = np.asarray(lower)
    upper = np.asarray(upper)
    outside = (positions < lower) | (positions > upper)
    if np.any(outside):
        point, joint = np.argwhere(outside)[0]
        raise TrajectoryError(
            f'point {point}: {joints[joint]} = {positions[point, joint]:.4f} rad is outside '
            f'its limits [{lower[joint]:.4f}, {upper[joint]:.4f}]')

    current = np.asarray(current, dtype=np.float64)
    if times[0] == 0.0:
        jump = np.max(np.abs(positions[0] - current))
        if jump > start_tolerance:
            raise TrajectoryError(
                f'first point is at time 0 but {jump:.3f} rad away from the current '
                f'position (tolerance {start_tolerance} rad)')
        starts, ends, durations = positions[:-1], positions[1:], np.diff(times)
    else:
        starts = np.vstack([current, positions[:-1]])
        ends = positions
        durations = np.diff(np.concatenate([[0.0], times]))
    if len(durations):
        speeds = np.max(np.abs(ends - starts), axis=1) / durations
        if np.max(speeds) > max_velocity:
            segment = int(np.argmax(speeds))
            raise TrajectoryError(
                f'segment {segment} needs {speeds[segment]:.2f} rad/s on average, above the '
                f'{max_velocity:.2f} rad/s limit')
    if velocities is not None and np.max(np.abs(velocities)) > max_velocity:
        raise TrajectoryError(f'a point velocity exceeds the {max_velocity:.2f} rad/s limit')
    return Trajectory(times=times, positions=positions, velocities=velocities,
                      accelerations=accelerations)


def _segment(q0, v0, a0, q1, v1, a1, duration, t, kind):
    """Position, velocity and acceleration at t in [0, duration] of one spline segment."""
    if kind == 'linear':
        s = t / duration
        return q0 + (q1 - q0) * s, (q1 - q0) / duration, np.zeros_like(q0)
    T = duration
    if kind == 'cubic':
        c0, c1 = q0, v0
        c2 = (3 * (q1 - q0) - (2 * v0 + v1) * T) / T ** 2
        c3 = (2 * (q0 - q1) + (v0 + v1) * T) / T ** 3
        return (c0 + c1 * t + c2 * t ** 2 + c3 * t ** 3,
                c1 + 2 * c2 * t + 3 * c3 * t ** 2,
                2 * c2 + 6 * c3 * t)
    c0, c1, c2 = q0, v0, a0 / 2
    h = q1 - q0 - v0 * T - a0 * T ** 2 / 2
    c3 = (20 * h - (8 * v1 + 12 * v0) * T - (3 * a0 - a1) * T ** 2) / (2 * T ** 3)
    c4 = (-30 * h + (14 * v1 + 16 * v0) * T + (3 * a0 - 2 * a1) * T ** 2) / (2 * T ** 4)
    c5 = (12 * h - 6 * (v1 + v0) * T - (a0 - a1) * T ** 2) / (2 * T ** 5)
    return (c0 + c1 * t + c2 * t ** 2 + c3 * t ** 3 + c4 * t ** 4 + c5 * t ** 5,
            c1 + 2 * c2 * t + 3 * c3 * t ** 2 + 4 * c4 * t ** 3 + 5 * c5 * t ** 4,
            2 * c2 + 6 * c3 * t + 12 * c4 * t ** 2 + 20 * c5 * t ** 3)


class TrajectoryFollower:
    """Samples a Trajectory started at start_time from the arm state at that moment."""

    def __init__(self, trajectory, start_time, start_position, start_velocity):
        self.trajectory = trajectory
        self.start_time = float(start_time)
        self._start_position = np.asarray(start_position, dtype=np.float64).copy()
        has_velocity = trajectory.velocities is not None
        self._start_velocity = (np.asarray(start_velocity, dtype=np.float64).copy()
                                if has_velocity else np.zeros(len(self._start_position)))
        if trajectory.accelerations is not None:
            self._kind = 'quintic'
        elif has_velocity:
            self._kind = 'cubic'
        else:
            self._kind = 'linear'

    @property
    def end_time(self):
        return self.start_time + self.trajectory.duration

    def _point(self, index):
        traj = self.trajectory
        zeros = np.zeros(traj.positions.shape[1])
        if index < 0:
            return self._start_position, self._start_velocity, zeros, 0.0
        velocity = traj.velocities[index] if traj.velocities is not None else zeros
        acceleration = traj.accelerations[index] if traj.accelerations is not None else zeros
        return traj.positions[index], velocity, acceleration, traj.times[index]

    def sample(self, time):
        """Desired (positions, velocities, accelerations), each (6,), at `time` (s)."""
        traj = self.trajectory
        t = time - self.start_time
        zeros = np.zeros(traj.positions.shape[1])
        if t <= 0.0:
            if traj.times[0] == 0.0:
                return traj.positions[0].copy(), zeros, zeros.copy()
            return self._start_position.copy(), zeros, zeros.copy()
        if t >= traj.times[-1]:
            return traj.positions[-1].copy(), zeros, zeros.copy()
        index = int(np.searchsorted(traj.times, t, side='right'))  # first point after t
        q0, v0, a0, t0 = self._point(index - 1)
        q1, v1, a1, t1 = self._point(index)
        return _segment(q0, v0, a0, q1, v1, a1, t1 - t0, t - t0, self._kind)
