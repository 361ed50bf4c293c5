"""Packed-cluster training scenes: seeded, in the workspace, apart, never an evaluation case."""

import numpy as np
import pytest
from vpg_evaluation import case_layouts as layouts
from vpg_evaluation import packed_clusters as packed
from vpg_sim import blocks
from vpg_sim.cell import Cell


@pytest.fixture(scope='module')
def cases():
    return packed.evaluation_cases()


def _moved(objects, yaw, shift):
    turn = layouts._rot_z(yaw)
    return [blocks.ObjectSpec(o.shape, o.rgba, tuple(turn @ np.asarray(o.position) + shift),
                              tuple(layouts._matrix_quat(turn @ layouts._quat_matrix(o.quat))))
            for o in objects]


def test_same_seed_same_scene_other_seed_other_scene(cases):
    first = packed.packed_scene(3, forbidden=cases)
    assert packed.packed_scene(3, forbidden=cases) == first
    assert packed.packed_scene(4, forbidden=cases) != first
    assert 4 <= len(first) <= packed.MAX_OBJECTS


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        packed.packed_scene(-1, forbidden=[])
    with pytest.raises(ValueError):
        packed.packed_scene(0, max_objects=3, forbidden=[])


def test_an_evaluation_case_is_recognised_moved_and_turned(cases):
    for case in cases:
        assert packed.equals_case(_moved(case, 0.9, (0.05, -0.02, 0.0))[::-1], case)
    assert not packed.equals_case(cases[0], cases[1])
    nudged = list(cases[0])
    position = np.asarray(nudged[-1].position) + (0.02, 0.0, 0.0)
    nudged[-1] = blocks.ObjectSpec(nudged[-1].shape, nudged[-1].rgba, tuple(position),
                                   nudged[-1].quat)
    assert not packed.equals_case(nudged, cases[0])


def test_a_draw_equal_to_a_forbidden_scene_is_replaced():
    scene = packed.packed_scene(5, forbidden=[])
    other = packed.packed_scene(5, forbidden=[_moved(scene, -0.4, (0.01, 0.03, 0.0))])
    assert other != scene and not packed.equals_case(other, scene)


def test_no_generated_scene_is_an_evaluation_case(cases):
    for seed in range(300):
        scene = packed.packed_scene(seed, forbidden=[])
        assert not any(packed.equals_case(scene, case) for case in cases), seed


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_scenes_lie_inside_the_workspace_apart_and_at_rest(seed):
    objects = packed.packed_scene(seed, forbidden=[])
    for obj in objects:
        points = (layouts.shape_points(obj.shape) @ layouts._quat_matrix(obj.quat).T
                  + np.asarray(obj.position))
        assert points[:, 0].min() >= layouts.WORKSPACE_X[0]
        assert points[:, 0].max() <= layouts.WORKSPACE_X[1]
        assert points[:, 1].min() >= layouts.WORKSPACE_Y[0]
        assert points[:, 1].max() <= layouts.WORKSPACE_Y[1]
    check = layouts.check_in_cell(objects, Cell())
    assert check.deepest_penetration > -0.0005 and not check.outside and not check.removed


def test_command_line_writes_a_case_file_the_cell_reads(tmp_path, capsys):
    out = tmp_path / 'scene.txt'
    assert packed.main(['--seed', '7', '--out', str(out)]) == 0
    loaded = blocks.load_test_case(out)
    expected = packed.packed_scene(7)
    assert [o.shape for o in loaded] == [o.shape for o in expected]
    np.testing.assert_allclose([o.position for o in loaded], [o.position for o in expected],
                               atol=1e-6)
    assert 'packed clusters, seed 7' in capsys.readouterr().out
