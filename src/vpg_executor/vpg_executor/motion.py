"""
Motion backends: how a top-down TCP pose becomes arm motion.

`MotionBackend` is the interface the primitives use. What every backend shares is here: the
joint-state cache motions wait on, the arm's settings, where the TCP sits on the arm, and the
gripper read from joint states. The backends: `JointTrajectoryBackend` (trajectory_backend.py)
streams joint trajectories to the joint trajectory controller; the MoveIt backend lives in
moveit_backend.py.
"""

from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass
import threading
import time

import numpy as np
from vpg_common.driver_names import GRIPPER_JOINT
from vpg_executor.safety import TopDownPose
from vpg_executor.ur_kinematics import forward_kinematics, forward_kinematics_batch, MODELS


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

    def stamp(self):
        """Return the newest joint-state time in seconds; None before the first stamped state."""
        with self._condition:
            return self._stamp

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
    gripper_joint: str = GRIPPER_JOINT
    gripper_max_effort: float = 50.0


def top_down_rotation(yaw):
    """base_R_tcp of a TCP pointing down whose jaws close along (cos yaw, sin yaw, 0)."""
    z = np.array([0.0, 0.0, -1.0])
    y = np.array([np.cos(yaw), np.sin(yaw), 0.0])
    return np.column_stack([np.cross(y, z), y, z])


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
