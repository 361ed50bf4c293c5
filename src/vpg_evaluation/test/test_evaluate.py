"""The `evaluate` entry point: argument checks, weights, and a tiny real run end to end."""

import json
import os
import subprocess
import sys
import threading
import time

import pytest
from vpg_bringup.runner import GraphStopped
from vpg_evaluation import evaluate, harness, metrics


def test_missing_weights_is_a_clear_error(tmp_path, capsys):
    status = evaluate.main(['--runs', '1', '--weights-dir', str(tmp_path / 'none'),
                            '--out', str(tmp_path / 'out')])
    assert status == 2
    error = capsys.readouterr().err
    assert "no weights for policy 'grasp_only'" in error and '--allow-untrained' in error
    assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize('arguments, fragment', [
    (['--weights', 'fancy=/tmp/x.safetensors'], 'expected POLICY=PATH'),
    (['--cases', 'no_such_case'], "unknown test case 'no_such_case'"),
    (['--case-file', '/no/such/file.txt'], 'does not exist'),
])
def test_bad_arguments_are_refused(arguments, fragment, tmp_path, capsys):
    status = evaluate.main(['--allow-untrained', '--out', str(tmp_path / 'out')] + arguments)
    assert status == 2
    assert fragment in capsys.readouterr().err


class BlockingSession:
    """Stands in for CellSession: its one run lasts until stop() (a goal minutes long)."""

    opened = []

    def __init__(self, weights, device, log_path, domain_id=None):
        self.stopped = threading.Event()
        BlockingSession.opened.append(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def stop(self):
        self.stopped.set()

    def run(self, spec, policy, run_timeout=None):
        if not self.stopped.wait(60.0):
            raise AssertionError('the run in progress was not stopped')
        raise GraphStopped('the graph was stopped')


def test_interrupt_ends_the_run_in_progress_without_a_restart(tmp_path, monkeypatch):
    monkeypatch.setattr(evaluate, 'CellSession', BlockingSession)
    BlockingSession.opened.clear()
    args = evaluate.parse_args(['--allow-untrained', '--out', str(tmp_path)])
    run_policy = evaluate.make_policy_runner(args, tmp_path)
    spec = harness.plan_runs(['random'], runs=1, objects=4)[0]
    outcome = []

    def cell():
        try:
            run_policy('vpg', None, [spec], outcome.append)
        except BaseException as error:  # noqa: B902 (handed to the test thread)
            outcome.append(error)

    thread = threading.Thread(target=cell, daemon=True)
    thread.start()
    while not BlockingSession.opened:
        time.sleep(0.01)
    started = time.monotonic()
    run_policy.interrupt()
    thread.join(timeout=30.0)
    assert not thread.is_alive() and time.monotonic() - started < 5.0
    assert len(outcome) == 1 and isinstance(outcome[0], harness.Stopped), outcome
    assert len(BlockingSession.opened) == 1  # the stopped graph was not restarted


def test_weights_file_sets_graph_variant_version_and_sha(tmp_path):
    from vpg_policy.q_network import build_q_network
    from vpg_policy.weights import save_weights
    path = tmp_path / 'vpg.safetensors'
    sha = save_weights(path, build_q_network('vpg', seed=3), version=42)
    # An empty weights folder: myopic has no file there (the repository ships one).
    args = evaluate.parse_args(['--weights', f'vpg={path}', '--policies', 'vpg', 'myopic',
                                '--allow-untrained', '--weights-dir', str(tmp_path / 'none')])
    weights = evaluate.resolve_weights(args)
    assert weights['vpg'] == harness.WeightsInfo(str(path.resolve()), sha, 42, 'vpg')
    assert weights['myopic'] == harness.WeightsInfo()
    policy = [s for s in evaluate.policy_graph(weights['vpg'], 'cpu')
              if s.package == 'vpg_policy'][0]
    assert policy.parameters['weights_path'] == str(path.resolve())
    assert policy.parameters['variant'] == 'vpg' and policy.parameters['device'] == 'cpu'
    assert policy.parameters['publish_heatmaps'] is False


def test_policy_parameters_reach_every_policys_graph(tmp_path):
    args = evaluate.parse_args(['--policies', 'vpg', 'grasp_only', '--allow-untrained',
                                '--weights-dir', str(tmp_path / 'none'),
                                '--policy-param', 'grasp_centring=0.016',
                                '--policy-param', 'action_mask_grasp_clearance=true'])
    weights = evaluate.resolve_weights(args)
    expected = (('action_mask_grasp_clearance', True), ('grasp_centring', 0.016))
    assert all(info.policy_parameters == expected for info in weights.values())
    policy = [s for s in evaluate.policy_graph(weights['vpg'], 'cpu')
              if s.package == 'vpg_policy'][0]
    assert policy.parameters['grasp_centring'] == 0.016
    assert policy.parameters['action_mask_grasp_clearance'] is True
    for bad, fragment in (('device=cuda', 'cannot set device'), ('centring', 'NAME=VALUE')):
        args = evaluate.parse_args(['--allow-untrained', '--policy-param', bad])
        with pytest.raises(evaluate.EvaluationError, match=fragment):
            evaluate.resolve_weights(args)


def test_the_weights_record_sets_their_policy_parameters_under_policy_param(tmp_path):
    from vpg_policy.q_network import build_q_network
    from vpg_policy.weights import save_weights
    path = tmp_path / 'vpg.safetensors'
    save_weights(path, build_q_network('vpg', seed=3), version=7)
    record = tmp_path / 'vpg.json'
    record.write_text(json.dumps({'policy_parameters': {'action_mask_grasp_inset': 0.006,
                                                        'grasp_centring': 0.016}}))
    args = evaluate.parse_args(['--weights', f'vpg={path}', '--policies', 'vpg',
                                '--policy-param', 'grasp_centring=0.0'])
    served = evaluate.resolve_weights(args)['vpg']
    assert served.policy_parameters == (('action_mask_grasp_inset', 0.006),
                                        ('grasp_centring', 0.0))
    policy = [s for s in evaluate.policy_graph(served, 'cpu') if s.package == 'vpg_policy'][0]
    assert policy.parameters['action_mask_grasp_inset'] == 0.006
    assert policy.parameters['grasp_centring'] == 0.0
    for text, fragment in (('{"policy_parameters": {"device": "cuda"}}', 'sets device'),
                           ('{"policy_parameters": 3}', 'must map names')):
        record.write_text(text)
        with pytest.raises(evaluate.EvaluationError, match=fragment):
            evaluate.resolve_weights(args)


@pytest.mark.slow
def test_evaluate_end_to_end_with_the_untrained_policy(tmp_path):
    out = tmp_path / 'eval'
    command = [sys.executable, '-m', 'vpg_evaluation.evaluate', '--runs', '1',
               '--allow-untrained', '--weights-dir', str(tmp_path / 'no_weights'),
               '--objects', '2', '--max-actions', '1', '--cases', 'cuboid_raft',
               '--jobs', '2', '--out', str(out)]
    done = subprocess.run(command, env=dict(os.environ), capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-5000:]
    assert 'N = 1 runs' in done.stdout and 'seeds 0..0' in done.stdout
    assert done.stdout.count('untrained (random initialisation)') >= 3

    records = [json.loads(line) for line in (out / 'runs.jsonl').read_text().splitlines()]
    assert sorted((r['policy'], r['scenario']) for r in records) == sorted(
        (p, s) for p in harness.POLICIES for s in harness.SCENARIOS)
    for record in records:
        assert record['actions'] == 1 and len(record['steps']) == 1
        assert record['reason_code'] in harness.NORMAL_ENDS
        if record['scenario'] == 'challenging':  # cuboid_raft: 4 blocks, all inside
            assert record['objects_in_workspace_before'] == 4
        else:
            assert 1 <= record['objects_in_workspace_before'] <= 2
        if record['policy'] == 'grasp_only':  # the goal's `allowed` reached the policy
            assert all(step['primitive'] == 1 for step in record['steps'])

    summary = json.loads((out / 'summary.json').read_text())
    assert list(summary) == ['random', 'challenging']
    for scenario, policies in summary.items():
        assert list(policies) == list(harness.POLICIES)
        for policy, entry in policies.items():
            assert entry['runs'] == 1
            assert {'completion', 'grasp_success', 'efficiency'} <= set(entry)
            mine = [r for r in records if r['policy'] == policy and r['scenario'] == scenario]
            expected = metrics.session_metrics(mine)
            assert entry['completion'] == expected.completion
            assert entry['grasp_success'] == expected.grasp_success
            assert entry['efficiency'] == expected.efficiency
            assert entry['completion'] in (0.0, 100.0)
    assert (out / 'table.md').read_text().startswith('# VPG evaluation in the MuJoCo cell')
    assert (out / 'metrics.png').stat().st_size > 10000

    again = subprocess.run(command, env=dict(os.environ), capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0, again.stderr[-5000:]
    assert again.stdout.count('2 of 2 runs already stored, 0 to run') == 3
    assert len((out / 'runs.jsonl').read_text().splitlines()) == len(records)
    assert json.loads((out / 'summary.json').read_text()) == summary
