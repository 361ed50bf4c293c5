"""Blocked arms: path tracking, stall detection, guarded moves that stop on contact."""

import threading
import time

import numpy as np
import pytest
from vpg_common.driver_names import UR_JOINTS
from vpg_executor.guarded_motion import ContactMonitor, StallDetector, TrackedPath
from vpg_executor.motion import JointStateCache, MotionError, TrajectoryConfig
from vpg_executor.primitives import PrimitiveConfig, PrimitiveExecutor
from vpg_executor.safety import SafetyEnvelope, TopDownPose
from vpg_executor.trajectory_backend import JointTrajectoryBackend

HOME = np.array([-0.7342, -2.395, 1.9908, -1.1666, -1.5708, 0.8366])
GRIPPER = 'robotiq_85_left_knuckle_joint'


def test_tracked_path_measures_distance_from_the_timed_path():
    path = TrackedPath([0.0, 1.0], [[0.0, 0.0], [1.0, -1.0]], lag=0.1)
    np.testing.assert_allclose(path.at(0.5), [0.5, -0.5])
    assert path.error([0.5, -0.5], 0.5) == 0.0
    assert path.error([0.45, -0.45], 0.5) == 0.0          # within the lag window
    assert path.error([0.2, -0.2], 0.5) == pytest.approx(0.2)  # 0.3 behind, window to 0.4
    assert path.error([0.9, -0.9], 0.5) == pytest.approx(0.3)  # ahead of the window's 0.6
    assert path.error([1.0, -1.0], 5.0) == 0.0            # after the end: the end point
    assert path.leave_time(0.25) == pytest.approx(0.25, abs=0.01)


def test_stall_detector_waits_for_the_trajectory_time_then_for_stillness():
    stall = StallDetector(after=1.0, window=0.2, motion=0.01)
    still = np.zeros(6)
    assert not any(stall.update(still, t) for t in np.arange(0.0, 1.0, 0.05))
    assert not stall.update(still, 1.05)
    assert not stall.update(still, 1.15)
    assert stall.update(still, 1.30)
    moving = StallDetector(after=1.0, window=0.2, motion=0.01)
    assert not any(moving.update(still + 0.05 * t, t) for t in np.arange(1.0, 2.0, 0.05))


class BlockedArm:
    """
    An arm on simulated time (100 Hz states) whose TCP cannot go below `floor_z`.

    It follows each trajectory, and freezes where the path first crosses the floor, as on
    an object.
    """

    def __init__(self, floor_z):
        self.floor_z = floor_z
        self.cache = JointStateCache()
        self.time = 100.0
        self.q = HOME.copy()
        self.finger = 0.0
        self.trajectories = []
        self.backend = None
        self._lock = threading.Lock()
        self._path = None
        self._stop = threading.Event()
        self._publish_state()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _publish_state(self):
        self.cache.update(list(UR_JOINTS) + [GRIPPER], list(self.q) + [self.finger],
                          stamp=self.time)

    def _run(self):
        while not self._stop.is_set():
            with self._lock:
                self.time += 0.01
                if self._path is not None:
                    start, times, positions = self._path
                    path = TrackedPath(times, positions, 0.0)
                    q = path.at(self.time - start)
                    if self.backend.tcp_position(q)[2] >= self.floor_z:
                        self.q = q
                self._publish_state()
            time.sleep(0.001)

    def publish(self, names, times, positions, velocities):
        with self._lock:
            self.trajectories.append(np.array(positions))
            self._path = (self.time, np.concatenate([[0.0], times]),
                          np.vstack([self.q, positions]))

    def gripper(self, position, max_effort):
        with self._lock:
            self.finger = position
            self._publish_state()

    def close(self):
        self._stop.set()
        self._thread.join()

    def attach_backend(self, tool_contact=None, **config):
        """Drive this arm with a JointTrajectoryBackend (TrajectoryConfig fields in config)."""
        self.backend = JointTrajectoryBackend(
            TrajectoryConfig(model='ur5e_menagerie', **config),
            SafetyEnvelope(max_joint_speed=2.0), self.cache, self.publish, self.gripper,
            tool_contact=tool_contact)
        return self


def assert_held_at(arm, z):
    """Check that the last trajectory is a single point (stay here) with the TCP at z."""
    hold = arm.trajectories[-1]
    assert hold.shape[0] == 1
    assert arm.backend.tcp_position(hold[-1])[2] == pytest.approx(z, abs=1e-6)


@pytest.fixture
def blocked_arm():
    arm = BlockedArm(floor_z=0.06)
    arm.attach_backend()
    yield arm
    arm.close()


def test_guarded_descent_stops_on_contact_and_holds(blocked_arm):
    backend = blocked_arm.backend
    assert backend.move_to(TopDownPose(-0.5, 0.0, 0.15, 0.0))
    started = time.monotonic()
    assert not backend.move_to(TopDownPose(-0.5, 0.0, 0.02, 0.0), linear=True, guarded=True)
    assert time.monotonic() - started < 5.0  # far less than the 5 s arrival margin on top
    z = backend.current_tcp_position()[2]
    assert 0.055 < z < 0.075
    assert_held_at(blocked_arm, z)


def test_unguarded_blocked_move_raises_motion_error_quickly(blocked_arm):
    backend = blocked_arm.backend
    backend.move_to(TopDownPose(-0.5, 0.0, 0.15, 0.0))
    started = time.monotonic()
    with pytest.raises(MotionError, match='blocked'):
        backend.move_to(TopDownPose(-0.5, 0.0, 0.02, 0.0), linear=True)
    assert time.monotonic() - started < 5.0


def test_push_goes_on_from_where_the_fingers_landed(blocked_arm):
    backend = blocked_arm.backend
    PrimitiveExecutor(backend).push((-0.5, 0.0, 0.08), 0.0)
    # The stroke ran at the contact height, then the arm retreated upwards.
    strokes = [t for t in blocked_arm.trajectories if len(t) > 3]
    heights = [[backend.tcp_position(q)[2] for q in t] for t in strokes]
    stroke = next(h for h in heights if np.ptp(h) < 0.005)
    assert 0.055 < np.mean(stroke) < 0.075


class SensingArm(BlockedArm):
    """
    BlockedArm with a flange force sensor: a spring floor under the fingertips.

    Below `touch_z` the TCP meets a stiff spring (N/m) before the rigid floor at floor_z;
    the sensor reads that force along the tool axis plus an offset and noise (seeded), at
    the joint-state rate, unless `sensing` is False.
    """

    def __init__(self, touch_z, floor_z, stiffness=8000.0, offset=(3.0, -2.0, 7.0),
                 noise=1.0, sensing=True):
        self.touch_z, self.stiffness = touch_z, stiffness
        self.offset, self.noise, self.sensing = np.asarray(offset), noise, sensing
        self.rng = np.random.default_rng(0)
        self.min_z = np.inf
        self.durations = []
        super().__init__(floor_z)

    def publish(self, names, times, positions, velocities):
        self.durations.append(float(times[-1]))
        super().publish(names, times, positions, velocities)

    def _publish_state(self):
        super()._publish_state()
        if not self.sensing or self.backend is None:
            return
        z = self.backend.tcp_position(self.q)[2]
        self.min_z = min(self.min_z, z)
        force = self.offset + self.rng.normal(0.0, self.noise, 3)
        force[2] -= self.stiffness * max(0.0, self.touch_z - z)  # pushes the tool back up
        self.cache.update_wrench(force, stamp=self.time)


def sensing_arm(**kwargs):
    arm = SensingArm(**kwargs)
    return arm.attach_backend(contact_force=20.0, guarded_speed=0.05)


def test_guarded_descent_stops_on_the_tool_force_within_millimetres():
    arm = sensing_arm(touch_z=0.08, floor_z=0.0)
    try:
        backend = arm.backend
        assert backend.move_to(TopDownPose(-0.5, 0.0, 0.15, 0.0))
        assert not backend.move_to(TopDownPose(-0.5, 0.0, 0.02, 0.0), linear=True,
                                   guarded=True)
        assert backend.last_guard == 'force'
        # 20 N over an 8 kN/m spring is 2.5 mm; one 10 ms sample at 0.05 m/s adds 0.5 mm.
        z = backend.current_tcp_position()[2]
        assert 0.08 - 0.006 < z < 0.08
        assert 20.0 < backend.last_contact_force < 60.0
        assert_held_at(arm, z)
    finally:
        arm.close()


def test_force_guard_tares_the_offset_and_ignores_noise():
    # A 60 N offset along the tool axis and 1 N noise: only the change may count.
    arm = sensing_arm(touch_z=-1.0, floor_z=-1.0, offset=(0.0, 0.0, 60.0))
    try:
        backend = arm.backend
        backend.move_to(TopDownPose(-0.5, 0.0, 0.15, 0.0))
        assert backend.move_to(TopDownPose(-0.5, 0.0, 0.03, 0.0), linear=True, guarded=True)
        assert backend.last_guard == 'force'
    finally:
        arm.close()


def test_without_a_wrench_the_path_guard_still_stops_a_blocked_descent():
    arm = sensing_arm(touch_z=0.06, floor_z=0.06, sensing=False)
    try:
        backend = arm.backend
        backend.move_to(TopDownPose(-0.5, 0.0, 0.15, 0.0))
        assert not backend.move_to(TopDownPose(-0.5, 0.0, 0.02, 0.0), linear=True,
                                   guarded=True)
        assert backend.last_guard == 'path'
        assert 0.055 < backend.current_tcp_position()[2] < 0.075
    finally:
        arm.close()


def test_a_stale_wrench_leaves_the_path_guard_in_charge():
    arm = sensing_arm(touch_z=0.06, floor_z=0.06, sensing=False)
    try:
        arm.cache.update_wrench((0.0, 0.0, 0.0), stamp=1.0)  # long before the joint states
        backend = arm.backend
        backend.move_to(TopDownPose(-0.5, 0.0, 0.15, 0.0))
        assert not backend.move_to(TopDownPose(-0.5, 0.0, 0.02, 0.0), linear=True,
                                   guarded=True)
        assert backend.last_guard == 'path'
    finally:
        arm.close()


def test_guarded_moves_keep_to_the_guarded_speed():
    arm = sensing_arm(touch_z=-1.0, floor_z=-1.0)
    try:
        backend = arm.backend
        backend.move_to(TopDownPose(-0.5, 0.0, 0.15, 0.0))
        backend.move_to(TopDownPose(-0.5, 0.0, 0.05, 0.0), linear=True, guarded=True)
        guarded = arm.durations[-1]
        backend.move_to(TopDownPose(-0.5, 0.0, 0.15, 0.0), linear=True)
        unguarded = arm.durations[-1]
        assert guarded >= 0.1 / 0.05  # 10 cm at 0.05 m/s
        assert unguarded < 0.5 * guarded
    finally:
        arm.close()


def test_non_finite_wrench_readings_are_ignored():
    cache = JointStateCache()
    cache.update_wrench((np.nan, 0.0, 0.0), stamp=1.0)
    cache.update_wrench((1.0, 2.0), stamp=1.0)
    assert cache.latest_wrench() is None
    cache.update_wrench((1.0, 2.0, 3.0), stamp=2.0)
    stamp, force = cache.latest_wrench()
    assert stamp == 2.0 and force.tolist() == [1.0, 2.0, 3.0]


def test_a_force_spike_handed_over_after_a_newer_reading_is_still_seen():
    """A landing fingertip shows as one or two readings; callback threads can reorder them."""
    cache = JointStateCache()
    for k in range(5):
        cache.update_wrench((0.0, 0.0, 1.0), stamp=1.0 + 0.01 * k)
    monitor = ContactMonitor(cache, np.array([0.0, 0.0, 1.0]), np.array([0.0, 0.0, 1.0]),
                             after=1.04, threshold=20.0)
    cache.update_wrench((0.0, 0.0, 1.0), stamp=1.06)  # the newer reading comes first
    assert not monitor.touched()
    cache.update_wrench((0.0, 0.0, -37.0), stamp=1.05)  # the spike, handed over late
    assert monitor.touched() and monitor.peak == pytest.approx(38.0)
    cache.update_wrench((0.0, 0.0, 40.0), stamp=1.03)  # from before the move: not its contact
    assert not monitor.touched()


def test_an_older_joint_state_handed_over_late_does_not_replace_a_newer_one():
    cache = JointStateCache()
    cache.update(['a', 'b'], [1.0, 1.0], stamp=10.0)
    cache.update(['a', 'b'], [0.5, 0.5], stamp=9.8)  # reordered by the callback threads
    assert cache.get(['a', 'b']).tolist() == [1.0, 1.0] and cache.now() == 10.0
    cache.update(['b'], [2.0], stamp=10.1)
    cache.update(['a'], [3.0], stamp=10.05)  # older than b's, but a's newest
    assert cache.get(['a', 'b']).tolist() == [3.0, 2.0] and cache.now() == 10.1


def test_a_clock_set_back_is_followed_not_ignored():
    cache = JointStateCache()
    cache.update(['a'], [1.0], stamp=50.0)
    cache.update_wrench((0.0, 0.0, 5.0), stamp=50.0)
    cache.update(['a'], [2.0], stamp=3.0)  # a simulator reset: the clock starts again
    assert cache.get(['a']).tolist() == [2.0] and cache.now() == 3.0
    assert cache.latest_wrench() is None  # readings from before the reset are gone
    cache.update(['a'], [4.0], stamp=49.5)
    cache.reset_clock()  # a restored simulator state, any distance back
    cache.update(['a'], [5.0], stamp=49.0)
    assert cache.get(['a']).tolist() == [5.0] and cache.now() == 49.0


def test_grasp_that_lands_on_something_rises_by_the_fingertip_dip_before_closing():
    arm = sensing_arm(touch_z=0.08, floor_z=0.0)
    try:
        config = PrimitiveConfig()
        PrimitiveExecutor(arm.backend, config).grasp((-0.5, 0.0, 0.06), 0.0)
        # Where the descent was stopped and held (a one-point trajectory), and the move
        # commanded next: straight up by contact_lift, before the fingers close.
        index = next(i for i, t in enumerate(arm.trajectories) if t.shape[0] == 1)
        stop_z = arm.backend.tcp_position(arm.trajectories[index][-1])[2]
        assert 0.07 < stop_z < 0.08
        rise_z = arm.backend.tcp_position(arm.trajectories[index + 1][-1])[2]
        assert rise_z - stop_z == pytest.approx(config.contact_lift, abs=1e-3)
    finally:
        arm.close()


class ControllerStop:
    """
    The robot controller's tool contact stop, as the backend's `tool_contact` sees it.

    BlockedArm freezes at its floor, as a controller that stopped on contact would; this fake
    reports the stop once the TCP is there. refuse=True: the controller refuses the goal.
    """

    def __init__(self, arm, refuse=False):
        self.arm, self.refuse = arm, refuse
        self.started = self.ended = 0

    def start(self):
        if self.refuse:
            return None
        self.started += 1
        return self

    def triggered(self):
        return self.arm.backend.tcp_position(self.arm.q)[2] < self.arm.floor_z + 0.002

    def end(self):
        self.ended += 1


def controller_stop_arm(refuse=False):
    arm = BlockedArm(floor_z=0.06)
    stop = ControllerStop(arm, refuse)
    return arm.attach_backend(tool_contact=stop), stop


def test_a_guarded_descent_arms_the_controller_stop_and_ends_it():
    arm, stop = controller_stop_arm()
    try:
        backend = arm.backend
        assert backend.move_to(TopDownPose(-0.5, 0.0, 0.15, 0.0))
        assert stop.started == 0  # an unguarded move does not arm it
        started = time.monotonic()
        assert not backend.move_to(TopDownPose(-0.5, 0.0, 0.02, 0.0), linear=True,
                                   guarded=True)
        assert time.monotonic() - started < 5.0
        assert (stop.started, stop.ended) == (1, 1)
        assert backend.last_guard == 'tool_contact'
        assert backend.last_stopped_by == 'tool_contact'
        # Stopped at the floor, not 2 cm of path error later; then held there.
        z = backend.current_tcp_position()[2]
        assert 0.06 <= z < 0.0625
        assert_held_at(arm, z)
    finally:
        arm.close()


def test_a_push_stroke_is_not_guarded_by_the_controller_stop():
    arm, stop = controller_stop_arm()
    try:
        backend = arm.backend
        backend.move_to(TopDownPose(-0.5, 0.0, 0.10, 0.0))
        assert backend.move_to(TopDownPose(-0.45, 0.0, 0.10, 0.0), linear=True, guarded=True)
        assert stop.started == 0
        assert backend.last_guard == 'path'
    finally:
        arm.close()


def test_a_refused_controller_stop_leaves_the_path_guard_in_charge():
    arm, stop = controller_stop_arm(refuse=True)
    try:
        backend = arm.backend
        backend.move_to(TopDownPose(-0.5, 0.0, 0.15, 0.0))
        assert not backend.move_to(TopDownPose(-0.5, 0.0, 0.02, 0.0), linear=True,
                                   guarded=True)
        assert backend.last_guard == 'path' and backend.last_stopped_by == 'path'
        assert stop.ended == 0
    finally:
        arm.close()
