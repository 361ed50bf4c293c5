"""The cell's stand-in for the UR controller's stop on tool contact."""

import numpy as np
import pytest

from vpg_executor.safety import TopDownPose
from vpg_sim import fidelity_probes as fp
from vpg_sim.tool_contact import ToolContactWatch


def test_only_a_change_against_the_commanded_motion_counts():
    watch = ToolContactWatch(baseline=(0.0, 0.0, 30.0), threshold=20.0)
    down = (0.0, 0.0, -0.05)
    assert not watch.touched((0.0, 0.0, 45.0), down)   # 15 N more, under the threshold
    assert watch.touched((0.0, 0.0, 51.0), down)       # 21 N more, pushing the tool back up
    assert watch.peak == pytest.approx(21.0)
    assert not watch.touched((30.0, 0.0, 30.0), down)  # sideways: not against the motion
    assert not watch.touched((0.0, 0.0, 0.0), down)    # with the motion: not a contact


def test_a_change_within_the_threshold_cannot_count_for_any_motion():
    watch = ToolContactWatch(baseline=(0.0, 0.0, 30.0), threshold=20.0)
    assert not watch.could_touch((12.0, 0.0, 45.0))  # |change| 19.2 N
    assert watch.could_touch((0.0, 0.0, 51.0))       # 21 N: some motion makes it a contact
    # could_touch is the cheap screen before the Jacobian: whatever it rules out, touched
    # rules out too, for motions in every direction.
    rng = np.random.default_rng(0)
    for _ in range(200):
        force = (0.0, 0.0, 30.0) + rng.normal(scale=15.0, size=3)
        if not watch.could_touch(force):
            for velocity in rng.normal(size=(8, 3)):
                assert not watch.touched(force, velocity)


def test_at_rest_a_change_from_any_direction_counts():
    watch = ToolContactWatch(baseline=(0.0, 0.0, 0.0), threshold=20.0)
    assert watch.touched((15.0, 15.0, 0.0), (0.0, 0.0, 0.0))
    with pytest.raises(ValueError):
        ToolContactWatch((0.0, 0.0, 0.0), threshold=0.0)


def _land_on_a_neighbour(**rig_options):
    """One guarded descent whose fingertip lands on the 2x2 square's neighbour (no wrench)."""
    rig = fp.CellRig(fp._two_by_two(), contact_force=0.0, **rig_options)
    backend = rig.backend
    backend.set_gripper(False)
    backend.move_to(TopDownPose(-0.5, 0.0, fp.CUBE + 0.15, 0.0))
    before = rig.block_positions()
    arrived = backend.move_to(TopDownPose(-0.5, 0.0, fp.CUBE - 0.03, 0.0), linear=True,
                              guarded=True)
    rig.run(0.3)
    moved = np.linalg.norm((rig.block_positions() - before)[:, :2], axis=1)
    return rig, arrived, float(moved.max())


def test_the_cell_stops_the_arm_at_the_step_the_contact_force_crosses_the_threshold():
    rig, arrived, shove = _land_on_a_neighbour(tool_contact_force=20.0)
    assert not arrived and rig.backend.last_stopped_by == 'tool_contact'
    stop_time, force = rig.cell.tool_contact_stop
    # The step that crosses 20 N: the impact at 0.05 m/s can add a spike in one 2 ms step,
    # within the peak the probes allow (2.5 x the threshold).
    assert 20.0 < force < 50.0
    assert not rig.cell.tool_contact_armed  # detection ended with the stop
    # What the gripper touched at the stop: a fingertip pad on a block, nothing else.
    touched = rig.cell.tool_contact_touches
    assert touched and all('pad' in mine and other.startswith('block') for mine, other in touched)
    # Where: on the neighbour's top face (the 2x2 square's cubes are fp.CUBE high), beside the
    # pinch point by the open pads' reach along the jaw axis (x at yaw 0).
    points = rig.cell.tool_contact_points
    assert {(geom, body) for geom, body, _ in points} == set(touched)
    for _, _, point in points:
        assert abs(point[2] - fp.CUBE) < 0.003
        assert 0.040 < abs(point[0] + 0.5) < 0.053
    # The fingertip rests on the neighbour's top (nominal pinch point 54.5 mm above the
    # table), and nothing was shoved.
    assert rig.tcp()[2] > 0.050
    assert shove < 0.002


def test_without_the_stop_the_path_guard_presses_on_and_shoves():
    rig, arrived, shove = _land_on_a_neighbour(tool_contact_force=0.0)
    assert not arrived and rig.backend.last_stopped_by == 'path'
    assert rig.cell.tool_contact_stop is None
    assert rig.tcp()[2] < 0.050 or shove > 0.005
