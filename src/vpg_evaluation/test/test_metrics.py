"""VPG's metrics on hand-made episode logs: every number checked exactly."""

import json
import statistics

import pytest
from vpg_evaluation import metrics

REASONS = {'cleared': 1, 'max_actions': 2, 'failures': 3}


def episode(objects, actions, reason):
    """
    Build a run record as the harness stores it, from a compact action list.

    actions: tokens 'G1' (grasp, success), 'G0' (grasp, failure), 'P+' (push that changed the
    scene, reward 0.5), 'P0' (push without change). The consecutive-failure counters follow
    the executor's rule (a change resets its primitive's counter).
    """
    steps, no_change = [], {0: 0, 1: 0}
    for index, token in enumerate(actions.split(), start=1):
        primitive = 1 if token[0] == 'G' else 0
        success = token == 'G1'
        changed = token == 'P+'
        reward = 1.0 if success else 0.5 if changed else 0.0
        no_change[primitive] = 0 if (success or changed) else no_change[primitive] + 1
        steps.append({'step': index, 'primitive': primitive, 'rotation_index': 0, 'row': 0,
                      'col': 0, 'reward': reward, 'grasp_success': success,
                      'push_changed': changed, 'objects_seen_remaining': 0,
                      'consecutive_failures': no_change[0] + no_change[1],
                      'weights_version': 3})
    grasps = [s for s in steps if s['primitive'] == 1]
    return {'steps': steps, 'actions': len(steps), 'grasp_attempts': len(grasps),
            'grasp_successes': sum(s['grasp_success'] for s in grasps),
            'push_attempts': len(steps) - len(grasps),
            'objects_removed': sum(s['grasp_success'] for s in grasps),
            'reason_code': REASONS[reason], 'objects_in_workspace_before': objects}


COMPLETED = episode(3, 'G1 G0 G1 G1', 'cleared')
FAILURE_LIMIT = episode(3, 'G1 ' + ' '.join(['G0'] * 11), 'failures')
MAX_ACTIONS = episode(2, 'P+ G0 G1', 'max_actions')
ALL_GRASPS = episode(2, 'G1 G1', 'cleared')
WITH_PUSHES = episode(2, 'P+ P+ G1 G0 G1', 'cleared')
RUNS = [COMPLETED, FAILURE_LIMIT, MAX_ACTIONS, ALL_GRASPS, WITH_PUSHES]


def test_completed_run():
    stats = metrics.run_stats(COMPLETED)
    assert (stats.objects, stats.actions, stats.grasp_attempts, stats.grasp_successes) == (
        3, 4, 4, 3)
    assert stats.completed and stats.source == 'steps'
    assert stats.grasp_success == 0.75 and stats.efficiency == 0.75


def test_run_stopped_by_the_consecutive_failure_limit_is_not_completed():
    # 11 failed grasps after one success: the counter exceeds 10 and the executor stops.
    assert FAILURE_LIMIT['steps'][-1]['consecutive_failures'] == 11
    stats = metrics.run_stats(FAILURE_LIMIT)
    assert (stats.actions, stats.grasp_attempts, stats.grasp_successes) == (12, 12, 1)
    assert not stats.completed
    only = metrics.session_metrics([FAILURE_LIMIT])
    assert only.completion == 0.0 and only.completed == 0 and only.runs == 1
    assert only.grasp_success is None and only.efficiency is None  # no completed run


def test_run_stopped_at_max_actions_is_not_completed():
    stats = metrics.run_stats(MAX_ACTIONS)
    assert (stats.actions, stats.grasp_attempts, stats.grasp_successes) == (3, 2, 1)
    assert not stats.completed


def test_all_grasps_run():
    stats = metrics.run_stats(ALL_GRASPS)
    assert stats.completed and stats.grasp_success == 1.0 and stats.efficiency == 1.0
    assert stats.grasp_fraction == 1.0


def test_pushes_count_as_actions_but_their_reward_is_no_grasp_success():
    stats = metrics.run_stats(WITH_PUSHES)
    assert (stats.actions, stats.grasp_attempts, stats.grasp_successes) == (5, 3, 2)
    assert stats.completed
    assert stats.grasp_success == pytest.approx(2 / 3)
    assert stats.efficiency == pytest.approx(2 / 5)
    assert stats.grasp_fraction == pytest.approx(3 / 5)


def test_session_of_the_five_runs():
    session = metrics.session_metrics(RUNS)
    assert session.runs == 5 and session.completed == 3
    assert session.completion == pytest.approx(60.0)
    # Over the completed runs only: 0.75, 1.0, 2/3 and 0.75, 1.0, 0.4.
    assert session.grasp_success == pytest.approx(100 * (0.75 + 1.0 + 2 / 3) / 3)
    assert session.efficiency == pytest.approx(100 * (0.75 + 1.0 + 0.4) / 3)
    assert session.grasp_fraction == pytest.approx(100 * (1.0 + 1.0 + 0.6) / 3)
    # Sample standard deviations of the per-run percentages.
    assert session.completion_std == pytest.approx(statistics.stdev([100, 0, 0, 100, 100]))
    assert session.efficiency_std == pytest.approx(statistics.stdev([75, 100, 40]))
    assert session.grasp_success_std == pytest.approx(statistics.stdev([75, 100, 200 / 3]))


def test_completion_counts_grasps_not_the_reason_the_run_stopped():
    # VPG: completed = s_k >= N. A run that grasped every object and then hit max_actions
    # (the heightmap still showed something) is complete; one that "cleared" the table by
    # pushing a block out of view is not.
    grasped_all = episode(2, 'G1 G1', 'max_actions')
    pushed_out = episode(2, 'G1 P+', 'cleared')
    assert metrics.run_stats(grasped_all).completed
    assert not metrics.run_stats(pushed_out).completed


def test_lost_feedback_falls_back_to_the_goal_counters():
    record = dict(WITH_PUSHES, steps=WITH_PUSHES['steps'][:3])
    stats = metrics.run_stats(record)
    assert stats.source == 'result'
    assert (stats.actions, stats.grasp_attempts, stats.grasp_successes) == (5, 3, 2)


def test_runs_with_nothing_to_clear_are_skipped_and_n_can_be_given():
    empty = episode(0, '', 'cleared')
    session = metrics.session_metrics([COMPLETED, empty])
    assert session.runs == 1 and session.skipped_runs == 1 and session.completion == 100.0
    with pytest.raises(ValueError):
        metrics.run_stats({k: v for k, v in COMPLETED.items()
                           if k != 'objects_in_workspace_before'})
    assert not metrics.run_stats(COMPLETED, objects=4).completed


def test_cases_combine_as_the_mean_of_their_sessions():
    first = metrics.session_metrics([COMPLETED, FAILURE_LIMIT])   # 50 %, 75 %, 75 %
    second = metrics.session_metrics([ALL_GRASPS])                # 100 %, 100 %, 100 %
    third = metrics.session_metrics([MAX_ACTIONS])                # 0 %, undefined
    combined = metrics.combine_sessions([first, second, third])
    assert combined.completion == pytest.approx(50.0)
    assert combined.grasp_success == pytest.approx(87.5)
    assert combined.efficiency == pytest.approx(87.5)
    assert combined.runs == 4 and combined.completed == 2
    assert combined.completion_std == pytest.approx(50.0)


def test_records_recompute_identically_from_json_lines():
    lines = '\n'.join(json.dumps(r) for r in RUNS)
    again = [json.loads(line) for line in lines.splitlines()]
    assert metrics.session_metrics(again) == metrics.session_metrics(RUNS)
