"""Shipping a run's weights: the record beside them, and refusal of a tampered file."""

import json

import pytest
from vpg_policy.q_network import build_q_network
from vpg_policy.weights import read_weights, save_weights
from vpg_training.ship_weights import main, ship


def make_run(tmp_path, version=3):
    run_dir = tmp_path / 'run'
    (run_dir / 'checkpoints').mkdir(parents=True)
    weights = run_dir / 'checkpoints' / f'weights_v{version:06d}.safetensors'
    save_weights(weights, build_q_network('vpg'), version)
    sha = read_weights(weights).sha256
    run = {'command': f'python -m vpg_training.training_run --run-dir {run_dir} --actions 40 '
                      '--seed 2 --cells 1',
           'seed': 2, 'cells': 1, 'actions': 40, 'grasp_success_last200': 0.25,
           'push_success_last200': 0.5, 'grasp_attempts': 20, 'push_attempts': 20,
           'wall_minutes': 1.5, 'weights_version': version, 'weights': str(weights),
           'sha256': sha, 'updates': 100}
    (run_dir / 'run.json').write_text(json.dumps(run))
    return run_dir, weights


def test_ship_copies_weights_and_writes_the_record(tmp_path, monkeypatch):
    run_dir, weights = make_run(tmp_path)
    monkeypatch.chdir(tmp_path)
    record = ship(str(run_dir), 'vpg', str(tmp_path / 'weights'))
    shipped = tmp_path / 'weights' / 'vpg.safetensors'
    assert shipped.read_bytes() == weights.read_bytes()
    on_disk = json.loads((tmp_path / 'weights' / 'vpg.json').read_text())
    assert on_disk == record
    for key in ('command', 'seed', 'actions', 'grasp_success_last200', 'wall_minutes'):
        assert key in on_disk
    assert on_disk['command'].startswith('python -m vpg_training.training_run --run-dir run ')
    assert on_disk['seed'] == 2 and on_disk['actions'] == 40
    assert on_disk['sha256'] == read_weights(shipped).sha256


def test_tampered_or_unfinished_runs_are_refused(tmp_path, capsys):
    run_dir, weights = make_run(tmp_path)
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    assert main(['--run-dir', str(run_dir), '--name', 'x', '--out', str(tmp_path / 'w')]) == 1
    assert 'sha256' in capsys.readouterr().err
    assert not (tmp_path / 'w' / 'x.safetensors').exists()
    (run_dir / 'run.json').write_text(json.dumps({'seed': 1}))
    with pytest.raises(ValueError, match='lacks'):
        ship(str(run_dir), 'x', str(tmp_path / 'w'))


def test_a_rate_never_measured_is_written_as_null(tmp_path):
    run_dir, _ = make_run(tmp_path)
    run = json.loads((run_dir / 'run.json').read_text())
    run['push_success_last200'] = float('nan')  # a grasp-only run's run.json before nulls
    (run_dir / 'run.json').write_text(json.dumps(run))
    ship(str(run_dir), 'grasp_only', str(tmp_path / 'weights'))
    text = (tmp_path / 'weights' / 'grasp_only.json').read_text()
    assert 'NaN' not in text
    assert json.loads(text)['push_success_last200'] is None


def test_the_record_carries_the_policy_parameters_the_run_trained_with(tmp_path):
    from vpg_policy.weights_record import trained_policy_parameters
    run_dir, _ = make_run(tmp_path)
    run = json.loads((run_dir / 'run.json').read_text())
    trained = {'action_mask_grasp_clearance': True, 'grasp_centring': 0.016}
    (run_dir / 'run.json').write_text(json.dumps({**run, 'policy_parameters': trained}))
    ship(str(run_dir), 'vpg', str(tmp_path / 'weights'))
    assert trained_policy_parameters(tmp_path / 'weights' / 'vpg.safetensors') == trained
    # A run recorded before run.json had the field: its command's --policy-param values.
    run['command'] += (' --policy-param action_mask_grasp_inset=0.006'
                       ' --gamma 0 --policy-param exploration=random_action')
    (run_dir / 'run.json').write_text(json.dumps(run))
    record = ship(str(run_dir), 'myopic', str(tmp_path / 'weights'))
    assert record['policy_parameters'] == {'action_mask_grasp_inset': 0.006,
                                           'exploration': 'random_action'}
    (run_dir / 'run.json').write_text(json.dumps({**run, 'command': 'python -m x --seed 1'}))
    assert ship(str(run_dir), 'plain', str(tmp_path / 'weights'))['policy_parameters'] == {}
