"""
The trainer's core: replay store + learner + checkpoints of one run folder, without ROS.

A run folder holds `replay.sqlite` (every acknowledged transition) and `checkpoints/`. Opening
an existing folder resumes it: the newest checkpoint's weights, optimiser state and update
count, and every stored transition; transitions stored after that checkpoint are trained on
as new ones.
"""

from collections import deque
import dataclasses
from dataclasses import dataclass, field
import os
import threading

import numpy as np
import torch

from vpg_policy.decision import GRASP, PUSH
from vpg_policy.q_network import build_q_network
from vpg_policy.weights import load_into, load_model, read_weights
from vpg_trainer.checkpoints import CheckpointStore
from vpg_trainer.learner import (future_values, Learner, LearnerConfig,
                                 sample_prioritized)
from vpg_trainer.replay import ReplayStore

PUSH_REWARD_RULES = ('change', 'next_grasp')


@dataclass(frozen=True)
class TrainerConfig:
    """A training run; the trainer node fills it from its parameters."""

    run_dir: str
    replay_capacity: int = 20000
    """Transitions kept on disk; beyond it the oldest are dropped."""
    checkpoint_every: int = 20
    """Updates between weight files (each one becomes a ModelUpdate)."""
    keep_checkpoints: int = 5
    max_updates_per_transition: float = 4.0
    """Updates stop when updates >= this x transitions stored (0 = no limit)."""
    min_transitions: int = 2
    """Stored transitions before the first update."""
    future_refresh: int = 100
    """Updates after which a replayed transition's future max Q is recomputed."""
    variant: str = 'vpg'
    seed: int = 0
    """Seed of the initial weights (fresh run) and of the replay sampling."""
    initial_weights: str = ''
    """Weights to start a fresh run from; empty = random initialisation with `seed`."""
    device: str = 'cpu'
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    push_reward: str = 'change'
    """Which pushes earn their reward (PUSH_REWARD_RULES): 'change', VPG's, every push that
    changed the scene; 'next_grasp', only a changing push whose next action in the episode is
    a successful grasp (stored with 0 and credited when that grasp arrives)."""

    def __post_init__(self):
        if self.push_reward not in PUSH_REWARD_RULES:
            raise ValueError(f'push_reward must be one of {", ".join(PUSH_REWARD_RULES)}, '
                             f'got {self.push_reward!r}')


def initial_checkpoint(config):
    """
    Make sure the run folder has a checkpoint; return the newest.

    A fresh run gets version 0: the initial weights the policy serves before the first update.
    """
    store = CheckpointStore(os.path.join(config.run_dir, 'checkpoints'),
                            config.keep_checkpoints)
    latest = store.latest()
    if latest is not None:
        return latest
    if config.initial_weights:
        model, meta = load_model(config.initial_weights)
        version = meta.version
    else:
        model, version = build_q_network(config.variant, seed=config.seed), 0
    return store.save(model, version, updates=0, trained_through=0)


class OnlineTrainer:
    """Stores transitions and learns from them; `add` and `train_step` may run in two threads."""

    def __init__(self, config):
        self.config = config
        os.makedirs(config.run_dir, exist_ok=True)
        self.replay = ReplayStore(os.path.join(config.run_dir, 'replay.sqlite'),
                                  config.replay_capacity)
        self.checkpoints = CheckpointStore(os.path.join(config.run_dir, 'checkpoints'),
                                           config.keep_checkpoints)
        latest = initial_checkpoint(config)
        self.checkpoints.verify(latest)
        loaded = read_weights(latest.weights, expected_sha256=latest.sha256)
        model = build_q_network(loaded.metadata.variant, loaded.metadata.config)
        self.model = load_into(model, loaded).to(config.device)
        self.learner = Learner(self.model, config.learner)
        self.checkpoints.load_optimizer(latest, self.learner.optimizer)
        self.version = latest.version
        self.updates = latest.updates
        self._trained_through = latest.trained_through
        self._last_checkpoint_updates = latest.updates
        self._rng = np.random.default_rng(config.seed + latest.updates)
        ids, _ = self.replay.ids_and_priorities()
        self._new = deque(int(i) for i in ids if i > latest.trained_through)
        self._new_lock = threading.Lock()
        self.losses = deque(maxlen=50)
        self.inverse_losses = deque(maxlen=50)
        """Push inverse-model losses of recent updates that had one (multitask variant)."""
        self._futures = {}
        """replay id -> (update count when computed, future max Q)."""

    def add(self, record):
        """
        Validate and store a transition; return its replay id once it is on disk.

        None when the store already holds it (a redelivery after a restart).
        """
        record.validate(self.model.num_rotations, self.model.input_multiple)
        credit = None
        if self.config.push_reward == 'next_grasp':
            if record.primitive == PUSH and record.reward > 0:
                # What the push earns is known only when the next action's result is.
                credit, record = record.reward, dataclasses.replace(record, reward=0.0)
            elif record.primitive == GRASP and record.grasp_success:
                self.replay.credit_push(record.cell_name, record.episode_id, record.step - 1)
        new_id = self.replay.add(record, push_credit=credit)
        if new_id is None:
            return None
        with self._new_lock:
            self._new.append(new_id)
        return new_id

    def stored_total(self):
        """Transitions ever stored in this run (the acknowledged count)."""
        return self.replay.stored_total()

    def can_update(self):
        stored = len(self.replay)
        if stored < max(self.config.min_transitions, 1):
            return False
        limit = self.config.max_updates_per_transition
        return limit <= 0 or self.updates < limit * self.stored_total()

    def next_batch(self):
        """Ids of the next batch (newest untrained first) and their importance weights."""
        ids, priorities = self.replay.ids_and_priorities()
        size = self.config.learner.batch_size
        with self._new_lock:
            fresh = []
            while self._new and len(fresh) < size:
                fresh.append(self._new.popleft())
        stored = set(ids.tolist())
        fresh = [i for i in fresh if i in stored]
        position = {int(i): k for k, i in enumerate(ids)}
        exclude = [position[i] for i in fresh]
        cfg = self.config.learner
        picked, weights = sample_prioritized(priorities, size - len(fresh), cfg.priority_alpha,
                                             cfg.priority_beta, self._rng, exclude)
        batch = fresh + [int(ids[k]) for k in picked]
        all_weights = np.concatenate([np.ones(len(fresh)), weights])
        return batch, all_weights

    def train_step(self):
        """One update; returns the UpdateResult, or None when no update is due."""
        if not self.can_update():
            return None
        ids, weights = self.next_batch()
        if not ids:
            return None
        records = self.replay.get(ids)
        futures = self._cached_futures(ids, records)
        result = self.learner.update(records, weights, futures)
        self.replay.set_priorities(ids, result.priorities)
        self.updates += 1
        self._trained_through = max(self._trained_through, max(ids))
        self.losses.append(result.loss)
        if result.inverse_loss is not None:
            self.inverse_losses.append(result.inverse_loss)
        return result

    def _cached_futures(self, ids, records):
        """Future max Q per record: cached when fresh enough, else computed in one batch."""
        stale = [k for k, i in enumerate(ids)
                 if i not in self._futures
                 or self.updates - self._futures[i][0] >= self.config.future_refresh]
        if stale:
            values = future_values(self.model, [records[k] for k in stale],
                                   self.config.learner.mask)
            for k, value in zip(stale, values):
                self._futures[ids[k]] = (self.updates, float(value))
        if len(self._futures) > 2 * self.config.replay_capacity:
            kept = set(self.replay.ids_and_priorities()[0].tolist())
            self._futures = {i: v for i, v in self._futures.items() if i in kept}
        return np.array([self._futures[i][1] for i in ids])

    def checkpoint_due(self):
        return self.updates - self._last_checkpoint_updates >= self.config.checkpoint_every

    def save_checkpoint(self):
        """Write the next weights version; return the Checkpoint (None when nothing changed)."""
        if self.updates == self._last_checkpoint_updates:
            return None
        checkpoint = self.checkpoints.save(self.model, self.version + 1, self.learner.optimizer,
                                           self.updates, self._trained_through)
        self.version = checkpoint.version
        self._last_checkpoint_updates = self.updates
        return checkpoint

    def mean_loss(self):
        return float(np.mean(self.losses)) if self.losses else float('nan')

    def mean_inverse_loss(self):
        """Mean recent push inverse-model loss; nan when there is none (e.g. vpg variant)."""
        return float(np.mean(self.inverse_losses)) if self.inverse_losses else float('nan')

    def close(self):
        self.replay.close()


def set_torch_threads(threads):
    """Limit torch's CPU threads (0 keeps its default)."""
    if threads > 0:
        torch.set_num_threads(int(threads))
