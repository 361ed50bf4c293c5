"""
Latency of one full policy decision: our Q-network against VPG's DenseNet-121 architecture.

One decision = a 224 x 224 heightmap -> validation and preprocessing -> push and grasp Q maps
for 16 rotations each -> VPG's argmax rule -> pixel, rotation and 3-D point
(vpg_policy.decision.Policy.decide, exactly what the policy node runs per request).

The reference is VPG's network as published: per primitive two DenseNet-121 trunks (colour,
and depth repeated x3), concatenated 2048 channels -> BN-ReLU-1x1 conv 64 -> BN-ReLU-1x1
conv 1, bilinear upsampling x16, on the heightmap zoomed 2x and padded to 640 x 640, run
one rotation per forward pass (4 trunks per pass, both primitives), randomly initialised.
torchvision cannot be imported next to the CPU torch here, so DenseNet-121 is written out
below. On a CPU a full reference decision takes minutes, so a few rotation passes are timed
and the decision is extrapolated to 16 passes (stated in the output).

Peak memory is the process's peak resident set size (getrusage ru_maxrss, which includes
the Python interpreter and the torch libraries), also given as the increase over the
resident size just before the network was built. On a GPU: torch.cuda.max_memory_allocated.

Usage: python bench/decision.py [--threads N] [--repeats N] [--reference-passes N]
The last line printed is one JSON object.
"""

import argparse
import json
import math
import os
import resource
import statistics
import sys
import time

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

try:
    from vpg_perception.grid import HeightmapGrid
    from vpg_policy.decision import Policy
    from vpg_policy.q_network import build_q_network, forward_flops, parameter_count
except ImportError:  # run from a plain checkout without the colcon install space
    ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sys.path[:0] = [os.path.join(ROOT, 'src', 'vpg_policy'),
                    os.path.join(ROOT, 'src', 'vpg_perception')]
    from vpg_perception.grid import HeightmapGrid
    from vpg_policy.decision import Policy
    from vpg_policy.q_network import build_q_network, forward_flops, parameter_count

NUM_ROTATIONS = 16


# -- VPG reference: DenseNet-121 (torchvision's layout) and VPG's per-rotation forward --------

class DenseLayer(nn.Module):

    def __init__(self, channels, growth=32, bottleneck=4):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(channels)
        self.conv1 = nn.Conv2d(channels, bottleneck * growth, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(bottleneck * growth)
        self.conv2 = nn.Conv2d(bottleneck * growth, growth, 3, padding=1, bias=False)

    def forward(self, x):
        y = self.conv1(F.relu(self.norm1(x)))
        y = self.conv2(F.relu(self.norm2(y)))
        return torch.cat([x, y], 1)


class DenseNet121Features(nn.Module):
    """torchvision densenet121().features: 1024 channels at 1/32 resolution."""

    def __init__(self, blocks=(6, 12, 24, 16), growth=32):
        super().__init__()
        layers = [nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False), nn.BatchNorm2d(64),
                  nn.ReLU(inplace=True), nn.MaxPool2d(3, stride=2, padding=1)]
        channels = 64
        for i, count in enumerate(blocks):
            for _ in range(count):
                layers.append(DenseLayer(channels, growth))
                channels += growth
            if i < len(blocks) - 1:
                layers += [nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
                           nn.Conv2d(channels, channels // 2, 1, bias=False), nn.AvgPool2d(2)]
                channels //= 2
        layers.append(nn.BatchNorm2d(channels))
        self.features = nn.Sequential(*layers)
        self.out_channels = channels

    def forward(self, x):
        return self.features(x)


def vpg_head():
    return nn.Sequential(nn.BatchNorm2d(2048), nn.ReLU(inplace=True), nn.Conv2d(2048, 64, 1),
                         nn.BatchNorm2d(64), nn.ReLU(inplace=True), nn.Conv2d(64, 1, 1))


class VpgReference(nn.Module):
    """VPG's push and grasp networks: four DenseNet-121 trunks, two heads."""

    def __init__(self):
        super().__init__()
        self.push_color, self.push_depth = DenseNet121Features(), DenseNet121Features()
        self.grasp_color, self.grasp_depth = DenseNet121Features(), DenseNet121Features()
        self.push_head, self.grasp_head = vpg_head(), vpg_head()

    @staticmethod
    def preprocess(color, height, device):
        """VPG: 2x nearest zoom, pad to a multiple of 32 >= the diagonal, normalise."""
        color2 = np.repeat(np.repeat(color, 2, 0), 2, 1).astype(np.float32) / 255.0
        depth2 = np.repeat(np.repeat(height, 2, 0), 2, 1).astype(np.float32)
        side = color2.shape[0]
        diag = int(math.ceil(side * math.sqrt(2) / 32) * 32)
        pad = (diag - side) // 2
        color2 = np.pad(color2, ((pad, pad), (pad, pad), (0, 0)))
        depth2 = np.pad(depth2, pad)
        mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
        color2 = (color2 - mean) / std
        depth2 = np.repeat(((depth2 - 0.01) / 0.03)[..., None], 3, axis=2)

        def to_tensor(a):
            return torch.from_numpy(a.astype(np.float32)).permute(2, 0, 1)[None].to(device)

        return to_tensor(color2), to_tensor(depth2), pad

    def rotation_pass(self, color, depth, rotation):
        """One VPG forward: rotate the input, 4 trunks, 2 heads, rotate back, upsample x16."""
        theta = rotation * 2 * math.pi / NUM_ROTATIONS
        before = torch.tensor([[[math.cos(-theta), math.sin(-theta), 0.0],
                                [-math.sin(-theta), math.cos(-theta), 0.0]]],
                              device=color.device)
        grid = F.affine_grid(before, color.shape, align_corners=False)
        color_r = F.grid_sample(color, grid, mode='nearest', align_corners=False)
        depth_r = F.grid_sample(depth, grid, mode='nearest', align_corners=False)
        push = torch.cat([self.push_color(color_r), self.push_depth(depth_r)], 1)
        grasp = torch.cat([self.grasp_color(color_r), self.grasp_depth(depth_r)], 1)
        after = torch.tensor([[[math.cos(theta), math.sin(theta), 0.0],
                               [-math.sin(theta), math.cos(theta), 0.0]]], device=color.device)
        outputs = []
        for head, features in ((self.push_head, push), (self.grasp_head, grasp)):
            q = head(features)  # 1/32 of the padded 2x input
            back = F.affine_grid(after, q.shape, align_corners=False)
            q = F.grid_sample(q, back, mode='nearest', align_corners=False)
            outputs.append(F.interpolate(q, scale_factor=16, mode='bilinear',
                                         align_corners=False))
        return outputs

    @staticmethod
    def crop(q, pad):
        """VPG's trainer: the output is at heightmap resolution; drop the padding."""
        return q[0, 0, pad // 2:q.shape[-2] - pad // 2, pad // 2:q.shape[-1] - pad // 2]


# -- measurement -------------------------------------------------------------------------

def make_scene(grid, seed=0, objects=10):
    rng = np.random.default_rng(seed)
    rows, cols = grid.shape
    color = np.full((rows, cols, 3), (110, 100, 90), dtype=np.uint8)
    height = np.zeros((rows, cols), np.float32)
    for _ in range(objects):
        r, c = rng.integers(20, rows - 40), rng.integers(20, cols - 40)
        h, w = rng.integers(12, 26, 2)
        height[r:r + h, c:c + w] = rng.uniform(0.025, 0.05)
        color[r:r + h, c:c + w] = rng.integers(0, 256, 3)
    return color, height


def rss_mb():
    with open('/proc/self/statm') as handle:
        return int(handle.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2 ** 20


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def timed(fn, repeats, warmup, sync=lambda: None):
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(1000.0 * (time.perf_counter() - start))
    return times


def bench_ours(device, repeats, color, height, grid):
    model = build_q_network('vpg', seed=0).to(device).eval()
    policy = Policy(model)
    times = timed(lambda: policy.decide(color, height, grid), repeats, warmup=3)
    return model, times


def bench_reference(device, passes, color, height, sync):
    reference = VpgReference().to(device).eval()
    with torch.inference_mode():
        prep = timed(lambda: VpgReference.preprocess(color, height, device), 3, 1)
        color_t, depth_t, pad = VpgReference.preprocess(color, height, device)
        maps = reference.rotation_pass(color_t, depth_t, 0)  # warm-up, also gives the shapes
        sync()
        rotation_times = []
        for rotation in range(passes):
            start = time.perf_counter()
            push, grasp = reference.rotation_pass(color_t, depth_t, rotation)
            VpgReference.crop(push, pad), VpgReference.crop(grasp, pad)
            sync()
            rotation_times.append(1000.0 * (time.perf_counter() - start))
        stack = torch.stack([VpgReference.crop(m, pad) for m in maps] * NUM_ROTATIONS)
        argmax = timed(lambda: int(stack.flatten().argmax()), 5, 1, sync)
    per_pass = statistics.median(rotation_times)
    total = statistics.median(prep) + NUM_ROTATIONS * per_pass + statistics.median(argmax)
    return reference, per_pass, total, rotation_times


def main():
    cores = len(os.sched_getaffinity(0))
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--threads', type=int, default=cores,
                        help=f'torch CPU threads (default: the cores this process may use, '
                             f'{cores})')
    parser.add_argument('--repeats', type=int, default=30, help='timed decisions (ours)')
    parser.add_argument('--reference-passes', type=int, default=2,
                        help='timed VPG rotation passes on the CPU (16 on a GPU)')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    grid = HeightmapGrid()
    color, height = make_scene(grid)
    load = os.getloadavg()
    print(f'machine: {cores} usable cores, torch {torch.__version__}, '
          f'torch.set_num_threads({args.threads}); load average before: '
          f'{load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (other work shares these cores: '
          'both networks are timed in this same run)')

    baseline = rss_mb()
    model, times = bench_ours('cpu', args.repeats, color, height, grid)
    peak = peak_rss_mb()
    ms = statistics.median(times)
    flops = forward_flops(model, 224, 224)
    print(f'ours: vpg variant, {parameter_count(model)} parameters, '
          f'{flops["total"] / 1e9:.2f} GFLOP per decision ({flops["conv"] / 1e9:.2f} conv + '
          f'{flops["resample"] / 1e9:.3f} rotation resampling), 2 primitives x 16 rotations '
          'in one batched pass')
    print(f'ours, CPU: full decision median {ms:.1f} ms, min {min(times):.1f}, '
          f'p90 {np.percentile(times, 90):.1f} over {len(times)} runs; peak RSS '
          f'{peak:.0f} MB (+{peak - baseline:.0f} MB over the {baseline:.0f} MB before '
          'building the network)')

    reference, per_pass, reference_ms, passes = bench_reference(
        'cpu', args.reference_passes, color, height, lambda: None)
    ref_params = parameter_count(reference)
    print(f'reference (VPG, 4 DenseNet-121 trunks + 2 heads, {ref_params / 1e6:.1f} M '
          f'parameters, input 640x640): timed {len(passes)} of {NUM_ROTATIONS} rotation passes '
          f'({", ".join(f"{t:.0f}" for t in passes)} ms, median {per_pass:.0f} ms), '
          f'extrapolated to {NUM_ROTATIONS} passes = 32 primitive-rotations: '
          f'{reference_ms / 1000:.1f} s per decision; peak RSS {peak_rss_mb():.0f} MB')
    speedup = reference_ms / ms
    print(f'speed-up on the CPU: {speedup:.0f}x (goal: <= 100 ms and >= 20x)')
    result = {'bench': 'decision', 'ms': round(ms, 2), 'reference_ms': round(reference_ms, 1),
              'speedup': round(speedup, 1), 'peak_mb': round(peak, 1), 'threads': args.threads,
              'reference_extrapolated_from_passes': len(passes),
              'params': parameter_count(model), 'gflop': round(flops['total'] / 1e9, 3)}

    if torch.cuda.is_available():
        sync = torch.cuda.synchronize
        torch.cuda.reset_peak_memory_stats()
        model, times = bench_ours('cuda', args.repeats, color, height, grid)
        gpu_ms = statistics.median(times)
        gpu_peak = torch.cuda.max_memory_allocated() / 2 ** 20
        del model
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        _, per_pass, gpu_reference_ms, passes = bench_reference('cuda', NUM_ROTATIONS, color,
                                                                height, sync)
        gpu_reference_peak = torch.cuda.max_memory_allocated() / 2 ** 20
        name = torch.cuda.get_device_name()
        print(f'ours, GPU ({name}): full decision median {gpu_ms:.2f} ms, min '
              f'{min(times):.2f}; peak GPU memory {gpu_peak:.0f} MB')
        print(f'reference, GPU: all {len(passes)} rotation passes timed, median {per_pass:.1f} '
              f'ms each, {gpu_reference_ms:.0f} ms per decision; peak GPU memory '
              f'{gpu_reference_peak:.0f} MB; speed-up {gpu_reference_ms / gpu_ms:.0f}x')
        result.update({'gpu': name, 'gpu_ms': round(gpu_ms, 2),
                       'gpu_reference_ms': round(gpu_reference_ms, 1),
                       'gpu_speedup': round(gpu_reference_ms / gpu_ms, 1),
                       'gpu_peak_mb': round(gpu_peak, 1)})
    print(json.dumps(result))


if __name__ == '__main__':
    main()
