"""The pick-all loop on fakes: stop reasons, counts, failure counters, cancel, motion errors."""

import numpy as np
import pytest
from vpg_executor.motion import MotionError
from vpg_executor.pick_all import (Choice, format_timing, Goal, goal_problem, GRASP,
                                   Observation, parse_timing, PerceptionError, PickAllLoop,
                                   PolicyError, PUSH, ReasonCode)
from vpg_executor.primitives import GraspOutcome


class FakeWorld:
    """Blocks on a 224x224 heightmap; a grasp on a block removes it if `grip` allows."""

    def __init__(self, blocks, grip=lambda i: True):
        self.blocks = list(blocks)  # (row, col)
        self.grip = grip
        self.grasps = 0
        self.homes = 0
        self.pushes = 0

    def height(self):
        height = np.zeros((224, 224), np.float32)
        for row, col in self.blocks:
            height[row - 10:row + 10, col - 10:col + 10] = 0.05
        return height

    # robot
    def go_home(self):
        self.homes += 1

    def grasp(self, position, angle, heightmap=None):
        index = self.grasps
        self.grasps += 1
        if position == 'unreachable':
            raise MotionError('no reachable joint solution')
        if self.blocks and self.grip(index):
            self.blocks.pop(0)
            return GraspOutcome(True, 0.5)
        return GraspOutcome(False, 1.0)

    def push(self, position, angle, heightmap=None):
        self.pushes += 1


def make_loop(world, choose=None, transitions=None):
    transitions = [] if transitions is None else transitions

    def default_choose(observation, epsilon, allowed):
        return Choice(GRASP, (-0.5, 0.0, 0.05), 0.0, weights_version=4)

    return PickAllLoop(world, lambda: Observation(world.height()), choose or default_choose,
                       lambda *args: transitions.append(args))


def test_clears_three_blocks_and_counts():
    world = FakeWorld([(50, 50), (100, 150), (180, 60)])
    transitions, feedback = [], []
    result = make_loop(world, transitions=transitions).run(
        Goal(max_actions=20, max_consecutive_failures=10), on_feedback=feedback.append)
    assert result.reason_code == ReasonCode.TABLE_CLEARED and result.table_cleared
    assert (result.actions, result.grasp_attempts, result.grasp_successes) == (3, 3, 3)
    assert result.objects_removed == 3 and result.push_attempts == 0
    assert [r.step for r in feedback] == [1, 2, 3]
    assert [r.objects_seen_remaining for r in feedback] == [2, 1, 0]
    assert [r.reward for r in feedback] == [1.0, 1.0, 1.0]
    assert len(transitions) == 3
    assert world.homes >= 4  # home before perceiving, after every action


def test_consecutive_failure_limit_uses_vpg_counters():
    world = FakeWorld([(50, 50)], grip=lambda i: False)
    result = make_loop(world).run(Goal(max_actions=50, max_consecutive_failures=3))
    assert result.reason_code == ReasonCode.TOO_MANY_FAILURES
    assert result.actions == 4  # stops once the failures exceed the limit
    assert not result.table_cleared


def test_change_resets_only_its_primitives_counter():
    world = FakeWorld([(50, 50), (120, 120)], grip=lambda i: False)
    plan = iter([PUSH, PUSH, GRASP, GRASP, GRASP])

    def choose(observation, epsilon, allowed):
        return Choice(next(plan), (-0.5, 0.0, 0.0), 0.0)

    feedback = []
    result = make_loop(world, choose).run(Goal(max_actions=5, max_consecutive_failures=10),
                                          on_feedback=feedback.append)
    assert [r.consecutive_failures for r in feedback] == [1, 2, 3, 4, 5]
    assert result.reason_code == ReasonCode.MAX_ACTIONS and result.actions == 5


def test_cancel_stops_between_primitives_and_goes_home():
    world = FakeWorld([(50, 50), (100, 100), (150, 150)])
    calls = []

    def cancel_requested():
        calls.append(1)
        return len(calls) > 1

    result = make_loop(world).run(Goal(max_actions=20, max_consecutive_failures=10),
                                  cancel_requested=cancel_requested)
    assert result.reason_code == ReasonCode.CANCELED
    assert result.actions == 1
    homes_at_cancel = world.homes
    assert homes_at_cancel >= 3  # start, after the action, and on cancel


def test_motion_error_is_a_failed_action_not_a_crash():
    world = FakeWorld([(50, 50)])

    def choose(observation, epsilon, allowed):
        return Choice(GRASP, 'unreachable', 0.0)

    feedback = []
    result = make_loop(world, choose).run(Goal(max_actions=2, max_consecutive_failures=10),
                                          on_feedback=feedback.append)
    assert result.reason_code == ReasonCode.MAX_ACTIONS
    assert all('reachable' in r.motion_error for r in feedback)
    assert all(r.reward == 0.0 for r in feedback)


def test_perception_and_policy_failures_stop_with_a_reason():
    world = FakeWorld([(50, 50)])

    def no_frames():
        raise PerceptionError('no heightmap within 5 s')

    loop = PickAllLoop(world, no_frames, None, lambda *a: None)
    result = loop.run(Goal(max_actions=3, max_consecutive_failures=3))
    assert result.reason_code == ReasonCode.PERCEPTION_FAILED and '5 s' in result.reason

    def broken_policy(observation, epsilon, allowed):
        raise PolicyError('choose_primitive timed out')

    result = make_loop(world, broken_policy).run(Goal(max_actions=3, max_consecutive_failures=3))
    assert result.reason_code == ReasonCode.POLICY_FAILED


def test_exploration_epsilon_comes_from_the_goal_or_the_schedule():
    world = FakeWorld([(50, 50)], grip=lambda i: False)
    seen = []

    def choose(observation, epsilon, allowed):
        seen.append((epsilon, allowed))
        return Choice(GRASP, (-0.5, 0.0, 0.0), 0.0)

    loop = make_loop(world, choose)
    loop.epsilon_schedule = lambda: 0.42
    reports = []
    loop.run(Goal(max_actions=1, max_consecutive_failures=5, explore=True, allowed=2),
             on_feedback=reports.append)
    loop.run(Goal(max_actions=1, max_consecutive_failures=5, explore=True, epsilon=0.2),
             on_feedback=reports.append)
    loop.run(Goal(max_actions=1, max_consecutive_failures=5, explore=False, epsilon=0.9),
             on_feedback=reports.append)
    assert seen == [(0.42, 2), (0.2, 0), (0.0, 0)]
    # Each step reports the epsilon its decision used (the training CSV logs this one).
    assert [report.epsilon for report in reports] == [0.42, 0.2, 0.0]


@pytest.mark.parametrize('goal', [Goal(0, 5), Goal(5, 0), Goal(5, 5, allowed=7),
                                  Goal(5, 5, epsilon=float('nan')), Goal(10 ** 9, 5)])
def test_invalid_goals_are_named(goal):
    assert goal_problem(goal)
    world = FakeWorld([(50, 50)])
    result = make_loop(world).run(goal)
    assert result.reason_code == ReasonCode.INVALID_GOAL and world.homes == 0


def test_each_step_reports_its_phase_durations_on_both_clocks():
    ticks = {'wall': 0.0, 'sim': 0.0}

    def advance(wall, sim):
        ticks['wall'] += wall
        ticks['sim'] += sim

    class TimedWorld(FakeWorld):

        def grasp(self, position, angle, heightmap=None):
            advance(3.0, 2.0)
            return super().grasp(position, angle, heightmap)

        def go_home(self):
            advance(1.0, 0.5)
            super().go_home()

    world = TimedWorld([(50, 50), (100, 150)])

    def choose(observation, epsilon, allowed):
        advance(0.25, 0.0)
        return Choice(GRASP, (-0.5, 0.0, 0.05), 0.0)

    def perceive():
        advance(0.5, 0.1)
        return Observation(world.height())

    feedback = []
    loop = PickAllLoop(world, perceive, choose, lambda *a: None,
                       wall_clock=lambda: ticks['wall'], sim_clock=lambda: ticks['sim'])
    loop.run(Goal(max_actions=5, max_consecutive_failures=3), on_feedback=feedback.append)
    assert len(feedback) == 2
    for report in feedback:
        assert report.timing == {'decision': 0.25, 'motion': 3.0, 'home': 1.0,
                                 'perception': 0.5}
        assert report.sim_timing == pytest.approx({'decision': 0.0, 'motion': 2.0,
                                                   'home': 0.5, 'perception': 0.1})
    text = format_timing(feedback[0])
    assert text == ('wall s decision 0.250 motion 3.000 home 1.000 perception 0.500 '
                    '(sim s decision 0.000 motion 2.000 home 0.500 perception 0.100)')
    wall, sim = parse_timing(f'[INFO] [executor]: step 1: grasp reward 1.0; {text}\n')
    assert wall == feedback[0].timing and sim == pytest.approx(feedback[0].sim_timing)
    assert parse_timing('step 1: grasp reward 1.0') == ({}, {})


def test_scene_changed_is_reported_for_every_primitive_with_the_executors_threshold():
    class ShovingWorld(FakeWorld):
        """A failed grasp that shoves its block 30 px aside (1200 pixels change)."""

        def grasp(self, position, angle, heightmap=None):
            self.grasps += 1
            row, col = self.blocks[0]
            self.blocks[0] = (row, col + 30)
            return GraspOutcome(False, 1.0)

    feedback = []
    make_loop(ShovingWorld([(50, 50)])).run(Goal(max_actions=1, max_consecutive_failures=10),
                                            on_feedback=feedback.append)
    (report,) = feedback
    assert report.changed_pixels > 300
    assert report.scene_changed and not report.push_changed and not report.grasp_success
    assert report.reward == 0.0

    feedback = []
    make_loop(FakeWorld([(50, 50)], grip=lambda i: False)).run(
        Goal(max_actions=1, max_consecutive_failures=10), on_feedback=feedback.append)
    assert not feedback[0].scene_changed and feedback[0].changed_pixels == 0
