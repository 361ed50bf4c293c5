"""
Heightmap speed: HeightmapBuilder against VPG's original algorithm, 640x480 -> 224x224.

The scene is synthetic (vpg_test_support.synthetic_rgbd): ten boxes on the table, seen by a camera
placed like the simulated cell's, depth quantised to millimetres as realsense2_camera's 16UC1
and converted to metres as the heightmap node does. Both implementations run on the same frame
in the same process, so machine load affects both alike; the median over repeats is reported.
Usage: python bench/heightmap.py [--repeats N]
"""

import argparse
import json
import statistics
import time

import numpy as np
from vpg_perception.grid import HeightmapGrid
from vpg_perception.heightmap import HeightmapBuilder
from vpg_test_support import synthetic_rgbd
from vpg_test_support.vpg_heightmap_reference import vpg_heightmap


def make_frame(seed=0):
    rng = np.random.default_rng(seed)
    k = synthetic_rgbd.intrinsics(640, 480, 615.0)
    camera = synthetic_rgbd.look_at((-0.32, 0.025, 0.70), (-0.5, 0.005, 0.0), up=(-1.0, 0.0, 0.0))
    color, depth = synthetic_rgbd.render(k, camera, boxes=synthetic_rgbd.random_boxes(rng))
    depth = depth + rng.normal(0.0, 0.001, depth.shape)
    millimetres = np.round(depth * 1000).astype(np.uint16)
    millimetres[rng.random(depth.shape) < 0.02] = 0  # holes
    return color, millimetres.astype(np.float32) * np.float32(0.001), k, camera


def median_ms(function, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('--repeats', type=int, default=50)
    args = parser.parse_args()
    grid = HeightmapGrid()
    color, depth, k, camera = make_frame()
    builder = HeightmapBuilder(grid)
    maps = builder.build(color, depth, k, camera)  # geometry cached from here on

    ms = median_ms(lambda: builder.build(color, depth, k, camera), args.repeats)
    cold_ms = median_ms(lambda: HeightmapBuilder(grid).build(color, depth, k, camera),
                        max(args.repeats // 5, 3))
    reference_ms = median_ms(lambda: vpg_heightmap(color, depth, k, camera, grid),
                             max(args.repeats // 5, 3))

    ref_color, ref_height = vpg_heightmap(color, depth, k, camera, grid)
    both = maps.observed & ~np.isnan(ref_height)
    # VPG's main.py turns empty (NaN) cells into 0 before use; compare what the policy sees.
    diff = np.abs(maps.height - np.nan_to_num(ref_height))
    print(f'image {depth.shape[1]}x{depth.shape[0]} -> heightmap {grid.shape[0]}x'
          f'{grid.shape[1]}, {int(maps.observed.sum())} cells observed')
    print(f'HeightmapBuilder (geometry cached): {ms:.2f} ms median of {args.repeats}')
    print(f'HeightmapBuilder (new builder each call): {cold_ms:.2f} ms')
    print(f'VPG reference (sort by height, scatter): {reference_ms:.2f} ms')
    print(f'cells observed by one but not the other: '
          f'{int((maps.observed != ~np.isnan(ref_height)).sum())}; max height difference where '
          f'both observed {diff[both].max():.3g} m; colour maps equal on '
          f'{100 * np.mean(np.all(maps.color == ref_color, axis=-1)):.2f} % of cells')
    print(json.dumps({'bench': 'heightmap', 'ms': round(ms, 3),
                      'reference_ms': round(reference_ms, 3),
                      'speedup': round(reference_ms / ms, 1),
                      'max_abs_diff_m': float(f'{diff.max():.3g}')}))


if __name__ == '__main__':
    main()
