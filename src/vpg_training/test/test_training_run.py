"""`make train` end to end with two MuJoCo cells feeding one trainer (separate processes)."""

import csv
import json
import os
import signal
import threading
import time

import pytest
from vpg_bringup.graph import training_graph
from vpg_bringup.pick_all_client import PickAllClientError
from vpg_bringup.runner import GraphRunner, GraphStopped, NodeDied
from vpg_evaluation.packed_clusters import equals_case, evaluation_cases
from vpg_sim.blocks import load_test_case
from vpg_trainer.replay import ReplayStore
from vpg_training import training_run
from vpg_training.training_run import (main, packed_episode, parse_args, policy_parameters,
                                       restartable, trainer_parameters, write_packed_scene)


def test_two_cell_graph_shares_trainer_topics_and_keeps_clocks_apart():
    nodes = training_graph('/tmp/run', cells=2)
    executors = [n for n in nodes if n.executable == 'executor']
    policies = [n for n in nodes if n.executable == 'policy']
    assert [n.namespace for n in executors] == ['/cell0', '/cell1']
    for executor in executors:
        assert ('transitions', '/transitions') in executor.remappings
        assert ('/clock', f'{executor.namespace}/clock') in executor.remappings
    for policy in policies:
        assert ('model_updates', '/model_updates') in policy.remappings
    trainers = [n for n in nodes if n.executable == 'trainer']
    assert len(trainers) == 1 and trainers[0].namespace == ''
    assert trainers[0].parameters['run_dir'] == '/tmp/run'


@pytest.mark.slow
def test_two_cells_train_one_network(tmp_path, capsys):
    run = tmp_path / 'run'
    status = main(['--run-dir', str(run), '--actions', '8', '--cells', '2', '--objects', '4',
                   '--packed-share', '0.5', '--trainer-param', 'checkpoint_every=1',
                   '--trainer-param', 'batch_size=2', '--trainer-param', 'min_transitions=1'])
    out, err = capsys.readouterr()
    assert status == 0, err
    # Episode 2 (every second one) had a packed-cluster scene, written where the sim read it.
    assert 'packed clusters scene' in out and 'random scene' in out
    assert list((run / 'scenes').glob('packed-*.txt'))
    with open(run / 'metrics.csv', newline='') as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r['action']) for r in rows] == list(range(1, 9))
    # Transitions from both cells reached the one trainer.
    store = ReplayStore(run / 'replay.sqlite')
    cells = {r.cell_name for r in store.get(store.ids_and_priorities()[0])}
    store.close()
    assert cells == {'cell0', 'cell1'}
    # New weights reached both cells' policies: their pick_all feedback reports them.
    versions = [int(r['weights_version']) for r in rows]
    assert versions[-1] > versions[0]
    serving = [line for line in (run / 'nodes.log').read_text().splitlines()
               if 'now serving weights version' in line]
    for cell in ('cell0', 'cell1'):
        assert any(f'{cell}.policy' in line for line in serving), cell
    info = json.loads((run / 'run.json').read_text())
    assert info['actions'] == 8 and info['command'].startswith('python -m vpg_training')
    assert (run / 'curve.png').stat().st_size > 0


def test_policy_and_trainer_parameters_from_the_command_line():
    args = parse_args(['--run-dir', 'r', '--gamma', '0', '--view',
                       '--trainer-param', 'push_reward=next_grasp',
                       '--policy-param', 'exploration_grasp_fraction=0.8'])
    assert policy_parameters(args) == {'torch_threads': 1, 'publish_heatmaps': True,
                                       'exploration_grasp_fraction': 0.8}
    assert trainer_parameters(args) == {'gamma': 0.0, 'device': 'cpu',
                                        'push_reward': 'next_grasp'}
    masked = parse_args(['--run-dir', 'r', '--policy-param', 'action_mask_push_margin=0.02'])
    assert policy_parameters(masked)['action_mask_push_margin'] == 0.02
    assert trainer_parameters(masked)['action_mask_push_margin'] == 0.02
    with pytest.raises(ValueError, match='NAME=VALUE'):
        policy_parameters(parse_args(['--run-dir', 'r', '--policy-param', 'oops']))


def test_packed_share_spreads_packed_episodes_evenly():
    def packed(share, episodes=12):
        return [k for k in range(1, episodes + 1) if packed_episode(k, share)]
    assert packed(0.0) == []
    assert packed(0.5) == [2, 4, 6, 8, 10, 12]
    assert packed(0.25) == [4, 8, 12]
    assert packed(1.0) == list(range(1, 13))
    assert len(packed(1 / 3, 300)) == 100
    with pytest.raises(SystemExit):
        parse_args(['--run-dir', 'r', '--packed-share', '1.5'])


def test_packed_scenes_are_case_files_the_sim_loads_and_never_evaluation_cases(tmp_path):
    cases = evaluation_cases()
    for seed in (10, 11, 20):
        path = write_packed_scene(tmp_path, seed, 10)
        objects = load_test_case(path)
        assert 4 <= len(objects) <= 10
        assert not any(equals_case(objects, case) for case in cases)
    assert sorted(p.name for p in (tmp_path / 'scenes').iterdir()) == [
        'packed-10.txt', 'packed-11.txt', 'packed-20.txt']


def test_graph_faults_restart_the_graph_and_run_faults_end_the_run():
    assert restartable(NodeDied('node exited unexpectedly: sim (exit code 1)'))
    assert restartable(TimeoutError('pick_all gave no result'))
    assert restartable(PickAllClientError('scene not reset'))
    # Ctrl-C stops the graph under a waiting goal; episodes failing in a row are the run's.
    assert not restartable(GraphStopped('the graph was stopped'))
    assert not restartable(RuntimeError('5 episodes in a row failed'))
    assert parse_args(['--run-dir', 'r']).max_restarts == 3


@pytest.mark.slow
def test_a_node_that_dies_mid_run_gets_a_fresh_graph_and_the_run_completes(
        tmp_path, monkeypatch, capsys):
    runners = []

    class RecordingRunner(GraphRunner):

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            runners.append(self)

    monkeypatch.setattr(training_run, 'GraphRunner', RecordingRunner)
    run = tmp_path / 'run'
    killed = threading.Event()

    def kill_the_sim_after_two_actions():
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and not killed.is_set():
            rows = training_run.read_rows(run / 'metrics.csv')
            if len(rows) >= 2 and runners:
                # As the sim exits when its physics stays unstable (CellUnstable).
                os.killpg(runners[0].processes['sim'].pid, signal.SIGKILL)
                killed.set()
            time.sleep(0.2)

    killer = threading.Thread(target=kill_the_sim_after_two_actions, daemon=True)
    killer.start()
    status = main(['--run-dir', str(run), '--actions', '5', '--objects', '4',
                   '--max-restarts', '1', '--trainer-param', 'batch_size=2',
                   '--trainer-param', 'min_transitions=1'])
    killer.join(timeout=5)
    out, err = capsys.readouterr()
    assert killed.is_set()
    assert status == 0, err
    assert len(runners) == 2
    assert 'restarting the graph (1 of 1) after: node exited unexpectedly: sim' in out
    with open(run / 'metrics.csv', newline='') as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r['action']) for r in rows] == [1, 2, 3, 4, 5]
    assert json.loads((run / 'run.json').read_text())['actions'] == 5
