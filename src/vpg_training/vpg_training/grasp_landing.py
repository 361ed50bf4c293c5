"""
Where a training run's grasps put the open fingertips, and what came of it.

A grasp descends until its pinch point is `grasp_depth` below the surface at the target (the
heightmap at the chosen pixel; no lower than the executor's floor above the table), unless the
robot controller's tool contact stop ends the descent first: a fingertip landed on something.
For every grasp of a run folder (the actions and heightmaps in replay.sqlite, the cell's stop
lines in nodes.log) this tells

* path: 'blocked' when the heightmap the grasp was chosen from shows something higher than the
  open fingertips' lowest point (plus `margin`, for depth noise) under either pad, else 'free';
* descent: 'stopped' when the cell logged a tool contact stop during the action, else
  'reached';

and counts grasps and successes per class over consecutive blocks of actions. It answers
whether failed grasps fail because a finger lands on a neighbour, and whether the heightmap
(the policy's only input) shows that beforehand.

The pads' geometry and the test are vpg_policy.grasp_clearance's (the policy's clearance mask
uses the same).

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
from vpg_policy.grasp_clearance import blocked as pad_blocked

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
        blocked = pad_blocked(record.height_before, record.row, record.col, angle,
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
