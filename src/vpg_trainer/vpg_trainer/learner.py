"""
VPG's Q-learning on a Q-network: labels, Huber loss on the executed action, prioritised replay.

As VPG (../shared/notes/vpg.md):

* label = reward + gamma * max Q(next heightmap), gamma = 0.5, where the maximum runs over
  both primitives, every rotation and the pixels the action mask allows; the future term is
  dropped when the action changed nothing (VPG) and when the episode ended (the table was seen
  clear: nothing is left to earn);
* Huber (smooth L1) loss on the executed primitive, pixel and rotation only; other pixels get
  no gradient. VPG also trains a grasp at rotation + 180 degrees; our grasp head is exactly
  half-turn symmetric (rotating_q_network.py), so that second term equals the first and is implied;
* prioritised experience replay by surprise |Q - label|, sampled with probability
  proportional to priority^alpha, with importance weights (Schaul et al.); every new
  transition trained on at once (VPG trains on each new action as it arrives).

With a network that has a push inverse model (the `multitask` variant, Pinto & Gupta), the
batch's pushes that changed the scene also train it: `inverse_loss_weight` x the inverse
model's regression loss is added to the Q loss, so its gradient shapes the shared trunk. A
push that moved nothing is left out: its before and after heightmaps are the same, so they
say nothing about where it started or which way it went.

Where we differ, on purpose: the future term of a replayed transition is recomputed once it
is older than `future_refresh` updates (VPG kept the label computed when the action was new;
recomputing it at every replay doubles the cost of an update on a CPU). Adam is the default
optimiser (config/trainer.yaml: lr 5e-4) because it trains the from-scratch network faster
than VPG's SGD (lr 1e-4, momentum 0.9, weight decay 2e-5 on ImageNet-pretrained trunks),
which stays available as `optimizer='sgd'`.

No ROS here.
"""

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from vpg_policy.decision import action_masks, ActionMask, GRASP, PUSH
from vpg_policy.multitask_q_network import inverse_model_loss, normalised_pixel
from vpg_policy.rotations import rotation_angle


@dataclass(frozen=True)
class LearnerConfig:
    """How the trainer learns; every field is a trainer node parameter."""

    gamma: float = 0.5
    """Future discount (VPG: 0.5; 0 gives the myopic ablation)."""
    optimizer: str = 'adam'
    """'adam' or 'sgd' (VPG's: momentum 0.9)."""
    learning_rate: float = 1e-4
    momentum: float = 0.9
    weight_decay: float = 2e-5
    batch_size: int = 8
    """Transitions per update: the newest untrained ones first, the rest by priority."""
    huber_delta: float = 1.0
    priority_alpha: float = 0.6
    """Sampling probability ~ priority ** alpha (0 = uniform)."""
    priority_beta: float = 0.4
    """Importance-weight exponent correcting the prioritised sampling (0 = none)."""
    priority_epsilon: float = 0.01
    """Added to |Q - label| so no transition's probability drops to zero."""
    grad_clip: float = 10.0
    """Maximum gradient norm per update (0 = no clipping)."""
    mask: ActionMask = field(default_factory=ActionMask)
    """Pixels the future maximum runs over; must equal the policy's action mask."""
    inverse_loss_weight: float = 1.0
    """
    Weight of the push inverse-model loss added to the Q loss.

    Only used when the network has an inverse model (multitask variant); 0 turns it off.
    """

    def __post_init__(self):
        if not 0.0 <= self.gamma < 1.0:
            raise ValueError(f'gamma must lie in [0, 1), got {self.gamma}')
        if self.optimizer not in ('adam', 'sgd'):
            raise ValueError(f"optimizer must be 'adam' or 'sgd', got {self.optimizer!r}")
        if self.learning_rate <= 0 or self.batch_size < 1:
            raise ValueError('learning_rate must be > 0 and batch_size >= 1')
        if not 0.0 <= self.inverse_loss_weight < float('inf'):
            raise ValueError(f'inverse_loss_weight must be finite and >= 0, got '
                             f'{self.inverse_loss_weight}')


def make_optimizer(model, config):
    """Build the optimiser the config names for the model's parameters."""
    if config.optimizer == 'sgd':
        return torch.optim.SGD(model.parameters(), lr=config.learning_rate,
                               momentum=config.momentum, weight_decay=config.weight_decay)
    return torch.optim.Adam(model.parameters(), lr=config.learning_rate,
                            weight_decay=config.weight_decay)


def compute_labels(rewards, futures, changed, done, gamma):
    """
    Compute targets as VPG: reward + gamma * future, no future when nothing changed or done.

    All arguments are 1-D sequences of equal length (futures: max Q of the next heightmap).
    """
    rewards = np.asarray(rewards, np.float64)
    futures = np.asarray(futures, np.float64)
    keep = np.asarray(changed, bool) & ~np.asarray(done, bool)
    return rewards + gamma * np.where(keep, futures, 0.0)


def record_changed(record):
    """Did the action change the scene: the executor's verdict (its change threshold)."""
    return bool(record.grasp_success or record.push_changed or record.scene_changed)


def _resolution(record):
    return float(record.grid.get('resolution', 0.002)) if record.grid else 0.002


@torch.no_grad()
def future_values(model, records, mask):
    """
    Compute max Q over both primitives, all rotations, the masked pixels of next heightmaps.

    0 for a next heightmap without objects (nothing left to earn).
    """
    was_training = model.training
    model.eval()
    try:
        colors = np.stack([r.color_after for r in records])
        heights = np.stack([r.height_after for r in records])
        maps = model(model.preprocess(colors, heights))
        values = []
        for i, record in enumerate(records):
            push_mask, grasp_mask = action_masks(record.height_after, _resolution(record), mask,
                                                 maps.grasp.shape[1])
            empty = mask.enabled and not (record.height_after > mask.min_object_height).any()
            if empty:
                values.append(0.0)
                continue
            value = maps.push[i][:, torch.from_numpy(push_mask)].max()
            if grasp_mask.any():  # the clearance mask can leave no grasp: pushes only
                grasp_mask = torch.from_numpy(grasp_mask)
                grasp = (maps.grasp[i][grasp_mask] if grasp_mask.dim() == 3
                         else maps.grasp[i][:, grasp_mask])
                value = torch.maximum(value, grasp.max())
            values.append(float(value))
        return np.asarray(values, np.float64)
    finally:
        model.train(was_training)


def executed_q(model, records):
    """Q of each record's executed primitive, rotation and pixel (with gradient), shape (B,)."""
    colors = np.stack([r.color_before for r in records])
    heights = np.stack([r.height_before for r in records])
    rotations = torch.tensor([[r.rotation_index] for r in records], device=model.device)
    maps = model(model.preprocess(colors, heights), rotations)
    rows = torch.tensor([r.row for r in records], device=model.device)
    cols = torch.tensor([r.col for r in records], device=model.device)
    batch = torch.arange(len(records), device=model.device)
    push = maps.push[batch, 0, rows, cols]
    grasp = maps.grasp[batch, 0, rows, cols]
    is_grasp = torch.tensor([r.primitive == GRASP for r in records], device=model.device)
    return torch.where(is_grasp, grasp, push)


def inverse_loss(model, records):
    """
    Push inverse-model loss of push records (scalar tensor, with gradient).

    The targets are each record's executed push: start pixel (row, col) in normalised
    heightmap coordinates and direction rotation_index * 2 pi / num_rotations.
    """
    before = model.preprocess(np.stack([r.color_before for r in records]),
                              np.stack([r.height_before for r in records]))
    after = model.preprocess(np.stack([r.color_after for r in records]),
                             np.stack([r.height_after for r in records]))
    height, width = records[0].height_before.shape
    start = normalised_pixel([r.row for r in records], [r.col for r in records], height, width)
    angle = torch.tensor([rotation_angle(r.rotation_index, r.num_rotations) for r in records])
    return inverse_model_loss(model.inverse(before, after), start.to(model.device),
                              angle.to(model.device))


@dataclass
class UpdateResult:
    loss: float
    """Importance-weighted mean Huber loss of the batch."""
    priorities: np.ndarray
    """New |Q - label| + epsilon per sample."""
    labels: np.ndarray
    predictions: np.ndarray
    inverse_loss: float | None = None
    """
    Push inverse-model loss (unweighted) of the batch's pushes.

    None when none was computed: no inverse model, inverse_loss_weight 0, or no push in the
    batch that changed the scene.
    """


class Learner:
    """A network, its optimiser and the update rule; the caller picks the batches."""

    def __init__(self, model, config=LearnerConfig()):
        self.model = model
        self.config = config
        self.optimizer = make_optimizer(model, config)

    def labels(self, records, futures=None):
        """Targets for records; futures (B,) when known, else computed with the network."""
        if futures is None:
            futures = future_values(self.model, records, self.config.mask)
        changed = [record_changed(r) for r in records]
        done = [r.episode_done for r in records]
        return compute_labels([r.reward for r in records], futures, changed, done,
                              self.config.gamma)

    def update(self, records, weights=None, futures=None):
        """
        One gradient step on records.

        weights: importance weights (B,) or None (they weigh the Q loss only); futures: max Q
        of the next heightmaps (B,) when the caller has them (computed here otherwise). With
        an inverse model, the pushes that changed the scene add inverse_loss_weight x its
        loss.
        """
        for record in records:
            if record.primitive not in (PUSH, GRASP):
                raise ValueError(f'unknown primitive {record.primitive}')
        if futures is None:
            futures = future_values(self.model, records, self.config.mask)
        labels = self.labels(records, futures)
        self.model.train()
        predictions = executed_q(self.model, records)
        target = torch.as_tensor(labels, dtype=predictions.dtype, device=predictions.device)
        losses = F.smooth_l1_loss(predictions, target, reduction='none',
                                  beta=self.config.huber_delta)
        if weights is not None:
            losses = losses * torch.as_tensor(weights, dtype=losses.dtype,
                                              device=losses.device)
        loss = losses.mean()
        if not torch.isfinite(loss):
            raise FloatingPointError(f'loss is {float(loss.detach())}; update skipped')
        total, inverse = loss, None
        pushes = self._inverse_model_records(records)
        if pushes:
            inverse = inverse_loss(self.model, pushes)
            if not torch.isfinite(inverse):
                raise FloatingPointError(f'inverse-model loss is {float(inverse.detach())}; '
                                         'update skipped')
            total = loss + self.config.inverse_loss_weight * inverse
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        if self.config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.optimizer.step()
        predicted = predictions.detach().cpu().numpy().astype(np.float64)
        priorities = np.abs(predicted - labels) + self.config.priority_epsilon
        return UpdateResult(float(loss.detach()), priorities, labels, predicted,
                            None if inverse is None else float(inverse.detach()))

    def _inverse_model_records(self, records):
        """Return the records the inverse model learns from: pushes that changed the scene."""
        if not getattr(self.model, 'has_inverse_model', False) or \
                self.config.inverse_loss_weight == 0:
            return []
        return [r for r in records if r.primitive == PUSH and record_changed(r)]


def sample_prioritized(priorities, count, alpha, beta, rng, exclude=()):
    """
    Draw `count` distinct indices with P(i) ~ priorities[i] ** alpha, skipping `exclude`.

    Returns (indices, importance weights normalised to max 1).
    """
    priorities = np.asarray(priorities, np.float64)
    n = priorities.size
    allowed = np.ones(n, bool)
    allowed[list(exclude)] = False
    candidates = np.flatnonzero(allowed)
    count = min(int(count), candidates.size)
    if count <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float64)
    scaled = np.maximum(priorities[candidates], 1e-12) ** alpha
    probabilities = scaled / scaled.sum()
    picked = rng.choice(candidates.size, size=count, replace=False, p=probabilities)
    weights = (candidates.size * probabilities[picked]) ** (-beta)
    return candidates[picked], weights / weights.max()
