"""
The rotation machinery of our Q-networks and VPG's layout on it (the `vpg` variant).

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

`RotatingQNetwork` implements the rotation machinery for any trunk and heads, so a
shared-trunk variant (multitask_q_network.py) only brings its own trunk and extra heads.
"""

import math

import torch
from torch import nn
import torch.nn.functional as F

from vpg_policy.q_network_base import QMaps, QNetwork, QNetworkConfig
from vpg_policy.rotations import (canvas_size, from_canvas_grid, grasp_equivalent_index,
                                  rotation_angles, sample, to_canvas_grid)


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
