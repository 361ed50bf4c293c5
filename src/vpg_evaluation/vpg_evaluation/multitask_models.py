"""
The models of the data-budget experiment: the replay pool, nested budgets, offline training.

For each budget N and seed, the grasp-only arm (`vpg` variant) trains on N grasp transitions
and the multitask arm (`multitask` variant) on N/2 grasps and N/2 pushes, through the trainer's
own update with gamma 0 (see multitask_experiment for the design). A model's weights file
records its training identity, so a model already trained is loaded, not trained again.
"""

from dataclasses import asdict, dataclass
import hashlib
import json
import math
from pathlib import Path
import sqlite3
import time

import numpy as np
import torch
from vpg_common.primitives import GRASP, PUSH
from vpg_evaluation import harness
from vpg_policy.q_network import build_q_network
from vpg_policy.weights import read_weights, save_weights, WeightsError
from vpg_trainer.learner import Learner, LearnerConfig

ARMS = ('grasp_only', 'multitask')
ARM_VARIANTS = {'grasp_only': 'vpg', 'multitask': 'multitask'}
_LOAD_CHUNK = 100  # transitions decoded per replay query


class ExperimentError(RuntimeError):
    """The experiment cannot run as asked (missing replay, too small a pool, bad settings)."""


@dataclass(frozen=True)
class TrainSettings:
    """How every model is trained; equal for both arms."""

    epochs: float = 20.0
    """Passes over the N transitions; steps = max(min_steps, ceil(epochs x N / batch_size))."""
    min_steps: int = 500
    """Steps at least, so the smallest budgets are fitted too (more passes over less data)."""
    batch_size: int = 8
    """Transitions per step (multitask: half grasps, half pushes)."""
    learning_rate: float = 5e-4
    """Adam, as the trainer's config (config/trainer.yaml)."""
    inverse_loss_weight: float = 1.0
    """Weight of the push inverse model's loss (multitask arm)."""


# A pooled transition's id: its store's index in the pool x ID_STRIDE + its id in that store.
# A pool of one store keeps the store's own ids (and so the identity of models trained on it).
ID_STRIDE = 10 ** 9


@dataclass(frozen=True)
class Pool:
    """The transition ids of one or more replay stores, by primitive (ascending)."""

    path: str
    """The store's path; several stores' paths joined by ' + ' (part of a model's identity)."""
    grasp_ids: np.ndarray
    push_ids: np.ndarray
    paths: tuple = ()
    """Each store's resolved path, in the order its index in an id refers to."""


def _store_ids(path):
    """Return (ids, primitives) of one replay store's transitions, read-only, no images."""
    path = Path(path)
    if not path.is_file():
        raise ExperimentError(f'replay file {path} does not exist (give the replay.sqlite of a '
                              'training run with --replay)')
    try:
        db = sqlite3.connect(f'{path.resolve().as_uri()}?mode=ro', uri=True)
        try:
            rows = db.execute('SELECT id, primitive FROM transitions ORDER BY id').fetchall()
        finally:
            db.close()
    except sqlite3.DatabaseError as error:
        raise ExperimentError(f'{path} is not a replay store: {error}') from None
    ids = np.asarray([r[0] for r in rows], np.int64)
    if ids.size and ids.max() >= ID_STRIDE:
        raise ExperimentError(f'{path}: transition ids reach {ids.max()}, too many to pool')
    return ids, np.asarray([r[1] for r in rows], np.int64)


def read_pool(paths):
    """
    List the grasp and push transition ids of replay stores without decoding any image.

    paths: one path or several (runs of the same cell and reward rules, pooled into one
    larger pool). Opens each SQLite file read-only (a training run may still be writing it).
    Raises ExperimentError when a file is missing, is not a replay store or is given twice.
    """
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    if not paths:
        raise ExperimentError('no replay store given')
    resolved = [str(Path(p).resolve()) for p in paths]
    if len(set(resolved)) != len(resolved):
        raise ExperimentError(f'a replay store is given twice: {paths}')
    grasps, pushes = [], []
    for index, path in enumerate(paths):
        ids, primitives = _store_ids(path)
        ids = ids + index * ID_STRIDE  # the first store's (a lone store's) ids stay as they are
        grasps.append(ids[primitives == GRASP])
        pushes.append(ids[primitives == PUSH])
    return Pool(' + '.join(resolved), np.concatenate(grasps), np.concatenate(pushes),
                tuple(resolved))


class PooledStore:
    """Reads a pool's transitions by pooled id from its replay stores (ReplayStore.get)."""

    def __init__(self, pool):
        from vpg_trainer.replay import ReplayStore
        self.stores = [ReplayStore(path) for path in (pool.paths or (pool.path,))]

    def get(self, ids):
        """Return the records of pooled `ids`, in that order."""
        ids = [int(i) for i in ids]
        by_store = {}
        for position, pooled in enumerate(ids):
            by_store.setdefault(pooled // ID_STRIDE, []).append((position, pooled % ID_STRIDE))
        records = [None] * len(ids)
        for index, wanted in by_store.items():
            if not 0 <= index < len(self.stores):
                raise KeyError(f'transition {ids[wanted[0][0]]} names no store of the pool')
            found = self.stores[index].get([local for _, local in wanted])
            for (position, _), record in zip(wanted, found):
                records[position] = record
        return records

    def close(self):
        for store in self.stores:
            store.close()


def check_budgets(budgets):
    """Refuse budgets that cannot be split in two equal halves; returns them sorted."""
    budgets = [int(n) for n in budgets]
    bad = [n for n in budgets if n < 2 or n % 2]
    if bad:
        raise ExperimentError(f'budgets must be even and >= 2 (N/2 grasps + N/2 pushes), got '
                              f'{bad}')
    if len(set(budgets)) != len(budgets):
        raise ExperimentError(f'budgets repeat: {budgets}')
    return sorted(budgets)


def check_pool(pool, budgets):
    """
    Refuse a pool too small for the largest budget.

    The grasp-only arm needs N grasps, the multitask arm N/2 grasps and N/2 pushes.
    """
    largest = max(budgets)
    grasps, pushes = len(pool.grasp_ids), len(pool.push_ids)
    if grasps < largest or pushes < largest // 2:
        raise ExperimentError(
            f'the pool {pool.path} holds {grasps} grasps and {pushes} pushes; budget N = '
            f'{largest} needs {largest} grasps (grasp-only arm) and {largest // 2} pushes '
            '(multitask arm). Collect more transitions or lower --budgets.')


def split_budget(pool, budget, seed):
    """
    Draw the training transitions of both arms for one budget and seed.

    Returns {arm: (grasp ids, push ids)}: grasp_only gets the first N grasps of the seed's
    shuffled grasp order, multitask the first N/2 of them and the first N/2 of the seed's
    shuffled push order. The orders depend on the seed alone, so budgets are nested.
    """
    rng = np.random.default_rng(seed)
    grasps = rng.permutation(np.sort(pool.grasp_ids))
    pushes = rng.permutation(np.sort(pool.push_ids))
    half = budget // 2
    return {'grasp_only': (grasps[:budget], pushes[:0]),
            'multitask': (grasps[:half], pushes[:half])}


def training_steps(budget, settings):
    """Gradient steps of a model trained on `budget` transitions (the same for both arms)."""
    return max(1, settings.min_steps,
               math.ceil(settings.epochs * budget / settings.batch_size))


def batch_schedule(count, per_step, steps, rng):
    """
    Index batches (steps, per_step) into `count` items, one shuffled pass after another.

    Every item is drawn equally often, up to one (a batch that spans two passes may hold an
    item twice).
    """
    needed = steps * per_step
    passes = max(1, math.ceil(needed / count))
    order = np.concatenate([rng.permutation(count) for _ in range(passes)])
    return order[:needed].reshape(steps, per_step)


def arm_batches(arm, grasp_count, push_count, steps, settings, rng):
    """
    Pick each step's transitions: (steps, batch_size) positions into grasps + pushes.

    grasp_only: batch_size grasps per step. multitask: batch_size / 2 grasps and
    batch_size / 2 pushes per step (pushes are numbered after the grasp_count grasps).
    """
    if arm == 'grasp_only':
        return batch_schedule(grasp_count, settings.batch_size, steps, rng)
    half = settings.batch_size // 2
    return np.concatenate([batch_schedule(grasp_count, half, steps, rng),
                           grasp_count + batch_schedule(push_count, half, steps, rng)], axis=1)


def load_records(store, ids):
    """Read transitions from a ReplayStore in chunks, in the order of `ids`."""
    ids = [int(i) for i in ids]
    records = []
    for start in range(0, len(ids), _LOAD_CHUNK):
        records += store.get(ids[start:start + _LOAD_CHUNK])
    return records


def train_model(arm, grasps, pushes, settings, seed, budget, log=print):
    """
    Train one arm's network offline on TransitionRecords; returns (model, stats dict).

    grasps, pushes: the arm's transitions (pushes empty for grasp_only). Labels are the
    rewards (gamma 0: futures are passed as zeros, so no future Q is computed). The initial
    weights depend on `seed` alone; the batch order on seed, budget and arm.
    """
    if arm not in ARMS:
        raise ValueError(f'unknown arm {arm!r} (known: {ARMS})')
    if arm == 'multitask' and (not grasps or not pushes or settings.batch_size % 2):
        raise ValueError('the multitask arm needs grasps, pushes and an even batch size')
    model = build_q_network(ARM_VARIANTS[arm], seed=seed)
    records = list(grasps) + list(pushes)
    for record in records:
        record.validate(model.num_rotations, model.input_multiple)
    learner = Learner(model, LearnerConfig(
        gamma=0.0, optimizer='adam', learning_rate=settings.learning_rate,
        batch_size=settings.batch_size, inverse_loss_weight=settings.inverse_loss_weight))
    steps = training_steps(budget, settings)
    rng = np.random.default_rng([seed, budget, ARMS.index(arm)])
    batches = arm_batches(arm, len(grasps), len(pushes), steps, settings, rng)
    losses, inverse_losses = [], []
    every = max(1, steps // 5)
    start = time.monotonic()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for step, batch in enumerate(batches, 1):
            chosen = [records[i] for i in batch]
            result = learner.update(chosen, futures=np.zeros(len(chosen)))
            losses.append(result.loss)
            if result.inverse_loss is not None:
                inverse_losses.append(result.inverse_loss)
            if step % every == 0 or step == steps:
                recent = losses[-every:]
                text = f'Q loss {np.mean(recent):.4f}'
                if inverse_losses:
                    text += f', inverse loss {np.mean(inverse_losses[-every:]):.4f}'
                log(f'    step {step}/{steps}: {text} '
                    f'({(time.monotonic() - start) / step:.2f} s/step)')
    model.eval()
    tail = max(1, steps // 10)
    stats = {'steps': steps, 'wall_s': round(time.monotonic() - start, 1),
             'first_loss': float(np.mean(losses[:tail])),
             'final_loss': float(np.mean(losses[-tail:])),
             'final_inverse_loss': (float(np.mean(inverse_losses[-tail:]))
                                    if inverse_losses else None),
             'grasps': len(grasps), 'pushes': len(pushes),
             'grasp_successes': int(sum(bool(r.grasp_success) for r in grasps)),
             'pushes_changed': int(sum(bool(r.push_changed) for r in pushes))}
    return model, stats


def ids_fingerprint(ids):
    """sha256 of a list of transition ids: which data a model saw."""
    return hashlib.sha256(','.join(str(int(i)) for i in ids).encode()).hexdigest()


def training_identity(arm, budget, seed, pool, grasp_ids, push_ids, settings):
    """Everything that makes a trained model what it is; equal identity, reusable weights."""
    return {'arm': arm, 'variant': ARM_VARIANTS[arm], 'budget': int(budget),
            'seed': int(seed), 'replay': pool.path, 'grasp_ids': ids_fingerprint(grasp_ids),
            'push_ids': ids_fingerprint(push_ids), 'steps': training_steps(budget, settings),
            'gamma': 0.0, **asdict(settings)}


def model_path(out, arm, budget, seed):
    return Path(out) / 'models' / f'{arm}_n{budget:05d}_seed{seed}.safetensors'


def stored_model(path, identity):
    """Return (WeightsInfo, extra) of a weights file trained with `identity`, else None."""
    if not Path(path).is_file():
        return None
    try:
        loaded = read_weights(path)
    except (OSError, WeightsError):
        return None
    extra = loaded.metadata.extra
    if extra.get('experiment') != json.dumps(identity, sort_keys=True):
        return None
    info = harness.WeightsInfo(str(Path(path).resolve()), loaded.sha256,
                               loaded.metadata.version, loaded.metadata.variant)
    return info, extra


@dataclass(frozen=True)
class ModelJob:
    """One (N, seed, arm) of the experiment."""

    budget: int
    seed: int
    arm: str
    grasp_ids: tuple
    push_ids: tuple


def plan_models(pool, budgets, seeds):
    """List the ModelJobs in order: budgets ascending, then seeds, then arms."""
    jobs = []
    for budget in budgets:
        for seed in range(seeds):
            for arm, (grasp_ids, push_ids) in split_budget(pool, budget, seed).items():
                jobs.append(ModelJob(budget, seed, arm, tuple(int(i) for i in grasp_ids),
                                     tuple(int(i) for i in push_ids)))
    return jobs


def ensure_model(job, pool, store, settings, out, log=print):
    """Train and save a job's model unless its weights are stored; returns (WeightsInfo, extra)."""
    identity = training_identity(job.arm, job.budget, job.seed, pool, job.grasp_ids,
                                 job.push_ids, settings)
    path = model_path(out, job.arm, job.budget, job.seed)
    found = stored_model(path, identity)
    if found is not None:
        log(f'  {job.arm} N={job.budget} seed {job.seed}: already trained ({path})')
        return found
    log(f'  {job.arm} N={job.budget} seed {job.seed}: training on {len(job.grasp_ids)} grasps '
        f'+ {len(job.push_ids)} pushes, {identity["steps"]} steps')
    grasps = load_records(store, job.grasp_ids)
    pushes = load_records(store, job.push_ids)
    model, stats = train_model(job.arm, grasps, pushes, settings, job.seed, job.budget, log)
    save_weights(path, model, version=stats['steps'],
                 extra={'experiment': json.dumps(identity, sort_keys=True),
                        'train_stats': json.dumps(stats, sort_keys=True)})
    log(f'    saved {path} ({stats["wall_s"]:.0f} s)')
    return stored_model(path, identity)
