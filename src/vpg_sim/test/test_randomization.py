"""Domain randomisation: seeded draws within their ranges, applied to the cell's model."""

import mujoco
import numpy as np
import pytest

from vpg_sim import blocks, randomization, scene
from vpg_sim.cell import Cell, CellConfig
from vpg_sim.randomization import RandomizationRanges

WORKSPACE = ((-0.724, -0.276), (-0.224, 0.224))


def test_draws_are_seeded_and_within_their_ranges():
    ranges = RandomizationRanges()
    first = randomization.draw(ranges, 5, np.random.default_rng(3))
    again = randomization.draw(ranges, 5, np.random.default_rng(3))
    other = randomization.draw(ranges, 5, np.random.default_rng(4))
    assert first == again and first != other
    samples = [randomization.draw(ranges, 5, np.random.default_rng(s)) for s in range(200)]
    friction = np.array([s.block_friction for s in samples])
    assert 0.8 <= friction.min() < 0.82 and 1.18 < friction.max() <= 1.2
    offsets = np.array([s.camera_offset for s in samples])
    assert np.abs(offsets).max() <= 0.003
    angles = np.degrees([np.linalg.norm(s.camera_rotation) for s in samples])
    assert max(angles) <= 0.3 and max(angles) > 0.25
    scales = [s.depth_scale for s in samples]
    assert 0.99 <= min(scales) and max(scales) <= 1.01
    with pytest.raises(ValueError):
        RandomizationRanges(block_mass=(1.2, 0.8))


def test_apply_changes_the_model_as_drawn():
    objects = blocks.random_objects(3, 0, *WORKSPACE)
    nominal = scene.build_model(objects)
    model = scene.build_model(objects)
    sample = randomization.draw(RandomizationRanges(), 3, np.random.default_rng(0))
    randomization.apply(model, sample)
    for index in range(3):
        geom = randomization.block_geoms(model, index)[0]
        body = model.body(f'block{index}').id
        assert model.geom_friction[geom, 0] == pytest.approx(
            nominal.geom_friction[geom, 0] * sample.block_friction[index])
        assert model.body_mass[body] == pytest.approx(
            nominal.body_mass[body] * sample.block_mass[index])
    pads = randomization.pad_geoms(model)
    assert pads.size >= 2
    assert np.allclose(model.geom_friction[pads, 0],
                       nominal.geom_friction[pads, 0] * sample.pad_friction)
    camera = model.camera(scene.CAMERA).id
    assert np.allclose(model.cam_pos[camera] - nominal.cam_pos[camera], sample.camera_offset)
    turned = np.zeros(3)
    mujoco.mju_subQuat(turned, model.cam_quat[camera], nominal.cam_quat[camera])
    assert np.linalg.norm(turned) == pytest.approx(np.linalg.norm(sample.camera_rotation),
                                                   abs=1e-9)


def test_cell_draws_per_scene_and_repeats_for_a_seed():
    config = CellConfig(randomization=RandomizationRanges(), randomization_seed=7)
    objects = blocks.random_objects(2, 1, *WORKSPACE)
    cell, twin = Cell(config), Cell(config)
    cell.reset(objects)
    twin.reset(objects)
    first = cell.scene_randomization
    assert first == twin.scene_randomization
    assert cell.snapshot().depth_scale == first.depth_scale != 1.0
    cell.reset(objects)
    assert cell.scene_randomization != first
    nominal = Cell()
    nominal.reset(objects)
    assert nominal.scene_randomization is None and nominal.snapshot().depth_scale == 1.0


def test_a_randomised_cell_has_the_nominal_robot():
    """
    Randomising the scene leaves the arm and gripper as they are.

    Same pose, no contact, and the wrist follows a fast turn (it once stayed wedged by the
    gripper's linkage).
    """
    from vpg_sim.trajectory import TrajectoryPoint
    cells = [Cell(), Cell(CellConfig(randomization=RandomizationRanges()))]
    target = np.array([-0.422, -1.575, 1.921, -1.916, -1.571, -0.029])  # wrist turns 0.87 rad
    for cell in cells:
        cell.reset([])
        assert cell.data.ncon == 0
        cell.set_trajectory(scene.ARM_JOINTS, [TrajectoryPoint(tuple(target), (0.0,) * 6,
                                                               time_from_start=0.8)])
        cell.advance_to(cell.time + 1.0)
        assert np.abs(cell.arm_position() - target).max() < 0.01
    nominal, randomised = cells
    assert np.allclose(nominal.data.qpos, randomised.data.qpos, atol=1e-3)
