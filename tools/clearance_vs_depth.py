"""
How often the D415 heightmap shows room for the open pads where the true scene has none.

    python tools/clearance_vs_depth.py [--scenes 20] [--seed 0]

For random 10-block scenes (VPG's drops, nominal cell, no randomisation), one render is turned
into two heightmaps (table refit, as the heightmap node does): through the D415 depth model and
with exact depth (`ideal`, 1 mm steps). For each, the grasp mask the policy uses with
`action_mask_grasp_clearance` (object pixels where both pads have room, per rotation). Prints,
per scene and in all, how many grasps the D415 mask allows and what share of those the exact
depth blocks ("false room": a pad would land on something the camera did not show), and the
reverse. The last line is one JSON object.
"""

import argparse
import json

import numpy as np
from vpg_evaluation.cell_backend import CellRobot
from vpg_perception.grid import HeightmapGrid
from vpg_perception.heightmap import HeightmapBuilder, TableFit
from vpg_policy.decision import action_masks, ActionMask
from vpg_sim import blocks, depth_model, scene
from vpg_sim.camera import RgbdRenderer

NUM_ROTATIONS = 16


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0].strip())
    parser.add_argument('--scenes', type=int, default=20)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    robot, grid = CellRobot(), HeightmapGrid()
    mask = ActionMask(grasp_clearance=True)
    sensors = {name: depth_model.profile(name) for name in ('d415', 'ideal')}
    rng = np.random.default_rng(args.seed)
    renderer = None
    totals = {'d415_room': 0, 'false_room': 0, 'ideal_room': 0, 'missed_room': 0}
    for k in range(args.scenes):
        objects = blocks.random_objects(10, args.seed * 1000 + k, (grid.x_min, grid.x_max),
                                        (grid.y_min, grid.y_max))
        robot.reset(objects)
        model = robot.cell.model
        intrinsics, pose = scene.camera_matrices(model)
        if renderer is None:
            renderer = RgbdRenderer(model)
        else:
            renderer.set_model(model)
        rgb, depth = renderer.render(robot.cell.data)
        room = {}
        for name, sensor in sensors.items():
            metres = sensor.apply(depth.copy(), rgb, rng, intrinsics[0, 0]).astype(np.float64)
            metres /= 1000.0
            maps = HeightmapBuilder(grid, TableFit()).build(rgb, metres, intrinsics, pose)
            room[name] = action_masks(maps.height, grid.resolution, mask, NUM_ROTATIONS)[1]
        d415, ideal = room['d415'], room['ideal']
        counts = {'d415_room': int(d415.sum()), 'false_room': int((d415 & ~ideal).sum()),
                  'ideal_room': int(ideal.sum()), 'missed_room': int((ideal & ~d415).sum())}
        for key, value in counts.items():
            totals[key] += value
        print(f"scene {k:3d}: D415 room {counts['d415_room']:6d} grasps, exact depth blocks "
              f"{counts['false_room'] / max(counts['d415_room'], 1):6.1%} of them; exact room "
              f"{counts['ideal_room']:6d}, D415 blocks "
              f"{counts['missed_room'] / max(counts['ideal_room'], 1):6.1%}", flush=True)
    if renderer is not None:
        renderer.close()
    totals['false_room_share'] = totals['false_room'] / max(totals['d415_room'], 1)
    totals['missed_room_share'] = totals['missed_room'] / max(totals['ideal_room'], 1)
    print(json.dumps({'tool': 'clearance_vs_depth', 'scenes': args.scenes, 'seed': args.seed,
                      **totals}))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
