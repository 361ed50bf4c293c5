"""Heightmaps from synthetic RGB-D frames of exactly known scenes, and VPG's reference."""

import numpy as np
import pytest
from vpg_perception.grid import HeightmapGrid
from vpg_perception.heightmap import (backproject, build_heightmap, colorize_height,
                                      fit_table_plane, heightmap_pixel_to_point,
                                      HeightmapBuilder, project, TableFit)
from vpg_test_support import synthetic_rgbd as synthetic
from vpg_test_support.vpg_heightmap_reference import vpg_heightmap

K = synthetic.intrinsics()
GRID = HeightmapGrid()
# Straight down from 0.75 m above the workspace centre, image up = base +x.
TOP_DOWN = synthetic.look_at((-0.5, 0.0, 0.75), (-0.5, 0.0, 0.0), up=(1.0, 0.0, 0.0))
# Oblique, like the simulated cell's camera: beside the arm, tilted about 15 degrees.
OBLIQUE = synthetic.look_at((-0.32, 0.025, 0.70), (-0.5, 0.005, 0.0), up=(-1.0, 0.0, 0.0))
CAMERAS = {'top_down': TOP_DOWN, 'oblique': OBLIQUE}


def cells_of(x, y):
    """Heightmap (row, col) containing base-frame (x, y)."""
    return GRID.point_to_pixel(np.array([x, y]))


@pytest.mark.parametrize('camera', sorted(CAMERAS))
@pytest.mark.parametrize('yaw', [0.0, 0.6])
def test_box_has_right_height_and_footprint(camera, yaw):
    size = np.array([0.05, 0.08, 0.04])
    centre = np.array([-0.52, 0.03, size[2] / 2])
    box = synthetic.Box(synthetic.pose_from(synthetic.rot_z(yaw), centre), tuple(size))
    color, depth = synthetic.render(K, CAMERAS[camera], boxes=[box])
    maps = build_heightmap(color, depth.astype(np.float32), K, CAMERAS[camera], GRID)
    assert maps.color.shape == (224, 224, 3) and maps.height.shape == (224, 224)
    assert maps.height.dtype == np.float32 and maps.color.dtype == np.uint8

    # Every cell centre's position in the box frame.
    rows, cols = np.mgrid[0:224, 0:224]
    centres = GRID.pixel_to_point(rows, cols)
    local = (centres - centre) @ synthetic.rot_z(yaw)
    margin = GRID.resolution  # one pixel
    inside = np.all(np.abs(local[..., :2]) < size[:2] / 2 - margin, axis=-1)
    outside = np.any(np.abs(local[..., :2]) > size[:2] / 2 + margin, axis=-1)
    high = maps.height > size[2] / 2

    # Footprint within one pixel: every cell a pixel inside the box edge is high, every cell
    # a pixel outside it is not; and the top face reads the box height.
    assert np.all(high[inside]) and not np.any(high[outside])
    expected_height = size[2] - GRID.z_min
    np.testing.assert_allclose(maps.height[inside], expected_height, atol=0.002)
    assert np.all(maps.color[inside] == box.color)
    # The table reads 0 (+ the z_min offset) wherever it is seen.
    table = outside & maps.observed
    assert table.mean() > 0.9 * outside.mean()
    np.testing.assert_allclose(maps.height[table], -GRID.z_min, atol=1e-6)


def test_box_footprint_extent_matches_within_one_pixel():
    size = (0.05, 0.08, 0.04)
    centre = (-0.52, 0.03, 0.02)
    box = synthetic.Box(synthetic.pose_from(np.eye(3), centre), size)
    color, depth = synthetic.render(K, TOP_DOWN, boxes=[box])
    maps = build_heightmap(color, depth, K, TOP_DOWN, GRID)
    rows, cols = np.nonzero(maps.height > 0.02)
    row_lo, col_lo = cells_of(centre[0] - size[0] / 2, centre[1] - size[1] / 2)
    row_hi, col_hi = cells_of(centre[0] + size[0] / 2, centre[1] + size[1] / 2)
    assert abs(rows.min() - row_lo) <= 1 and abs(rows.max() - row_hi) <= 1
    assert abs(cols.min() - col_lo) <= 1 and abs(cols.max() - col_hi) <= 1
    # 25 x 40 cells of 2 mm.
    assert abs(len(rows) - 25 * 40) <= 25 + 40 + 1


def test_pixel_point_pixel_round_trip_is_exact():
    box = synthetic.Box(synthetic.pose_from(np.eye(3), (-0.45, -0.1, 0.03)), (0.06, 0.06, 0.06))
    color, depth = synthetic.render(K, TOP_DOWN, boxes=[box])
    maps = build_heightmap(color, depth, K, TOP_DOWN, GRID)
    rows, cols = np.mgrid[0:224, 0:224]
    points = heightmap_pixel_to_point(GRID, maps.height, rows, cols)
    back_rows, back_cols = GRID.point_to_pixel(points)
    np.testing.assert_array_equal(back_rows, rows)
    np.testing.assert_array_equal(back_cols, cols)
    # The box's centre pixel gives a point on its top face.
    row, col = cells_of(-0.45, -0.1)
    np.testing.assert_allclose(heightmap_pixel_to_point(GRID, maps.height, row, col),
                               [-0.45, -0.1, 0.06], atol=0.002)
    with pytest.raises(IndexError):
        heightmap_pixel_to_point(GRID, maps.height, 224, 0)


def test_camera_pixel_round_trip():
    rng = np.random.default_rng(3)
    pixels = rng.uniform([0, 0], [640, 480], (50, 2))
    depth = rng.uniform(0.2, 2.0, 50)
    np.testing.assert_allclose(project(backproject(pixels, depth, K), K), pixels, atol=1e-9)


def random_scene(rng, camera):
    color, depth = synthetic.render(K, camera, boxes=synthetic.random_boxes(rng))
    depth += rng.normal(0.0, 0.001, depth.shape)
    return color, depth


@pytest.mark.parametrize('camera', sorted(CAMERAS))
def test_matches_vpg_reference(camera):
    rng = np.random.default_rng(7)
    color, depth = random_scene(rng, CAMERAS[camera])
    depth[rng.random(depth.shape) < 0.05] = 0.0  # holes
    depth_scale = 1.01
    maps = build_heightmap(color, depth, K, CAMERAS[camera], GRID, depth_scale)
    ref_color, ref_height = vpg_heightmap(color, depth, K, CAMERAS[camera], GRID, depth_scale)
    np.testing.assert_array_equal(maps.observed, ~np.isnan(ref_height))
    np.testing.assert_allclose(maps.height, np.nan_to_num(ref_height), atol=1e-6, rtol=0)
    np.testing.assert_array_equal(maps.color, ref_color)


def test_highest_point_wins_and_depth_policy():
    # A 2 x 2 image looking straight down; all four rays land in the same cell.
    grid = HeightmapGrid(x_min=-0.01, x_max=0.01, y_min=-0.01, y_max=0.01, z_min=0.0,
                         z_max=0.5, resolution=0.02)
    k = np.array([[1000.0, 0.0, 0.5], [0.0, 1000.0, 0.5], [0.0, 0.0, 1.0]])
    camera = synthetic.look_at((0.0, 0.0, 1.0), (0.0, 0.0, 0.0), up=(1.0, 0.0, 0.0))
    color = np.array([[[10, 0, 0], [20, 0, 0]], [[30, 0, 0], [40, 0, 0]]], dtype=np.uint8)

    def run(depth):
        return build_heightmap(color, np.array(depth, dtype=np.float64), k, camera, grid)

    maps = run([[0.9, 0.7], [0.8, 0.95]])
    assert maps.height[0, 0] == pytest.approx(0.3)
    assert tuple(maps.color[0, 0]) == (20, 0, 0)
    # No data (0, NaN, inf, negative) is ignored: the highest valid point still wins.
    maps = run([[0.0, np.nan], [np.inf, 0.8]])
    assert maps.height[0, 0] == pytest.approx(0.2) and maps.color[0, 0, 0] == 40
    maps = run([[-0.5, 0.0], [np.nan, np.inf]])
    assert not maps.observed[0, 0] and maps.height[0, 0] == 0 and maps.color[0, 0, 0] == 0
    # At or above z_max: ignored; below z_min: kept as height 0.
    maps = run([[0.4, 0.45], [1.2, 1.3]])
    assert maps.observed[0, 0] and maps.height[0, 0] == 0.0
    assert maps.color[0, 0, 0] == 30  # the higher of the two points below the table
    maps = run([[0.4, 0.45], [0.49, 0.3]])
    assert not maps.observed[0, 0]


def test_points_outside_workspace_are_ignored():
    camera = synthetic.look_at((-0.5, 0.0, 0.75), (-0.5, 0.0, 0.0), up=(1.0, 0.0, 0.0))
    # A wide box around the workspace edge: only its part inside shows.
    box = synthetic.Box(synthetic.pose_from(np.eye(3), (-0.26, 0.0, 0.05)), (0.1, 0.1, 0.1))
    color, depth = synthetic.render(K, camera, boxes=[box])
    maps = build_heightmap(color, depth, K, camera, GRID)
    high_cols = np.nonzero((maps.height > 0.05).any(axis=0))[0]
    assert abs(high_cols.min() - cells_of(-0.31, 0.0)[1]) <= 1 and high_cols.max() == 223


def test_builder_reuses_geometry_and_follows_pose_changes():
    rng = np.random.default_rng(11)
    color, depth = random_scene(rng, TOP_DOWN)
    builder = HeightmapBuilder(GRID)
    first = builder.build(color, depth, K, TOP_DOWN)
    again = builder.build(color, depth, K, TOP_DOWN)
    np.testing.assert_array_equal(first.height, again.height)
    shifted = TOP_DOWN.copy()
    shifted[0, 3] += 0.01  # camera 1 cm further along x: the scene moves 5 px
    moved = builder.build(color, depth, K, shifted)
    np.testing.assert_array_equal(moved.height[:, 5:-5], first.height[:, :-10])


@pytest.mark.parametrize('kwargs,match', [
    ({'depth': np.zeros((480, 640), np.uint16)}, 'float'),
    ({'color': np.zeros((480, 641, 3), np.uint8)}, 'color'),
    ({'intrinsics': np.eye(4)}, '3x3'),
    ({'intrinsics': np.array([[0.0, 0, 1], [0, 1, 1], [0, 0, 1]])}, 'pinhole'),
    ({'base_T_camera': np.diag([1.0, 1.0, -1.0, 1.0])}, 'rigid'),
    ({'depth_scale': 0.0}, 'depth_scale'),
])
def test_bad_input_raises(kwargs, match):
    args = {'color': np.zeros((480, 640, 3), np.uint8), 'depth': np.zeros((480, 640)),
            'intrinsics': K, 'base_T_camera': TOP_DOWN, 'depth_scale': 1.0}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        HeightmapBuilder(GRID).build(**args)


def test_colorize_height():
    height = np.array([[0.0, 0.075, 0.15, 1.0, np.nan]], dtype=np.float32)
    image = colorize_height(height, max_height=0.15)
    assert image.shape == (1, 5, 3) and image.dtype == np.uint8
    assert image[0, 0, 2] > image[0, 0, 0]  # low: blue
    assert image[0, 2, 0] > image[0, 2, 2]  # high: red
    np.testing.assert_array_equal(image[0, 3], image[0, 2])
    np.testing.assert_array_equal(image[0, 4], image[0, 0])


def boxes_scene(camera, depth_factor, coverage_boxes=4):
    """Four 40 mm boxes on the table seen with depth scaled by depth_factor (a scale error)."""
    boxes = [synthetic.Box(synthetic.pose_from(synthetic.rot_z(0.3 * i), (x, y, 0.02)),
                           (0.05, 0.07, 0.04))
             for i, (x, y) in enumerate([(-0.6, -0.1), (-0.42, 0.12), (-0.5, 0.0),
                                         (-0.62, 0.13)][:coverage_boxes])]
    color, depth = synthetic.render(K, camera, boxes=boxes)
    return color, depth * depth_factor


def test_table_fit_removes_a_depth_scale_error():
    # 1 % short depth from 0.7 m raises the table by about 7 mm and tilts it (oblique view).
    color, depth = boxes_scene(OBLIQUE, 0.99)
    plain = HeightmapBuilder(GRID).build(color, depth, K, OBLIQUE)
    fitted = HeightmapBuilder(GRID, TableFit()).build(color, depth, K, OBLIQUE)
    truth = HeightmapBuilder(GRID).build(*boxes_scene(OBLIQUE, 1.0), K, OBLIQUE)
    table = truth.observed & (truth.height < 0.001)
    boxes = truth.height > 0.039
    assert np.median(plain.height[table]) > 0.005
    assert fitted.table.applied and 0.005 < fitted.table.correction < 0.015
    # (the scale error also shifts the boxes' outlines a little: a few table cells of the
    # exact scene are box cells of the scaled one)
    assert np.quantile(fitted.height[table], 0.98) < 0.001
    # Box tops are 40 mm above the table: measured from the fitted plane they read 40 mm.
    np.testing.assert_allclose(np.median(fitted.height[boxes]), 0.04, atol=0.001)


def test_table_fit_is_not_applied_beyond_its_bound_or_without_table():
    color, depth = boxes_scene(TOP_DOWN, 0.97)  # 22 mm: a wrong calibration, not noise
    plain = HeightmapBuilder(GRID).build(color, depth, K, TOP_DOWN)
    fitted = HeightmapBuilder(GRID, TableFit()).build(color, depth, K, TOP_DOWN)
    assert not fitted.table.applied and 'calibration' in fitted.table.reason
    np.testing.assert_array_equal(fitted.height, plain.height)
    # A slab covering the whole workspace: its top is no table.
    slab = synthetic.Box(synthetic.pose_from(np.eye(3), (-0.5, 0.0, 0.0125)), (0.6, 0.6, 0.025))
    color, depth = synthetic.render(K, TOP_DOWN, boxes=[slab])
    covered = HeightmapBuilder(GRID, TableFit()).build(color, depth, K, TOP_DOWN)
    assert not covered.table.applied
    assert np.median(covered.height) > 0.024


def test_table_fit_finds_a_plane_among_objects_and_noise():
    rng = np.random.default_rng(3)
    rows, cols = np.mgrid[0:224, 0:224]
    table = 0.006 + 2e-5 * cols - 1e-5 * rows
    height = table + rng.normal(0.0, 0.0011, table.shape)
    objects = (rows // 40 + cols // 40) % 3 == 0  # a third of the cells, 25-50 mm tall
    height[objects] += 0.025 + 0.025 * rng.random(objects.sum())
    observed = rng.random(table.shape) > 0.05
    plane = fit_table_plane(height, observed)
    assert plane.applied and plane.inliers > 0.6
    np.testing.assert_allclose(plane.offsets(height.shape), table, atol=0.0005)
    assert not fit_table_plane(height, np.zeros_like(observed)).applied
    with pytest.raises(ValueError):
        TableFit(stride=0)
