"""Contact fidelity: the tool wrench, the sensor model and the physical probes."""

import numpy as np
import pytest

from vpg_sim import fidelity_probes as fp
from vpg_sim import scene
from vpg_sim.cell import Cell
from vpg_sim.force_sensor import ForceSensor, ForceSensorConfig
from vpg_sim.trajectory import TrajectoryPoint
from vpg_test_support import scripted_motion

pytest.importorskip('vpg_executor')


def test_force_sensor_adds_offset_and_seeded_noise():
    config = ForceSensorConfig(force_noise_std=1.0, torque_noise_std=0.0,
                               force_offset=(0.0, 0.0, 5.0))
    readings = np.array([ForceSensor(config, seed=3).read(np.zeros(3), np.zeros(3))[0]
                         for _ in range(2)])
    np.testing.assert_array_equal(readings[0], readings[1])  # same seed, same reading
    many = [ForceSensor(config, seed=s).read(np.zeros(3), np.zeros(3))[0] for s in range(400)]
    assert np.mean(many, axis=0)[2] == pytest.approx(5.0, abs=0.2)
    assert np.std(many, axis=0) == pytest.approx([1.0] * 3, abs=0.15)
    with pytest.raises(ValueError):
        ForceSensorConfig(force_offset=(1.0, 2.0))


def test_tool_wrench_is_zero_in_free_space_and_pushes_the_tool_back_on_contact():
    ik = scripted_motion.ArmIk()
    cell = Cell()
    cell.reset([fp.cube(-0.5, 0.0)])
    cell.settle()
    force, torque = cell.tool_wrench()
    assert np.all(force == 0.0) and np.all(torque == 0.0)
    cell.set_gripper(scene.FINGER_JOINT_MAX)
    above = ik.top_down((-0.5, 0.0, 0.15), 0.0)
    cell.set_trajectory(scene.ARM_JOINTS, [TrajectoryPoint(tuple(above), (0.0,) * 6, (), 1.5)])
    cell.advance_to(cell.time + 2.0)
    # Closed fingertips reach ~17.7 mm below the pinch point: press ~5 mm into the top.
    press = ik.top_down((-0.5, 0.0, 0.050 + 0.0177 - 0.005), 0.0)
    cell.set_trajectory(scene.ARM_JOINTS, [TrajectoryPoint(tuple(press), (0.0,) * 6, (), 2.0)])
    cell.advance_to(cell.time + 2.5)
    force, _ = cell.tool_wrench()
    # tool0's z points down: the block pushes the tool up, along -z, by tens of N.
    assert np.allclose(cell.tool_axis(), [0.0, 0.0, -1.0], atol=0.02)  # servo compliance tilts it
    assert force[2] < -5.0
    assert abs(force[2]) > 3 * np.linalg.norm(force[:2])


@pytest.fixture(scope='module')
def probes():
    return {r.name: r for r in fp.run_probes()}


@pytest.mark.slow
@pytest.mark.parametrize('name', [
    'fingertip_sink_into_block_top',
    'guarded_descent_overtravel_after_contact',
    'guarded_descent_neighbour_shove',
    'corner_2x2_grasps_through_a_neighbour',
    'corner_2x2_failed_grasp_block_shift',
    'guarded_descent_peak_force',
    'closed_fingers_wedge_flush_pair',
    'grip_force_on_cube',
    'held_block_slip_lift_and_transfer',
    'block_sink_into_table_under_100N',
    'block_table_friction_coefficient',
])
def test_probe_within_its_limit(probes, name):
    result = probes[name]
    assert result.passed, result.as_dict()


@pytest.mark.slow
def test_the_probes_fail_the_cell_and_executor_as_they_were_before_the_audit():
    # Soft contacts, friction 1 and the path/stall guard at full speed: what the audit fixed.
    results = {r.name: r for r in fp.run_probes(
        ['corner_grasps', 'sink_under_load', 'table_friction'], before=True)}
    assert not any(r.passed for r in results.values()), results
    assert fp.scene.BLOCK_FRICTION[0] == 0.4  # the module's settings are restored after
