"""
Where a training run's grasps were centred on their objects, and how often each kind held.

A grasp centred near an object's edge closes its pads half off the object; one centred on the
table beside it closes on nothing. For every grasp in a run's replay store this finds how far
inside the nearest object edge its pixel lay, in the heightmap it was chosen from (cells higher
than `min_height` are objects, the action mask's rule; distance from the cell's centre to the
edge between it and the nearest non-object cell; enclosed depth dropouts count as object, as
for the grasp inset), and counts grasps and successes per block of
actions, per greedy or exploratory choice and per distance bin:

    table      the pixel is not an object cell
    <6 mm      within 6 mm of the edge
    6-12 mm
    >=12 mm

With `--by jaw` the bins are instead how much object the jaw line crosses: the run of object
cells through the grasp pixel along the jaw axis (`jaw_extent`; < 30 / 30-50 / 50-80 / >= 80
mm). The blocks are 45-50 mm across their narrow side and up to 100 mm long, and the open
2F-85 spans 85 mm: jaws across a block's width cross 50-80 mm of it, jaws on a slanted or round
side (where the cells above `min_height` narrow) less.

    python -m vpg_training.grasp_centres RUN_DIR [--blocks 3] [--by centre|jaw] [--json OUT]

Reads replay.sqlite only, so it also serves resumed and multi-cell runs.
"""

import argparse
from collections import Counter
import json
from pathlib import Path
import sys

import cv2
import numpy as np
from vpg_policy.decision import dropout_cells, fill_dropouts
from vpg_policy.rotations import rotation_angle

BINS = ('table', '<6 mm', '6-12 mm', '>=12 mm')
MIN_HEIGHT = 0.01
"""m; cells higher than this are objects (the action mask's default)."""


def object_cells(height, resolution, min_height=MIN_HEIGHT):
    """(H, W) bool: cells above min_height, enclosed depth dropouts filled (as the inset)."""
    return fill_dropouts(np.asarray(height) > min_height, dropout_cells(resolution))


def edge_distance(height, row, col, resolution, min_height=MIN_HEIGHT):
    """
    Metres from the centre of cell (row, col) to the nearest object edge; None off objects.

    Depth dropouts enclosed by an object (vpg_policy.decision.fill_dropouts, as the grasp
    inset reads them) are object, not edges.
    """
    objects = object_cells(height, resolution, min_height).astype(np.uint8)
    if not objects[row, col]:
        return None
    distance = cv2.distanceTransform(objects, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return (float(distance[row, col]) - 0.5) * resolution


def distance_bin(distance):
    """Return the BINS entry of an edge_distance."""
    if distance is None:
        return BINS[0]
    if distance < 0.006:
        return BINS[1]
    return BINS[2] if distance < 0.012 else BINS[3]


JAW_BINS = ('table', '<30 mm', '30-50 mm', '50-80 mm', '>=80 mm')


def jaw_extent(height, row, col, angle, resolution, min_height=MIN_HEIGHT):
    """
    Metres of object the jaw line crosses at (row, col); None off objects.

    The run of object cells (enclosed dropouts filled) through the cell along the jaw axis at
    `angle` (vpg_policy.grasp_clearance's convention: 0 along +col, pi/2 along +row), stepping
    one cell at a time each way until the first non-object cell or the map's edge.
    """
    objects = object_cells(height, resolution, min_height)
    if not objects[row, col]:
        return None
    d_col, d_row = np.cos(angle), np.sin(angle)
    cells = 1
    for sign in (1, -1):
        step = 1
        while True:
            r = int(round(row + sign * step * d_row))
            c = int(round(col + sign * step * d_col))
            if not (0 <= r < objects.shape[0] and 0 <= c < objects.shape[1]) or not objects[r, c]:
                break
            step += 1
        cells += step - 1
    return cells * resolution


def jaw_bin(extent):
    """Return the JAW_BINS entry of a jaw_extent."""
    if extent is None:
        return JAW_BINS[0]
    for limit, name in ((0.030, JAW_BINS[1]), (0.050, JAW_BINS[2]), (0.080, JAW_BINS[3])):
        if extent < limit:
            return name
    return JAW_BINS[4]


def _resolution(record):
    return float(record.grid.get('resolution', 0.002)) if record.grid else 0.002


def centre_of(record):
    """Return the BINS entry of a grasp record: how far inside its object's edge it was."""
    return distance_bin(edge_distance(record.height_before, record.row, record.col,
                                      _resolution(record)))


def jaw_of(record):
    """Return the JAW_BINS entry of a grasp record: how much object its jaw line crossed."""
    angle = rotation_angle(record.rotation_index, record.num_rotations)
    return jaw_bin(jaw_extent(record.height_before, record.row, record.col, angle,
                              _resolution(record)))


def classify(records, blocks=3, measure=centre_of):
    """Counter keyed by (block, 'greedy'|'exploratory', measure's bin, succeeded), grasps only."""
    counts = Counter()
    for k, record in enumerate(records):
        if record.primitive != 1:
            continue
        where = measure(record)
        choice = 'exploratory' if record.exploratory else 'greedy'
        counts[(blocks * k // len(records), choice, where, bool(record.grasp_success))] += 1
    return counts


def table(counts, blocks, actions, bins=BINS, key='centre'):
    """Rows of {actions, choice, key: bin, grasps, successes} for printing and JSON."""
    rows = []
    for block in range(blocks):
        for choice in ('greedy', 'exploratory'):
            for where in bins:
                ok = counts[(block, choice, where, True)]
                rows.append({'actions': [block * actions // blocks + 1,
                                         (block + 1) * actions // blocks],
                             'choice': choice, key: where,
                             'grasps': ok + counts[(block, choice, where, False)],
                             'successes': ok})
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('run_dir', help='a training run folder (replay.sqlite)')
    parser.add_argument('--blocks', type=int, default=3, help='consecutive blocks of actions')
    parser.add_argument('--by', choices=('centre', 'jaw'), default='centre',
                        help='bin by distance inside the edge (centre) or object under the '
                             'jaw line (jaw)')
    parser.add_argument('--json', default=None, help='also write the table here')
    args = parser.parse_args(argv)
    from vpg_training.grasp_landing import load_records
    run = Path(args.run_dir)
    if not (run / 'replay.sqlite').is_file():
        print(f'grasp_centres: no replay store at {run / "replay.sqlite"}', file=sys.stderr)
        return 1
    records = load_records(run / 'replay.sqlite')
    if not records:
        print(f'grasp_centres: no transitions in {run}', file=sys.stderr)
        return 1
    measure, bins = (centre_of, BINS) if args.by == 'centre' else (jaw_of, JAW_BINS)
    rows = table(classify(records, args.blocks, measure), args.blocks, len(records), bins,
                 args.by)
    for row in rows:
        first, last = row['actions']
        rate = f"{row['successes'] / row['grasps']:6.1%}" if row['grasps'] else '     -'
        print(f"actions {first:5d}-{last:5d}  {row['choice']:11s}  {args.by} {row[args.by]:8s}  "
              f"{row['grasps']:4d} grasps  {row['successes']:4d} succeeded  {rate}")
    if args.json:
        Path(args.json).write_text(json.dumps({'run': str(run), 'rows': rows}, indent=1) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
