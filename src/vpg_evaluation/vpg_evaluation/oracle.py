"""
Graspability oracle: whether any first grasp succeeds in a scene, and whether a push helps.

MuJoCo continues exactly from a copied state, so the cell can try every candidate action from
the same scene. For a test case the oracle places the blocks, lets them settle, sends the arm
home and saves the state (`Cell.save_state`). Then, each time from that state:

* **first grasps**: every grasp the policy could choose on a grid of object pixels
  (heightmap cells higher than 1 cm, the action mask's rule; heights ray-cast straight down
  from the true scene, at the cell centres) × 16 rotations, each run with the executor's own
  grasp primitive (`cell_backend.CellRobot`: PrimitiveExecutor on the joint-trajectory
  backend); success is the executor's (fingers neither open nor closed after the lift). A
  parallel-jaw grasp at rotation i and i + 8 is the same motion (the wrist turns the jaw
  modulo 180°), so each pair is run once and counted twice.
* **push, then grasp**: pushes with the executor's push primitive from table cells within
  3 cm of an object (the push mask's margin) on a grid × 16 directions, those aimed at the
  nearest object first; after a push that moved a block by more than 5 mm relative to the
  others (a push sliding a whole cluster separates nothing), grasps at the cell under the
  centre of each such block (largest first, at most 3) × the 8 distinct rotations.
  The search stops at the first push after which a grasp succeeds, so `push_then_grasp` false
  means none was found within the search limits, not that none exists.

`python -m vpg_evaluation.oracle CASE... [--out FILE]` takes case files in our format or VPG's
(vpg_sim.blocks.load_test_case reads both), prints a progress line per case and writes
`{"cases": {NAME: {"candidates", "first_grasp_success", "push_then_grasp", ...}}}`.
"""

import argparse
from concurrent.futures import as_completed, ProcessPoolExecutor
import dataclasses
from dataclasses import asdict, dataclass, field
import json
import math
import multiprocessing
from pathlib import Path
import time
from types import SimpleNamespace

import mujoco
import numpy as np
from vpg_evaluation.cell_backend import CellRobot
from vpg_executor.motion import MotionError
from vpg_executor.safety import TargetRejected
from vpg_perception.grid import HeightmapGrid
from vpg_sim import blocks

NUM_ROTATIONS = 16


@dataclass(frozen=True)
class OracleConfig:
    """Search grid and limits; pixel counts are heightmap cells of `grid.resolution`."""

    grasp_step_px: int = 15
    """Grasp candidates on every grasp_step_px-th cell in x and y (15 = 30 mm)."""
    push_step_px: int = 15
    """Push starts on every push_step_px-th cell (15 = 30 mm)."""
    min_object_height: float = 0.01
    """m; cells higher than this are objects (the policy's action mask)."""
    push_margin: float = 0.03
    """m; a push may start on a table cell at most this far from an object (the push mask)."""
    moved_threshold: float = 0.005
    """m; a push that moves no block farther than this relative to the others (see
    `separation`) is not followed by grasps."""
    max_pushes: int = 120
    """Pushes tried at most per case before push_then_grasp is given up as not found."""
    max_blocks_per_push: int = 3
    """Moved blocks (largest move first) grasped at after a push."""
    stop_above: float = 1.0
    """Stop the first-grasp pass once more than this fraction of candidates succeeded
    (the fraction is then a lower bound, `first_grasp_complete` false); 1 = never."""
    grid: HeightmapGrid = field(default_factory=HeightmapGrid)


@dataclass
class CaseResult:
    """What the oracle found for one scene."""

    blocks: int
    candidates: int
    """Grasp candidates: object cells on the grid × 16 rotations."""
    first_grasp_successes: int
    first_grasp_success: float
    first_grasp_complete: bool
    push_then_grasp: bool
    push: dict = None
    """The push that made a grasp succeed: row, col, rotation, angle, position, and the grasp."""
    push_searched: bool = False
    """Whether the push search ran (not with pushes off, nor after a pass ended by stop_above)."""
    pushes_tried: int = 0
    seconds: float = 0.0


def surface_heights(cell, grid, rows, cols):
    """
    Height (m above the table) of the scene at the centres of cells (rows, cols).

    Rays straight down from 0.5 m through the table and the blocks only (geom groups 0 and 1).
    """
    points = grid.pixel_to_point(rows, cols)
    groups = np.array([1, 1, 0, 0, 0, 0], dtype=np.uint8)
    down = np.array([0.0, 0.0, -1.0])
    geom = np.zeros(1, dtype=np.int32)
    heights = np.zeros(len(points))
    for k, (x, y, _) in enumerate(points):
        distance = mujoco.mj_ray(cell.model, cell.data, np.array([x, y, 0.5]), down, groups,
                                 True, -1, geom)
        heights[k] = max(0.0, 0.5 - distance) if distance >= 0 else 0.0
    return heights


def scene_heightmap(cell, grid, stride=2):
    """
    Ray-cast the scene's heightmap as the executor's primitives use it (.height, .grid).

    The executor descends fast through the space its heightmap shows free (primitives.
    highest_point_near); the oracle hands the primitives the true scene's map, on every
    stride-th cell (4 mm: the 7 cm footprint's highest point is what matters).
    """
    coarse = dataclasses.replace(grid, resolution=grid.resolution * stride)
    rows, cols = np.indices(coarse.shape)
    heights = surface_heights(cell, coarse, rows.ravel(), cols.ravel())
    return SimpleNamespace(height=heights.reshape(coarse.shape), grid=coarse)


def separation(before, after):
    """
    How far (m) each block moved relative to the others: |d_i - median d| over blocks (N,).

    A push that slides a whole cluster moves every block alike and separates none; a block
    that left the scene counts as not moved.
    """
    shift = np.asarray(after, dtype=float)[:, :2] - np.asarray(before, dtype=float)[:, :2]
    present = ~np.isnan(shift[:, 0])
    if not present.any():
        return np.zeros(len(shift))
    common = np.median(shift[present], axis=0)
    return np.where(present, np.linalg.norm(np.nan_to_num(shift) - common, axis=1), 0.0)


def grid_cells(grid, step):
    """Rows and columns (flat arrays) of every step-th cell, the grid centred in the map."""
    n_rows, n_cols = grid.shape
    rows = np.arange((n_rows - 1) % step // 2, n_rows, step)
    cols = np.arange((n_cols - 1) % step // 2, n_cols, step)
    rr, cc = np.meshgrid(rows, cols, indexing='ij')
    return rr.ravel(), cc.ravel()


def grasp_candidates(cell, config):
    """Object cells on the grasp grid: (rows, cols, heights)."""
    rows, cols = grid_cells(config.grid, config.grasp_step_px)
    heights = surface_heights(cell, config.grid, rows, cols)
    keep = heights > config.min_object_height
    return rows[keep], cols[keep], heights[keep]


def push_candidates(cell, config, object_points):
    """
    Push starts and directions, most promising first: [(row, col, rotation index)].

    Starts are table cells of the push grid within push_margin of an object point (x, y);
    the directions of each start are ordered by their angle to the nearest object point.
    """
    rows, cols = grid_cells(config.grid, config.push_step_px)
    heights = surface_heights(cell, config.grid, rows, cols)
    points = config.grid.pixel_to_point(rows, cols)[:, :2]
    candidates = []
    if not len(object_points):
        return candidates
    for row, col, height, point in zip(rows, cols, heights, points):
        if height > config.min_object_height:
            continue
        offsets = object_points - point
        distances = np.linalg.norm(offsets, axis=1)
        nearest = int(np.argmin(distances))
        if distances[nearest] > config.push_margin:
            continue
        aim = math.atan2(offsets[nearest, 1], offsets[nearest, 0])
        for rotation in range(NUM_ROTATIONS):
            angle = rotation * 2 * math.pi / NUM_ROTATIONS
            off = abs((angle - aim + math.pi) % (2 * math.pi) - math.pi)
            candidates.append((off, float(distances[nearest]), int(row), int(col), rotation))
    candidates.sort()
    return [(row, col, rotation) for _, _, row, col, rotation in candidates]


class Oracle:
    """Runs the searches on a CellRobot; one instance may serve many cases."""

    def __init__(self, config=OracleConfig(), robot=None):
        self.config = config
        self.robot = robot or CellRobot()

    def _restore(self, state):
        self.robot.cell.restore_state(state)
        self.robot.sync()

    def _grasp(self, state, position, rotation, heightmap=None):
        """Run one grasp from state; True when the executor counts it a success."""
        self._restore(state)
        try:
            return bool(self.robot.robot.grasp(position, rotation * 2 * math.pi
                                               / NUM_ROTATIONS, heightmap=heightmap).success)
        except (MotionError, TargetRejected):
            return False

    def _point(self, row, col, height):
        return tuple(float(v) for v in self.config.grid.pixel_to_point(row, col, height))

    def first_grasps(self, state):
        """Try every first grasp from state: (candidates, successes, complete)."""
        self._restore(state)
        cell, config = self.robot.cell, self.config
        rows, cols, heights = grasp_candidates(cell, config)
        heightmap = scene_heightmap(cell, config.grid)
        centres = self.robot.block_positions()
        centres = centres[~np.isnan(centres[:, 0]), :2]
        points = config.grid.pixel_to_point(rows, cols)[:, :2]
        if len(centres):
            # Near a block centre first: with stop_above, a clearly graspable scene ends early.
            order = np.argsort(np.min(np.linalg.norm(points[:, None] - centres[None], axis=2),
                                      axis=1), kind='stable')
        else:
            order = np.arange(len(rows))
        candidates = len(rows) * NUM_ROTATIONS
        successes = 0
        for index in order:
            position = self._point(rows[index], cols[index], heights[index])
            for rotation in range(NUM_ROTATIONS // 2):
                if self._grasp(state, position, rotation, heightmap):
                    successes += 2  # rotation and rotation + 8: the same grasp
                if successes > config.stop_above * candidates:
                    return candidates, successes, False
        return candidates, successes, True

    def push_then_grasp(self, state):
        """Search pushes from state for one after which a grasp succeeds: (found dict, tried)."""
        config, robot = self.config, self.robot
        self._restore(state)
        fine_rows, fine_cols = grid_cells(config.grid, 2)
        fine_heights = surface_heights(robot.cell, config.grid, fine_rows, fine_cols)
        objects = config.grid.pixel_to_point(fine_rows, fine_cols)[
            fine_heights > config.min_object_height, :2]
        before = robot.block_positions()
        heightmap = scene_heightmap(robot.cell, config.grid)
        tried = 0
        for row, col, rotation in push_candidates(robot.cell, config, objects):
            if tried >= config.max_pushes:
                break
            tried += 1
            self._restore(state)
            angle = rotation * 2 * math.pi / NUM_ROTATIONS
            position = self._point(row, col, 0.0)
            try:
                robot.robot.push(position, angle, heightmap=heightmap)
                robot.robot.go_home()
            except (MotionError, TargetRejected):
                continue
            moved = separation(before, robot.block_positions())
            if moved.max() <= config.moved_threshold:
                continue
            pushed = robot.cell.save_state()
            centres = robot.block_positions()
            for block in np.argsort(-moved)[:config.max_blocks_per_push]:
                if moved[block] <= config.moved_threshold:
                    break
                grasp = self._grasp_at_block(pushed, centres[block])
                if grasp is not None:
                    return {'row': row, 'col': col, 'rotation': rotation,
                            'angle': round(angle, 6),
                            'position': [round(v, 4) for v in position],
                            'grasp': grasp}, tried
        return None, tried

    def _grasp_at_block(self, state, centre):
        """Grasp at the cell under a block's centre at each distinct rotation; first success."""
        config = self.config
        row, col = config.grid.point_to_pixel(centre[:2])
        if not bool(config.grid.contains(row, col)):
            return None
        self._restore(state)
        height = surface_heights(self.robot.cell, config.grid, np.array([row]),
                                 np.array([col]))[0]
        if height <= config.min_object_height:
            return None
        position = self._point(int(row), int(col), height)
        heightmap = scene_heightmap(self.robot.cell, config.grid)
        for rotation in range(NUM_ROTATIONS // 2):
            if self._grasp(state, position, rotation, heightmap):
                return {'row': int(row), 'col': int(col), 'rotation': rotation,
                        'position': [round(v, 4) for v in position]}
        return None

    def run(self, objects, pushes=True):
        """Place objects and run both searches; returns a CaseResult."""
        start = time.monotonic()
        self.robot.reset(objects)
        state = self.robot.cell.save_state()
        candidates, successes, complete = self.first_grasps(state)
        # A pass stopped by stop_above has shown the scene is no case for pushing.
        searched = pushes and complete
        found, tried = self.push_then_grasp(state) if searched else (None, 0)
        return CaseResult(
            blocks=len(objects), candidates=candidates, first_grasp_successes=successes,
            first_grasp_success=successes / candidates if candidates else 0.0,
            first_grasp_complete=complete, push_then_grasp=found is not None, push=found,
            push_searched=searched, pushes_tried=tried, seconds=time.monotonic() - start)


def _format_seconds(seconds):
    return f'{int(seconds) // 60}:{int(seconds) % 60:02d}'


def _run_case(path, config, pushes):
    """
    Run one case file on a cell of its own.

    A fresh cell per case: Cell.reset keeps the arm, gripper and clock of the previous scene,
    so a reused cell would make a case's figures depend on the cases run before it.
    """
    record = asdict(Oracle(config).run(blocks.load_test_case(path), pushes=pushes))
    record['first_grasp_success'] = round(record['first_grasp_success'], 4)
    record['seconds'] = round(record['seconds'], 1)
    return record


def run_cases(paths, config=OracleConfig(), out=None, pushes=True, jobs=1, print_fn=print):
    """
    Run the oracle on case files, `jobs` of them at a time in worker processes (1: here).

    Prints a progress line per case and writes `out` (JSON) after each; returns the dict.
    """
    paths = [Path(path) for path in paths]
    records = {}
    start = time.monotonic()

    def finished(path, record):
        records[path.stem] = record
        done = len(records)
        elapsed = time.monotonic() - start
        left = elapsed / done * (len(paths) - done)
        push = 'yes' if record['push_then_grasp'] else (
            'not found' if record['push_searched'] else 'not searched')
        print_fn(f'oracle {done}/{len(paths)} {path.stem}: {record["candidates"]} candidates, '
                 f'first grasps {100 * record["first_grasp_success"]:.1f} % '
                 f'{"" if record["first_grasp_complete"] else "(at least) "}'
                 f'succeed, push then grasp {push} ({record["pushes_tried"]} pushes); '
                 f'{record["seconds"]:.0f} s, elapsed {_format_seconds(elapsed)}, '
                 f'left ~{_format_seconds(left)}', flush=True)
        if out is not None:
            ordered = {p.stem: records[p.stem] for p in paths if p.stem in records}
            Path(out).parent.mkdir(parents=True, exist_ok=True)
            Path(out).write_text(json.dumps({'cases': ordered,
                                             'search': grid_description(config)}, indent=1)
                                 + '\n', encoding='utf-8')

    if jobs <= 1:
        for path in paths:
            finished(path, _run_case(path, config, pushes))
    else:
        context = multiprocessing.get_context('spawn')
        with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
            futures = {pool.submit(_run_case, path, config, pushes): path for path in paths}
            for future in as_completed(futures):
                finished(futures[future], future.result())
    return {'cases': {p.stem: records[p.stem] for p in paths},
            'search': grid_description(config)}


def grid_description(config):
    """Describe the search settings for the output file."""
    resolution = config.grid.resolution
    return {'grasp_step_m': config.grasp_step_px * resolution,
            'push_step_m': config.push_step_px * resolution, 'rotations': NUM_ROTATIONS,
            'min_object_height_m': config.min_object_height,
            'push_margin_m': config.push_margin, 'max_pushes': config.max_pushes,
            'max_blocks_per_push': config.max_blocks_per_push}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('cases', nargs='+', metavar='CASE',
                        help="test case files (our format or VPG's)")
    parser.add_argument('--out', default=None, help='write the results to this JSON file')
    parser.add_argument('--grasp-step', type=int, default=OracleConfig.grasp_step_px,
                        help='grasp grid spacing in heightmap cells of 2 mm (default '
                             '%(default)s)')
    parser.add_argument('--push-step', type=int, default=OracleConfig.push_step_px,
                        help='push grid spacing in cells (default %(default)s)')
    parser.add_argument('--max-pushes', type=int, default=OracleConfig.max_pushes,
                        help='pushes tried at most per case (default %(default)s)')
    parser.add_argument('--no-pushes', action='store_true', help='first grasps only')
    parser.add_argument('--jobs', type=int, default=1,
                        help='cases run at once, each in its own process (default 1)')
    parser.add_argument('--stop-above', type=float, default=1.0,
                        help='end the first-grasp pass once more than this fraction succeeded, '
                             'and search no pushes then (for screening designs; default 1 = '
                             'try all)')
    args = parser.parse_args(argv)
    for path in args.cases:
        if not Path(path).is_file():
            parser.error(f'no such case file: {path}')
    if args.grasp_step < 1 or args.push_step < 1 or args.max_pushes < 0 or args.jobs < 1:
        parser.error('grid steps and --jobs must be >= 1, --max-pushes >= 0')
    config = OracleConfig(grasp_step_px=args.grasp_step, push_step_px=args.push_step,
                          max_pushes=args.max_pushes, stop_above=args.stop_above)
    run_cases(args.cases, config, args.out, pushes=not args.no_pushes, jobs=args.jobs)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
