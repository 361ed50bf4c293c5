"""The data-budget experiment: pool checks, budget split, training, outputs, a tiny real run."""

import importlib.util
import json
import os
from pathlib import Path
import subprocess
import sys

import numpy as np
import pytest
from vpg_common.primitives import GRASP, PUSH
from vpg_evaluation import harness, multitask_experiment as experiment, multitask_models as models

SYNTHETIC = Path(__file__).resolve().parents[2] / 'vpg_trainer' / 'test' / \
    'synthetic_transitions.py'


def synthetic_module():
    """Load the trainer tests' synthetic transitions (small heightmaps, rewards by a rule)."""
    spec = importlib.util.spec_from_file_location('synthetic_transitions', SYNTHETIC)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_replay(path, grasps, pushes, seed=0):
    """Write a replay store holding exactly `grasps` grasp and `pushes` push transitions."""
    from vpg_trainer.replay import ReplayStore
    synthetic = synthetic_module()
    rng = np.random.default_rng(seed)
    store = ReplayStore(path)
    wanted = {GRASP: grasps, PUSH: pushes}
    step = 0
    while any(wanted.values()):
        record = synthetic.transition(rng)
        if wanted[record.primitive]:
            record.step = step
            store.add(record)
            wanted[record.primitive] -= 1
            step += 1
    store.close()
    return path


def fake_pool(grasps=40, pushes=30):
    ids = np.arange(1, grasps + pushes + 1)
    rng = np.random.default_rng(7)
    rng.shuffle(ids)
    return models.Pool('/pool.sqlite', np.sort(ids[:grasps]), np.sort(ids[grasps:]))


def test_split_is_nested_paired_and_seeded():
    pool = fake_pool()
    small, large = (models.split_budget(pool, n, seed=1) for n in (8, 16))
    for split, n in ((small, 8), (large, 16)):
        grasp_only, multitask = split['grasp_only'], split['multitask']
        assert len(grasp_only[0]) == n and len(grasp_only[1]) == 0
        assert len(multitask[0]) == n // 2 and len(multitask[1]) == n // 2
        # The arms differ only in N/2 grasps swapped for N/2 pushes.
        assert set(multitask[0]) <= set(grasp_only[0])
        assert set(grasp_only[0]) <= set(pool.grasp_ids)
        assert set(multitask[1]) <= set(pool.push_ids)
        assert len(set(grasp_only[0])) == n and len(set(multitask[1])) == n // 2
    assert set(small['grasp_only'][0]) <= set(large['grasp_only'][0])
    assert set(small['multitask'][1]) <= set(large['multitask'][1])
    again = models.split_budget(pool, 16, seed=1)
    assert np.array_equal(again['grasp_only'][0], large['grasp_only'][0])
    other = models.split_budget(pool, 16, seed=2)
    assert not np.array_equal(other['grasp_only'][0], large['grasp_only'][0])


def test_both_arms_get_equal_steps_and_every_transition_equally_often():
    settings = models.TrainSettings(epochs=3, min_steps=0, batch_size=8)
    steps = models.training_steps(16, settings)
    assert steps == 6
    assert models.training_steps(16, models.TrainSettings(epochs=3, min_steps=10)) == 10
    assert models.training_steps(800, models.TrainSettings()) == 2000
    rng = np.random.default_rng(0)
    grasp_only = models.arm_batches('grasp_only', 16, 0, steps, settings, rng)
    multitask = models.arm_batches('multitask', 8, 8, steps, settings, rng)
    assert grasp_only.shape == multitask.shape == (steps, 8)
    assert (grasp_only < 16).all()
    assert (multitask[:, :4] < 8).all() and (multitask[:, 4:] >= 8).all()
    for batches, count in ((grasp_only, 16), (multitask, 16)):
        uses = np.bincount(batches.ravel(), minlength=count)
        assert uses.min() == uses.max() == 3
    uneven = models.batch_schedule(5, 4, 3, np.random.default_rng(1))
    uses = np.bincount(uneven.ravel(), minlength=5)
    assert uses.sum() == 12 and uses.max() - uses.min() <= 1


def test_pool_and_budget_refusals_name_the_numbers():
    with pytest.raises(models.ExperimentError, match='holds 40 grasps and 30 pushes; '
                       'budget N = 64 needs 64 grasps'):
        models.check_pool(fake_pool(), [8, 64])
    with pytest.raises(models.ExperimentError, match='needs 40 grasps .* and 20 pushes'):
        models.check_pool(fake_pool(grasps=40, pushes=19), [40])
    models.check_pool(fake_pool(grasps=40, pushes=20), [40])
    with pytest.raises(models.ExperimentError, match='even'):
        models.check_budgets([8, 9])
    assert models.check_budgets([16, 8]) == [8, 16]


def test_missing_replay_is_refused_and_nothing_is_created(tmp_path, capsys):
    replay = tmp_path / 'none' / 'replay.sqlite'
    status = experiment.main(['--replay', str(replay), '--out', str(tmp_path / 'out')])
    assert status == 2
    assert f'replay file {replay} does not exist' in capsys.readouterr().err
    assert not replay.parent.exists() and not (tmp_path / 'out').exists()


def test_small_pool_is_refused(tmp_path, capsys):
    replay = make_replay(tmp_path / 'replay.sqlite', grasps=5, pushes=2)
    status = experiment.main(['--replay', str(replay), '--budgets', '4', '8',
                              '--out', str(tmp_path / 'out')])
    assert status == 2
    error = capsys.readouterr().err
    assert 'holds 5 grasps and 2 pushes' in error and 'N = 8 needs 8 grasps' in error
    assert not (tmp_path / 'out').exists()


def test_eval_scenes_are_held_out_and_spend_exactly_k_grasps():
    settings = experiment.EvalSettings(grasps=30, objects=10, scene_actions=25)
    first = experiment.next_spec(0, 30, settings)
    assert first.seed == experiment.EVAL_FIRST_SEED and first.max_actions == 25
    assert first.num_objects == 10 and first.scenario == 'random'
    assert experiment.next_spec(3, 4, settings).max_actions == 4
    assert experiment.next_spec(3, 4, settings).seed == experiment.EVAL_FIRST_SEED + 3
    # The training driver's scene seeds: run seed x 100000 + episode x 10 + cell (episodes
    # below 10000 keep the run seeds apart); run seeds up to 9999 stay below the range.
    assert 9999 * 100000 + 9999 * 10 + 9 < experiment.EVAL_FIRST_SEED
    with pytest.raises(ValueError):
        experiment.next_spec(0, 0, settings)


def test_training_runs_both_arms_and_resume_skips_trained_models(tmp_path):
    replay = make_replay(tmp_path / 'replay.sqlite', grasps=10, pushes=6)
    out = tmp_path / 'out'
    argv = ['--replay', str(replay), '--budgets', '4', '8', '--seeds', '1', '--epochs', '2',
            '--min-steps', '0', '--batch-size', '4', '--train-only', '--out', str(out)]
    assert experiment.main(argv) == 0
    from vpg_policy.weights import read_weights
    paths = sorted((out / 'models').glob('*.safetensors'))
    assert [p.name for p in paths] == ['grasp_only_n00004_seed0.safetensors',
                                       'grasp_only_n00008_seed0.safetensors',
                                       'multitask_n00004_seed0.safetensors',
                                       'multitask_n00008_seed0.safetensors']
    stamps = {p: p.stat().st_mtime_ns for p in paths}
    for path in paths:
        loaded = read_weights(path)
        identity = json.loads(loaded.metadata.extra['experiment'])
        stats = json.loads(loaded.metadata.extra['train_stats'])
        arm = identity['arm']
        assert loaded.metadata.variant == models.ARM_VARIANTS[arm]
        assert stats['steps'] == identity['steps'] == loaded.metadata.version
        assert stats['steps'] == 2 * identity['budget'] // 4
        assert (stats['grasps'], stats['pushes']) == (
            (identity['budget'], 0) if arm == 'grasp_only'
            else (identity['budget'] // 2, identity['budget'] // 2))
        # Pushes that moved something trained the inverse model.
        assert (stats['final_inverse_loss'] is not None) == (
            arm == 'multitask' and stats['pushes_changed'] > 0)
    summary = json.loads((out / 'summary.json').read_text())
    assert summary == {'4': {'grasp_only': None, 'multitask': None, 'seeds': 0},
                       '8': {'grasp_only': None, 'multitask': None, 'seeds': 0}}

    assert experiment.main(argv) == 0
    assert {p: p.stat().st_mtime_ns for p in paths} == stamps
    # Other training settings make other models.
    assert experiment.main(argv[:-2] + ['--learning-rate', '1e-3', '--out', str(out)]) == 0
    assert all(p.stat().st_mtime_ns != stamps[p] for p in paths)


def fake_runs(successes, attempts, identity):
    """Run records as the cell stores them: grasp steps with rewards 1 (success) or 0."""
    steps = [{'primitive': 1, 'reward': 1.0 if i < successes else 0.0}
             for i in range(attempts)]
    return [{'run_index': 0, 'seed': experiment.EVAL_FIRST_SEED, 'steps': steps,
             'actions': attempts, 'grasp_attempts': attempts, 'grasp_successes': successes,
             'objects_in_workspace_before': 10, 'experiment': identity}]


def test_summary_details_table_and_plot(tmp_path):
    eval_settings = experiment.EvalSettings(grasps=4)
    weights = harness.WeightsInfo('/m.safetensors', 'cd' * 32, 5, 'vpg')
    outcomes = {(8, 0, 'grasp_only'): 1, (8, 0, 'multitask'): 2, (8, 1, 'grasp_only'): 3,
                (8, 1, 'multitask'): 4, (16, 0, 'grasp_only'): 4, (16, 0, 'multitask'): 0,
                (16, 1, 'grasp_only'): 2}  # (16, 1, multitask) not evaluated yet
    results = {}
    for (budget, seed, arm), successes in outcomes.items():
        job = models.ModelJob(budget, seed, arm, (), ())
        identity = experiment.eval_identity(job, weights, eval_settings)
        runs = experiment.model_runs(fake_runs(successes, 4, identity), identity)
        results[(budget, seed, arm)] = experiment.model_result(
            job, weights, {'train_stats': '{"steps": 5}'}, runs, eval_settings)
    summary, details = experiment.summarize(results, [8, 16], seeds=2)
    assert summary == {'8': {'grasp_only': 50.0, 'multitask': 75.0, 'seeds': 2},
                       '16': {'grasp_only': 100.0, 'multitask': 0.0, 'seeds': 1}}
    assert details['8']['multitask']['min'] == 50.0 and details['8']['multitask']['max'] == 100.0
    per_seed = details['16']['grasp_only']['per_seed']
    assert [(r['seed'], r['successes'], r['attempts'], r['success']) for r in per_seed] == [
        (0, 4, 4, 100.0), (1, 2, 4, 50.0)]
    assert per_seed[0]['train'] == {'steps': 5}
    paths = experiment.write_outputs(tmp_path, summary, details, {'seeds': 2}, eval_settings)
    assert json.loads(paths[0].read_text()) == summary
    assert json.loads(paths[1].read_text())['budgets'] == details
    table = paths[2].read_text()
    assert '| 8 | 2 | 50.0 ± 35.4 (25-75) | 75.0 ± 35.4 (50-100) | +25.0 |' in table
    assert paths[3].stat().st_size > 10000


@pytest.mark.slow
@pytest.mark.timeout(1800)  # four graphs (one per model) start one after another
def test_experiment_end_to_end_in_the_cell(tmp_path):
    replay = make_replay(tmp_path / 'replay.sqlite', grasps=20, pushes=10)
    out = tmp_path / 'multitask'
    command = [sys.executable, '-m', 'vpg_evaluation.multitask_experiment',
               '--replay', str(replay), '--budgets', '8', '16', '--seeds', '1',
               '--epochs', '2', '--min-steps', '0', '--eval-grasps', '2', '--objects', '3',
               '--out', str(out)]
    done = subprocess.run(command, env=dict(os.environ), capture_output=True, text=True,
                          timeout=1500)
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-5000:]
    assert 'pool' in done.stdout and '20 grasps, 10 pushes' in done.stdout

    summary = json.loads((out / 'summary.json').read_text())
    assert list(summary) == ['8', '16']
    for entry in summary.values():
        assert set(entry) == {'grasp_only', 'multitask', 'seeds'} and entry['seeds'] == 1
        for arm in models.ARMS:
            assert 0.0 <= entry[arm] <= 100.0
    details = json.loads((out / 'details.json').read_text())
    records = [json.loads(line) for line in (out / 'runs.jsonl').read_text().splitlines()]
    for budget in ('8', '16'):
        for arm in models.ARMS:
            (result,) = details['budgets'][budget][arm]['per_seed']
            assert result['attempts'] == 2 and result['complete']
            assert result['success'] == 100.0 * result['successes'] / 2
            assert result['success'] == summary[budget][arm]
            mine = [r for r in records if r['experiment']['arm'] == arm
                    and r['experiment']['budget'] == int(budget)]
            assert mine and all(r['seed'] >= experiment.EVAL_FIRST_SEED for r in mine)
            assert sum(r['grasp_attempts'] for r in mine) == 2
            # Grasp-only decisions reached the policy: every action was a grasp.
            assert all(s['primitive'] == 1 for r in mine for s in r['steps'])
            assert all(r['push_attempts'] == 0 and r['goal']['explore'] is False
                       for r in mine)
    assert (out / 'grasp_success_vs_n.png').stat().st_size > 10000
    assert len(list((out / 'models').glob('*.safetensors'))) == 4

    again = subprocess.run(command, env=dict(os.environ), capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0, again.stdout[-5000:] + again.stderr[-5000:]
    assert again.stdout.count('already trained') == 4
    assert 'evaluating in the cell' not in again.stdout
    assert len((out / 'runs.jsonl').read_text().splitlines()) == len(records)
    assert json.loads((out / 'summary.json').read_text()) == summary


def test_a_pool_of_several_stores_keeps_their_ids_apart(tmp_path):
    first = make_replay(tmp_path / 'a.sqlite', grasps=5, pushes=3, seed=1)
    second = make_replay(tmp_path / 'b.sqlite', grasps=4, pushes=2, seed=2)
    single = models.read_pool(first)
    # One store: its own ids, and its path alone, as before pools of several stores.
    assert single.path == str(first.resolve()) and single.paths == (str(first.resolve()),)
    assert sorted(np.concatenate([single.grasp_ids, single.push_ids])) == list(range(1, 9))
    pool = models.read_pool([first, second])
    assert (len(pool.grasp_ids), len(pool.push_ids)) == (9, 5)
    assert pool.path == f'{first.resolve()} + {second.resolve()}'
    every = np.concatenate([pool.grasp_ids, pool.push_ids])
    assert len(set(every.tolist())) == 14
    assert sorted(i // models.ID_STRIDE for i in every) == [0] * 8 + [1] * 6
    store = models.PooledStore(pool)
    try:
        from vpg_trainer.replay import ReplayStore
        mixed = [int(pool.grasp_ids[-1]), int(pool.grasp_ids[0]), int(pool.push_ids[-1])]
        records = store.get(mixed)
        for pooled, record in zip(mixed, records):
            source = ReplayStore([first, second][pooled // models.ID_STRIDE])
            try:
                expected = source.get([pooled % models.ID_STRIDE])[0]
            finally:
                source.close()
            assert record.step == expected.step and record.primitive == expected.primitive
            assert np.array_equal(record.height_before, expected.height_before)
        with pytest.raises(KeyError):
            store.get([5 * models.ID_STRIDE + 1])
    finally:
        store.close()
    with pytest.raises(models.ExperimentError, match='given twice'):
        models.read_pool([first, first])


def test_experiment_trains_on_a_pool_of_two_stores(tmp_path):
    first = make_replay(tmp_path / 'a.sqlite', grasps=5, pushes=2, seed=1)
    second = make_replay(tmp_path / 'b.sqlite', grasps=4, pushes=3, seed=2)
    out = tmp_path / 'out'
    argv = ['--replay', str(first), str(second), '--budgets', '8', '--seeds', '1',
            '--epochs', '1', '--min-steps', '0', '--batch-size', '4', '--train-only',
            '--out', str(out)]
    # Neither store alone holds 8 grasps; the pool does.
    assert experiment.main(argv[:2] + argv[3:]) == 2
    assert experiment.main(argv) == 0
    details = json.loads((out / 'details.json').read_text())
    assert details['settings']['pool_grasps'] == 9 and details['settings']['pool_pushes'] == 5
    assert details['settings']['replays'] == [str(first.resolve()), str(second.resolve())]
    assert len(list((out / 'models').glob('*.safetensors'))) == 2
