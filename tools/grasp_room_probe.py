"""
Grasps the clearance mask allows, run in the cell: which are stopped on contact, and on what.

    python tools/grasp_room_probe.py [--scenes 10] [--grasps 20] [--seed 0] [--randomize]

For random 10-block scenes (VPG's drops; nominal cell, or with --randomize each scene's
friction, masses, camera pose and depth scale drawn as in training, the heightmap built with the
nominal calibration as the heightmap node does), one render through the D415 depth model
becomes a heightmap (table refit, as the heightmap node does); grasps are drawn at random among
the object pixels and rotations where the mask of `action_mask_grasp_clearance` leaves room for
both open pads, and each is run from the same saved state with the executor's own grasp
primitive (vpg_evaluation.cell_backend.CellRobot, the cell's stop on tool contact as in the
graph). Per grasp: the block under the pixel (ray straight down), whether the descent was
stopped, which gripper geom touched which body and where (contact point in the jaw frame of the
grasp: along the jaw axis, across it, and height above the commanded pinch point), whether the
exact scene (ray-cast) has something under the pads, and the executor's success. Prints one
line per stopped grasp and, as the last line, one JSON object of counts.
"""

import argparse
from collections import Counter
import json
import math

import numpy as np
from probe_scenes import body_under, NUM_ROTATIONS, probe_scenes  # tools/ on the path
from vpg_evaluation.oracle import surface_heights
from vpg_executor.motion import MotionError
from vpg_executor.safety import TargetRejected
from vpg_policy import grasp_clearance
from vpg_policy.decision import ActionMask


def exact_blocked(cell, grid, row, col, angle, surface):
    """Whether the exact scene has something under a pad (same rule as the mask, no margin)."""
    kernel = grasp_clearance.pad_kernel(angle, grid.resolution)
    reach = kernel.shape[0] // 2
    rows, cols = np.nonzero(kernel)
    rows, cols = rows + row - reach, cols + col - reach
    under = surface_heights(cell, grid, rows, cols)
    return bool(under.max() > grasp_clearance.pad_bottom(surface))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0].strip())
    parser.add_argument('--scenes', type=int, default=10)
    parser.add_argument('--grasps', type=int, default=20, help='grasps per scene')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--randomize', action='store_true',
                        help="draw each scene's physics, camera pose and depth scale")
    args = parser.parse_args(argv)
    counts = Counter()
    along_hits = []
    for probe in probe_scenes(ActionMask(grasp_clearance=True), args.scenes, args.grasps,
                              args.seed, args.randomize):
        k, robot, cell = probe.index, probe.robot, probe.robot.cell
        grid, maps, heightmap = probe.heightmap.grid, probe.maps, probe.heightmap
        for rotation, row, col in probe.picks:
            probe.restore()
            angle = rotation * 2 * math.pi / NUM_ROTATIONS
            surface = float(maps.height[row, col])
            position = grid.pixel_to_point(row, col, surface)
            target = body_under(cell, position)
            exact = exact_blocked(cell, grid, row, col, angle, surface)
            try:
                success = bool(robot.robot.grasp(tuple(position), angle,
                                                 heightmap=heightmap).success)
            except (MotionError, TargetRejected) as error:
                counts['motion_error'] += 1
                print(f'scene {k} grasp ({row}, {col}, r{rotation}): {error}')
                continue
            stopped = cell.tool_contact_stop is not None
            counts['grasps'] += 1
            counts['success'] += success
            counts['exact_blocked'] += exact
            if not stopped:
                counts['reached'] += 1
                counts['reached_success'] += success
                continue
            counts['stopped'] += 1
            counts['stopped_success'] += success
            counts['stopped_exact_blocked'] += exact
            on_target = False
            parts = []
            pinch_z = grid.z_min + max(surface - grasp_clearance.GRASP_DEPTH,
                                       grasp_clearance.GRASP_FLOOR)
            for geom, body, point in cell.tool_contact_points:
                d = point[:2] - position[:2]
                along = d[0] * math.cos(angle) + d[1] * math.sin(angle)
                across = -d[0] * math.sin(angle) + d[1] * math.cos(angle)
                on_target |= body == target
                along_hits.append(abs(along))
                parts.append(f'{geom} on {body}{" (target)" if body == target else ""} at '
                             f'along {along * 1000:+.0f} across {across * 1000:+.0f} '
                             f'z {(point[2] - pinch_z) * 1000:+.0f} mm')
            counts['stopped_on_target'] += on_target
            counts['stopped_on_neighbour'] += not on_target
            tcp = cell.tool_contact_stop
            print(f'scene {k} grasp ({row:3d}, {col:3d}, r{rotation:2d}) on {target}: stopped at '
                  f't={tcp[0]:.2f}; exact scene blocks a pad: {exact}; success {success}; '
                  + '; '.join(sorted(set(parts))), flush=True)
    result = {'tool': 'grasp_room_probe', 'scenes': args.scenes, 'seed': args.seed,
              'randomize': args.randomize, **dict(counts)}
    if along_hits:
        result['touch_along_mm_quartiles'] = [round(float(q) * 1000, 1) for q in
                                              np.percentile(along_hits, [25, 50, 75])]
    print(json.dumps(result))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
