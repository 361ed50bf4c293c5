"""The evaluation core without ROS: plan, run store and resume, summary, table and plot."""

import _thread
import json
import signal
import threading
import time

import pytest
from vpg_evaluation import harness

TWO_CUBES = ('4.obj 0.3 0.47 0.65 -0.55 -0.05 0.026 0 0 0\n'
             '4.obj 0.35 0.63 0.31 -0.45 0.05 0.026 0 0 0.3\n')
THREE_CUBES = TWO_CUBES + 'cube 0.6 0.46 0.37 -0.5 0.12 0.026 0 0 0\n'
UNTRAINED = harness.WeightsInfo()
TRAINED = harness.WeightsInfo('/w/vpg.safetensors', 'ab' * 32, 1200, 'vpg')


@pytest.fixture
def cases(tmp_path):
    first, second = tmp_path / 'pair.txt', tmp_path / 'triple.txt'
    first.write_text(TWO_CUBES)
    second.write_text(THREE_CUBES)
    return [first, second]


def test_plan_random_and_challenging(cases):
    plan = harness.plan_runs(['random', 'challenging'], runs=3, objects=30, case_files=cases,
                             first_seed=5)
    random = [s for s in plan if s.scenario == 'random']
    assert [s.seed for s in random] == [5, 6, 7]
    assert all(s.num_objects == 30 and s.max_actions == 75 and s.test_case_file == ''
               and s.max_consecutive_failures == 10 for s in random)
    challenging = [s for s in plan if s.scenario == 'challenging']
    assert [(s.case, s.run_index, s.num_objects, s.max_actions) for s in challenging] == [
        ('pair', 0, 2, 5), ('pair', 1, 2, 5), ('pair', 2, 2, 5),
        ('triple', 0, 3, 8), ('triple', 1, 3, 8), ('triple', 2, 3, 8)]
    assert all(len(s.case_sha256) == 64 for s in challenging)
    fixed = harness.plan_runs(['random'], runs=1, objects=30, max_actions=4)
    assert fixed[0].max_actions == 4
    once = harness.plan_runs(['random', 'challenging'], runs=3, case_files=cases, case_runs=1)
    assert [(s.scenario, s.case, s.run_index) for s in once] == [
        ('random', 'random', 0), ('random', 'random', 1), ('random', 'random', 2),
        ('challenging', 'pair', 0), ('challenging', 'triple', 0)]


def test_plan_refuses_what_it_cannot_run(cases, tmp_path):
    with pytest.raises(ValueError, match='unknown scenarios'):
        harness.plan_runs(['clutter'], runs=1)
    with pytest.raises(ValueError, match='at least one test case'):
        harness.plan_runs(['challenging'], runs=1)
    other = tmp_path / 'again'
    other.mkdir()
    (other / 'pair.txt').write_text(TWO_CUBES)
    with pytest.raises(ValueError, match='different names'):
        harness.plan_runs(['challenging'], runs=1, case_files=cases + [other / 'pair.txt'])
    with pytest.raises(ValueError, match='runs must be'):
        harness.plan_runs(['random'], runs=0)


def test_bundled_cases_are_found():
    names = [path.stem for path in harness.bundled_cases()]
    assert len(names) >= 10 and 'cuboid_raft' in names


def fake_episode(spec, policy):
    """Deterministic outcomes: vpg clears everything, grasp_only fails on odd run indices."""
    n = spec.num_objects
    if policy == 'vpg' or spec.run_index % 2 == 0:
        tokens = [(0, 0.5)] + [(1, 1.0)] * n + ([(1, 0.0)] if policy == 'vpg' else [])
        reason = 1
    else:
        tokens = [(1, 1.0)] + [(1, 0.0)] * 11
        reason = 3
    steps = [{'step': i, 'primitive': p, 'rotation_index': 0, 'row': 0, 'col': 0,
              'reward': r, 'grasp_success': r == 1.0, 'push_changed': r == 0.5,
              'objects_seen_remaining': 0, 'consecutive_failures': 0, 'weights_version': 0}
             for i, (p, r) in enumerate(tokens, start=1)]
    return {'steps': steps, 'actions': len(steps),
            'grasp_attempts': sum(p == 1 for p, _ in tokens),
            'grasp_successes': sum(r == 1.0 for _, r in tokens), 'reason_code': reason,
            'reason': 'fake', 'objects_in_workspace_before': n, 'wall_s': 1.0,
            'removed_before': 0, 'removed': min(n, sum(r == 1.0 for _, r in tokens)),
            'objects_in_workspace_after': max(0, n - sum(r == 1.0 for _, r in tokens))}


class FakeCell:
    """Stands in for the ROS side: counts the runs it is asked to make."""

    def __init__(self):
        self.calls = []

    def __call__(self, policy, weights, specs, save):
        for spec in specs:
            self.calls.append((policy, spec.scenario, spec.case, spec.run_index))
            save(harness.make_record(spec, policy, weights, fake_episode(spec, policy)))


def test_evaluation_stores_every_run_resumes_and_summarises(cases, tmp_path):
    plan = harness.plan_runs(['random', 'challenging'], runs=2, objects=4, case_files=cases)
    weights = {'grasp_only': UNTRAINED, 'vpg': UNTRAINED}
    store = harness.RunStore(tmp_path / 'eval' / 'runs.jsonl')
    cell = FakeCell()
    summary = harness.run_evaluation(plan, weights, store, cell, log=lambda *_: None)
    assert len(cell.calls) == 2 * len(plan) == 12
    assert len(store.load()) == 12

    vpg, grasp_only = summary['random']['vpg'], summary['random']['grasp_only']
    # vpg: push + 4 grasps + a failed grasp = 6 actions, 5 grasps, 4 successes.
    assert vpg['completion'] == 100.0 and vpg['runs'] == 2 and vpg['completed'] == 2
    assert vpg['grasp_success'] == pytest.approx(80.0)
    assert vpg['efficiency'] == pytest.approx(100 * 4 / 6)
    # grasp_only: run 0 complete (push + 4 grasps), run 1 stopped by the failure limit.
    assert grasp_only['completion'] == 50.0 and grasp_only['completed'] == 1
    assert grasp_only['grasp_success'] == 100.0
    assert grasp_only['efficiency'] == pytest.approx(80.0)
    assert grasp_only['completion_std'] == pytest.approx(70.710678, abs=1e-5)
    assert grasp_only['cleared_by_ground_truth'] == 1 and vpg['cleared_by_ground_truth'] == 2
    assert grasp_only['seeds'] == [0, 1] and grasp_only['max_actions'] == [10]
    assert grasp_only['vpg_published'] == {'completion': 90.9, 'grasp_success': 55.8,
                                           'efficiency': 55.8}
    # challenging: per case, then the mean over cases.
    pair = summary['challenging']['vpg']['cases']['pair']
    triple = summary['challenging']['vpg']['cases']['triple']
    assert pair['efficiency'] == pytest.approx(100 * 2 / 4)
    assert triple['efficiency'] == pytest.approx(100 * 3 / 5)
    assert summary['challenging']['vpg']['efficiency'] == pytest.approx(55.0)
    assert summary['challenging']['vpg']['grasp_success'] == pytest.approx(
        100 * (2 / 3 + 3 / 4) / 2)
    assert summary['challenging']['vpg']['runs'] == 4

    # Resume: nothing left to run; the summary is the same.
    again = harness.run_evaluation(plan, weights, store, cell, log=lambda *_: None)
    assert len(cell.calls) == 12 and again == summary
    # A run cut short by a kill leaves half a line: skipped, and that run is made again.
    lines = store.path.read_text().splitlines()
    store.path.write_text('\n'.join(lines[:-1]) + '\n' + lines[-1][:40])
    harness.run_evaluation(plan, weights, store, cell, log=lambda *_: None)
    assert len(cell.calls) == 13 and len(store.load()) == 12
    # Other weights: every run of that policy is made anew; the old runs stay in the file.
    harness.run_evaluation(plan, {'vpg': TRAINED}, store, cell, log=lambda *_: None)
    assert len(cell.calls) == 13 + len(plan)


def test_parallel_cells_make_each_run_once_and_agree_with_one_cell(cases, tmp_path):
    plan = harness.plan_runs(['random', 'challenging'], runs=3, objects=4, case_files=cases)
    weights = {'grasp_only': UNTRAINED, 'vpg': UNTRAINED}
    one = harness.run_evaluation(plan, weights, harness.RunStore(tmp_path / 'one.jsonl'),
                                 FakeCell(), log=lambda *_: None)
    cell = FakeCell()
    store = harness.RunStore(tmp_path / 'four.jsonl')
    four = harness.run_evaluation(plan, weights, store, cell, jobs=4, log=lambda *_: None)
    assert sorted(cell.calls) == sorted(set(cell.calls)) and len(cell.calls) == 2 * len(plan)
    assert len(store.load()) == 2 * len(plan)
    assert four == one


def test_a_failing_cell_stops_the_others_and_keeps_their_runs(cases, tmp_path):
    plan = harness.plan_runs(['random'], runs=6, objects=4)
    weights = {'grasp_only': UNTRAINED, 'vpg': UNTRAINED}
    store = harness.RunStore(tmp_path / 'runs.jsonl')
    good = FakeCell()

    def failing(policy, weights, specs, save):
        if policy == 'vpg':
            raise RuntimeError('sim died')
        good(policy, weights, specs, save)

    with pytest.raises(RuntimeError, match='sim died'):
        harness.run_evaluation(plan, weights, store, failing, jobs=2, log=lambda *_: None)
    kept = store.load()
    assert all(r['policy'] == 'grasp_only' for r in kept) and len(kept) <= len(plan)
    harness.run_evaluation(plan, weights, store, good, jobs=2, log=lambda *_: None)
    assert len(store.load()) == 2 * len(plan)


def test_ctrl_c_ends_the_runs_in_progress_at_once(tmp_path):
    plan = harness.plan_runs(['random'], runs=4, objects=4)
    weights = {'grasp_only': UNTRAINED, 'vpg': UNTRAINED}
    graphs_stopped = threading.Event()
    started = []

    def minutes_long(policy, weights, specs, save):
        started.append(policy)
        if not graphs_stopped.wait(60.0):  # a goal that lasts until its graph is stopped
            raise AssertionError('the runs in progress were not stopped')
        raise harness.Stopped('interrupted')

    # Ctrl-C as a script sees it: Python's own SIGINT handler, whatever earlier tests left.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    threading.Timer(0.5, _thread.interrupt_main).start()
    begun = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            harness.run_evaluation(plan, weights, harness.RunStore(tmp_path / 'runs.jsonl'),
                                   minutes_long, jobs=2, log=lambda *_: None,
                                   interrupt=graphs_stopped.set)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert time.monotonic() - begun < 10.0
    assert graphs_stopped.is_set() and sorted(started) == ['grasp_only', 'vpg']


def test_changed_case_file_is_not_reused(cases, tmp_path):
    store = harness.RunStore(tmp_path / 'runs.jsonl')
    cell = FakeCell()
    plan = harness.plan_runs(['challenging'], runs=1, case_files=cases)
    harness.run_evaluation(plan, {'vpg': UNTRAINED}, store, cell, log=lambda *_: None)
    cases[0].write_text(THREE_CUBES)
    plan = harness.plan_runs(['challenging'], runs=1, case_files=cases)
    harness.run_evaluation(plan, {'vpg': UNTRAINED}, store, cell, log=lambda *_: None)
    assert [c[2] for c in cell.calls] == ['pair', 'triple', 'pair']


def test_runs_with_other_policy_parameters_are_not_reused(cases, tmp_path):
    store = harness.RunStore(tmp_path / 'runs.jsonl')
    cell = FakeCell()
    plan = harness.plan_runs(['challenging'], runs=1, case_files=cases[:1])
    centred = harness.WeightsInfo(policy_parameters=(('action_mask_grasp_clearance', True),
                                                     ('grasp_centring', 0.016)))
    for weights in (UNTRAINED, centred, centred, UNTRAINED):
        harness.run_evaluation(plan, {'vpg': weights}, store, cell, log=lambda *_: None)
    assert len(cell.calls) == 2                   # each setting once, then read back
    stored = [r['weights']['policy_parameters'] for r in store.load()]
    assert stored[0] in ((), []) and [list(p) for p in stored[1]] == \
        [['action_mask_grasp_clearance', True], ['grasp_centring', 0.016]]
    assert 'grasp_centring=0.016' in centred.label


def test_outputs_table_and_plot(cases, tmp_path):
    plan = harness.plan_runs(['random', 'challenging'], runs=2, objects=4, case_files=cases)
    weights = {'grasp_only': UNTRAINED, 'vpg': TRAINED, 'myopic': UNTRAINED}
    store = harness.RunStore(tmp_path / 'runs.jsonl')
    summary = harness.run_evaluation(plan, weights, store, FakeCell(), log=lambda *_: None)
    paths = harness.write_outputs(summary, tmp_path / 'out', 'evaluate --runs 2')
    loaded = json.loads(paths[0].read_text())
    assert list(loaded) == ['random', 'challenging']
    for scenario in loaded.values():
        assert list(scenario) == ['grasp_only', 'vpg', 'myopic']
        for entry in scenario.values():
            assert {'completion', 'grasp_success', 'efficiency', 'runs'} <= set(entry)
    table = paths[1].read_text()
    assert '| challenging | VPG (push + grasp) | 4 | 100.0 ± 0.0 |' in table
    assert '82.7 | 77.2 | 60.1 |' in table  # VPG's published challenging results
    assert 'ab' * 32 in table and 'version 1200' in table
    assert 'Command: `evaluate --runs 2`' in table
    assert paths[2].read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert paths[2].stat().st_size > 10000


def test_ground_truth_cross_check_of_completion():
    record = {'objects_in_workspace_before': 3, 'removed_before': 1, 'removed': 4,
              'objects_in_workspace_after': 0}
    assert harness.cleared_by_ground_truth(record)
    # The fingers reported three holds but one block fell back onto the table.
    assert not harness.cleared_by_ground_truth(dict(record, removed=3,
                                                    objects_in_workspace_after=1))
    # Pushed out of the workspace instead of grasped.
    assert not harness.cleared_by_ground_truth(dict(record, removed=3))
    assert not harness.cleared_by_ground_truth({'objects_in_workspace_before': 3})


def test_summary_gives_both_completions_intervals_pushes_and_a_paired_comparison(cases, tmp_path):
    plan = harness.plan_runs(['random', 'challenging'], runs=4, objects=4, case_files=cases,
                             perturbed_dir=tmp_path / 'perturbed')
    # Every run of a case loads its own perturbed file; the policies share them.
    files = [spec.test_case_file for spec in plan if spec.scenario == 'challenging']
    assert len(set(files)) == len(files) == 8
    assert all('perturbed' in f for f in files)
    weights = {'grasp_only': UNTRAINED, 'vpg': UNTRAINED}
    store = harness.RunStore(tmp_path / 'runs.jsonl')
    summary = harness.run_evaluation(plan, weights, store, FakeCell(), log=lambda *_: None)
    grasp_only = summary['random']['grasp_only']
    # grasp_only completes runs 0 and 2 of 4 by VPG's rule and by ground truth.
    assert grasp_only['completion'] == 50.0 and grasp_only['completion_cleared'] == 50.0
    assert grasp_only['completion_ci95'] == pytest.approx([15.0, 85.0], abs=0.05)
    # Each completed run has one push; the failed runs none.
    assert grasp_only['pushes_per_run'] == 0.5 and grasp_only['runs_with_push'] == 2
    assert grasp_only['grasp_success_ci95'] == [100.0, 100.0]
    vpg = summary['challenging']['vpg']
    assert vpg['completion_ci95'][0] > 60 and vpg['completion_ci95'][1] == 100.0
    paired = vpg['paired_vs_grasp_only']
    assert paired['a_better'] == 2 and paired['b_better'] == 0
    assert paired['cases']['pair'] == {'a': [4, 4], 'b': [2, 4], 'difference': 50.0,
                                       'fisher_p': pytest.approx(0.4286, abs=1e-4)}
    table = harness.table_markdown(summary)
    assert 'completion (ground truth)' in table and 'case by case' in table


def test_ground_truth_completion_differs_from_vpgs_rule_when_a_grasp_lifts_two():
    # One grasp lifted two of three blocks: s = 2 < N = 3, yet the table is empty.
    steps = [{'primitive': 1, 'reward': 1.0}, {'primitive': 1, 'reward': 1.0}]
    double = {'steps': steps, 'actions': 2, 'grasp_attempts': 2, 'grasp_successes': 2,
              'objects_in_workspace_before': 3, 'objects_in_workspace_after': 0,
              'removed_before': 0, 'removed': 3, 'case': 'c', 'reason_code': 1}
    # A push knocked a block out: VPG's rule counts it complete (s >= N), ground truth not.
    knocked = {'steps': [{'primitive': 0, 'reward': 0.5}] + steps * 2, 'actions': 5,
               'grasp_attempts': 4, 'grasp_successes': 4, 'objects_in_workspace_before': 4,
               'objects_in_workspace_after': 0, 'removed_before': 0, 'removed': 3,
               'case': 'c', 'reason_code': 1}
    values = harness.run_intervals([double, knocked])
    assert values['completion_cleared'] == 50.0
    assert harness.metrics.session_metrics([double, knocked]).completion == 0.0 + 50.0
    assert values['pushes_per_run'] == 0.5 and values['runs_with_push'] == 1
