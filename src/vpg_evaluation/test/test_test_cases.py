"""The challenging test cases: VPG's format, generated from their layouts, at rest in the cell."""

import numpy as np
import pytest
from vpg_evaluation import case_layouts as layouts
from vpg_evaluation.harness import bundled_cases, bundled_cases_dir
from vpg_sim import blocks
from vpg_sim.cell import Cell

CASE_FILES = bundled_cases()
MESHES = {shape.mesh_file for shape in blocks.load_shapes().values()}


@pytest.fixture(scope='module')
def cell():
    return Cell()


def test_at_least_eight_cases_each_described():
    assert len(CASE_FILES) >= 8
    readme = (bundled_cases_dir() / 'README.md').read_text()
    for path in CASE_FILES:
        assert f'`{path.name}`' in readme


@pytest.mark.parametrize('path', CASE_FILES, ids=lambda p: p.stem)
def test_file_is_in_vpg_format(path):
    lines = path.read_text().splitlines()
    assert 3 <= len(lines) <= 10
    for index, line in enumerate(lines):
        fields = line.split()
        assert len(fields) == 10 and fields[0] in MESHES, line
        values = [float(v) for v in fields[1:]]
        np.testing.assert_allclose(values[:3], blocks.COLOURS[index % 10])
    assert len(blocks.load_test_case(path)) == len(lines)


@pytest.mark.parametrize('path', CASE_FILES, ids=lambda p: p.stem)
def test_case_loads_apart_at_rest_and_inside_the_workspace(path, cell):
    objects = blocks.load_test_case(path)
    check = layouts.check_in_cell(objects, cell)
    assert check.problems() == [], check
    counts = cell.count_objects()
    assert (counts.in_workspace, counts.removed, counts.out_of_workspace) == (len(objects), 0, 0)


def test_files_match_their_layouts(tmp_path):
    layouts.write_cases(tmp_path)
    generated = sorted(tmp_path.glob('*.txt'))
    assert [p.name for p in generated] == [p.name for p in CASE_FILES]
    for new, committed in zip(generated, CASE_FILES):
        # Same meshes, numbers equal to the last few bits (an Euler angle computed through
        # another numpy code path may differ in its last digit).
        new_rows = [line.split() for line in new.read_text().splitlines()]
        old_rows = [line.split() for line in committed.read_text().splitlines()]
        assert [row[0] for row in new_rows] == [row[0] for row in old_rows], committed.name
        np.testing.assert_allclose(np.array([row[1:] for row in new_rows], dtype=float),
                                   np.array([row[1:] for row in old_rows], dtype=float),
                                   rtol=0, atol=1e-12, err_msg=committed.name)
    assert (tmp_path / 'README.md').read_text() == (bundled_cases_dir() / 'README.md').read_text()


def test_check_in_cell_reports_overlap_and_blocks_outside(cell):
    def cube(x, y, z=0.026):
        return blocks.ObjectSpec('cube', (1.0, 0.0, 0.0, 1.0), (x, y, z), (1.0, 0.0, 0.0, 0.0))

    overlapping = layouts.check_in_cell([cube(-0.5, 0.0), cube(-0.5, 0.04)], cell)
    assert any('inside each other' in p for p in overlapping.problems())
    assert any('moved' in p for p in overlapping.problems())
    outside = layouts.check_in_cell([cube(-0.5, 0.0), cube(-0.5, 0.21)], cell)
    assert outside.outside == (1,)
    assert outside.problems() == ['blocks [1] reach outside the workspace']


def test_rest_heights_put_the_lowest_point_one_millimetre_up():
    case = layouts.Case('one_of_each', '', (layouts.Cluster(tuple(layouts.row(
        list(layouts.RESTS))), -0.5, 0.0, 0.4),))
    for obj in layouts.case_objects(case):
        rotation = layouts._quat_matrix(obj.quat)
        points = layouts.shape_points(obj.shape) @ rotation.T + np.asarray(obj.position)
        assert points[:, 2].min() == pytest.approx(layouts.GAP, abs=1e-9), obj.shape
