"""Joint trajectory checks and interpolation (pure numpy)."""

import math

import numpy as np
import pytest

from vpg_sim.trajectory import (check_trajectory, TrajectoryError, TrajectoryFollower,
                                TrajectoryPoint)

JOINTS = ('shoulder_pan_joint', 'shoulder_lift_joint', 'elbow_joint',
          'wrist_1_joint', 'wrist_2_joint', 'wrist_3_joint')
LOWER = np.array([-2 * math.pi] * 2 + [-math.pi] + [-2 * math.pi] * 3)
UPPER = -LOWER
CURRENT = np.array([0.0, -1.5, 1.5, -1.5, -1.5, 0.0])


def check(names, points, current=CURRENT):
    return check_trajectory(names, points, JOINTS, LOWER, UPPER, max_velocity=math.pi,
                            current=current, start_tolerance=0.05)


def point(positions, t, velocities=(), accelerations=()):
    return TrajectoryPoint(tuple(positions), tuple(velocities), tuple(accelerations), t)


def test_joint_order_is_taken_from_the_message():
    names = list(reversed(JOINTS))
    target = CURRENT + 0.1
    traj = check(names, [point(target[::-1], 1.0)])
    np.testing.assert_allclose(traj.positions[0], target)
    assert traj.velocities is None


@pytest.mark.parametrize('names, points, fragment', [
    (JOINTS[:5] + ('gripper',), [point(CURRENT, 1.0)], 'unknown joint'),
    (JOINTS[:5], [point(CURRENT[:5], 1.0)], 'missing joints'),
    (JOINTS[:5] + (JOINTS[0],), [point(CURRENT, 1.0)], 'duplicate'),
    (JOINTS, [], 'no points'),
    (JOINTS, [point(CURRENT[:5], 1.0)], 'has 5 positions'),
    (JOINTS, [point([math.nan, -1.5, 1.5, -1.5, -1.5, 0.0], 1.0)], 'NaN'),
    (JOINTS, [point([0.0, -1.5, 1.5, -1.5, -1.5, math.inf], 1.0)], 'NaN or infinite'),
    (JOINTS, [point([0.0, -1.5, 3.3, -1.5, -1.5, 0.0], 2.0)], 'elbow_joint'),
    (JOINTS, [point(CURRENT, 1.0), point(CURRENT, 1.0)], 'strictly increase'),
    (JOINTS, [point(CURRENT, 2.0), point(CURRENT, 1.0)], 'strictly increase'),
    (JOINTS, [point(CURRENT, -1.0)], '>= 0'),
    (JOINTS, [point(CURRENT + 1.0, 0.1)], 'rad/s'),
    (JOINTS, [point(CURRENT + 0.2, 0.0)], 'time 0'),
    (JOINTS, [point(CURRENT, 1.0, [0.0] * 6), point(CURRENT, 2.0)], 'velocities'),
    (JOINTS, [point(CURRENT, 1.0, [0.0] * 6, [0.0] * 5)], 'accelerations'),
    (JOINTS, [point(CURRENT, 1.0, [], [0.0] * 6)], 'without velocities'),
])
def test_bad_trajectories_are_refused(names, points, fragment):
    with pytest.raises(TrajectoryError) as error:
        check(names, points)
    assert fragment in str(error.value)


def test_linear_interpolation_from_the_start_state():
    target = CURRENT + np.array([0.4, 0.0, -0.2, 0.0, 0.0, 1.0])
    traj = check(JOINTS, [point(target, 2.0)])
    follower = TrajectoryFollower(traj, start_time=10.0, start_position=CURRENT,
                                  start_velocity=np.zeros(6))
    q, qd, qdd = follower.sample(11.0)
    np.testing.assert_allclose(q, (CURRENT + target) / 2)
    np.testing.assert_allclose(qd, (target - CURRENT) / 2.0)
    np.testing.assert_allclose(qdd, 0.0)
    np.testing.assert_allclose(follower.sample(9.0)[0], CURRENT)  # before the start: hold
    q_end, qd_end, _ = follower.sample(15.0)  # after the end: hold the last point
    np.testing.assert_allclose(q_end, target)
    np.testing.assert_allclose(qd_end, 0.0)
    assert follower.end_time == pytest.approx(12.0)


@pytest.mark.parametrize('with_acceleration', [False, True])
def test_splines_pass_through_points_with_their_velocities(with_acceleration):
    mid = CURRENT + 0.3
    end = CURRENT + 0.5
    v_mid = np.full(6, 0.2)
    acc = [0.0] * 6 if with_acceleration else []
    traj = check(JOINTS, [point(mid, 1.0, v_mid, acc), point(end, 2.0, [0.0] * 6, acc)])
    follower = TrajectoryFollower(traj, 0.0, CURRENT, np.zeros(6))
    q, qd, _ = follower.sample(1.0)
    np.testing.assert_allclose(q, mid, atol=1e-12)
    np.testing.assert_allclose(qd, v_mid, atol=1e-12)
    # Velocity is the derivative of position (finite difference).
    h = 1e-6
    q_a, qd_a, qdd_a = follower.sample(1.5)
    q_b, qd_b, _ = follower.sample(1.5 + h)
    np.testing.assert_allclose((q_b - q_a) / h, qd_a, atol=1e-5)
    np.testing.assert_allclose((qd_b - qd_a) / h, qdd_a, atol=1e-4)
    np.testing.assert_allclose(follower.sample(2.0)[0], end, atol=1e-12)


def test_first_point_at_time_zero_within_tolerance():
    start = CURRENT + 0.01
    traj = check(JOINTS, [point(start, 0.0), point(CURRENT + 0.2, 1.0)])
    follower = TrajectoryFollower(traj, 0.0, CURRENT, np.zeros(6))
    np.testing.assert_allclose(follower.sample(0.0)[0], start)
