"""The graspability oracle on tiny scenes, in-process on the MuJoCo cell core (no ROS)."""

import json
import math

import numpy as np
import pytest
from vpg_evaluation import oracle
from vpg_evaluation.cell_backend import CellRobot
from vpg_sim import blocks
from vpg_sim.cell import Cell

# Each centred on a cell of the 60 mm grid (--grasp-step 30), so the grid has one cell on it.
CUBE = 'cube 0.3 0.47 0.65 -0.531 -0.031 0.026 0 0 0\n'
CUBE_VPG = '4.obj 0.3 0.47 0.65 -0.471 0.089 0.026 0 0 0.4\n'


def _cube(x, y, yaw=0.0):
    return blocks.ObjectSpec('cube', (1.0, 0.0, 0.0, 1.0), (x, y, 0.026),
                             (math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)))


def _lying_cuboids(count, x=-0.5, y=0.0):
    """`count` long cuboids lying side by side along x, 1 mm apart, 100 mm long along y."""
    quat = (math.cos(math.pi / 4), math.sin(math.pi / 4), 0.0, 0.0)  # 100 mm edge along y
    return [blocks.ObjectSpec('long_cuboid', (0.0, 1.0, 0.0, 1.0),
                              (x + (k - (count - 1) / 2) * 0.051, y, 0.026), quat)
            for k in range(count)]


@pytest.fixture(scope='module')
def robot():
    return CellRobot()


def test_heights_and_candidates_follow_the_scene(robot):
    robot.reset([_cube(-0.5, 0.0)])
    config = oracle.OracleConfig(grasp_step_px=5)
    grid = config.grid
    row, col = grid.point_to_pixel(np.array([-0.5, 0.0]))
    heights = oracle.surface_heights(robot.cell, grid, np.array([row, row]),
                                     np.array([col, col + 40]))
    assert heights[0] == pytest.approx(0.05, abs=0.002) and heights[1] == 0.0
    rows, cols, tops = oracle.grasp_candidates(robot.cell, config)
    points = grid.pixel_to_point(rows, cols)
    # Cells 10 mm apart whose centres lie on the 50 mm cube: 5 x 5 of them.
    assert len(rows) == 25 and np.all(np.abs(points[:, :2] - (-0.5, 0.0)) < 0.025)
    assert np.allclose(tops, 0.05, atol=0.002)


def test_pushes_start_beside_objects_and_aim_at_them_first(robot):
    robot.reset([_cube(-0.5, 0.0)])
    config = oracle.OracleConfig(push_step_px=10)
    objects = config.grid.pixel_to_point(*oracle.grasp_candidates(
        robot.cell, oracle.OracleConfig(grasp_step_px=2))[:2])[:, :2]
    pushes = oracle.push_candidates(robot.cell, config, objects)
    starts = {(r, c) for r, c, _ in pushes}
    assert len(pushes) == 16 * len(starts) and len(starts) >= 8
    for row, col in starts:
        x, y, _ = config.grid.pixel_to_point(row, col)
        gap = np.linalg.norm(objects - (x, y), axis=1).min()
        assert 0.0 < gap <= config.push_margin
        assert max(abs(x + 0.5), abs(y)) > 0.025  # on the table, not on the cube
    row, col, rotation = pushes[0]
    x, y, _ = config.grid.pixel_to_point(row, col)
    angle = rotation * 2 * math.pi / 16
    towards = math.atan2(-y, -0.5 - x)
    assert abs((angle - towards + math.pi) % (2 * math.pi) - math.pi) <= math.pi / 16 + 0.2


def test_an_isolated_cube_is_grasped_often(robot):
    result = oracle.Oracle(oracle.OracleConfig(grasp_step_px=12, stop_above=0.3), robot).run(
        [_cube(-0.5, 0.0, 0.3)], pushes=False)
    assert result.candidates % 16 == 0 and result.candidates >= 4 * 16
    assert result.first_grasp_successes > 0.3 * result.candidates
    assert not result.first_grasp_complete  # stopped early, as asked
    assert not result.push_searched


def test_a_grasp_between_flush_neighbours_fails_where_a_free_one_holds(robot):
    search = oracle.Oracle(oracle.OracleConfig(), robot)
    # Jaws closing along x, across the 50 mm width, at the (middle) cuboid's centre.
    robot.reset(_lying_cuboids(3))
    assert not search._grasp(robot.cell.save_state(), (-0.5, 0.0, 0.05), 0)
    robot.reset(_lying_cuboids(1))
    assert search._grasp(robot.cell.save_state(), (-0.5, 0.0, 0.05), 0)


@pytest.mark.slow
def test_flush_cuboids_need_a_push(robot):
    config = oracle.OracleConfig(grasp_step_px=12, max_pushes=40)
    result = oracle.Oracle(config, robot).run(_lying_cuboids(3))
    assert result.first_grasp_complete and result.push_searched
    assert result.first_grasp_success <= 0.1, result
    assert result.push_then_grasp, result
    assert set(result.push) >= {'row', 'col', 'rotation', 'grasp'}


def test_command_line_reads_both_formats_and_writes_json(tmp_path, capsys):
    ours, vpg = tmp_path / 'ours.txt', tmp_path / 'vpg.txt'
    ours.write_text(CUBE)
    vpg.write_text(CUBE_VPG)
    out = tmp_path / 'oracle.json'
    assert oracle.main([str(ours), str(vpg), '--out', str(out), '--no-pushes',
                        '--grasp-step', '30', '--jobs', '2']) == 0
    lines = sorted(capsys.readouterr().out.splitlines())
    assert lines[0].startswith('oracle 1/2 ') and 'left' in lines[0]
    assert lines[1].startswith('oracle 2/2 ')
    assert {line.split()[2] for line in lines} == {'ours:', 'vpg:'}
    written = json.loads(out.read_text())
    cases = written['cases']
    assert list(cases) == ['ours', 'vpg'] and written['search']['grasp_step_m'] == 0.06
    for record in cases.values():
        assert record['candidates'] == 16  # one cell of the 60 mm grid on each cube
        assert 0.0 <= record['first_grasp_success'] <= 1.0
        assert record['push_then_grasp'] is False and record['push_searched'] is False


def test_command_line_refuses_a_missing_file(tmp_path):
    with pytest.raises(SystemExit):
        oracle.main([str(tmp_path / 'nothing.txt')])


def test_restored_grasps_repeat(robot):
    robot.reset([_cube(-0.5, 0.0), _cube(-0.44, 0.0)])
    state = robot.cell.save_state()
    search = oracle.Oracle(oracle.OracleConfig(), robot)
    first = [search._grasp(state, (-0.5, 0.0, 0.05), r) for r in (0, 4)]
    poses = robot.block_positions()
    again = [search._grasp(state, (-0.5, 0.0, 0.05), r) for r in (0, 4)]
    assert first == again
    np.testing.assert_array_equal(poses, robot.block_positions())


def test_a_fresh_cell_is_made_when_none_is_given():
    assert isinstance(CellRobot().cell, Cell)


def test_separation_ignores_a_cluster_pushed_as_a_whole():
    before = np.array([[0.0, 0.0, 0.02], [0.05, 0.0, 0.02], [0.1, 0.0, 0.02],
                       [0.15, 0.0, 0.02]])
    slid = before + (0.03, 0.01, 0.0)
    assert np.allclose(oracle.separation(before, slid), 0.0)
    one_out = before.copy()
    one_out[2] += (0.04, 0.0, 0.0)
    assert np.allclose(oracle.separation(before, one_out), [0.0, 0.0, 0.04, 0.0])
    gone = one_out.copy()
    gone[0] = np.nan
    assert np.allclose(oracle.separation(before, gone), [0.0, 0.0, 0.04, 0.0])


def test_a_case_gives_the_same_figures_whatever_ran_before(tmp_path):
    first, other = tmp_path / 'first.txt', tmp_path / 'other.txt'
    first.write_text(CUBE)
    other.write_text(CUBE_VPG)
    config = oracle.OracleConfig(grasp_step_px=30)
    alone = oracle._run_case(first, config, pushes=False)
    oracle._run_case(other, config, pushes=False)
    again = oracle._run_case(first, config, pushes=False)
    alone.pop('seconds'), again.pop('seconds')
    assert alone == again and alone['candidates'] == 16


def test_descents_stop_where_the_cell_stops_the_arm_on_contact(robot):
    """As in the sim graph: the executor arms the cell's tool contact stop for a descent."""
    assert robot.backend.tool_contact is not None
    search = oracle.Oracle(oracle.OracleConfig(), robot)
    robot.reset(_lying_cuboids(3))
    # Across the middle cuboid: the open fingertips land on the neighbours' tops.
    search._grasp(robot.cell.save_state(), (-0.5, 0.0, 0.05), 0)
    assert robot.backend.last_stopped_by == 'tool_contact'
    unguarded = CellRobot(sim_values={'tool_contact_force': 0.0},
                          executor_values=robot.params.values)
    assert unguarded.backend.tool_contact is None
