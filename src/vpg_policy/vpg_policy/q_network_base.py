"""
What every Q-network is: its config, its input and its interface to the policy and trainer.

`QNetwork` is the interface the policy (inference) and the trainer (learning) use; `preprocess`
turns a colour + height map into its input as VPG normalised them. No ROS in here.
"""

import abc
from dataclasses import asdict, dataclass, fields
import hashlib
import itertools
import json
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

# Input normalisation as VPG: ImageNet statistics for colour, (height - 0.01 m) / 0.03 m.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class QNetworkConfig:
    """Architecture of a Q-network; stored with its weights, so it defines compatibility."""

    num_rotations: int = 16
    """Directions per primitive; rotation i stands for i * 2 * pi / num_rotations."""
    stem_channels: int = 16
    """Width of the per-pixel MLP on colour + height (per primitive)."""
    trunk_channels: int = 24
    """Width of the trunk at 1/4 resolution (per primitive)."""
    trunk_dilations: tuple = (1, 2, 4)
    """One residual 3x3 convolution per entry, with that dilation."""
    feature_channels: int = 16
    """Channels of the features that are rotated (per primitive)."""
    head_channels: int = 16
    """Width of the oriented heads."""
    head_dilations: tuple = (1, 2)
    """One 3x3 convolution per entry after the head's stride-2 layer, with that dilation."""
    isotropic_trunk: bool = True
    """Trunk kernels depend on the radius only (rotation-equivariant features)."""
    grasp_symmetric: bool = True
    """
    Grasp Q at rotation i + R/2 equals grasp Q at i (a parallel-jaw grasp is symmetric).

    Enforced exactly by point-symmetric grasp-head kernels; only R/2 grasp rotations run.
    """
    color_mean: tuple = IMAGENET_MEAN
    color_std: tuple = IMAGENET_STD
    height_mean: float = 0.01
    """Metres; subtracted from the height map."""
    height_std: float = 0.03
    """Metres; the height map is divided by it."""
    max_height: float = 0.3
    """Metres; heights are clipped to [0, max_height] before normalising."""

    def __post_init__(self):
        for name in ('trunk_dilations', 'head_dilations', 'color_mean', 'color_std'):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        positive = ('num_rotations', 'stem_channels', 'trunk_channels', 'feature_channels',
                    'head_channels')
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise ValueError(f'{name} must be >= 1, got {getattr(self, name)}')
        if any(d < 1 for d in self.trunk_dilations + self.head_dilations):
            raise ValueError('dilations must be >= 1')
        if len(self.color_mean) != 3 or len(self.color_std) != 3:
            raise ValueError('color_mean and color_std need 3 values (r, g, b)')
        if min(self.color_std) <= 0 or self.height_std <= 0 or self.max_height <= 0:
            raise ValueError('color_std, height_std and max_height must be > 0')

    def to_dict(self):
        """Plain JSON-ready dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, values):
        """Inverse of to_dict; unknown keys are an error (they mean another architecture)."""
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f'unknown Q-network config keys: {sorted(unknown)}')
        return cls(**values)


class QMaps(NamedTuple):
    """Q maps (B, K, H, W) for K rotations of each primitive."""

    push: torch.Tensor
    grasp: torch.Tensor


class QNetwork(nn.Module, abc.ABC):
    """
    What the policy and the trainer rely on.

    Input: a batch from `preprocess` (B, 4, H, W). Output: QMaps with push and grasp Q for
    every pixel and the requested rotations. Subclasses set `variant` and are built from a
    config alone (an instance of `config_class`, which a variant may extend with fields of
    its own), so weights, which record both, can rebuild them.
    """

    variant = ''
    config_class = QNetworkConfig
    has_inverse_model = False
    """True when the network also has `inverse(before, after)` (a push inverse model)."""

    def __init__(self, config):
        super().__init__()
        self.config = config

    @property
    def num_rotations(self):
        return self.config.num_rotations

    @property
    def input_multiple(self):
        """Heightmap height and width must be multiples of this."""
        return 1

    @abc.abstractmethod
    def forward(self, inputs, rotations=None):
        """
        Q maps for a preprocessed batch.

        rotations=None: all R rotations, QMaps of (B, R, H, W). Otherwise an integer tensor
        (B, K) of rotation indices per sample (the trainer's executed rotations): QMaps of
        (B, K, H, W).
        """

    def architecture(self):
        """Variant and config: everything needed to rebuild this network."""
        return {'variant': self.variant, 'config': self.config.to_dict()}

    def architecture_hash(self):
        """sha256 of the canonical architecture JSON: equal hashes, interchangeable weights."""
        text = json.dumps(self.architecture(), sort_keys=True, separators=(',', ':'))
        return hashlib.sha256(text.encode()).hexdigest()

    def preprocess(self, color, height):
        """Normalised network input on this network's device (see `preprocess`)."""
        return preprocess(color, height, self.config, device=self.device)

    @property
    def device(self):
        for tensor in itertools.chain(self.parameters(), self.buffers()):
            return tensor.device
        return torch.device('cpu')

    @torch.inference_mode()
    def q_maps(self, color, height):
        """Q maps of one heightmap as float32 numpy arrays (R, H, W): push, grasp."""
        maps = self(self.preprocess(color, height))
        return maps.push[0].float().cpu().numpy(), maps.grasp[0].float().cpu().numpy()


def preprocess(color, height, config, device='cpu'):
    """
    Turn colour and height maps into the network input float32 (B, 4, H, W).

    Colour maps are uint8 (H, W, 3) or (B, H, W, 3), height maps float metres (H, W) or
    (B, H, W). Colour is scaled to [0, 1] and standardised with ImageNet statistics, height
    is clipped to [0, max_height] and standardised with VPG's constants. Raises ValueError
    for wrong shapes or dtypes and for non-finite heights.
    """
    color = np.asarray(color)
    height = np.asarray(height)
    if color.ndim == 3:
        color, height = color[None], height[None]
    if color.ndim != 4 or color.shape[-1] != 3 or height.shape != color.shape[:3]:
        raise ValueError(f'expected colour (H, W, 3) and height (H, W), got colour '
                         f'{color.shape} and height {height.shape}')
    if color.dtype != np.uint8:
        raise ValueError(f'colour map must be uint8, got {color.dtype}')
    if not np.issubdtype(height.dtype, np.floating):
        raise ValueError(f'height map must be float (metres), got {height.dtype}')
    if not np.isfinite(height).all():
        raise ValueError('height map holds NaN or infinite values')
    color_t = torch.from_numpy(np.ascontiguousarray(color)).to(device)
    height_t = torch.from_numpy(np.ascontiguousarray(height, dtype=np.float32)).to(device)
    mean = torch.tensor(config.color_mean, dtype=torch.float32, device=device)
    std = torch.tensor(config.color_std, dtype=torch.float32, device=device)
    color_t = (color_t.float() / 255.0 - mean) / std
    height_t = (height_t.clamp(0.0, config.max_height) - config.height_mean) / config.height_std
    return torch.cat([color_t.permute(0, 3, 1, 2), height_t[:, None]], dim=1).contiguous()
