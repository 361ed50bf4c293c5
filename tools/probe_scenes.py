"""
Random 10-block scenes for the grasp probes, seen as the heightmap node sees them.

tools/grasp_room_probe.py and tools/jaw_line_probe.py share this: VPG's random drops in the
cell (nominal, or with each scene's friction, masses, camera pose and depth scale drawn as in
training), one render through the D415 depth model turned into a heightmap with the nominal
calibration and the table refit, and grasps drawn at random among the rotations and pixels an
action mask allows, each to be run from the scene's saved state.
"""

from dataclasses import dataclass
from types import SimpleNamespace

import mujoco
import numpy as np
from vpg_evaluation.cell_backend import CellRobot
from vpg_perception.grid import HeightmapGrid
from vpg_perception.heightmap import HeightmapBuilder, TableFit
from vpg_policy.decision import action_masks
from vpg_sim import blocks, depth_model, scene
from vpg_sim.camera import RgbdRenderer
from vpg_sim.cell import Cell, CellConfig
from vpg_sim.randomization import RandomizationRanges

NUM_ROTATIONS = 16


def body_under(cell, point):
    """Name of the body a ray straight down at (x, y) meets first (table and blocks)."""
    groups = np.array([1, 1, 0, 0, 0, 0], dtype=np.uint8)
    geom = np.zeros(1, dtype=np.int32)
    distance = mujoco.mj_ray(cell.model, cell.data, np.array([point[0], point[1], 0.5]),
                             np.array([0.0, 0.0, -1.0]), groups, True, -1, geom)
    if distance < 0:
        return None
    return cell.model.body(cell.model.geom_bodyid[geom[0]]).name


@dataclass
class ProbeScene:
    """One scene: its index, blocks, cell, heightmaps and the grasps drawn in it."""

    index: int
    objects: list
    robot: CellRobot
    maps: object
    """vpg_perception.heightmap maps (height, colour) of the scene's render."""
    heightmap: SimpleNamespace
    """What the executor's grasp primitive reads: height and grid."""
    picks: np.ndarray
    """(rotation, row, col) of each grasp drawn, at most grasps_per_scene."""
    state: object

    def restore(self):
        """Put the cell back into the scene's state before a grasp."""
        self.robot.cell.restore_state(self.state)
        self.robot.sync()


def probe_scenes(mask, scenes, grasps_per_scene, seed=0, randomize=False):
    """Yield ProbeScene for `scenes` random scenes; grasps drawn where `mask` allows them."""
    nominal = CellRobot()
    intrinsics, pose = scene.camera_matrices(nominal.cell.model)  # the calibration file
    robot = nominal
    if randomize:
        robot = CellRobot(cell=Cell(CellConfig(randomization=RandomizationRanges(),
                                               randomization_seed=seed)))
    grid = HeightmapGrid()
    sensor, rng = depth_model.profile('d415'), np.random.default_rng(seed)
    renderer = None
    try:
        for k in range(scenes):
            objects = blocks.random_objects(10, seed * 1000 + k, (grid.x_min, grid.x_max),
                                            (grid.y_min, grid.y_max))
            robot.reset(objects)
            cell = robot.cell
            scale = (1.0 if cell.scene_randomization is None
                     else cell.scene_randomization.depth_scale)
            if renderer is None:
                renderer = RgbdRenderer(cell.model)
            else:
                renderer.set_model(cell.model)
            rgb, depth = renderer.render(cell.data)
            metres = sensor.apply(depth, rgb, rng, intrinsics[0, 0],
                                  scale).astype(np.float64) / 1000.0
            maps = HeightmapBuilder(grid, TableFit()).build(rgb, metres, intrinsics, pose)
            room = action_masks(maps.height, grid.resolution, mask, NUM_ROTATIONS)[1]
            choices = np.argwhere(room)
            picks = choices[rng.choice(len(choices), size=min(grasps_per_scene, len(choices)),
                                       replace=False)] if len(choices) else choices
            yield ProbeScene(k, objects, robot, maps,
                             SimpleNamespace(height=maps.height, grid=grid), picks,
                             cell.save_state())
    finally:
        if renderer is not None:
            renderer.close()
