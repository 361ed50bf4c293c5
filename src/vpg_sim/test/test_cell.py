"""The simulated cell core: determinism, block bookkeeping, grasps, trajectories (no ROS)."""

import math

import numpy as np
import pytest

from vpg_sim import blocks, scene
from vpg_sim.cell import BlockState, Cell, CellConfig, CellUnstable, ObjectCounts
from vpg_sim.trajectory import TrajectoryError, TrajectoryPoint
from vpg_test_support import scripted_motion


@pytest.fixture(scope='module')
def ik():
    return scripted_motion.ArmIk()


def cube(x, y, yaw=0.0, rgba=(0.9, 0.1, 0.1, 1.0)):
    return blocks.ObjectSpec('cube', rgba, (x, y, 0.0255), blocks.euler_to_quat(0, 0, yaw))


def move(cell, ik, position, angle, velocity=2.0):
    """Top-down move of the pinch point; returns after the trajectory's end."""
    q = ik.top_down(position, angle)
    duration = scripted_motion.move_duration(cell.arm_position(), q, velocity)
    cell.set_trajectory(scene.ARM_JOINTS, [TrajectoryPoint(tuple(q), (0.0,) * 6, (), duration)])
    cell.advance_to(cell.time + duration + 0.02)
    return q


def grasp(cell, ik, x, y, z, angle=0.0):
    cell.set_gripper(0.0)
    move(cell, ik, (x, y, z + 0.12), angle)
    move(cell, ik, (x, y, z), angle)
    cell.set_gripper(0.8)
    cell.advance_to(cell.time + 0.6)
    move(cell, ik, (x, y, z + 0.15), angle)
    return cell.finger_position()


def test_same_seed_same_scene_different_seed_different_scene():
    def settled_qpos(seed):
        cell = Cell()
        cell.reset_random(10, seed)
        cell.settle()
        return cell.data.qpos.copy(), cell.count_objects()
    first, counts = settled_qpos(4)
    again, _ = settled_qpos(4)
    other, _ = settled_qpos(5)
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)
    assert counts.in_workspace + counts.out_of_workspace == 10 and counts.removed == 0


def test_reset_keeps_time_and_arm_and_counts_blocks_outside():
    cell = Cell()
    cell.advance_to(0.5)
    arm = cell.arm_position()
    inside, outside = cube(-0.5, 0.0), cube(-0.9, 0.4)
    cell.reset([inside, outside])
    assert cell.time == pytest.approx(0.5)
    np.testing.assert_allclose(cell.arm_position(), arm)
    cell.settle()
    assert cell.count_objects() == ObjectCounts(in_workspace=1, removed=0, out_of_workspace=1)
    np.testing.assert_allclose(cell.arm_position(), scene.CLEAR_POSE, atol=1e-3)


def test_grasp_removes_block_only_after_release_and_finger_tells_success(ik):
    cell = Cell()
    cell.reset([cube(-0.5, 0.05, yaw=0.3)])
    cell.settle()
    finger = grasp(cell, ik, -0.5, 0.05, 0.03, angle=0.3)
    # Held: the fingers stop on the 50 mm cube, well short of closing (~0.78 rad).
    assert 0.2 < finger < 0.6
    (_, state, position, _), = cell.block_poses()
    assert state is BlockState.LIFTED and position[2] > 0.15
    assert cell.count_objects() == ObjectCounts(0, 1, 0)
    cell.advance_to(cell.time + 0.5)
    assert cell.finger_position() == pytest.approx(finger, abs=0.02)  # still holding
    cell.set_gripper(0.0)
    cell.advance_to(cell.time + 0.5)
    (_, state, parked, _), = cell.block_poses()
    assert state is BlockState.REMOVED
    assert np.linalg.norm(parked - scene.PARKING_ORIGIN) < 0.01
    cell.advance_to(cell.time + 1.0)  # parked blocks stay put, out of every contact
    np.testing.assert_allclose(cell.block_poses()[0][2], parked, atol=1e-9)
    assert cell.count_objects() == ObjectCounts(0, 1, 0)


def test_empty_grasp_closes_fully(ik):
    cell = Cell()
    cell.reset([cube(-0.5, 0.1)])
    cell.settle()
    finger = grasp(cell, ik, -0.6, -0.1, 0.03)
    assert finger > 0.75
    assert cell.count_objects() == ObjectCounts(1, 0, 0)


def test_push_moves_block_along_the_push(ik):
    cell = Cell()
    cell.reset([cube(-0.55, 0.0)])
    cell.settle()
    start = cell.block_poses()[0][2]
    cell.set_gripper(0.8)
    # Jaw broadside to a push along +x, starting 5 mm behind the cube's face.
    move(cell, ik, (-0.55 - 0.025 - 0.016, 0.0, 0.1), math.pi / 2)
    move(cell, ik, (-0.55 - 0.025 - 0.016, 0.0, 0.025), math.pi / 2)
    path = [(-0.591 + 0.01 * k, 0.0, 0.025) for k in range(1, 11)]
    waypoints = [ik.top_down(p, math.pi / 2) for p in path]
    points = [TrajectoryPoint(tuple(q), (), (), 0.1 * k) for k, q in enumerate(waypoints, 1)]
    cell.set_trajectory(scene.ARM_JOINTS, points)
    cell.advance_to(cell.time + 1.5)
    moved = cell.block_poses()[0][2] - start
    assert 0.08 < moved[0] < 0.105
    assert abs(moved[1]) < 0.015


def test_trajectory_tracking_and_rejection(ik):
    cell = Cell()
    before = cell.arm_position()
    with pytest.raises(TrajectoryError):
        cell.set_trajectory(scene.ARM_JOINTS, [TrajectoryPoint((math.nan,) * 6, (), (), 1.0)])
    cell.advance_to(0.5)
    np.testing.assert_allclose(cell.arm_position(), before, atol=1e-6)
    assert not cell.trajectory_active()

    target = ik.top_down((-0.5, 0.0, 0.2), 0.4)
    cell.set_trajectory(scene.ARM_JOINTS, [TrajectoryPoint(tuple(target), (0.0,) * 6, (), 0.8)])
    halfway = cell.time + 0.4
    cell.advance_to(halfway)
    assert cell.trajectory_active()
    cell.advance_to(halfway + 0.4)
    # The servos track with feed-forward: within 3 mrad when the trajectory ends.
    assert np.max(np.abs(cell.arm_position() - target)) < 3e-3
    cell.advance_to(cell.time + 0.1)
    assert not cell.trajectory_active()
    assert cell.at_rest()


def test_gripper_command_is_clamped():
    cell = Cell()
    assert cell.set_gripper(2.0) == scene.FINGER_JOINT_MAX
    cell.advance_to(0.8)
    assert 0.75 < cell.finger_position() < 0.8
    assert cell.set_gripper(-1.0) == 0.0
    cell.advance_to(1.6)
    assert cell.finger_position() < 0.02


def test_config_validation():
    with pytest.raises(ValueError):
        CellConfig(timestep=0.0)
    with pytest.raises(ValueError):
        CellConfig(workspace_x=(0.0, -1.0))


def test_an_unstable_step_keeps_time_positions_and_commands():
    cell = Cell()
    cell.reset([cube(-0.5, 0.0), cube(-0.6, 0.1)])
    cell.settle()
    cell.set_gripper(0.5)
    cell.step(400)  # past the finger set point's ramp (GRIPPER_SPEED), so ctrl is constant
    time_before, qpos_before = cell.time, cell.data.qpos.copy()
    ctrl_before = cell.data.ctrl.copy()
    cell.data.qvel[-1] = np.nan  # a block's velocity blows up: MuJoCo resets its state
    cell.step()
    assert cell.instability_recoveries == 1
    assert cell.time > time_before  # the clock did not jump back to zero
    np.testing.assert_allclose(cell.data.qpos, qpos_before)
    np.testing.assert_allclose(cell.data.ctrl, ctrl_before)
    assert np.all(np.isfinite(cell.data.qvel))
    cell.step(100)  # and it goes on stepping
    assert cell.instability_recoveries == 1 and cell.time > time_before + 0.1


def test_physics_that_stays_unstable_stops_the_cell():
    cell = Cell()
    cell.reset([cube(-0.5, 0.0)])
    cell.settle()
    with pytest.raises(CellUnstable, match='restores in a row'):
        for _ in range(20):
            cell.data.qvel[-1] = np.nan  # blows up again at every step
            cell.step()
    assert 10 <= cell.instability_recoveries < 20
    # Isolated instabilities, far apart, are restored as before.
    cell = Cell()
    cell.reset([cube(-0.5, 0.0)])
    cell.settle()
    for _ in range(15):
        cell.data.qvel[-1] = np.nan
        cell.step(60)
    assert cell.instability_recoveries == 15
