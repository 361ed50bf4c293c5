"""Event timing, real-time pacing, camera frame scheduling and gripper goals (pure)."""

import pytest

from vpg_sim.gripper import GripperGoal, GripperOutcome
from vpg_sim.timing import FrameScheduler, pace_rate, Pacer, Periodic


def test_periodic_fires_once_per_period():
    events = Periodic(10.0)
    times = [i * 0.02 for i in range(26)]  # 0 .. 0.5 s in 20 ms steps
    fired = [t for t in times if events.due(t)]
    assert fired == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4, 0.5])
    assert not Periodic(0.0).due(100.0)


def test_pacer_keeps_the_ratio_and_does_not_catch_up():
    pacer = Pacer(max_lag=0.25)
    assert pacer.delay(sim_now=5.0, wall_now=100.0, rate=2.0) == 0.0
    assert pacer.delay(sim_now=6.0, wall_now=100.1, rate=2.0) == pytest.approx(0.4)
    assert pacer.delay(sim_now=6.0, wall_now=100.6, rate=2.0) == 0.0
    # Far behind: start afresh rather than run flat out.
    assert pacer.delay(sim_now=6.1, wall_now=101.5, rate=2.0) == 0.0
    assert pacer.delay(sim_now=6.3, wall_now=101.5, rate=2.0) == pytest.approx(0.1)
    assert pacer.delay(sim_now=9.0, wall_now=101.5, rate=0.0) == 0.0  # unpaced


@pytest.mark.parametrize('rtf, idle, at_rest, expected', [
    (0.0, 1.0, False, 0.0), (0.0, 1.0, True, 1.0), (0.5, 1.0, True, 0.5),
    (4.0, 1.0, True, 1.0), (0.0, 0.0, True, 0.0), (1.0, 0.0, True, 1.0),
])
def test_pace_rate(rtf, idle, at_rest, expected):
    assert pace_rate(rtf, idle, at_rest) == expected


def test_frame_scheduler_regular_frames_drop_when_busy_or_too_fast():
    frames = FrameScheduler(rate_hz=5.0, max_wall_rate_hz=2.0)
    assert frames.update(0.0, wall_now=0.0, at_rest=False, renderer_busy=False) == (True, False)
    # Due at 0.2 s, but only 0.1 wall seconds later: dropped.
    assert frames.update(0.2, wall_now=0.1, at_rest=False, renderer_busy=False)[0] is False
    # Due at 0.4 s with the renderer busy: dropped.
    assert frames.update(0.4, wall_now=0.9, at_rest=False, renderer_busy=True)[0] is False
    assert frames.update(0.6, wall_now=1.0, at_rest=False, renderer_busy=False)[0] is True
    assert frames.update(0.65, wall_now=2.0, at_rest=False, renderer_busy=False)[0] is False
    # At rest the wall-rate cap does not apply.
    assert frames.update(0.8, wall_now=2.01, at_rest=True, renderer_busy=False)[0] is True


def test_frame_scheduler_one_rest_frame_after_the_dwell():
    frames = FrameScheduler(rate_hz=0.0, max_wall_rate_hz=2.0, rest_dwell=0.03)
    assert frames.update(0.00, 0.0, at_rest=True, renderer_busy=False) == (False, False)
    assert frames.update(0.10, 0.0, at_rest=False, renderer_busy=False) == (False, False)
    assert frames.update(0.12, 0.0, at_rest=True, renderer_busy=False) == (False, False)
    assert frames.update(0.15, 0.0, at_rest=True, renderer_busy=True) == (True, True)
    assert frames.update(0.50, 0.0, at_rest=True, renderer_busy=False) == (False, False)
    # A brief stop shorter than the dwell gives no frame.
    assert frames.update(0.60, 0.0, at_rest=False, renderer_busy=False) == (False, False)
    assert frames.update(0.61, 0.0, at_rest=True, renderer_busy=False) == (False, False)
    assert frames.update(0.62, 0.0, at_rest=False, renderer_busy=False) == (False, False)


def test_gripper_goal_reached_stalled_and_timed_out():
    goal = GripperGoal(target=0.8, start_time=0.0)
    for k in range(30):  # closing freely at 1.6 rad/s
        t = 0.01 * k
        assert goal.update(t, 1.6 * t) is GripperOutcome.RUNNING
    assert goal.update(0.49, 0.785) is GripperOutcome.REACHED

    stalled = GripperGoal(target=0.8, start_time=0.0)
    outcome = None
    for k in range(60):  # stops on a block at 0.36 rad, with small jitter
        t = 0.01 * k
        q = min(1.6 * t, 0.36) + (0.001 if k % 2 else 0.0)
        outcome = stalled.update(t, q)
        if outcome is not GripperOutcome.RUNNING:
            break
    assert outcome is GripperOutcome.STALLED
    assert 0.3 <= t <= 0.4  # reaches 0.36 at 0.225 s, then 0.1 s without motion

    stuck = GripperGoal(target=0.8, start_time=0.0)
    t = 0.0
    while stuck.update(t, 0.3 + 0.05 * t) is GripperOutcome.RUNNING and t < 10:
        t += 0.01  # creeping at 0.05 rad/s: never stalls, never arrives
    assert stuck.outcome is GripperOutcome.TIMED_OUT
    assert t == pytest.approx(5.0, abs=0.02)
