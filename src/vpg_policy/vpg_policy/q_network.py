"""
Push and grasp Q-networks: colour + height map in, one Q value per pixel and rotation out.

Shared by the policy node (inference) and the trainer (learning); no ROS in here.

VPG ran two ImageNet DenseNet-121 trunks per primitive on each of 16 rotated copies of the
2x-zoomed heightmap and read Q at 1/16 of the heightmap's resolution. Nothing pretrained can
be loaded here and that is far too slow on a CPU, so this network is built to train from
scratch on a few thousand robot actions and to run all 2 x 16 rotations in one batched pass:

* Trunk, once per heightmap: a per-pixel MLP on the normalised colour and height, a 4x4
  patch embedding to 1/4 resolution (8 mm cells at 2 mm/px) and residual dilated 3x3
  convolutions for context. Its convolutions are isotropic by default (each kernel weight
  depends only on the distance from the kernel centre), so the trunk has no preferred
  direction: its features rotate with the scene (exactly for quarter turns, up to the pixel
  grid otherwise), and rotating the features does what VPG's rotating of the input does:
  the Q function stays rotation-equivariant, and what a head learns at one angle holds at
  all 16.
* The features are resampled into 16 rotated canvases (rotations.py), one per direction.
* Light oriented heads (ordinary convolutions) score each canvas at 1/8 resolution, always
  for an action along the canvas' +col axis. Push and grasp have separate trunks and heads
  (VPG's two networks; grouped convolutions run both trunks in one call). A grasp at
  theta + pi is the same grasp: the grasp head's kernels equal their own 180-degree
  rotation, so its scores for theta and theta + pi agree exactly, and only 8 grasp
  rotations are computed.
* One bilinear resampling rotates the scores back and upsamples them to the heightmap.

`QNetwork` is the interface the policy and trainer use; `RotatingQNetwork` implements the
rotation machinery for any trunk and heads, so a shared-trunk multi-task variant only brings
its own trunk (and extra heads) and registers itself with `register_variant`.

Two variants are registered: `vpg` (above) and `multitask` (Pinto & Gupta, "Learning to push
by grasping"): one trunk shared by the push and grasp heads, plus an auxiliary push inverse
model that runs the same trunk on the heightmaps before and after a push (siamese) and
predicts where the push started and which way it went. Its Q maps are those of `vpg`, so the
policy serves either unchanged.
"""

import abc
from dataclasses import asdict, dataclass, fields
import hashlib
import itertools
import json
import math
from typing import NamedTuple

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from vpg_policy.rotations import (canvas_size, from_canvas_grid, grasp_equivalent_index,
                                  rotation_angles, sample, to_canvas_grid)

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


class IsotropicConv2d(nn.Module):
    """
    A convolution whose kernel weights depend only on the distance from the kernel centre.

    Its responses have no preferred direction: rotating the input by a multiple of 90 degrees
    rotates the output exactly, and by other angles approximately (up to the pixel grid).
    A 3x3 kernel has 3 free weights per channel pair, a 4x4 kernel 3 as well.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, groups=1, bias=True):
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError('channels must be divisible by groups')
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.dilation, self.groups = dilation, groups
        offsets = torch.arange(kernel_size, dtype=torch.float64) - (kernel_size - 1) / 2
        radius2 = offsets[:, None] ** 2 + offsets[None, :] ** 2
        radii, index = torch.unique(torch.round(radius2 * 1e6), return_inverse=True)
        self.register_buffer('bin_index', index, persistent=False)
        self.radial_weight = nn.Parameter(
            torch.empty(out_channels, in_channels // groups, len(radii)))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        # He initialisation for the effective kernel: positions sharing a weight add up
        # coherently, so the variance scales with the sum of squared bin sizes.
        counts = torch.bincount(index.flatten()).double()
        fan = in_channels // groups * float((counts ** 2).sum())
        nn.init.normal_(self.radial_weight, std=math.sqrt(2.0 / fan))

    def weight(self):
        """Expand the radial weights to the full (out, in / groups, k, k) kernel."""
        return self.radial_weight[..., self.bin_index]

    def forward(self, x):
        return F.conv2d(x, self.weight(), self.bias, self.stride, self.padding, self.dilation,
                        self.groups)

    def extra_repr(self):
        return (f'{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, '
                f'stride={self.stride}, padding={self.padding}, dilation={self.dilation}, '
                f'groups={self.groups}')


class Trunk(nn.Module):
    """
    Features at 1/4 resolution for `groups` independent networks, run as one.

    groups=2 gives VPG's separate push and grasp trunks (the output's first half is for push,
    the second for grasp); groups=1 one shared trunk. Returns (push features, grasp
    features), each (B, feature_channels, H/4, W/4): the same tensor twice when shared.
    """

    stride = 4

    def __init__(self, config, groups):
        super().__init__()
        g = groups
        conv = IsotropicConv2d if config.isotropic_trunk else nn.Conv2d
        self.groups = groups
        self.stem = nn.Sequential(
            nn.Conv2d(4, g * config.stem_channels, 1), nn.ReLU(inplace=True),
            nn.Conv2d(g * config.stem_channels, g * config.stem_channels, 1, groups=g),
            nn.ReLU(inplace=True))
        self.patch = conv(g * config.stem_channels, g * config.trunk_channels, 4, stride=4,
                          groups=g)
        self.blocks = nn.ModuleList(
            conv(g * config.trunk_channels, g * config.trunk_channels, 3, padding=d,
                 dilation=d, groups=g)
            for d in config.trunk_dilations)
        self.out = nn.Conv2d(g * config.trunk_channels, g * config.feature_channels, 1,
                             groups=g)

    def forward(self, x):
        x = F.relu(self.patch(self.stem(x)))
        for block in self.blocks:
            x = x + F.relu(block(x))
        features = self.out(x)
        if self.groups == 1:
            return features, features
        return features.chunk(self.groups, dim=1)


class PointSymmetricConv2d(nn.Conv2d):
    """
    A convolution whose kernels equal their own 180-degree rotation.

    It commutes with turning the input half way round: f(rot180(x)) = rot180(f(x)), while
    still telling the row axis from the column axis. Used by the grasp head, since a
    parallel-jaw grasp at theta + pi is the same grasp.
    """

    def symmetric_weight(self):
        return 0.5 * (self.weight + self.weight.flip(-1, -2))

    def forward(self, x):
        return self._conv_forward(x, self.symmetric_weight(), self.bias)


class OrientedHead(nn.Module):
    """
    Scores rotated feature canvases for an action along the canvas' +col axis.

    (N, feature_channels, P, P) -> (N, 1, P/2, P/2). The first layer is a 4x4 stride-2
    convolution, so each output cell is centred exactly between the input cells it pools
    (keeps the rotation bookkeeping exact); ordinary kernels, so it sees direction.
    point_symmetric: kernels equal their 180-degree rotation (for grasps: the scores of
    theta and theta + pi then agree exactly, so half the rotations suffice).
    """

    stride = 2

    def __init__(self, config, point_symmetric=False):
        super().__init__()
        conv = PointSymmetricConv2d if point_symmetric else nn.Conv2d
        width = config.head_channels
        layers = [conv(config.feature_channels, width, 4, stride=2, padding=1),
                  nn.ReLU(inplace=True)]
        for d in config.head_dilations:
            layers += [conv(width, width, 3, padding=d, dilation=d), nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*layers)
        self.q = nn.Conv2d(width, 1, 1)
        with torch.no_grad():  # small, non-constant initial Q values
            self.q.weight.mul_(0.1)
            self.q.bias.zero_()

    def forward(self, canvases):
        return self.q(self.body(canvases))


class RotatingQNetwork(QNetwork):
    """
    Trunk once, features rotated R ways, oriented heads, scores rotated back.

    trunk(x) must return (push_features, grasp_features) (the same tensor for a shared trunk)
    at 1/trunk_stride resolution with exactly that extent; heads map (N, C, P, P) canvases to
    (N, 1, P/head_stride, P/head_stride) with outputs centred on the cells they cover.
    """

    def __init__(self, config, trunk, push_head, grasp_head, trunk_stride, head_stride):
        super().__init__(config)
        self.trunk = trunk
        self.push_head = push_head
        self.grasp_head = grasp_head
        self.trunk_stride = trunk_stride
        self.head_stride = head_stride
        self._grids = {}  # sampling grids for all R angles, per geometry/device/dtype

    @property
    def input_multiple(self):
        return self.trunk_stride

    def grasp_rotations_computed(self):
        """Count the distinct grasp rotations evaluated for a full set of Q maps."""
        r = self.num_rotations
        return r // 2 if self.config.grasp_symmetric and r % 2 == 0 else r

    def _rotation_grids(self, map_size, out_size, device, dtype):
        """(to-canvas grids (R, P, P, 2), from-canvas grids (R, H, W, 2), P), cached."""
        key = (tuple(map_size), tuple(out_size), str(device), dtype)
        grids = self._grids.get(key)
        if grids is None:
            canvas = canvas_size(*map_size, self.head_stride)
            angles = rotation_angles(self.num_rotations)
            grids = (to_canvas_grid(angles, map_size, canvas, dtype).to(device),
                     from_canvas_grid(angles, map_size, canvas, out_size, dtype).to(device),
                     canvas)
            self._grids[key] = grids
        return grids

    def _canvases(self, features, indices, count):
        """
        Rotated feature canvases (B * K, C, P, P) and the grids to map scores back.

        indices: rotation indices (B, K), or None for rotations 0 .. count-1 of every sample.
        """
        batch, channels, h, w = features.shape
        out_size = (h * self.trunk_stride, w * self.trunk_stride)
        to_grids, from_grids, _ = self._rotation_grids((h, w), out_size, features.device,
                                                       features.dtype)
        if indices is None:
            k = count
            to_grid, from_grid = to_grids[:k], from_grids[:k]
            if batch > 1:
                to_grid = to_grid.repeat(batch, 1, 1, 1)
                from_grid = from_grid.repeat(batch, 1, 1, 1)
        else:
            k = indices.shape[1]
            flat = indices.reshape(-1)
            to_grid, from_grid = to_grids[flat], from_grids[flat]
        stacked = features[:, None].expand(batch, k, channels, h, w).reshape(
            batch * k, channels, h, w).contiguous()
        return sample(stacked, to_grid), from_grid, (batch, k) + out_size

    def _heads(self, head, canvases, from_grid, shape):
        """Score canvases with one head and map the scores back: Q (B, K, H, W)."""
        if canvases.device.type == 'cpu':  # oneDNN convolutions run faster on NHWC
            canvases = canvases.contiguous(memory_format=torch.channels_last)
        scores = head(canvases).contiguous()
        return sample(scores, from_grid).reshape(shape)

    def _score(self, features, head, indices, count=None):
        """Q (B, K, H, W) of one primitive (see _canvases for indices and count)."""
        return self._heads(head, *self._canvases(features, indices, count))

    def forward(self, inputs, rotations=None):
        height, width = inputs.shape[-2:]
        if height % self.trunk_stride or width % self.trunk_stride:
            raise ValueError(f'heightmap size {height}x{width} must be a multiple of '
                             f'{self.trunk_stride}')
        push_features, grasp_features = self.trunk(inputs)
        r = self.num_rotations
        if rotations is None:
            distinct = self.grasp_rotations_computed()
            canvases, from_grid, shape = self._canvases(push_features, None, r)
            push = self._heads(self.push_head, canvases, from_grid, shape)
            if grasp_features is push_features:  # a shared trunk: rotate its features once
                batch = inputs.shape[0]
                keep = torch.arange(batch * r, device=inputs.device).reshape(batch, r)
                keep = keep[:, :distinct].reshape(-1)
                grasp = self._heads(self.grasp_head, canvases[keep], from_grid[keep],
                                    (batch, distinct) + shape[2:])
            else:
                grasp = self._score(grasp_features, self.grasp_head, None, distinct)
            if distinct != r:
                grasp = grasp.repeat(1, r // distinct, 1, 1)
            return QMaps(push, grasp)
        indices = torch.as_tensor(rotations, device=inputs.device).long()
        if indices.ndim != 2 or indices.shape[0] != inputs.shape[0]:
            raise ValueError(f'rotations must be (B, K) indices, got {tuple(indices.shape)}')
        if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= r):
            raise ValueError(f'rotation indices must lie in [0, {r})')
        grasp_indices = indices
        if self.config.grasp_symmetric:
            grasp_indices = grasp_equivalent_index(indices, r)
        return QMaps(self._score(push_features, self.push_head, indices),
                     self._score(grasp_features, self.grasp_head, grasp_indices))

    def resample_flops(self, height, width, batch=1):
        """
        Count the FLOPs of the bilinear resampling in one full forward.

        Convolution counters do not see it.

        4 multiply-adds per resampled value: into the canvases and back to full resolution.
        """
        h, w = height // self.trunk_stride, width // self.trunk_stride
        canvas = canvas_size(h, w, self.head_stride)
        maps = self.num_rotations + self.grasp_rotations_computed()
        channels = self.config.feature_channels
        return 2 * 4 * batch * maps * (channels * canvas * canvas + height * width)


class VpgQNetwork(RotatingQNetwork):
    """VPG's layout: separate push and grasp networks (trunk + oriented head each)."""

    variant = 'vpg'

    def __init__(self, config=None):
        config = config or QNetworkConfig()
        super().__init__(config, Trunk(config, groups=2), OrientedHead(config),
                         OrientedHead(config, point_symmetric=config.grasp_symmetric),
                         Trunk.stride, OrientedHead.stride)


_VARIANTS = {VpgQNetwork.variant: VpgQNetwork}


def register_variant(cls):
    """Make a QNetwork subclass buildable by name (its `variant`); usable as a decorator."""
    if not cls.variant:
        raise ValueError(f'{cls.__name__} has no variant name')
    _VARIANTS[cls.variant] = cls
    return cls


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


@register_variant
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


def variants():
    """List the names of the registered variants."""
    return sorted(_VARIANTS)


def variant_class(variant):
    """Return the QNetwork subclass registered as `variant` (ValueError when unknown)."""
    if variant not in _VARIANTS:
        raise ValueError(f'unknown Q-network variant {variant!r} (known: {variants()})')
    return _VARIANTS[variant]


def build_q_network(variant='vpg', config=None, seed=None):
    """
    Build a freshly initialised network of a registered variant.

    config: the variant's config_class instance (its defaults when None). seed: when given,
    the initial weights depend on it alone (a private generator state is used, the global
    torch RNG is left as it was).
    """
    cls = variant_class(variant)
    config = config if config is not None else cls.config_class()
    if seed is None:
        return cls(config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return cls(config)


def parameter_count(model):
    """Count the trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def forward_flops(model, height=224, width=224):
    """
    Count the FLOPs (multiply and add separately) of one full forward on an H x W heightmap.

    Returns a dict: `conv` (convolutions, counted by torch's FlopCounterMode), `resample`
    (the rotations' bilinear sampling) and `total`.
    """
    inputs = torch.zeros(1, 4, height, width, device=model.device)
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        model(inputs)
    conv = int(counter.get_total_flops())
    resample = int(model.resample_flops(height, width)) if hasattr(model, 'resample_flops') \
        else 0
    return {'conv': conv, 'resample': resample, 'total': conv + resample}
