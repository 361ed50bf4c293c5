"""SettleDetector: when the knuckle has finished moving, whatever the action's result said."""

import pytest
from vpg_executor.gripper_action import SettleConfig, SettleDetector

CONFIG = SettleConfig(still_time=0.1, tolerance=0.005, target_tolerance=0.02,
                      start_timeout=0.5)


def first_settled(detector, samples):
    """Return the time of the first (time, position) sample at which detector says settled."""
    for t, position in samples:
        if detector.update(t, position):
            return t
    return None


def ramp(start, target, t_start, speed, until, dt=0.01):
    """Knuckle samples: still at start until t_start, then moving to target at speed (rad/s)."""
    samples, t, position = [], 0.0, start
    while t <= until + 1e-9:
        if t >= t_start:
            step = speed * dt
            position += max(-step, min(step, target - position))
        samples.append((round(t, 6), position))
        t += dt
    return samples


def test_a_knuckle_that_starts_late_is_not_settled_before_it_arrives():
    # The result came at t = 0.05 s ("stall"); the fingers start at 0.2 s, arrive at ~0.73 s.
    detector = SettleDetector(0.79, 0.0, 0.0, CONFIG)
    settled = first_settled(detector, ramp(0.0, 0.79, 0.2, 1.5, until=2.0))
    assert settled == pytest.approx(0.2 + 0.79 / 1.5 + CONFIG.still_time, abs=0.03)


def test_fingers_stopped_by_an_object_settle_once_still():
    samples = [(t, min(0.4, p)) for t, p in ramp(0.0, 0.79, 0.1, 1.5, until=2.0)]
    detector = SettleDetector(0.79, 0.0, 0.0, CONFIG)
    settled = first_settled(detector, samples)
    assert settled == pytest.approx(0.1 + 0.4 / 1.5 + CONFIG.still_time, abs=0.03)
    assert detector.moved


def test_already_at_the_target_settles_after_still_time():
    detector = SettleDetector(0.0, 0.001, 0.0, CONFIG)
    assert first_settled(detector, ramp(0.001, 0.0, 99.0, 1.0, until=1.0)) == pytest.approx(
        CONFIG.still_time, abs=0.011)


def test_blocked_fingers_settle_only_after_the_start_timeout():
    detector = SettleDetector(0.79, 0.3, 0.0, CONFIG)
    assert first_settled(detector, [(i * 0.01, 0.3) for i in range(200)]) == pytest.approx(
        CONFIG.start_timeout, abs=0.011)
    assert not detector.moved


def test_moving_fingers_never_settle_and_nan_is_ignored():
    detector = SettleDetector(0.79, 0.0, 0.0, CONFIG)
    assert first_settled(detector, ramp(0.0, 0.79, 0.0, 0.1, until=2.0)) is None
    assert not SettleDetector(0.0, 0.0, 0.0, CONFIG).update(1.0, float('nan'))


def test_invalid_settings_raise():
    with pytest.raises(ValueError):
        SettleConfig(still_time=0.0)
