"""
The `multitask` variant (Pinto & Gupta, "Learning to push by grasping") and its inverse model.

One trunk shared by the push and grasp heads, plus an auxiliary push inverse model that runs
the same trunk on the heightmaps before and after a push (siamese) and predicts where the push
started and which way it went. Its Q maps are those of `vpg`, so the policy serves either
unchanged.
"""

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn
import torch.nn.functional as F

from vpg_policy.q_network_base import QNetworkConfig
from vpg_policy.rotating_q_network import OrientedHead, RotatingQNetwork, Trunk


@dataclass(frozen=True)
class MultitaskQNetworkConfig(QNetworkConfig):
    """Architecture of the multitask variant: the Q-network's fields plus the inverse head's."""

    inverse_channels: int = 16
    """Width of the push inverse-model head (at the trunk's 1/4 resolution)."""
    inverse_dilations: tuple = (1, 2, 4)
    """
    One 3x3 convolution per entry after the head's first layer, with that dilation.

    With the trunk's own context they must span a push (10 cm = 50 px at 2 mm/px) so the head
    sees where a block left and where it arrived.
    """
    inverse_logit_scale: float = 10.0
    """
    Multiplies the start and end logits before their soft-argmax.

    Sharper location maps from the first update on: with 1 the maps start almost uniform and
    the predicted points stay near the centre for a long time.
    """

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, 'inverse_dilations', tuple(self.inverse_dilations))
        if int(self.inverse_channels) < 1:
            raise ValueError(f'inverse_channels must be >= 1, got {self.inverse_channels}')
        if any(d < 1 for d in self.inverse_dilations):
            raise ValueError('dilations must be >= 1')
        if not self.inverse_logit_scale > 0:
            raise ValueError(f'inverse_logit_scale must be > 0, got {self.inverse_logit_scale}')


class InversePrediction(NamedTuple):
    """What the push inverse model predicts for a batch of (before, after) pairs."""

    start: torch.Tensor
    """(B, 2) push start as normalised heightmap coordinates (row, col) in (0, 1)."""
    direction: torch.Tensor
    """(B, 2) unit vector (cos theta, sin theta) = (dcol, drow) of the push (rotations.py)."""
    end: torch.Tensor
    """(B, 2) where the pushed object arrived, normalised (row, col); no target of its own."""


def normalised_pixel(rows, cols, height, width):
    """
    Map pixel indices to normalised heightmap coordinates (B, 2) = (row, col) in (0, 1).

    Pixel centres: row r maps to (r + 0.5) / height, so a map of any resolution over the same
    extent (the trunk's 1/4-resolution cells included) gives the same coordinates.
    """
    rows = torch.as_tensor(rows, dtype=torch.float32)
    cols = torch.as_tensor(cols, dtype=torch.float32)
    return torch.stack([(rows + 0.5) / height, (cols + 0.5) / width], dim=-1)


def spatial_soft_argmax(logits):
    """
    Return the expected normalised (row, col) under a softmax over the cells of logits (B, h, w).

    Returns (coordinates (B, 2), probabilities (B, h, w)); cell (i, j) sits at
    ((i + 0.5) / h, (j + 0.5) / w), the convention of `normalised_pixel`.
    """
    batch, h, w = logits.shape
    probabilities = torch.softmax(logits.reshape(batch, h * w), dim=1).reshape(batch, h, w)
    rows = (torch.arange(h, device=logits.device, dtype=logits.dtype) + 0.5) / h
    cols = (torch.arange(w, device=logits.device, dtype=logits.dtype) + 0.5) / w
    row = (probabilities.sum(dim=2) * rows).sum(dim=1)
    col = (probabilities.sum(dim=1) * cols).sum(dim=1)
    return torch.stack([row, col], dim=1), probabilities


class InverseHead(nn.Module):
    """
    Push inverse model on trunk features of the heightmaps before and after a push.

    Before, after (B, feature_channels, h, w) each -> InversePrediction. The head sees both
    and their difference (what vanished, what appeared), and ordinary convolutions (the
    trunk's features have no preferred direction; this head must relate positions) give two
    location maps: where the push started and where the pushed object arrived. Each point is
    the spatial soft-argmax of its map, so the prediction stays tied to image positions, and
    the direction is the unit vector from start to end: a push moves objects along its
    direction. The end point is trained only through the direction.
    """

    def __init__(self, config):
        super().__init__()
        width = config.inverse_channels
        layers = [nn.Conv2d(3 * config.feature_channels, width, 3, padding=1),
                  nn.ReLU(inplace=True)]
        for d in config.inverse_dilations:
            layers += [nn.Conv2d(width, width, 3, padding=d, dilation=d), nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*layers)
        # Logits of the start (channel 0) and end (channel 1) locations.
        self.points = nn.Conv2d(width, 2, 1)
        self.logit_scale = config.inverse_logit_scale

    def forward(self, before, after):
        logits = self.logit_scale * self.points(self.body(torch.cat([before, after,
                                                                     after - before], dim=1)))
        start, _ = spatial_soft_argmax(logits[:, 0])
        end, _ = spatial_soft_argmax(logits[:, 1])
        delta = end - start  # (drow, dcol)
        # eps: a degenerate start == end gives a zero vector (loss 1), not a NaN.
        direction = F.normalize(delta.flip(1), dim=1, eps=1e-4)
        return InversePrediction(start, direction, end)


class MultitaskQNetwork(RotatingQNetwork):
    """
    One trunk for push and grasp Q (the vpg heads on it) plus a push inverse-model head.

    Pinto & Gupta's multi-task network in VPG's frame: the inverse model learns from the push
    transitions the robot collects anyway, and its gradient shapes the trunk the Q heads
    share. `forward` gives exactly the QMaps of the vpg variant; `inverse` is for training.
    A plain QNetworkConfig is accepted and given the inverse head's defaults.
    """

    variant = 'multitask'
    config_class = MultitaskQNetworkConfig
    has_inverse_model = True

    def __init__(self, config=None):
        config = config or MultitaskQNetworkConfig()
        if not isinstance(config, MultitaskQNetworkConfig):
            config = MultitaskQNetworkConfig.from_dict(config.to_dict())
        super().__init__(config, Trunk(config, groups=1), OrientedHead(config),
                         OrientedHead(config, point_symmetric=config.grasp_symmetric),
                         Trunk.stride, OrientedHead.stride)
        self.inverse_head = InverseHead(config)

    def inverse(self, before_inputs, after_inputs):
        """
        Predict the push that turned `before_inputs` into `after_inputs`.

        Both are preprocessed batches (B, 4, H, W) as for `forward` (H, W multiples of 4).
        The shared trunk runs on both in one batch (siamese, same weights); returns an
        InversePrediction.
        """
        if before_inputs.shape != after_inputs.shape or before_inputs.ndim != 4:
            raise ValueError(f'before and after must both be (B, 4, H, W), got '
                             f'{tuple(before_inputs.shape)} and {tuple(after_inputs.shape)}')
        height, width = before_inputs.shape[-2:]
        if height % self.trunk_stride or width % self.trunk_stride:
            raise ValueError(f'heightmap size {height}x{width} must be a multiple of '
                             f'{self.trunk_stride}')
        features, _ = self.trunk(torch.cat([before_inputs, after_inputs]))
        return self.inverse_head(*features.chunk(2, dim=0))


def inverse_model_loss(prediction, start_rc_normalised, angle):
    """
    Regression loss of the push inverse model: MSE(start) + MSE((cos, sin)).

    prediction: InversePrediction (start (B, 2), direction (B, 2)); start_rc_normalised: the
    executed push's start (B, 2) as normalised (row, col) (see `normalised_pixel`); angle:
    the executed push's direction (B,) in radians (rotations.py: rotation i is
    i * 2 pi / R). Each MSE is the mean over the batch and the two coordinates; a scalar
    tensor with gradient. For unit vectors the direction term is 1 - cos(angle error).
    """
    start = torch.as_tensor(start_rc_normalised, dtype=prediction.start.dtype,
                            device=prediction.start.device)
    angle = torch.as_tensor(angle, dtype=prediction.direction.dtype,
                            device=prediction.direction.device)
    if start.shape != prediction.start.shape or angle.shape != prediction.start.shape[:1]:
        raise ValueError(f'targets must be start (B, 2) and angle (B,) for B = '
                         f'{prediction.start.shape[0]}, got {tuple(start.shape)} and '
                         f'{tuple(angle.shape)}')
    direction = torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
    return F.mse_loss(prediction.start, start) + F.mse_loss(prediction.direction, direction)
