"""
Where a training run's grasps put the open fingertips, and what came of it.

A grasp descends until its pinch point is `grasp_depth` below the surface at the target (the
heightmap at the chosen pixel), unless the robot controller's tool contact stop ends the
descent first: a fingertip landed on something. For every grasp of a run folder (the actions
and heightmaps in replay.sqlite, the cell's stop lines in nodes.log) this tells

* path: 'blocked' when the heightmap the grasp was chosen from shows something higher than the
  open fingertips' lowest point (plus `margin`, for depth noise) under either pad, else 'free';
* descent: 'stopped' when the cell logged a tool contact stop during the action, else
  'reached';

and counts grasps and successes per class over consecutive blocks of actions. It answers
whether failed grasps fail because a finger lands on a neighbour, and whether the heightmap
(the policy's only input) shows that beforehand.

Pad geometry of the MuJoCo Menagerie 2F-85 with the fingers open, in the pinch point's frame:
the pads span 42.7-50.7 mm from the pinch point along the jaw axis, 22 mm across, and reach
4.4 mm below it.

    python -m vpg_training.grasp_landing RUN_DIR [--blocks 3] [--json OUT]

Runs with one cell only (the stop lines are attributed to the next executor step).
"""

import argparse
from collections import Counter
from dataclasses import dataclass
import json
from pathlib import Path
import re
import sys

import numpy as np

PAD_INNER = 0.0427
"""m from the pinch point to the open pads' inner faces, along the jaw axis."""
PAD_OUTER = 0.0507
"""m from the pinch point to the pads' outer faces."""
PAD_HALF_WIDTH = 0.011
"""m, half the pads' extent across the jaw axis."""
PAD_DIP = 0.0044
"""m the open pads reach below the pinch point."""
GRASP_DEPTH = 0.03
"""m below the target's surface the pinch point is sent (PrimitiveConfig.grasp_depth)."""

_STEP = re.compile(r'^\[(\w+/)?executor\] .*\]: step \d+: (grasp|push) reward ([-\d.]+)')
_STOP = re.compile(r'^\[(\w+/)?sim\] .*tool contact: arm stopped')


@dataclass(frozen=True)
class LoggedStep:
    """One executor step as nodes.log tells it."""

    primitive: str
    reward: float
    stopped: bool
    """The cell logged a tool contact stop between the previous step and this one."""


def read_steps(lines):
    """Executor steps with their tool contact stops, in order; ValueError for several cells."""
    steps, stops, cells = [], 0, set()
    for line in lines:
        if _STOP.search(line):
            stops += 1
            continue
        match = _STEP.search(line)
        if match:
            cells.add(match.group(1) or '')
            steps.append(LoggedStep(match.group(2), float(match.group(3)), stops > 0))
            stops = 0
    if len(cells) > 1:
        raise ValueError(f'the log holds {len(cells)} cells; one-cell runs only')
    return steps


def finger_path_blocked(height, row, col, angle, resolution, margin=0.005):
    """
    Whether either open pad would land on something before the pinch point reaches its depth.

    height: (H, W) heightmap in metres, row = y, col = x; (row, col): the grasp's pixel; angle:
    the jaw axis in radians from +x towards +y (vpg_policy.rotations).
    """
    height = np.asarray(height, dtype=float)
    tip_z = float(height[row, col]) - GRASP_DEPTH - PAD_DIP
    rows, cols = np.mgrid[0:height.shape[0], 0:height.shape[1]]
    dx, dy = (cols - col) * resolution, (rows - row) * resolution
    along = dx * np.cos(angle) + dy * np.sin(angle)
    across = -dx * np.sin(angle) + dy * np.cos(angle)
    under_pads = ((np.abs(along) >= PAD_INNER) & (np.abs(along) <= PAD_OUTER)
                  & (np.abs(across) <= PAD_HALF_WIDTH))
    return bool(under_pads.any() and height[under_pads].max() > tip_z + margin)


def classify(records, steps, blocks=3):
    """
    Count grasps per (block, path, descent, success) from replay records and logged steps.

    records and steps: one per action, in the order they were taken (their primitives must
    match). Returns a Counter keyed by (block index, 'blocked'|'free', 'stopped'|'reached',
    succeeded).
    """
    if len(records) != len(steps):
        raise ValueError(f'{len(records)} stored transitions but {len(steps)} logged steps')
    counts = Counter()
    for k, (record, step) in enumerate(zip(records, steps)):
        kind = 'grasp' if record.primitive == 1 else 'push'
        if kind != step.primitive:
            raise ValueError(f'action {k}: stored {kind}, logged {step.primitive}')
        if kind != 'grasp':
            continue
        angle = record.rotation_index * 2 * np.pi / record.num_rotations
        blocked = finger_path_blocked(record.height_before, record.row, record.col, angle,
                                      float(record.grid['resolution']))
        counts[(blocks * k // len(records), 'blocked' if blocked else 'free',
                'stopped' if step.stopped else 'reached', bool(record.grasp_success))] += 1
    return counts


def table(counts, blocks, actions):
    """Rows of (block, path, descent, grasps, successes) for printing and JSON."""
    rows = []
    for block in range(blocks):
        for path in ('blocked', 'free'):
            for descent in ('stopped', 'reached'):
                ok = counts[(block, path, descent, True)]
                grasps = ok + counts[(block, path, descent, False)]
                rows.append({'actions': [block * actions // blocks + 1,
                                         (block + 1) * actions // blocks],
                             'path': path, 'descent': descent, 'grasps': grasps,
                             'successes': ok})
    return rows


def load_records(replay_path):
    """Every stored transition of a replay store, in the order they were taken."""
    from vpg_trainer.replay import ReplayStore
    store = ReplayStore(str(replay_path))
    try:
        ids, _ = store.ids_and_priorities()
        records = []
        for start in range(0, len(ids), 200):
            records.extend(store.get(ids[start:start + 200]))
        return records
    finally:
        store.close()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('run_dir', help='a training run folder (replay.sqlite, nodes.log)')
    parser.add_argument('--blocks', type=int, default=3, help='consecutive blocks of actions')
    parser.add_argument('--json', default=None, help='also write the table here')
    args = parser.parse_args(argv)
    run = Path(args.run_dir)
    with open(run / 'nodes.log', errors='replace') as stream:
        steps = read_steps(stream)
    records = load_records(run / 'replay.sqlite')
    try:
        counts = classify(records, steps, args.blocks)
    except ValueError as error:
        print(f'grasp_landing: {error}', file=sys.stderr)
        return 1
    rows = table(counts, args.blocks, len(records))
    for row in rows:
        first, last = row['actions']
        print(f"actions {first:5d}-{last:5d}  path {row['path']:7s}  {row['descent']:7s}  "
              f"{row['grasps']:4d} grasps  {row['successes']:4d} succeeded")
    if args.json:
        Path(args.json).write_text(json.dumps({'run': str(run), 'rows': rows}, indent=1) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
