"""
Motion backends: how a top-down TCP pose becomes arm motion.

`MotionBackend` is the interface the primitives use; `JointTrajectoryBackend` solves UR inverse
kinematics and streams trajectory_msgs-style joint trajectories to the joint trajectory
controller (ur_robot_driver's `scaled_joint_trajectory_controller`, or the MuJoCo cell), then
checks arrival on /joint_states. Its ROS I/O is injected as callables so the core stays
ROS-free. The MoveIt backend lives in `moveit_backend.py`.

Guarded moves stop on contact. With a tool wrench arriving (ur_robot_driver's
force_torque_sensor_broadcaster, or the MuJoCo cell's copy of it) a guarded move stops as soon
as the force along the tool axis has changed by more than `contact_force` since the move began
(the sensor is tared by the move itself: its offset drifts, only the change counts). Without a
recent wrench, and for every move besides, an arm that leaves its timed path or stands still
short of its target counts as blocked.
"""

from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass
import threading
import time

import numpy as np

from vpg_executor.safety import TargetRejected, TopDownPose
from vpg_executor.ur_kinematics import forward_kinematics, forward_kinematics_batch
from vpg_executor.ur_kinematics import inverse_kinematics, MODELS
from vpg_executor.ur_kinematics import nearest_solution

UR_JOINT_NAMES = ('shoulder_pan_joint', 'shoulder_lift_joint', 'elbow_joint',
                  'wrist_1_joint', 'wrist_2_joint', 'wrist_3_joint')


class MotionError(RuntimeError):
    """A motion that could not be planned or did not arrive; the arm stopped where it was."""


class MotionBackend(ABC):
    """What the primitives need from an arm with a parallel gripper."""

    @abstractmethod
    def move_to(self, pose, linear=False, guarded=False, speed=None):
        """
        Move the TCP to a TopDownPose; linear=True keeps the TCP on a straight line.

        guarded=True: the move may end early on contact (the arm blocked by an object); it
        then stops where it is and returns False. Unguarded moves raise MotionError when
        blocked. Returns True when the target was reached. speed: top TCP speed (m/s) of a
        guarded straight-line move; None = the backend's guarded speed, 0 = as fast as the
        joints allow (a descent through space known to be free).
        """

    @abstractmethod
    def move_joints(self, q):
        """Move to a joint configuration (home, drop-off)."""

    @abstractmethod
    def current_tcp_position(self):
        """TCP position (x, y, z) in the base frame now, from the joint states."""

    @abstractmethod
    def current_tcp_yaw(self):
        """Jaw-closing direction of the TCP now, radians in the base xy-plane."""

    @abstractmethod
    def set_gripper(self, closed):
        """Open or close the gripper; return the closure afterwards (0 open .. 1 closed)."""

    @abstractmethod
    def gripper_closure(self):
        """Return the current closure, 0 = fully open .. 1 = fully closed on nothing."""


class JointStateCache:
    """
    Latest joint positions by name, fed by the /joint_states callback, waited on by motions.

    Waits are measured on the joint states' own stamps when they carry one (the simulator's
    clock in simulation, wall time on the robot), so a simulator that runs slower than real
    time on a busy machine is not mistaken for a blocked arm; a wall-clock cap still ends a
    wait when the states stop coming.
    """

    CLOCK_JUMP = 1.0
    """s: a stamp this much older than the newest means the clock went back (not reordering)."""

    def __init__(self, wall_cap_factor=10.0, wrench_history=64):
        self._positions = {}
        self._name_stamps = {}
        self._condition = threading.Condition()
        self._updates = 0
        self._stamp = None
        self._closed = False
        self.wall_cap_factor = float(wall_cap_factor)
        # (arrival number, stamp s, force (3,) N in the tool frame), in order of arrival.
        self._wrenches = deque(maxlen=int(wrench_history))
        self._wrench_arrivals = 0

    def close(self):
        """End every wait now and refuse new ones (the node is shutting down)."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()

    def update(self, names, positions, stamp=None):
        """
        Store positions; stamp: the message's header stamp in seconds (None if unset).

        A joint whose stored position carries a newer stamp keeps it: callbacks on several
        threads can hand messages over out of order, and an older position taken as the
        newest would start the next trajectory from where the arm no longer is.
        """
        stamped = stamp is not None and stamp > 0
        with self._condition:
            if stamped and self._stamp is not None and stamp < self._stamp - self.CLOCK_JUMP:
                self._forget_time()
            for name, value in zip(names, positions):
                if stamped and self._name_stamps.get(name, 0.0) > stamp:
                    continue
                self._positions[name] = float(value)
                if stamped:
                    self._name_stamps[name] = float(stamp)
            self._updates += 1
            if stamped and (self._stamp is None or stamp > self._stamp):
                self._stamp = float(stamp)
            self._condition.notify_all()

    def reset_clock(self):
        """
        Forget every stamp (joint states and wrenches): the clock was set back.

        A simulator reset or a restored simulator state starts its clock earlier; the
        positions stay, and the next message's stamp is taken as the newest.
        """
        with self._condition:
            self._forget_time()

    def _forget_time(self):
        self._name_stamps.clear()
        self._stamp = None
        self._wrenches.clear()

    def update_wrench(self, force, stamp=None):
        """
        Store a tool force reading (3,) N in the tool frame; stamp: header stamp in seconds.

        Readings without a stamp are placed at the newest joint-state time (or the wall
        clock). Non-finite readings are ignored. Waits are woken, so a guarded move sees
        contact at the wrench rate.
        """
        force = np.asarray(force, dtype=float)
        if force.shape != (3,) or not np.all(np.isfinite(force)):
            return
        with self._condition:
            if stamp is None or stamp <= 0:
                stamp = self._stamp if self._stamp is not None else time.monotonic()
            self._wrench_arrivals += 1
            self._wrenches.append((self._wrench_arrivals, float(stamp), force))
            self._condition.notify_all()

    def wrenches_since(self, since):
        """Tool force readings (list of (stamp, force (3,))) stamped at or after since (s)."""
        with self._condition:
            return [(t, f) for _, t, f in self._wrenches if t >= since]

    def wrenches_arrived_after(self, arrival):
        """
        Return the readings that arrived after number `arrival`: (last number, readings).

        Readings are counted as they arrive, not by stamp: callbacks on several threads can
        hand an older reading over after a newer one, and a reader that went by stamps would
        skip it (a fingertip's landing spike was lost so).
        """
        with self._condition:
            return self._wrench_arrivals, [(t, f) for n, t, f in self._wrenches if n > arrival]

    def latest_wrench(self):
        """Newest (stamp, force (3,)) reading, or None."""
        with self._condition:
            if not self._wrenches:
                return None
            return max(((t, f) for _, t, f in self._wrenches), key=lambda reading: reading[0])

    def now(self):
        """Newest joint-state stamp (s), or the monotonic wall clock when states carry none."""
        with self._condition:
            return self._stamp if self._stamp is not None else time.monotonic()

    def get(self, names):
        """Positions for names (array), or None if any is unknown yet."""
        with self._condition:
            if any(name not in self._positions for name in names):
                return None
            return np.array([self._positions[name] for name in names])

    def wait_for(self, names, predicate, timeout):
        """
        Block until predicate(positions) holds; return the positions or None on timeout.

        timeout runs on the message stamps when they have one, else on the wall clock; the
        wall clock alone stops the wait after wall_cap_factor x timeout. Raises MotionError
        once close() was called.
        """
        wall_deadline = time.monotonic() + timeout * max(self.wall_cap_factor, 1.0)
        with self._condition:
            start_stamp = self._stamp
            wall_only = start_stamp is None
            if wall_only:
                wall_deadline = time.monotonic() + timeout
            while True:
                if self._closed:
                    raise MotionError('stopped waiting for the arm: the node is shutting down')
                if all(name in self._positions for name in names):
                    values = np.array([self._positions[name] for name in names])
                    if predicate(values):
                        return values
                if not wall_only and self._stamp - start_stamp >= timeout:
                    return None
                remaining = wall_deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._condition.wait(min(remaining, 0.5))


@dataclass(frozen=True)
class TrajectoryConfig:
    """Settings of the joint-trajectory backend."""

    model: str = 'ur5e'
    """UR model for kinematics: ur5, ur5e, or ur5e_menagerie (the MuJoCo cell)."""
    tcp_offset: float = 0.1558
    """TCP (between the fingertips) distance in front of tool0 along its z axis, metres."""
    tcp_yaw_offset: float = -np.pi / 2
    """Rotation of the jaw-closing axis from tool0's y axis about tool0's z axis, radians."""
    linear_step: float = 0.01
    """Spacing of IK waypoints on a straight-line move, metres."""
    max_joint_jump: float = 0.5
    """Largest joint change between neighbouring linear waypoints before refusing (rad)."""
    arrival_tolerance: float = 0.01
    """Every joint within this of the target counts as arrived, rad."""
    arrival_timeout_margin: float = 5.0
    """Seconds to wait for arrival beyond the trajectory's own duration."""
    path_tolerance: float = 0.05
    """
    A joint this far (rad) from where the trajectory has it within `path_lag` seconds of now
    means the arm is blocked: it is stopped where it is (as the joint trajectory
    controller's path tolerance aborts a goal).
    """
    path_lag: float = 0.3
    """Seconds the arm may run behind or ahead of the path's timing unnoticed."""
    start_motion: float = 0.03
    """A joint this far (rad) from the start marks the start of the path's clock."""
    stall_window: float = 0.15
    """After the trajectory's time (plus path_lag), an arm short of its target that moved..."""
    stall_motion: float = 0.002
    """...less than this (rad, any joint) during stall_window seconds is blocked."""
    min_move_duration: float = 0.3
    """Shortest trajectory, seconds, so tiny moves are not commanded as jumps."""
    contact_force: float = 20.0
    """
    A guarded move stops when the tool force along the tool axis has changed by more than
    this (N) since the move began; 0 disables it. The UR e-Series flange sensor is accurate
    to about 4 N (precision 3.5 N, UR5e datasheet): 20 N is five times that, well above
    noise and the tool's own inertia at the speeds used, and far below the forces that
    shove a 75 g block or the UR's 150 N protective-stop default.
    """
    guarded_speed: float = 0.05
    """
    Top TCP speed (m/s) of guarded straight-line moves; 0 = as fast as the joints allow.
    What the arm hits is met at this speed, and the impact, not the sensor, sets the peak
    force: landing a fingertip on a wooden top in the MuJoCo cell peaked at 75 N at 0.1 m/s
    and 23 N at 0.05 m/s (vpg_sim.fidelity_probes, limit 2.5 x contact_force). At 0.05 m/s
    one 10 ms wrench sample is 0.5 mm of travel (0.1 mm at the UR's 500 Hz).
    """
    wrench_max_age: float = 0.1
    """A wrench older than this (s, behind the joint states) is stale: no force guard."""
    wrench_baseline: float = 0.05
    """Seconds of readings before the move averaged as its zero (tare)."""
    gripper_closed_position: float = 0.7929
    """Finger joint position of the gripper closed on nothing (rad for the 2F-85 knuckle)."""
    gripper_joint: str = 'robotiq_85_left_knuckle_joint'
    gripper_max_effort: float = 50.0


def top_down_rotation(yaw):
    """base_R_tcp of a TCP pointing down whose jaws close along (cos yaw, sin yaw, 0)."""
    z = np.array([0.0, 0.0, -1.0])
    y = np.array([np.cos(yaw), np.sin(yaw), 0.0])
    return np.column_stack([np.cross(y, z), y, z])


def quintic_samples(q_from, q_to, duration, count):
    """Positions and velocities at `count` times along a rest-to-rest quintic profile."""
    q_from, q_to = np.asarray(q_from), np.asarray(q_to)
    times = np.linspace(duration / count, duration, count)
    s = times / duration
    pos = 10 * s ** 3 - 15 * s ** 4 + 6 * s ** 5
    vel = (30 * s ** 2 - 60 * s ** 3 + 30 * s ** 4) / duration
    positions = q_from + np.outer(pos, q_to - q_from)
    velocities = np.outer(vel, q_to - q_from)
    return times, positions, velocities


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


class TcpKinematics:
    """
    Where the TCP sits on a UR arm: the tool0 pose for a TCP pose, and the TCP for joints.

    Shared by the motion backends so a TopDownPose means the same arm pose whichever one runs.
    The TCP is `tcp_offset` along tool0's z axis, turned by `tcp_yaw_offset` about it.
    """

    def __init__(self, config):
        if config.model not in MODELS:
            raise ValueError(f'unknown UR model {config.model!r} (known: {sorted(MODELS)})')
        self.params = MODELS[config.model]
        tcp = np.eye(4)
        rz = np.array([[np.cos(config.tcp_yaw_offset), -np.sin(config.tcp_yaw_offset), 0],
                       [np.sin(config.tcp_yaw_offset), np.cos(config.tcp_yaw_offset), 0],
                       [0, 0, 1]])
        tcp[:3, :3] = rz
        tcp[:3, 3] = [0.0, 0.0, config.tcp_offset]
        self.tool0_T_tcp = tcp
        self.tcp_T_tool0 = np.linalg.inv(tcp)

    def tool_axis_in_tool0(self):
        """Return the TCP's approach axis (its z) in the tool0 (sensor) frame."""
        return self.tool0_T_tcp[:3, 2].copy()

    def tool0_pose(self, pose):
        """base_T_tool0 for a top-down TCP pose."""
        base_T_tcp = np.eye(4)
        base_T_tcp[:3, :3] = top_down_rotation(pose.yaw)
        base_T_tcp[:3, 3] = pose.position
        return base_T_tcp @ self.tcp_T_tool0

    def tcp_position(self, q):
        """TCP position in the base frame for joints q (forward kinematics)."""
        return (forward_kinematics(q, self.params) @ self.tool0_T_tcp)[:3, 3]

    def tcp_yaw(self, q):
        """Jaw-closing direction of the TCP for joints q, radians in the base xy-plane."""
        rotation = (forward_kinematics(q, self.params) @ self.tool0_T_tcp)[:3, :3]
        return float(np.arctan2(rotation[1, 1], rotation[0, 1]))

    def nearest_equivalent_yaw(self, pose, q_now):
        """Return pose with its yaw moved by a multiple of pi to the nearest of the wrist's."""
        current = self.tcp_yaw(q_now)
        delta = (pose.yaw - current + np.pi / 2) % np.pi - np.pi / 2
        return TopDownPose(pose.x, pose.y, pose.z, current + delta)

    def path_inside(self, path, envelope, tol=0.0):
        """Whether the TCP stays in the envelope box (grown by tol) at every joints row (N, 6)."""
        tcp = (forward_kinematics_batch(path, self.params) @ self.tool0_T_tcp)[:, :3, 3]
        env = envelope
        return bool(np.all((tcp[:, 0] >= env.x_min - tol) & (tcp[:, 0] <= env.x_max + tol)
                           & (tcp[:, 1] >= env.y_min - tol) & (tcp[:, 1] <= env.y_max + tol)
                           & (tcp[:, 2] >= env.z_min - tol) & (tcp[:, 2] <= env.z_max + tol)))


class ParallelGripper:
    """
    The fingers through an injected command callable, their closure read from joint states.

    command(position, max_effort) returns once the fingers settled (or its own timeout passed).
    """

    def __init__(self, config, joint_states, command):
        self.config = config
        self.joint_states = joint_states
        self._command = command

    def set_closed(self, closed):
        """Open or close; return the closure afterwards (0 open .. 1 closed)."""
        position = self.config.gripper_closed_position if closed else 0.0
        self._command(position, self.config.gripper_max_effort)
        return self.closure()

    def closure(self):
        """Return the current closure, 0 = fully open .. 1 = fully closed on nothing."""
        value = self.joint_states.get([self.config.gripper_joint])
        if value is None:
            raise MotionError(f'no joint state for {self.config.gripper_joint}')
        return float(value[0]) / self.config.gripper_closed_position


class JointTrajectoryBackend(MotionBackend):
    """
    IK + joint trajectories + arrival checks on joint states.

    publish_trajectory(joint_names, times, positions, velocities) sends one trajectory;
    gripper_command(position, max_effort) commands the fingers and returns once they settled
    (or its own timeout passed). Every pose and joint target passes the safety envelope.
    """

    def __init__(self, config, envelope, joint_states, publish_trajectory, gripper_command,
                 joint_names=UR_JOINT_NAMES):
        self.config = config
        self.envelope = envelope
        self.joint_states = joint_states
        self._publish = publish_trajectory
        self.gripper = ParallelGripper(config, joint_states, gripper_command)
        self.joint_names = tuple(joint_names)
        self.kinematics = TcpKinematics(config)
        self._params = self.kinematics.params
        self.commanded = []  # (kind, target) log of what was sent, newest last (bounded)
        self.last_guard = None
        """What guarded the last guarded move: 'force' (tool wrench) or 'path' (tracking)."""
        self.last_contact_force = None
        """Tool-axis force change (N) at the last force-guarded stop."""

    # --- kinematics -----------------------------------------------------------------------
    def tool0_pose(self, pose):
        """base_T_tool0 for a top-down TCP pose."""
        return self.kinematics.tool0_pose(pose)

    def tcp_position(self, q):
        """TCP position in the base frame for joints q (forward kinematics)."""
        return self.kinematics.tcp_position(q)

    def solve(self, pose, q_seed):
        """Joint angles reaching pose nearest q_seed within limits, or raise MotionError."""
        solutions = inverse_kinematics(self.tool0_pose(pose), self._params)
        q = nearest_solution(solutions, q_seed, self.envelope.joint_lower,
                             self.envelope.joint_upper)
        if q is None:
            raise MotionError(f'no reachable joint solution for {pose}')
        return q

    # --- motion ---------------------------------------------------------------------------
    def current_joints(self, timeout=2.0):
        q = self.joint_states.wait_for(self.joint_names, lambda _: True, timeout)
        if q is None:
            raise MotionError(f'no joint states for {self.joint_names} within {timeout} s')
        return q

    def current_tcp_position(self):
        return self.tcp_position(self.current_joints())

    def current_tcp_yaw(self):
        return self.tcp_yaw(self.current_joints())

    def move_to(self, pose, linear=False, guarded=False, speed=None):
        """
        Move the TCP to pose; every commanded waypoint's TCP stays inside the envelope.

        Returns True on arrival; a guarded move that is blocked stops and returns False.

        A joint-space move whose path would leave the envelope box becomes a straight-line move
        (the box is convex, so the line stays inside). The jaw yaw is taken modulo pi (a parallel
        gripper is symmetric) to turn the wrist least.
        """
        pose = self.envelope.check_pose(pose)
        q_now = self.current_joints()
        pose = self._nearest_equivalent_yaw(pose, q_now)
        if not linear:
            q = self.solve(pose, q_now)
            if self._joint_path_inside(q_now, q):
                return self._execute([q], q_now, guarded)
        return self._execute(self._linear_waypoints(q_now, pose), q_now, guarded, speed)

    def tcp_yaw(self, q):
        """Jaw-closing direction of the TCP for joints q, radians in the base xy-plane."""
        return self.kinematics.tcp_yaw(q)

    def _nearest_equivalent_yaw(self, pose, q_now):
        return self.kinematics.nearest_equivalent_yaw(pose, q_now)

    def _joint_path_inside(self, q_from, q_to, samples=200):
        path = q_from + np.linspace(0.0, 1.0, samples)[:, None] * (q_to - q_from)
        return self.kinematics.path_inside(path, self.envelope)

    def _linear_waypoints(self, q_now, pose):
        start = self.tcp_position(q_now)
        start_yaw = self.tcp_yaw(q_now)
        distance = float(np.linalg.norm(pose.position - start))
        turn = abs(pose.yaw - start_yaw)
        count = max(1, int(np.ceil(max(distance / self.config.linear_step, turn / 0.1))))
        waypoints, q_prev = [], q_now
        for i in range(1, count + 1):
            s = i / count
            p = start + (pose.position - start) * s
            waypoint = self.envelope.check_pose(
                TopDownPose(p[0], p[1], p[2], start_yaw + (pose.yaw - start_yaw) * s))
            q = self.solve(waypoint, q_prev)
            if np.max(np.abs(q - q_prev)) > self.config.max_joint_jump:
                raise MotionError('straight-line move would flip the arm configuration')
            waypoints.append(q)
            q_prev = q
        return waypoints

    def move_joints(self, q):
        q = self.envelope.check_joints(q)
        self._execute([q], self.current_joints())

    def _execute(self, waypoints, q_now, guarded=False, speed=None):
        for q in waypoints:
            self.envelope.check_joints(q)
        if len(waypoints) == 1:
            duration = max(self.config.min_move_duration,
                           1.875 * self.envelope.min_duration(q_now, waypoints[0]))
            times, positions, velocities = quintic_samples(q_now, waypoints[0], duration, 10)
        else:
            # Constant-speed pass through the waypoints, rest at the end only.
            steps = [self.envelope.min_duration(a, b) * 1.5
                     for a, b in zip([q_now] + waypoints[:-1], waypoints)]
            speed = self.config.guarded_speed if speed is None else speed
            if guarded and speed > 0:
                tcp = [self.tcp_position(q) for q in [q_now] + list(waypoints)]
                steps = [max(step, float(np.linalg.norm(b - a)) / speed)
                         for step, a, b in zip(steps, tcp[:-1], tcp[1:])]
            times = np.cumsum(np.maximum(steps, 0.02)) + 0.1
            positions = np.array(waypoints)
            velocities = np.gradient(positions, times, axis=0)
            velocities[-1] = 0.0
            duration = float(times[-1])
        self.commanded.append(('joints', positions[-1].copy()))
        del self.commanded[:-1000]
        self._publish(self.joint_names, times, positions, velocities)
        path = TrackedPath(np.concatenate([[0.0], times]), np.vstack([q_now, positions]),
                           self.config.path_lag)
        target = positions[-1]
        # The path's clock starts when the arm is seen leaving its start: delivery delays
        # then do not count against the arm (they are large in simulated seconds when the
        # simulator runs faster than real time).
        # Well above what an arm that just arrived may still drift, so the end of the last
        # move is not taken for the start of this one.
        start_motion = min(self.config.start_motion,
                           0.5 * float(np.max(np.abs(target - q_now))))
        leave_time = path.leave_time(start_motion)
        start = []
        stall = StallDetector(duration + self.config.path_lag, self.config.stall_window,
                              self.config.stall_motion)
        blocked = []
        contact = self._contact_monitor() if guarded else None
        if guarded:
            self.last_guard = 'force' if contact is not None else 'path'

        def arrived_or_blocked(q):
            if contact is not None and contact.touched():
                blocked.append((0.0, float(np.max(np.abs(q - target))), 0.0, q))
                return True
            if np.max(np.abs(q - target)) < self.config.arrival_tolerance:
                return True
            now = self.joint_states.now()
            if not start:
                if np.max(np.abs(q - q_now)) < start_motion:
                    return False
                # Seen late when this thread woke late: place it by where the arm is.
                start.append(now - max(leave_time, path.nearest_time(q)))
            t = now - start[0]
            error = path.error(q, t)
            if error > self.config.path_tolerance or stall.update(q, t):
                blocked.append((error, float(np.max(np.abs(q - target))), t, q))
                return True
            return False

        timeout = duration + self.config.arrival_timeout_margin
        q_end = self.joint_states.wait_for(self.joint_names, arrived_or_blocked, timeout)
        if q_end is None:
            q_last = self.joint_states.get(self.joint_names)
            off = '' if q_last is None else (
                f' (still {np.max(np.abs(q_last - target)):.3f} rad off, joint '
                f'{self.joint_names[int(np.argmax(np.abs(q_last - target)))]})')
            raise MotionError(f'arm did not reach its target within {timeout:.1f} s{off}')
        if not blocked:
            return True
        if contact is not None:
            self.last_contact_force = contact.peak
        present = path.at(self.joint_states.now() - start[0]) if start else q_now
        held, hold_time = self._hold(q_end, (q_now, target, present))
        # Return once the arm stands at the hold point, so that what the caller reads next
        # (the TCP height a finger landed at, the start of the next move) is where it is.
        self.joint_states.wait_for(
            self.joint_names,
            lambda q: np.max(np.abs(q - held)) < self.config.arrival_tolerance,
            hold_time + 1.0)
        if guarded:
            return False
        error, remaining, t, q = blocked[0]
        raise MotionError(
            f'arm blocked on its way: {error:.3f} rad off its path after {t:.2f} s of '
            f'{duration:.2f} s, {remaining:.3f} rad short of the target; joints '
            f'{np.round(q, 3).tolist()}, started at {np.round(q_now, 3).tolist()}')

    def _contact_monitor(self):
        """Make a ContactMonitor tared on the readings just before now (None: no wrench)."""
        if self.config.contact_force <= 0:
            return None
        latest = self.joint_states.latest_wrench()
        now = self.joint_states.now()
        if latest is None or now - latest[0] > self.config.wrench_max_age:
            return None
        readings = self.joint_states.wrenches_since(latest[0] - self.config.wrench_baseline)
        baseline = np.mean([f for _, f in readings], axis=0)
        axis = self.kinematics.tool_axis_in_tool0()
        return ContactMonitor(self.joint_states, baseline, axis, latest[0],
                              self.config.contact_force)

    def _hold(self, q, commanded):
        """
        Stop where the arm is: a short trajectory to its current position.

        Returns the hold point and the trajectory's duration (s).

        A new trajectory starts from the controller's commanded state, which runs ahead of a
        blocked arm; commanded lists where that may be (the path's start, its end, its
        estimated present), and the way back is timed within the speed limit from any.
        """
        q = self.envelope.check_joints(q)
        self.commanded.append(('joints', np.array(q, dtype=float)))
        duration = max([self.config.min_move_duration / 3]
                       + [1.5 * self.envelope.min_duration(c, q) for c in commanded])
        self._publish(self.joint_names, np.array([duration]), np.array([q]),
                      np.zeros((1, len(q))))
        return q, duration

    # --- gripper --------------------------------------------------------------------------
    def set_gripper(self, closed):
        return self.gripper.set_closed(closed)

    def gripper_closure(self):
        return self.gripper.closure()


__all__ = ['ContactMonitor', 'JointStateCache', 'JointTrajectoryBackend', 'MotionBackend',
           'MotionError', 'ParallelGripper', 'StallDetector', 'TargetRejected',
           'TcpKinematics', 'TrackedPath', 'TrajectoryConfig', 'UR_JOINT_NAMES',
           'quintic_samples', 'top_down_rotation']
