"""Cell.save_state / restore_state: the cell goes on exactly as from the saved moment."""

import numpy as np
import pytest
from vpg_sim import blocks
from vpg_sim.cell import BlockState, Cell
from vpg_sim.trajectory import TrajectoryPoint
from vpg_test_support import scripted_motion


def _cube(x, y):
    return blocks.ObjectSpec('cube', (1.0, 0.0, 0.0, 1.0), (x, y, 0.026), (1.0, 0.0, 0.0, 0.0))


def _poses(cell):
    return np.concatenate([np.concatenate([p, q]) for _, _, p, q in cell.block_poses()])


def _press_and_grasp(cell, ik):
    """Move the open fingers down around the first cube, close, lift: a scripted grasp."""
    q_above = ik.top_down((-0.5, 0.0, 0.15), 0.0)
    q_down = ik.top_down((-0.5, 0.0, 0.02), 0.0, seed=q_above)
    q_up = ik.top_down((-0.5, 0.0, 0.2), 0.0, seed=q_down)
    start = cell.arm_position()
    points = [TrajectoryPoint(tuple(q), (), (), t)
              for q, t in ((start, 0.0), (q_above, 1.5), (q_down, 2.5))]
    cell.set_trajectory(list(scripted_motion.scene.ARM_JOINTS), points)
    cell.advance_to(cell.time + 2.7)
    cell.set_gripper(0.8)
    cell.advance_to(cell.time + 0.8)
    cell.set_trajectory(list(scripted_motion.scene.ARM_JOINTS),
                        [TrajectoryPoint(tuple(q_down), (), (), 0.0),
                         TrajectoryPoint(tuple(q_up), (), (), 1.0)])
    cell.advance_to(cell.time + 1.2)


@pytest.fixture(scope='module')
def ik():
    return scripted_motion.ArmIk()


def test_restored_cell_repeats_a_grasp_exactly(ik):
    cell = Cell()
    cell.reset([_cube(-0.5, 0.0), _cube(-0.4, 0.1)])
    cell.settle()
    saved = cell.save_state()
    time0, poses0 = cell.time, _poses(cell)
    _press_and_grasp(cell, ik)
    first = (cell.time, _poses(cell), cell.arm_position(), cell.finger_position(),
             [state for _, state, _, _ in cell.block_poses()])
    assert first[4][0] is not BlockState.IN_SCENE  # the grasp lifted the cube: state changed
    cell.advance_to(cell.time + 0.5)

    cell.restore_state(saved)
    assert cell.time == time0
    np.testing.assert_array_equal(_poses(cell), poses0)
    assert [state for _, state, _, _ in cell.block_poses()] == [BlockState.IN_SCENE] * 2
    _press_and_grasp(cell, ik)
    second = (cell.time, _poses(cell), cell.arm_position(), cell.finger_position(),
              [state for _, state, _, _ in cell.block_poses()])
    assert first[0] == second[0]
    np.testing.assert_array_equal(first[1], second[1])
    np.testing.assert_array_equal(first[2], second[2])
    assert first[3] == second[3] and first[4] == second[4]


def test_restore_undoes_taking_a_block_out():
    cell = Cell()
    cell.reset([_cube(-0.5, 0.0)])
    cell.settle()
    saved = cell.save_state()
    contype = cell.model.geom_contype.copy()
    cell._park(0)
    assert cell.count_objects().removed == 1
    cell.restore_state(saved)
    np.testing.assert_array_equal(cell.model.geom_contype, contype)
    assert cell.count_objects().in_workspace == 1
    cell.advance_to(cell.time + 0.2)
    assert abs(cell.block_poses()[0][2][2] - 0.025) < 0.002  # still on the table


def test_state_from_before_a_reset_is_refused():
    cell = Cell()
    cell.reset([_cube(-0.5, 0.0)])
    saved = cell.save_state()
    cell.reset([_cube(-0.4, 0.0)])
    with pytest.raises(ValueError, match='before the last reset'):
        cell.restore_state(saved)
