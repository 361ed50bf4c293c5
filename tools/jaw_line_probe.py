"""
Random allowed grasps run in the cell: which hold, by shape and by the object the jaw line crosses.

    python tools/jaw_line_probe.py [--scenes 20] [--grasps 15] [--seed 0] [--inset 0.006]

For random 10-block scenes (VPG's drops, each scene's physics, camera pose and depth scale drawn
as in training; the heightmap built through the D415 depth model with the nominal calibration,
as the heightmap node does), grasps are drawn at random among the pixels and rotations the
training recipe's mask allows (pad clearance and the grasp inset), as an exploratory
`random_action` draw does, and each is run from the same saved state with the executor's own
grasp primitive (vpg_evaluation.cell_backend.CellRobot). Per grasp: the shape under the pixel
(ray straight down), how much object the jaw line crosses in the heightmap
(vpg_training.grasp_centres.jaw_extent), the angle between the jaw and the short side of the
object's footprint in the heightmap (cv2.minAreaRect of its connected object cells), how far
inside the edge it is centred, and whether it held. One JSON line per grasp, then a table, then
one JSON object of counts as the last line.

What it is for: the training runs' greedy grasps hold about 9 in 10 where the jaw line crosses
50-80 mm of object and about half where it crosses 30-50 mm; this says, independently of any
learned Q, on which shapes and at which jaw angles the cell's grasps fail.
"""

import argparse
from collections import Counter
import json
import math

import cv2
import numpy as np
from probe_scenes import body_under, NUM_ROTATIONS, probe_scenes  # tools/ on the path
from vpg_executor.motion import MotionError
from vpg_executor.safety import TargetRejected
from vpg_policy.decision import ActionMask
from vpg_policy.rotations import rotation_angle
from vpg_training.grasp_centres import edge_distance, jaw_bin, JAW_BINS, jaw_extent, object_cells

ANGLE_BINS = ('< 20 deg', '20-45 deg', '>= 45 deg')


def footprint_angle(objects, row, col, jaw_angle):
    """
    Degrees (0-90) between the jaw axis and the short side of the footprint under (row, col).

    The footprint: the 8-connected object cells containing the pixel, as cv2.minAreaRect sees
    them; None off objects. For a near-square footprint the short side is arbitrary.
    """
    if not objects[row, col]:
        return None
    _, labels = cv2.connectedComponents(objects.astype(np.uint8), connectivity=8)
    rows, cols = np.nonzero(labels == labels[row, col])
    (_, _), (w, h), theta = cv2.minAreaRect(np.column_stack([cols, rows]).astype(np.float32))
    # minAreaRect: side w lies along theta (degrees, image x towards y); short side's direction
    short = math.radians(theta) if w <= h else math.radians(theta + 90.0)
    diff = abs(math.degrees(jaw_angle - short)) % 180.0
    return min(diff, 180.0 - diff)


def angle_bin(degrees):
    """Return the ANGLE_BINS entry of a footprint_angle (None: off objects)."""
    if degrees is None:
        return 'off'
    return ANGLE_BINS[0] if degrees < 20 else ANGLE_BINS[1] if degrees < 45 else ANGLE_BINS[2]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0].strip())
    parser.add_argument('--scenes', type=int, default=20)
    parser.add_argument('--grasps', type=int, default=15, help='grasps per scene')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--inset', type=float, default=0.006,
                        help='action_mask_grasp_inset (m) of the mask the grasps are drawn from')
    args = parser.parse_args(argv)
    mask = ActionMask(grasp_clearance=True, grasp_inset=args.inset)
    counts = Counter()
    for probe in probe_scenes(mask, args.scenes, args.grasps, args.seed, randomize=True):
        k, robot, cell, objects = probe.index, probe.robot, probe.robot.cell, probe.objects
        grid, maps, heightmap = probe.heightmap.grid, probe.maps, probe.heightmap
        filled = object_cells(maps.height, grid.resolution)
        for rotation, row, col in probe.picks:
            probe.restore()
            angle = rotation_angle(int(rotation), NUM_ROTATIONS)
            surface = float(maps.height[row, col])
            position = grid.pixel_to_point(row, col, surface)
            target = body_under(cell, position)
            shape = (objects[int(target[len('block'):])].shape
                     if target and target.startswith('block') else target)
            extent = jaw_extent(maps.height, row, col, angle, grid.resolution)
            edge = edge_distance(maps.height, row, col, grid.resolution)
            tilt = footprint_angle(filled, row, col, angle)
            try:
                success = bool(robot.robot.grasp(tuple(position), angle,
                                                 heightmap=heightmap).success)
            except (MotionError, TargetRejected) as error:
                counts['motion_error'] += 1
                print(json.dumps({'scene': k, 'error': str(error)}))
                continue
            record = {'scene': k, 'row': int(row), 'col': int(col), 'rotation': int(rotation),
                      'shape': shape, 'jaw_mm': None if extent is None else round(extent * 1e3, 1),
                      'edge_mm': None if edge is None else round(edge * 1e3, 1),
                      'jaw_to_short_side_deg': None if tilt is None else round(tilt, 1),
                      'stopped': cell.tool_contact_stop is not None, 'success': success}
            print(json.dumps(record), flush=True)
            for key in (('all',), ('jaw', jaw_bin(extent)), ('shape', shape),
                        ('shape_jaw', shape, jaw_bin(extent)),
                        ('jaw_angle', jaw_bin(extent), angle_bin(tilt))):
                counts[key + ('grasps',)] += 1
                counts[key + ('held',)] += success
    rows = sorted({key[:-1] for key in counts if isinstance(key, tuple)}, key=str)
    print(f'{"group":<48} {"held":>5} {"grasps":>6} {"rate":>6}')
    for key in rows:
        n, held = counts[key + ('grasps',)], counts[key + ('held',)]
        print(f'{" / ".join(map(str, key)):<48} {held:>5} {n:>6} {100 * held / n:>5.0f}%')
    result = {'tool': 'jaw_line_probe', 'scenes': args.scenes, 'seed': args.seed,
              'inset': args.inset, 'jaw_bins': list(JAW_BINS),
              'motion_errors': counts['motion_error'],
              'groups': {' / '.join(map(str, key)): [counts[key + ('held',)],
                                                     counts[key + ('grasps',)]]
                         for key in rows}}
    print(json.dumps(result))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
