"""
Pinto & Gupta's data-budget experiment in our cell: grasp-only vs multitask at equal N.

From the replay stores of one or more training runs (every transition the exploring robot
collected, grasps and pushes; several runs of the same cell and rewards make a larger pool),
for each budget N and seed, two networks are trained offline with the same optimiser (Adam),
learning rate, batch size and number of gradient steps (max(min_steps, epochs x N /
batch_size)):

* grasp_only: the `vpg` variant on N grasp transitions;
* multitask: the `multitask` variant (one shared trunk, push inverse model) on N/2 grasp and
  N/2 push transitions. Every batch is half grasps, half pushes, and goes through the trainer's
  own update (vpg_trainer.learner.Learner): the grasps train the grasp Q head, the pushes the
  push Q head (label: the push's reward) and, when they changed the scene, the inverse model
  (inverse_loss_weight x its loss). Both Q heads and the inverse model share the trunk.

Q labels are the reward alone (gamma 0): offline there is no policy whose future value the
label should follow, a grasp's success is an immediate reward, and a fixed target keeps the
training a plain supervised fit, the same for both arms.

The transitions are drawn per seed from one shuffled order of the pool's grasps and one of its
pushes, so budgets are nested (N = 200 holds the N = 100 data) and the multitask arm's grasps
are the first half of the grasp-only arm's: the arms differ only in N/2 grasps swapped for
N/2 pushes. The whole pool is available: evaluation runs on new random scenes in the MuJoCo
cell, seeds from `--eval-first-seed` (10^9) up, a range the training driver
(vpg_training.training_run: run seed x 100000 + episode x 10 + cell) does not reach for run
seeds below 10000. Every model sees the same scene seeds in the same order.

Evaluation: each model is served by the policy in the MuJoCo graph (vpg_evaluation.evaluate's
CellSession) and driven with greedy /pick_all goals restricted to grasps (ChoosePrimitive
GRASP_ONLY, explore False) until it made `--eval-grasps` grasp attempts; its score is the
percentage that succeeded (VPG's rule: reward >= 0.5).

Resumable: a model whose weights file records the same training identity is not trained
again, and every finished /pick_all run is a line of <out>/runs.jsonl, so an evaluation goes
on where it stopped. Outputs: <out>/models/*.safetensors, <out>/summary.json
({N: {"grasp_only": %, "multitask": %, "seeds": k}}, paired seeds only), <out>/details.json
(per seed: successes, attempts, training figures), <out>/table.md and
<out>/grasp_success_vs_n.png.

    python -m vpg_evaluation.multitask_experiment --replay results/runs/vpg-seed0/replay.sqlite \
        --budgets 100 200 400 800 --seeds 3 --eval-grasps 50 --out results/multitask
"""

import argparse
from dataclasses import asdict, dataclass
import json
import os
from pathlib import Path
import shlex
import signal
import sys
import time

import torch
from vpg_bringup.pick_all_client import PickAllClientError
from vpg_bringup.progress import Progress
from vpg_bringup.ros_domain import isolate
from vpg_bringup.runner import NodeDied, raise_keyboard_interrupt_on
from vpg_evaluation import harness, metrics
from vpg_evaluation.evaluate import CellSession, describe_run
from vpg_evaluation.multitask_models import (ARMS, check_budgets, check_pool, ensure_model,
                                             ExperimentError, model_path, plan_models,
                                             PooledStore, read_pool, stored_model,
                                             training_identity, training_steps, TrainSettings)

ARM_LABELS = {'grasp_only': 'grasp only (N grasps, vpg)',
              'multitask': 'multitask (N/2 grasps + N/2 pushes)'}
# Scene seeds of the evaluation: far above what the training driver uses (its seeds are
# run seed x 100000 + episode x 10 + cell, below 10^9 for run seeds below 10000).
EVAL_FIRST_SEED = 10 ** 9


@dataclass(frozen=True)
class EvalSettings:
    """How every model is evaluated in the cell; part of a stored run's identity."""

    grasps: int = 50
    """Grasp attempts per model (K)."""
    objects: int = 10
    """Random blocks per scene (as the training driver's episodes)."""
    scene_actions: int = 25
    """Grasp attempts at most per scene before the next scene."""
    max_failures: int = 5
    """A scene ends after more than this many grasps in a row that changed nothing."""
    first_seed: int = EVAL_FIRST_SEED


def eval_identity(job, weights, eval_settings):
    """Identity of a model's evaluation runs in runs.jsonl."""
    return {'arm': job.arm, 'budget': job.budget, 'seed': job.seed,
            'weights_sha256': weights.sha256, **asdict(eval_settings)}


def model_runs(records, identity):
    """Return the stored runs of one model's evaluation, by run index."""
    chosen = {r['run_index']: r for r in records if r.get('experiment') == identity}
    return [chosen[i] for i in sorted(chosen)]


def grasp_counts(runs):
    """Sum grasp attempts and successes over run records (VPG's rule, metrics.run_stats)."""
    attempts = successes = 0
    for run in runs:
        stats = metrics.run_stats(run, objects=run.get('objects_in_workspace_before') or 0)
        attempts += stats.grasp_attempts
        successes += stats.grasp_successes
    return attempts, successes


def next_spec(run_index, attempts_left, eval_settings):
    """Describe the next evaluation scene: seed first_seed + run_index, <= attempts_left grasps."""
    if attempts_left < 1:
        raise ValueError(f'no grasp attempts left ({attempts_left})')
    return harness.RunSpec('random', 'random', run_index, eval_settings.first_seed + run_index,
                           eval_settings.objects, min(attempts_left, eval_settings.scene_actions),
                           eval_settings.max_failures)


def evaluate_model(job, weights, eval_settings, run_store, out, device='auto',
                   run_timeout=None, max_restarts=2, log=print):
    """
    Run grasp-only /pick_all goals in the cell until the model made K grasp attempts.

    Resumes from the model's runs already in run_store; each new run is stored at once.
    Returns the model's runs. Raises ExperimentError when the graph keeps failing, when a
    push is executed (the goal's restriction did not hold) or when scenes keep giving no
    grasp attempt.
    """
    identity = eval_identity(job, weights, eval_settings)
    runs = model_runs(run_store.load(), identity)
    attempts, _ = grasp_counts(runs)
    if attempts >= eval_settings.grasps:
        return runs
    log(f'  {job.arm} N={job.budget} seed {job.seed}: {attempts} of {eval_settings.grasps} '
        'grasp attempts stored, evaluating in the cell')
    restarts = idle = 0
    log_path = Path(out) / 'logs' / f'{model_path(out, job.arm, job.budget, job.seed).stem}.log'
    while attempts < eval_settings.grasps:
        try:
            with CellSession(weights, device, log_path) as cell:
                while attempts < eval_settings.grasps:
                    index = runs[-1]['run_index'] + 1 if runs else 0
                    spec = next_spec(index, eval_settings.grasps - attempts, eval_settings)
                    record = cell.run(spec, 'grasp_only', run_timeout)
                    record['experiment'] = identity
                    if record.get('push_attempts'):
                        raise ExperimentError(
                            f'{job.arm} N={job.budget}: the policy pushed in a grasp-only '
                            "evaluation; the goal's `allowed` did not reach it")
                    run_store.append(record)
                    runs.append(record)
                    made, _ = grasp_counts([record])
                    attempts += made
                    idle = 0 if made else idle + 1
                    log('    ' + describe_run(record))
                    if idle >= 5:
                        raise ExperimentError(
                            f'{job.arm} N={job.budget}: 5 scenes in a row gave no grasp '
                            f'attempt (last: {record["reason"]}); see {log_path}')
        except (NodeDied, TimeoutError, PickAllClientError) as error:
            restarts += 1
            if restarts > max_restarts:
                raise ExperimentError(
                    f'{job.arm} N={job.budget} seed {job.seed}: {error}; gave up after '
                    f'{max_restarts} restarts (node logs: {log_path}). Finished runs are '
                    'kept: run the same command again to resume.') from None
            log(f'    {error}; restarting the graph ({restarts}/{max_restarts})')
    return runs


def model_result(job, weights, extra, runs, eval_settings):
    """One model's entry of details.json."""
    attempts, successes = grasp_counts(runs)
    complete = attempts >= eval_settings.grasps
    return {'seed': job.seed, 'successes': successes, 'attempts': attempts,
            'success': round(100.0 * successes / attempts, 2) if complete else None,
            'complete': complete, 'runs': len(runs),
            'scene_seeds': [r['seed'] for r in runs], 'weights': weights.path,
            'sha256': weights.sha256, 'variant': weights.variant,
            'train': json.loads(extra.get('train_stats', 'null'))}


def summarize(results, budgets, seeds):
    """
    Compute (summary, per-budget details) from model results.

    results: {(budget, seed, arm): model_result dict}. summary[str(N)] holds each arm's mean
    success % over the seeds evaluated completely in both arms (paired), and their count;
    None where there is none yet.
    """
    summary, details = {}, {}
    for budget in budgets:
        paired = [s for s in range(seeds)
                  if all((results.get((budget, s, arm)) or {}).get('complete') for arm in ARMS)]
        entry, detail = {}, {}
        for arm in ARMS:
            values = [results[(budget, s, arm)]['success'] for s in paired]
            mean = metrics.mean(values)
            entry[arm] = None if mean is None else round(mean, 2)
            std = metrics.sample_std(values)
            detail[arm] = {
                'mean': entry[arm], 'std': None if std is None else round(std, 2),
                'min': min(values) if values else None, 'max': max(values) if values else None,
                'per_seed': [results[(budget, s, arm)] for s in range(seeds)
                             if (budget, s, arm) in results]}
        entry['seeds'] = len(paired)
        summary[str(budget)] = entry
        details[str(budget)] = detail
    return summary, details


def plot_curves(details, eval_settings, path):
    """Grasp success vs N for both arms: per-seed points, mean line, min-max band."""
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot

    colours = {'grasp_only': '#4e79a7', 'multitask': '#f28e2b'}
    figure, axis = pyplot.subplots(figsize=(6.5, 4.5))
    budgets = sorted(int(n) for n in details)
    for arm in ARMS:
        xs, means, lows, highs = [], [], [], []
        for budget in budgets:
            entry = details[str(budget)][arm]
            points = [r['success'] for r in entry['per_seed'] if r['complete']]
            axis.scatter([budget] * len(points), points, s=14, alpha=0.5, color=colours[arm])
            if entry['mean'] is not None:
                xs.append(budget)
                means.append(entry['mean'])
                lows.append(entry['min'])
                highs.append(entry['max'])
        axis.plot(xs, means, marker='o', color=colours[arm], label=ARM_LABELS[arm])
        if xs:
            axis.fill_between(xs, lows, highs, color=colours[arm], alpha=0.15)
    axis.set_xscale('log', base=2)
    axis.set_xticks(budgets)
    axis.set_xticklabels([str(n) for n in budgets])
    axis.set_xlim(budgets[0] / 1.3, budgets[-1] * 1.3)
    axis.set_ylim(-3, 103)  # markers at 0 and 100 % stay whole
    axis.set_xlabel('training transitions N')
    axis.set_ylabel('grasp success (%)')
    axis.set_title(f'Grasp success on held-out scenes ({eval_settings.grasps} grasps per '
                   'model)\nline: mean over seeds, band: min-max, dots: seeds', fontsize=9)
    axis.legend(fontsize=8)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    pyplot.close(figure)


def table_markdown(summary, details, command=''):
    """Write the summary as a markdown table (mean ± std over seeds, min-max)."""
    lines = ['# Grasp success vs data budget: grasp-only vs multitask', '']
    if command:
        lines += [f'Command: `{command}`', '']
    lines += ['| N | seeds | grasp only (%) | multitask (%) | multitask - grasp only |',
              '|---|---|---|---|---|']
    for budget, entry in summary.items():
        cells = []
        for arm in ARMS:
            detail = details[budget][arm]
            if detail['mean'] is None:
                cells.append('n/a')
                continue
            text = f'{detail["mean"]:.1f}'
            if detail['std'] is not None:
                text += f' ± {detail["std"]:.1f} ({detail["min"]:.0f}-{detail["max"]:.0f})'
            cells.append(text)
        diff = ('n/a' if None in (entry['grasp_only'], entry['multitask'])
                else f'{entry["multitask"] - entry["grasp_only"]:+.1f}')
        lines.append(f'| {budget} | {entry["seeds"]} | {cells[0]} | {cells[1]} | {diff} |')
    return '\n'.join(lines) + '\n'


def write_outputs(out, summary, details, settings_record, eval_settings, command=''):
    """Write summary.json, details.json, table.md and grasp_success_vs_n.png into out."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = (out / 'summary.json', out / 'details.json', out / 'table.md',
             out / 'grasp_success_vs_n.png')
    paths[0].write_text(json.dumps(summary, indent=2) + '\n', encoding='utf-8')
    paths[1].write_text(json.dumps({'settings': settings_record, 'budgets': details},
                                   indent=2) + '\n', encoding='utf-8')
    paths[2].write_text(table_markdown(summary, details, command), encoding='utf-8')
    plot_curves(details, eval_settings, paths[3])
    return paths


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog='multitask_experiment', description=__doc__.split('\n\n')[0].strip(),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--replay', nargs='+', default=['results/runs/vpg-seed0/replay.sqlite'],
                        help="training runs' replay.sqlite files, pooled (the transitions "
                             'the models are trained on); runs of the same cell and rewards')
    parser.add_argument('--budgets', type=int, nargs='+', default=[100, 200, 400, 800],
                        metavar='N', help='training transitions per model (even)')
    parser.add_argument('--seeds', type=int, default=3, help='seeds 0..k-1 per budget')
    defaults = TrainSettings()
    parser.add_argument('--epochs', type=float, default=defaults.epochs,
                        help='passes over the N transitions (steps = epochs x N / batch)')
    parser.add_argument('--min-steps', type=int, default=defaults.min_steps,
                        help='gradient steps per model at least (small budgets)')
    parser.add_argument('--batch-size', type=int, default=defaults.batch_size,
                        help='transitions per step (even: multitask takes half of each)')
    parser.add_argument('--learning-rate', type=float, default=defaults.learning_rate,
                        help='Adam learning rate')
    parser.add_argument('--inverse-loss-weight', type=float,
                        default=defaults.inverse_loss_weight,
                        help="weight of the push inverse model's loss (multitask arm)")
    evals = EvalSettings()
    parser.add_argument('--eval-grasps', type=int, default=evals.grasps,
                        help='grasp attempts per trained model on held-out scenes (K)')
    parser.add_argument('--objects', type=int, default=evals.objects,
                        help='random blocks per evaluation scene')
    parser.add_argument('--scene-actions', type=int, default=evals.scene_actions,
                        help='grasp attempts at most per evaluation scene')
    parser.add_argument('--max-failures', type=int, default=evals.max_failures,
                        help='a scene ends after more than this many grasps without change')
    parser.add_argument('--eval-first-seed', type=int, default=evals.first_seed,
                        help='scene seed of the first evaluation scene (held-out range)')
    parser.add_argument('--device', default='auto', choices=('auto', 'cpu', 'cuda'),
                        help='where the policy in the cell runs its network')
    parser.add_argument('--torch-threads', type=int, default=0,
                        help='torch threads for training (0: torch default)')
    parser.add_argument('--run-timeout', type=float, default=None,
                        help='seconds per /pick_all goal (default: 120 + 20 per action)')
    parser.add_argument('--max-restarts', type=int, default=2,
                        help='graph restarts per model after a node died or a goal hung')
    parser.add_argument('--out', default='results/multitask')
    parser.add_argument('--train-only', action='store_true',
                        help='train (or find) the models, evaluate nothing')
    parser.add_argument('--summary-only', action='store_true',
                        help='train and run nothing; rewrite the outputs from what is stored')
    args = parser.parse_args(argv)
    if min(args.seeds, args.eval_grasps, args.objects, args.scene_actions,
           args.max_failures) < 1:
        parser.error('--seeds, --eval-grasps, --objects, --scene-actions and --max-failures '
                     'must be >= 1')
    if args.batch_size < 2 or args.batch_size % 2:
        parser.error('--batch-size must be even and >= 2 (multitask: half grasps, half '
                     'pushes)')
    if not args.epochs > 0 or not args.learning_rate > 0 or args.min_steps < 0:
        parser.error('--epochs and --learning-rate must be > 0, --min-steps >= 0')
    return args


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    # SIGTERM ends the run like Ctrl-C: the cells' graphs are stopped, not orphaned.
    raise_keyboard_interrupt_on(signal.SIGTERM)
    out = Path(args.out)
    settings = TrainSettings(args.epochs, args.min_steps, args.batch_size, args.learning_rate,
                             args.inverse_loss_weight)
    eval_settings = EvalSettings(args.eval_grasps, args.objects, args.scene_actions,
                                 args.max_failures, args.eval_first_seed)
    try:
        budgets = check_budgets(args.budgets)
        pool = read_pool(args.replay)
        check_pool(pool, budgets)
    except ExperimentError as error:
        print(f'multitask_experiment: {error}', file=sys.stderr)
        return 2
    if args.torch_threads > 0:
        torch.set_num_threads(args.torch_threads)
    print(f'multitask_experiment: pool {pool.path}: {len(pool.grasp_ids)} grasps, '
          f'{len(pool.push_ids)} pushes')
    print(f'multitask_experiment: budgets {budgets}, seeds 0..{args.seeds - 1}; steps per '
          'model: ' + ', '.join(f'N={n}: {training_steps(n, settings)}' for n in budgets)
          + f' (batch {settings.batch_size}, Adam lr {settings.learning_rate}, gamma 0)')
    print(f'multitask_experiment: evaluation: {eval_settings.grasps} grasp attempts per model, '
          f'{eval_settings.objects} blocks per scene, scene seeds from '
          f'{eval_settings.first_seed} (held out)')
    jobs = plan_models(pool, budgets, args.seeds)
    store = None
    run_store = harness.RunStore(out / 'runs.jsonl')
    results = {}
    start = time.monotonic()
    try:
        if not args.summary_only:
            store = PooledStore(pool)
        models = {}
        for job in jobs:
            key = (job.budget, job.seed, job.arm)
            if args.summary_only:
                identity = training_identity(job.arm, job.budget, job.seed, pool,
                                             job.grasp_ids, job.push_ids, settings)
                models[key] = stored_model(model_path(out, job.arm, job.budget, job.seed),
                                           identity)
            else:
                models[key] = ensure_model(job, pool, store, settings, out)
        if not (args.summary_only or args.train_only) and \
                'ROS_DOMAIN_ID' not in os.environ:
            print(f'multitask_experiment: ROS_DOMAIN_ID={isolate()} (a free one)')
        progress = Progress(total=len(jobs), desc='multitask_experiment', unit='models') \
            if not (args.summary_only or args.train_only) else None
        for job in jobs:
            key = (job.budget, job.seed, job.arm)
            if models[key] is None:
                continue
            weights, extra = models[key]
            if args.summary_only or args.train_only:
                runs = model_runs(run_store.load(), eval_identity(job, weights, eval_settings))
            else:
                runs = evaluate_model(job, weights, eval_settings, run_store, out, args.device,
                                      args.run_timeout, args.max_restarts)
            results[key] = model_result(job, weights, extra, runs, eval_settings)
            done = results[key]
            if done['complete'] and progress is not None:
                progress.update(note=f'{job.arm} N={job.budget} seed {job.seed}: '
                                f'{done["successes"]} of {done["attempts"]} grasps succeeded '
                                f'({done["success"]:.1f} %)')
    except ExperimentError as error:
        print(f'multitask_experiment: {error}', file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print('multitask_experiment: interrupted; trained models and finished runs are kept '
              f'in {out} (run the same command to resume)', file=sys.stderr)
        return 130
    finally:
        if store is not None:
            store.close()
    summary, details = summarize(results, budgets, args.seeds)
    settings_record = {'replay': pool.path, 'replays': list(pool.paths),
                       'pool_grasps': len(pool.grasp_ids),
                       'pool_pushes': len(pool.push_ids), 'budgets': budgets,
                       'seeds': args.seeds, 'train': {**asdict(settings), 'gamma': 0.0},
                       'steps': {str(n): training_steps(n, settings) for n in budgets},
                       'eval': asdict(eval_settings)}
    command = 'python -m vpg_evaluation.multitask_experiment ' + shlex.join(argv)
    paths = write_outputs(out, summary, details, settings_record, eval_settings,
                          command.strip())
    print(table_markdown(summary, details, command.strip()))
    print(f'multitask_experiment: wrote {", ".join(str(p) for p in paths)} '
          f'({time.monotonic() - start:.0f} s)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
