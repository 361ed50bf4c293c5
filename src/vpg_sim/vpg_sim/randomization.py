"""
Domain randomisation for training: each scene draws what a real cell does not know exactly.

The physical and optical quantities below get a new value per scene.

A policy trained on one exact cell may lean on its exact friction or its exact camera pose;
drawing them per scene, within the ranges a real cell could have, keeps it from that. Every
draw comes from a seeded generator (the cell's `randomization_seed` and the scene's number), so
a run is repeatable. The ranges and why:

- block sliding friction ×0.8–1.2 of the model's: wood and plastic on wood or on a laminated
  table; quoted coefficients vary by about ±20 % with finish and humidity (Engineering
  ToolBox's table of friction coefficients gives 0.25–0.5 for clean wood on wood);
- finger pad friction ×0.8–1.2: silicone/rubber pads wear and pick up dust; the same spread;
- block mass ×0.8–1.2 (inertia with it): wood densities of 500–700 kg/m³ around the 600;
- camera position ±3 mm per axis and orientation up to 0.3° about a random axis: a hand-eye
  calibration's residual (a few mm, a fraction of a degree);
- depth scale ×0.99–1.01: the calibration fits a depth scale; a RealSense's absolute error is
  quoted as ≤ 2 % at 2 m (D400 series datasheet), less after that fit;
- block colour, each channel ×0.9–1.1: the same paint under another white balance;
- light, diffuse and ambient ×0.7–1.3: room light changes during a day.

The camera and depth-scale errors are deliberately not told to the heightmap node: the
calibration file stays the nominal one, as a real calibration is only ever close.
"""

from dataclasses import dataclass

import mujoco
import numpy as np

from vpg_sim import scene


@dataclass(frozen=True)
class RandomizationRanges:
    """The ranges of one randomisation; see the module docstring for their sources."""

    block_friction: tuple = (0.8, 1.2)
    pad_friction: tuple = (0.8, 1.2)
    block_mass: tuple = (0.8, 1.2)
    camera_position: float = 0.003
    camera_rotation_deg: float = 0.3
    depth_scale: tuple = (0.99, 1.01)
    block_colour: tuple = (0.9, 1.1)
    light: tuple = (0.7, 1.3)

    def __post_init__(self):
        for name in ('block_friction', 'pad_friction', 'block_mass', 'depth_scale',
                     'block_colour', 'light'):
            low, high = getattr(self, name)
            if not 0.0 < low <= high:
                raise ValueError(f'{name} must be (low, high) with 0 < low <= high')
        if self.camera_position < 0 or self.camera_rotation_deg < 0:
            raise ValueError('camera_position and camera_rotation_deg must be >= 0')


@dataclass(frozen=True)
class RandomizationSample:
    """One draw: factors per block, pad friction, camera offset (m) and rotation vector (rad)."""

    block_friction: tuple
    block_mass: tuple
    block_colour: tuple
    pad_friction: float
    camera_offset: tuple
    camera_rotation: tuple
    depth_scale: float
    light: float

    def describe(self):
        """One line for the log."""
        angle = np.degrees(np.linalg.norm(self.camera_rotation))
        offset = 1000 * np.asarray(self.camera_offset)
        return (f'pad friction x{self.pad_friction:.2f}, block friction x'
                f'{_span(self.block_friction)}, block mass x{_span(self.block_mass)}, camera '
                f'offset ({offset[0]:+.1f}, {offset[1]:+.1f}, {offset[2]:+.1f}) mm and '
                f'{angle:.2f} deg, depth scale x{self.depth_scale:.4f}, light x{self.light:.2f}')


def _span(values):
    return f'{min(values):.2f}-{max(values):.2f}' if values else '-'


def draw(ranges, num_blocks, rng):
    """Draw one RandomizationSample for a scene of num_blocks blocks."""
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    angle = np.radians(ranges.camera_rotation_deg) * rng.uniform(-1.0, 1.0)
    return RandomizationSample(
        block_friction=tuple(rng.uniform(*ranges.block_friction, size=num_blocks)),
        block_mass=tuple(rng.uniform(*ranges.block_mass, size=num_blocks)),
        block_colour=tuple(map(tuple, rng.uniform(*ranges.block_colour, size=(num_blocks, 3)))),
        pad_friction=float(rng.uniform(*ranges.pad_friction)),
        camera_offset=tuple(rng.uniform(-ranges.camera_position, ranges.camera_position, 3)),
        camera_rotation=tuple(axis * angle),
        depth_scale=float(rng.uniform(*ranges.depth_scale)),
        light=float(rng.uniform(*ranges.light)))


def block_geoms(model, index):
    """Geom ids of block `index` (bodies are named block<i>, see scene)."""
    body = model.body(f'block{index}').id
    return np.flatnonzero(model.geom_bodyid == body)


def pad_geoms(model):
    """Colliding geoms of the gripper's pad bodies."""
    ids = []
    for geom in range(model.ngeom):
        body = model.body(model.geom_bodyid[geom]).name
        colliding = model.geom_contype[geom] or model.geom_conaffinity[geom]
        if body.startswith(scene.GRIPPER_PREFIX) and 'pad' in body and colliding:
            ids.append(geom)
    return np.array(ids, dtype=int)


def apply(model, sample):
    """
    Change model in place to the draw `sample`, before any MjData of it is stepped.

    The model's derived constants (subtree masses, inverse weights) are recomputed on a
    scratch MjData: mj_setConst poses its data at qpos0 and leaves part of it there (the
    2F-85 linkage joints), which in the cell's own data wedged the gripper's closed-chain
    linkage against its equality constraints and held the wrist with its full 28 N m.
    """
    num_blocks = len(sample.block_friction)
    for index in range(num_blocks):
        geoms = block_geoms(model, index)
        model.geom_friction[geoms, 0] *= sample.block_friction[index]
        model.geom_rgba[geoms, :3] = np.clip(
            model.geom_rgba[geoms, :3] * np.asarray(sample.block_colour[index]), 0.0, 1.0)
        body = model.body(f'block{index}').id
        model.body_mass[body] *= sample.block_mass[index]
        model.body_inertia[body] *= sample.block_mass[index]
    model.geom_friction[pad_geoms(model), 0] *= sample.pad_friction
    camera = model.camera(scene.CAMERA).id
    model.cam_pos[camera] += np.asarray(sample.camera_offset)
    turn = np.zeros(4)
    mujoco.mju_axisAngle2Quat(turn, *_axis_angle(sample.camera_rotation))
    turned = np.zeros(4)
    mujoco.mju_mulQuat(turned, turn, model.cam_quat[camera])  # turn in the parent (world) frame
    model.cam_quat[camera] = turned
    model.light_diffuse[:] *= sample.light
    model.light_ambient[:] *= sample.light
    model.vis.headlight.diffuse[:] = np.asarray(model.vis.headlight.diffuse) * sample.light
    model.vis.headlight.ambient[:] = np.asarray(model.vis.headlight.ambient) * sample.light
    mujoco.mj_setConst(model, mujoco.MjData(model))


def _axis_angle(rotation_vector):
    rotation_vector = np.asarray(rotation_vector, dtype=np.float64)
    angle = float(np.linalg.norm(rotation_vector))
    if angle == 0.0:
        return np.array([1.0, 0.0, 0.0]), 0.0
    return rotation_vector / angle, angle
