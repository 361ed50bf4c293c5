"""Block shapes, VPG test-case parsing and random drops (pure, no MuJoCo, no ROS)."""

import math

import numpy as np
import pytest

from vpg_sim import blocks

WORKSPACE_X = (-0.724, -0.276)
WORKSPACE_Y = (-0.224, 0.224)

# Two lines as VPG's create.py writes them ('%s' + 9 x ' %.18e'), mesh paths included.
VPG_LINES = (
    'objects/blocks/4.obj 3.500000000000000000e-01 6.300000000000000000e-01 '
    '3.100000000000000000e-01 -5.000000000000000000e-01 1.000000000000000000e-01 '
    '2.500000000000000000e-02 0.000000000000000000e+00 0.000000000000000000e+00 '
    '7.853981633974482790e-01\n'
    '8.obj 0.6 0.46 0.37 -0.6 -0.05 0.0225 0.0 1.5707963267948966 0.0\n'
)


def rotation_xyz(alpha, beta, gamma):
    ca, sa, cb, sb, cg, sg = (math.cos(alpha), math.sin(alpha), math.cos(beta),
                              math.sin(beta), math.cos(gamma), math.sin(gamma))
    rx = np.array([[1, 0, 0], [0, ca, -sa], [0, sa, ca]])
    ry = np.array([[cb, 0, sb], [0, 1, 0], [-sb, 0, cb]])
    rz = np.array([[cg, -sg, 0], [sg, cg, 0], [0, 0, 1]])
    return rx @ ry @ rz


def quat_matrix(quat):
    w, x, y, z = quat
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                     [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                     [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])


def test_eight_vpg_shapes_with_primitives():
    shapes = blocks.load_shapes()
    assert len(shapes) == 8
    assert {s.mesh_file for s in shapes.values()} == {
        '0.obj', '1.obj', '2.obj', '3.obj', '4.obj', '6.obj', '7.obj', '8.obj'}
    assert shapes['cube'].extents == pytest.approx((0.05, 0.05, 0.05), abs=2e-4)
    assert shapes['arch'].extents == pytest.approx((0.05, 0.05, 0.1), abs=2e-4)
    assert len(shapes['arch'].primitives) == 15  # 3 boxes + 12 wedges
    # The half cylinder's data lists an alternative hull; only the first decomposition is used.
    assert len(shapes['half_cylinder'].primitives) == 1
    for shape in shapes.values():
        assert all(0.02 <= e <= 0.101 for e in shape.extents), shape
        assert all(p.kind in ('box', 'cylinder', 'mesh') for p in shape.primitives)


@pytest.mark.parametrize('angles', [(0.0, 0.0, 0.0), (0.3, -1.1, 2.5), (math.pi, 0.2, -0.7),
                                    (1.0, math.pi / 2 - 1e-3, 0.4)])
def test_euler_convention_is_vrep_xyz(angles):
    quat = blocks.euler_to_quat(*angles)
    np.testing.assert_allclose(quat_matrix(quat), rotation_xyz(*angles), atol=1e-12)
    back = blocks.quat_to_euler(quat)
    np.testing.assert_allclose(quat_matrix(blocks.euler_to_quat(*back)),
                               rotation_xyz(*angles), atol=1e-9)


def test_parse_vpg_format():
    objects = blocks.parse_test_case(VPG_LINES)
    assert [o.shape for o in objects] == ['cube', 'cylinder']
    cube, cylinder = objects
    assert cube.rgba == pytest.approx((0.35, 0.63, 0.31, 1.0))
    assert cube.position == pytest.approx((-0.5, 0.1, 0.025))
    np.testing.assert_allclose(quat_matrix(cube.quat), rotation_xyz(0, 0, math.pi / 4),
                               atol=1e-12)
    assert cylinder.position == pytest.approx((-0.6, -0.05, 0.0225))


def test_parse_skips_objects_that_fell_out_and_comments():
    text = ('# a comment line\n\n'
            '6.obj 0.69 0.48 0.63 -0.5 0.0 -999.5 0 0 0\n'
            'cube 1 0 0 -0.5 0.0 0.025 0 0 0  # ours: a shape name\n')
    objects = blocks.parse_test_case(text)
    assert [o.shape for o in objects] == ['cube']


@pytest.mark.parametrize('line, fragment', [
    ('4.obj 1 0 0 -0.5 0 0.025 0 0', 'expected 10 fields'),
    ('5.obj 1 0 0 -0.5 0 0.025 0 0 0', 'unknown shape'),
    ('4.obj 1 0 zero -0.5 0 0.025 0 0 0', 'could not convert'),
    ('4.obj 1 0 0 nan 0 0.025 0 0 0', 'finite'),
    ('4.obj 1.5 0 0 -0.5 0 0.025 0 0 0', 'colour'),
])
def test_parse_errors_name_the_line(line, fragment):
    with pytest.raises(blocks.TestCaseError) as error:
        blocks.parse_test_case('cube 1 0 0 -0.5 0 0.025 0 0 0\n' + line, source='case.txt')
    assert 'case.txt:2' in str(error.value)
    assert fragment in str(error.value)


def test_unreadable_file_is_a_test_case_error(tmp_path):
    with pytest.raises(blocks.TestCaseError):
        blocks.load_test_case(tmp_path / 'missing.txt')


def test_own_format_round_trip(tmp_path):
    original = blocks.random_objects(6, 11, WORKSPACE_X, WORKSPACE_Y)
    path = tmp_path / 'case.txt'
    path.write_text(blocks.format_test_case(original))
    loaded = blocks.load_test_case(path)
    assert [o.shape for o in loaded] == [o.shape for o in original]
    for a, b in zip(original, loaded):
        assert b.position == pytest.approx(a.position, abs=1e-8)
        assert b.rgba == pytest.approx(a.rgba, abs=1e-8)
        np.testing.assert_allclose(quat_matrix(b.quat), quat_matrix(a.quat), atol=1e-7)


def test_random_objects_deterministic_and_inside_the_workspace():
    first = blocks.random_objects(10, 5, WORKSPACE_X, WORKSPACE_Y)
    assert first == blocks.random_objects(10, 5, WORKSPACE_X, WORKSPACE_Y)
    assert first != blocks.random_objects(10, 6, WORKSPACE_X, WORKSPACE_Y)
    for i, obj in enumerate(first):
        x, y, z = obj.position
        assert WORKSPACE_X[0] + 0.1 <= x <= WORKSPACE_X[1] - 0.1
        assert WORKSPACE_Y[0] + 0.1 <= y <= WORKSPACE_Y[1] - 0.1
        assert obj.rgba[:3] == pytest.approx(blocks.COLOURS[i % 10])
        assert np.linalg.norm(obj.quat) == pytest.approx(1.0)
    heights = [o.position[2] for o in first]
    assert np.all(np.diff(heights) > 0.12)  # staggered: no two start in contact
    # Over many draws every shape appears.
    many = blocks.random_objects(200, 1, WORKSPACE_X, WORKSPACE_Y)
    assert {o.shape for o in many} == set(blocks.shape_names())
