"""
What a policy does first on each challenging case: greedy primitive and its best Q values.

    python tools/greedy_on_cases.py WEIGHTS [WEIGHTS ...] [--cases FILE ...] [--grasp-clearance]
        [--grasp-inset M]

Each case is placed in the MuJoCo cell (nominal, as the evaluation runs it), rendered through
the D415 depth model, turned into a heightmap with the table refit (as the heightmap node does)
and handed to each weights file's greedy policy with the action mask. Prints one line per case:
the chosen primitive and the best push and grasp Q of every weights file.
"""

import argparse
from pathlib import Path

import numpy as np
from vpg_evaluation.cell_backend import CellRobot
from vpg_evaluation.harness import bundled_cases
from vpg_perception.grid import HeightmapGrid
from vpg_perception.heightmap import HeightmapBuilder, TableFit
from vpg_policy.decision import ActionMask, Policy, PUSH
from vpg_policy.weights import load_model
from vpg_sim import blocks, depth_model, scene
from vpg_sim.camera import RgbdRenderer


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[1].strip())
    parser.add_argument('weights', nargs='+', help='safetensors weights files')
    parser.add_argument('--cases', nargs='*', default=None,
                        help='case files (default: the bundled challenging cases)')
    parser.add_argument('--seed', type=int, default=0, help='seed of the depth noise')
    parser.add_argument('--grasp-clearance', action='store_true',
                        help='grasps only where both open pads have room (the policy parameter '
                             'action_mask_grasp_clearance)')
    parser.add_argument('--grasp-inset', type=float, default=0.0,
                        help='metres a grasp must lie inside an object edge (the policy '
                             'parameter action_mask_grasp_inset; 0 = off)')
    args = parser.parse_args(argv)
    mask = ActionMask(grasp_clearance=args.grasp_clearance, grasp_inset=args.grasp_inset)
    policies = [Policy(load_model(path)[0], mask=mask) for path in args.weights]
    robot, grid = CellRobot(), HeightmapGrid()
    builder = HeightmapBuilder(grid, TableFit())
    sensor, rng = depth_model.profile('d415'), np.random.default_rng(args.seed)
    renderer = None
    for case in args.cases or bundled_cases():
        robot.reset(blocks.load_test_case(case))
        intrinsics, pose = scene.camera_matrices(robot.cell.model)
        if renderer is None:
            renderer = RgbdRenderer(robot.cell.model)
        else:
            renderer.set_model(robot.cell.model)
        rgb, depth = renderer.render(robot.cell.data)
        metres = sensor.apply(depth, rgb, rng, intrinsics[0, 0]).astype(np.float64) / 1000.0
        maps = builder.build(rgb, metres, intrinsics, pose)
        cells = []
        for policy in policies:
            decision = policy.decide(maps.color, maps.height, grid)
            chosen = 'push ' if decision.primitive == PUSH else 'grasp'
            cells.append(f'{chosen} (push Q {decision.max_push_q:.2f}, '
                         f'grasp Q {decision.max_grasp_q:.2f})')
        print(f'{Path(case).stem:22s} ' + ' | '.join(cells), flush=True)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
