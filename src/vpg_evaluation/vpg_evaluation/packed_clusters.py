"""
Seeded packed clusters of blocks for training scenes, never equal to an evaluation case.

A scene is one or two clusters; a cluster is 2-3 flush rows of 2-4 blocks (1 mm apart, laid out
with case_layouts' row helpers), each block a random resting pose of VPG's shapes, the cluster
turned at random and placed wholly inside the workspace, apart from the other cluster. Such
scenes hold blocks that need a push before a grasp, as the challenging cases do, so a policy
can learn to push; the evaluation's own cases must never be among them:

* the random stream is keyed by a tag as well as the seed (`numpy.random.default_rng((TAG,
  seed))`), so it shares nothing with the random drops of vpg_sim (`random_objects(n, seed)`)
  or the evaluation's seeds;
* every scene is compared with the bundled challenging cases (`equals_case`: the same blocks
  at the same poses, up to a turn and shift of the whole scene); one that matches is drawn
  again, and a test checks the first 300 seeds.

Use: `objects = packed_scene(seed)` gives vpg_sim ObjectSpecs for `Cell.reset(objects)`, or
`python -m vpg_evaluation.packed_clusters --seed 7 --out scene.txt` writes a case file that
the sim node loads (`test_case_file`, or `/sim/reset_scene` with `test_case_file`) for an
episode.
"""

import argparse
import math
from pathlib import Path

import numpy as np
from vpg_evaluation import case_layouts as layouts
from vpg_evaluation.harness import bundled_cases
from vpg_sim import blocks

TAG = 0x7AC1  # stream tag: packed-cluster scenes only
RESTS = ('cube', 'cube', 'cube', 'long_cuboid_lying', 'long_cuboid_standing',
         'cylinder_standing', 'triangular_prism', 'square_slab', 'arch', 'half_cylinder')
"""Resting poses drawn for each block (cubes thrice as often: VPG's most common shape)."""
MAX_OBJECTS = 10
MARGIN = 0.01
"""m kept free between a block and the workspace edge, and between two clusters."""
_PLACEMENT_TRIES = 200


def _footprint(block, turn):
    """Convex footprint points (K, 2) of a block placed in a cluster turned by `turn`."""
    rotation = block.rotation(turn)
    points = layouts.shape_points(block.shape) @ rotation.T
    c, s = math.cos(turn), math.sin(turn)
    u, v = block.u, block.v
    return points[:, :2] + np.array([c * u - s * v, s * u + c * v])


def _cluster(rng, max_blocks):
    rows = int(rng.integers(2, 4))
    cols = int(rng.integers(2, 5))
    while rows * cols > max_blocks and cols > 2:
        cols -= 1
    while rows * cols > max_blocks and rows > 1:
        rows -= 1
    rests = [[RESTS[int(rng.integers(len(RESTS)))] for _ in range(cols)] for _ in range(rows)]
    return tuple(layouts.rows(*rests))


def _place(rng, cluster_blocks, taken):
    """Place the blocks at a random turn and spot inside the workspace: a Cluster, or None."""
    x_lo, x_hi = layouts.WORKSPACE_X
    y_lo, y_hi = layouts.WORKSPACE_Y
    for _ in range(_PLACEMENT_TRIES):
        turn = float(rng.uniform(-math.pi, math.pi))
        points = np.vstack([_footprint(b, turn) for b in cluster_blocks])
        low, high = points.min(axis=0), points.max(axis=0)
        span_x = (x_lo + MARGIN - low[0], x_hi - MARGIN - high[0])
        span_y = (y_lo + MARGIN - low[1], y_hi - MARGIN - high[1])
        if span_x[0] > span_x[1] or span_y[0] > span_y[1]:
            continue
        x = float(rng.uniform(*span_x))
        y = float(rng.uniform(*span_y))
        box = (low + (x, y) - MARGIN, high + (x, y) + MARGIN)
        if any(np.all(box[0] < other[1]) and np.all(other[0] < box[1]) for other in taken):
            continue
        taken.append(box)
        return layouts.Cluster(cluster_blocks, x, y, turn)
    return None


def _draw(rng, max_objects):
    clusters, taken, count = [], [], 0
    for index in range(int(rng.integers(1, 3))):
        room = max_objects - count
        if room < 4:
            break
        cluster = _place(rng, _cluster(rng, room), taken)
        if cluster is None:
            continue
        clusters.append(cluster)
        count += len(cluster.blocks)
    return layouts.case_objects(layouts.Case('packed', '', tuple(clusters)))


def equals_case(objects, case_objects, tolerance=0.003):
    """
    Whether two scenes hold the same blocks at the same poses, up to moving the whole scene.

    The scenes are aligned on their first blocks of the rarest shape at each of its poses
    (turn about z and shift); equal when every block then has a partner of the same shape
    within `tolerance` (m) of its centre and about as turned (by the cosine of its axes).
    """
    if len(objects) != len(case_objects):
        return False
    shapes = sorted(obj.shape for obj in objects)
    if shapes != sorted(obj.shape for obj in case_objects):
        return False
    rare = min(set(shapes), key=shapes.count)
    anchors = [obj for obj in objects if obj.shape == rare]
    first = next(obj for obj in case_objects if obj.shape == rare)
    target = [(o.shape, np.asarray(o.position), layouts._quat_matrix(o.quat))
              for o in case_objects]
    first_r = layouts._quat_matrix(first.quat)
    for anchor in anchors:
        anchor_r = layouts._quat_matrix(anchor.quat)
        # Turn about z taking the anchor onto the case's first block of that shape.
        relative = first_r @ anchor_r.T
        yaw = math.atan2(relative[1, 0], relative[0, 0])
        turn = layouts._rot_z(yaw)
        shift = np.asarray(first.position) - turn @ np.asarray(anchor.position)
        if _all_matched(objects, target, turn, shift, tolerance):
            return True
    return False


def _all_matched(objects, target, turn, shift, tolerance):
    free = list(range(len(target)))
    for obj in objects:
        position = turn @ np.asarray(obj.position) + shift
        rotation = turn @ layouts._quat_matrix(obj.quat)
        match = None
        for k in free:
            shape, other_position, other_rotation = target[k]
            if (shape == obj.shape and np.linalg.norm(position - other_position) <= tolerance
                    and _same_orientation(obj.shape, rotation, other_rotation, tolerance)):
                match = k
                break
        if match is None:
            return False
        free.remove(match)
    return True


def _same_orientation(shape, a, b, tolerance=0.003):
    """Whether rotations a and b put a block's hull in the same place (any symmetry counts)."""
    points = layouts.shape_points(shape)
    placed_a, placed_b = points @ a.T, points @ b.T
    distances = np.linalg.norm(placed_a[:, None] - placed_b[None], axis=2)
    return bool(distances.min(axis=1).max() <= tolerance)


def evaluation_cases():
    """Load the bundled challenging cases (a list of ObjectSpec lists)."""
    return [blocks.load_test_case(path) for path in bundled_cases()]


def packed_scene(seed, max_objects=MAX_OBJECTS, forbidden=None):
    """
    Objects (vpg_sim ObjectSpec list) of the packed-cluster scene for `seed` (int >= 0).

    forbidden: scenes it must not equal (default: the bundled evaluation cases); a draw that
    equals one is replaced by the next draw of the same stream.
    """
    if seed < 0:
        raise ValueError(f'seed must be >= 0, got {seed}')
    if max_objects < 4:
        raise ValueError(f'max_objects must be >= 4, got {max_objects}')
    forbidden = evaluation_cases() if forbidden is None else forbidden
    rng = np.random.default_rng((TAG, int(seed)))
    while True:
        objects = _draw(rng, max_objects)
        if objects and not any(equals_case(objects, case) for case in forbidden):
            return objects


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--seed', type=int, required=True, help='scene seed (>= 0)')
    parser.add_argument('--out', required=True, help='case file to write (project format)')
    parser.add_argument('--max-objects', type=int, default=MAX_OBJECTS)
    args = parser.parse_args(argv)
    objects = packed_scene(args.seed, args.max_objects)
    Path(args.out).write_text(blocks.format_test_case(objects), encoding='utf-8')
    print(f'{args.out}: {len(objects)} blocks (packed clusters, seed {args.seed})')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
