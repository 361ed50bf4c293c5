"""Safety envelope, primitives and the joint-trajectory backend against an instant fake arm."""

import numpy as np
import pytest
from vpg_common.driver_names import UR_JOINTS
from vpg_executor.motion import JointStateCache, MotionError, TrajectoryConfig
from vpg_executor.primitives import highest_point_near, holding, PrimitiveConfig, PrimitiveExecutor
from vpg_executor.safety import SafetyEnvelope, TargetRejected, TopDownPose
from vpg_executor.trajectory_backend import JointTrajectoryBackend

HOME = np.array([0.0, -1.5708, 1.5708, -1.5708, -1.5708, 0.0])


class InstantArm:
    """Joint states jump to each trajectory's last point; the gripper to its command."""

    def __init__(self, grip_stop=None):
        self.cache = JointStateCache()
        self.cache.update(UR_JOINTS, HOME)
        self.cache.update(['robotiq_85_left_knuckle_joint'], [0.0])
        self.trajectories = []
        self.grip_stop = grip_stop  # finger position where an object stops the fingers

    def publish(self, names, times, positions, velocities):
        assert np.all(np.diff(times) > 0)
        self.trajectories.append(np.array(positions))
        self.cache.update(names, positions[-1])

    def gripper(self, position, max_effort):
        if self.grip_stop is not None and position > self.grip_stop:
            position = self.grip_stop
        self.cache.update(['robotiq_85_left_knuckle_joint'], [position])


def make_backend(arm, envelope=None, model='ur5e_menagerie'):
    return JointTrajectoryBackend(TrajectoryConfig(model=model), envelope or SafetyEnvelope(),
                                  arm.cache, arm.publish, arm.gripper)


def test_move_to_reaches_the_pose_by_forward_kinematics():
    arm = InstantArm()
    backend = make_backend(arm)
    target = TopDownPose(-0.5, 0.1, 0.05, 0.3)
    backend.move_to(target)
    q = arm.cache.get(UR_JOINTS)
    np.testing.assert_allclose(backend.tcp_position(q), target.position, atol=1e-6)
    rotation = (backend.tool0_pose(target))[:3, :3]
    assert rotation[2, 2] == pytest.approx(-1.0)  # tool0 z points down


def test_linear_move_stays_on_the_line():
    arm = InstantArm()
    backend = make_backend(arm)
    backend.move_to(TopDownPose(-0.6, -0.1, 0.03, 0.0))
    backend.move_to(TopDownPose(-0.5, -0.1, 0.03, 0.0), linear=True)
    path = np.array([backend.tcp_position(q) for q in arm.trajectories[-1]])
    assert len(path) >= 10
    np.testing.assert_allclose(path[:, 1], -0.1, atol=1e-6)
    np.testing.assert_allclose(path[:, 2], 0.03, atol=1e-6)


@pytest.mark.parametrize('pose', [TopDownPose(np.nan, 0, 0.1, 0), TopDownPose(-0.5, 0, np.inf, 0),
                                  TopDownPose(5.0, 0, 0.1, 0), TopDownPose(-0.5, 0, 3.0, 0)])
def test_bad_poses_are_refused_without_motion(pose):
    arm = InstantArm()
    with pytest.raises(TargetRejected):
        make_backend(arm).move_to(pose)
    assert arm.trajectories == []


def test_below_table_is_raised_to_the_minimum_height():
    envelope = SafetyEnvelope()
    assert envelope.check_pose(TopDownPose(-0.5, 0, -0.3, 0)).z == envelope.z_min


def test_grasp_success_reads_the_fingers():
    config = PrimitiveConfig()
    ok = PrimitiveExecutor(make_backend(InstantArm(grip_stop=0.5)), config)
    assert ok.grasp((-0.5, 0.0, 0.03), 0.2).success
    empty = PrimitiveExecutor(make_backend(InstantArm()), config)
    outcome = empty.grasp((-0.5, 0.0, 0.03), 0.2)
    assert not outcome.success and outcome.closure == pytest.approx(1.0)
    assert holding(0.5, config) and not holding(0.0, config) and not holding(0.99, config)


def test_push_moves_ten_centimetres_along_the_angle_and_clips_to_the_workspace():
    arm = InstantArm()
    executor = PrimitiveExecutor(make_backend(arm))
    executor.push((-0.5, 0.0, 0.0), np.pi / 2)
    backend = executor.backend
    stroke = arm.trajectories[-2]  # the straight push before the retreat
    start, end = backend.tcp_position(stroke[0]), backend.tcp_position(stroke[-1])
    np.testing.assert_allclose(end - start, [0.0, 0.1 - 0.01, 0.0], atol=2e-3)
    assert executor.push_end(-0.3, 0.2, 0.0) == (-0.276, 0.2)


def test_targets_outside_the_workspace_are_refused_before_moving():
    arm = InstantArm()
    executor = PrimitiveExecutor(make_backend(arm))
    with pytest.raises(TargetRejected):
        executor.grasp((0.4, 0.0, 0.0), 0.0)
    with pytest.raises(TargetRejected):
        executor.push((-0.5, np.nan, 0.0), 0.0)
    assert arm.trajectories == []


def test_unreachable_target_raises_motion_error():
    arm = InstantArm()
    envelope = SafetyEnvelope(x_min=-3, x_max=3, y_min=-3, y_max=3)
    with pytest.raises(MotionError):
        make_backend(arm, envelope).move_to(TopDownPose(-1.5, 0.0, 0.1, 0.0))


def adversarial_values(rng, n, low, high):
    """Uniform values in [low, high], a fifth of them replaced by hostile or boundary ones."""
    pool = np.array([np.nan, np.inf, -np.inf, 1e9, -1e9, 0.0, -0.724, -0.276, 0.224, -0.224,
                     -0.15, -0.85, 0.55, -1.0, 1e-12])
    values = rng.uniform(low, high, n)
    mask = rng.random(n) < 0.2
    values[mask] = rng.choice(pool, mask.sum())
    return values


@pytest.mark.slow
def test_fuzz_ten_thousand_targets_never_leave_the_envelope():
    """Every commanded joint target's TCP is inside the envelope, whatever comes in."""
    rng = np.random.default_rng(42)
    envelope = SafetyEnvelope()
    arm = InstantArm()
    backend = make_backend(arm, envelope)
    executor = PrimitiveExecutor(backend)
    n = 10000
    xs = adversarial_values(rng, n, -1.0, 0.0)
    ys = adversarial_values(rng, n, -0.6, 0.6)
    zs = adversarial_values(rng, n, -0.2, 0.7)
    angles = adversarial_values(rng, n, -7.0, 7.0)
    kinds = rng.integers(0, 3, n)
    outcomes = {'moved': 0, 'refused': 0, 'motion_error': 0}
    for x, y, z, angle, kind in zip(xs, ys, zs, angles, kinds):
        before = len(arm.trajectories)
        try:
            if kind == 0:
                backend.move_to(TopDownPose(x, y, z, angle), linear=bool(rng.integers(2)))
            elif kind == 1:
                executor.push((x, y, z), angle)
            else:
                executor.grasp((x, y, z), angle)
            outcomes['moved'] += 1
        except TargetRejected:
            outcomes['refused'] += 1
        except MotionError:
            outcomes['motion_error'] += 1
        for trajectory in arm.trajectories[before:]:
            for q in trajectory:
                assert np.all(np.isfinite(q))
                assert np.all(q >= np.array(envelope.joint_lower))
                assert np.all(q <= np.array(envelope.joint_upper))
                tcp = backend.tcp_position(q)
                assert envelope.contains_pose(TopDownPose(*tcp, 0.0), tol=1e-6), tcp
        del arm.trajectories[:]
    print(outcomes)
    assert outcomes['moved'] > 1000 and outcomes['refused'] > 1000


def test_go_home_from_among_the_objects_rises_straight_up_first():
    arm = InstantArm()
    executor = PrimitiveExecutor(make_backend(arm))
    backend, config = executor.backend, executor.config
    backend.move_to(TopDownPose(-0.5, 0.1, 0.04, 0.3))  # a primitive cut short, fingers low
    before = len(arm.trajectories)
    executor.go_home()
    rise, home = arm.trajectories[before:]
    path = np.array([backend.tcp_position(q) for q in rise])
    np.testing.assert_allclose(path[:, :2], [[-0.5, 0.1]] * len(path), atol=1e-6)
    assert np.all(np.diff(path[:, 2]) > 0)
    assert path[-1, 2] == pytest.approx(config.retreat_height)
    np.testing.assert_allclose(home[-1], config.home_joints)
    # From above the retreat height the arm goes home in one move.
    backend.move_to(TopDownPose(-0.5, 0.1, config.retreat_height + 0.05, 0.3))
    before = len(arm.trajectories)
    executor.go_home()
    assert len(arm.trajectories) == before + 1


class RecordingBackend:
    """Records each move_to (z, linear, guarded, speed); lands at land_z if given."""

    def __init__(self, land_z=None):
        self.moves = []
        self.z = 0.35
        self.land_z = land_z

    def move_to(self, pose, linear=False, guarded=False, speed=None):
        self.moves.append((round(pose.z, 4), linear, guarded, speed))
        if guarded and self.land_z is not None and pose.z < self.land_z < self.z:
            self.z = self.land_z
            return False
        self.z = pose.z
        return True

    def move_joints(self, q):
        pass

    def current_tcp_position(self):
        return np.array([-0.5, 0.0, self.z])

    def current_tcp_yaw(self):
        return 0.0

    def set_gripper(self, closed):
        return 1.0 if closed else 0.0

    def gripper_closure(self):
        return 1.0


def heightmap_with_block(x, y, top, size=0.02):
    """Make a 224 x 224 map of VPG's workspace with one square block (side size) at (x, y)."""
    from types import SimpleNamespace
    from vpg_perception.grid import HeightmapGrid
    grid = HeightmapGrid()
    height = np.zeros(grid.shape, np.float32)
    cols = (np.arange(grid.shape[1]) + 0.5) * grid.resolution + grid.x_min
    rows = (np.arange(grid.shape[0]) + 0.5) * grid.resolution + grid.y_min
    inside = ((np.abs(rows[:, None] - y) <= size / 2) & (np.abs(cols[None, :] - x) <= size / 2))
    height[inside] = top - grid.z_min
    return SimpleNamespace(height=height, grid=grid)


def test_highest_point_near_sees_only_the_footprint():
    scene = heightmap_with_block(-0.5, 0.06, 0.08)
    assert highest_point_near(scene, -0.5, 0.0, 0.07) == pytest.approx(0.08, abs=1e-6)
    assert highest_point_near(scene, -0.5, -0.06, 0.07) == pytest.approx(0.0, abs=1e-3)
    assert highest_point_near(None, -0.5, 0.0, 0.07) is None


def test_a_descent_is_fast_down_to_the_clearance_above_the_footprint_then_guarded():
    config = PrimitiveConfig()
    backend = RecordingBackend()
    scene = heightmap_with_block(-0.5, 0.03, 0.05)  # a neighbour 5 cm tall beside the target
    PrimitiveExecutor(backend, config).grasp((-0.5, 0.0, 0.03), 0.0, heightmap=scene)
    descents = [m for m in backend.moves if m[2]]
    fast_z = pytest.approx(0.05 + config.descent_clearance, abs=1e-3)
    assert descents == [(fast_z, True, True, 0.0),
                        (pytest.approx(0.03 - config.grasp_depth), True, True, None)]
    # Without a map, or when the clearance lies above the approach height: slow throughout.
    for scene in (None, heightmap_with_block(-0.5, 0.03, 0.2)):
        backend = RecordingBackend()
        PrimitiveExecutor(backend, config).push((-0.5, 0.0, 0.0), 0.0, heightmap=scene)
        assert [m[3] for m in backend.moves if m[2]] == [None, None]  # descent, stroke


def test_a_fast_descent_that_lands_on_something_ends_the_descent_there():
    config = PrimitiveConfig()
    backend = RecordingBackend(land_z=0.1)  # something the map did not show
    scene = heightmap_with_block(-0.5, 0.03, 0.05)
    PrimitiveExecutor(backend, config).grasp((-0.5, 0.0, 0.03), 0.0, heightmap=scene)
    guarded = [m for m in backend.moves if m[2]]
    assert len(guarded) == 1 and guarded[0][3] == 0.0
    # The grasp then rises by contact_lift from where it landed before closing.
    assert backend.moves[len(guarded) + 1][0] == pytest.approx(0.1 + config.contact_lift)
