"""Rotation bookkeeping: angles, canvases, and a fixed oriented filter in place of the heads."""

import math

import numpy as np
import pytest
import torch
from torch import nn
import torch.nn.functional as F
from vpg_perception.grid import HeightmapGrid
from vpg_policy import rotations
from vpg_policy.decision import GRASP, GRASP_ONLY, Policy, PUSH, PUSH_ONLY
from vpg_policy.q_network_base import QNetworkConfig
from vpg_policy.rotating_q_network import RotatingQNetwork


def test_angle_and_index_conventions():
    assert rotations.rotation_angle(0, 16) == 0.0
    assert rotations.rotation_angle(4, 16) == pytest.approx(math.pi / 2)
    assert rotations.rotation_angle(15, 16) == pytest.approx(2 * math.pi * 15 / 16)
    assert rotations.nearest_rotation_index(math.radians(67.0), 16) == 3
    assert rotations.nearest_rotation_index(-math.radians(22.5), 16) == 15
    assert rotations.grasp_equivalent_index(11, 16) == 3
    assert rotations.grasp_equivalent_index(5, 15) == 5
    # +x in the base frame is +col on the heightmap, +y is +row.
    assert rotations.pixel_direction(0.0) == pytest.approx((0.0, 1.0))
    assert rotations.pixel_direction(math.pi / 2) == pytest.approx((1.0, 0.0))
    assert rotations.action_direction(math.pi / 2) == pytest.approx((0.0, 1.0))
    with pytest.raises(ValueError):
        rotations.rotation_angle(16, 16)


def test_canvas_holds_the_whole_map_at_every_angle():
    assert rotations.canvas_size(56, 56, 2) == 80
    assert rotations.canvas_size(56, 56, 2) >= 56 * math.sqrt(2)
    maps = torch.ones(16, 1, 56, 56)
    angles = rotations.rotation_angles(16).float()
    canvas = rotations.rotate_to_canvas(maps, angles, 80)
    back = rotations.unrotate_canvas(canvas, angles, (56, 56), 80, (56, 56))
    # Every map cell, corners included, survives the round trip at every angle.
    interior = back[:, :, 2:-2, 2:-2]
    assert torch.allclose(interior, torch.ones_like(interior), atol=1e-5)
    assert back.min() > 0.45  # border cells blend with the zero outside, never vanish


def test_canvas_col_axis_points_along_the_action_direction():
    # A single hot cell at offset d * 10 from the centre lands on the canvas' +col axis.
    for index in range(16):
        angle = rotations.rotation_angle(index, 16)
        maps = torch.zeros(1, 1, 64, 64)
        drow, dcol = rotations.pixel_direction(angle)
        maps[0, 0, round(31.5 + 10 * drow), round(31.5 + 10 * dcol)] = 1.0
        canvas = rotations.rotate_to_canvas(maps, torch.tensor([angle]), 92)[0, 0]
        row, col = np.unravel_index(int(canvas.argmax()), canvas.shape)
        assert abs(row - 45.5) <= 1.0 and abs(col - (45.5 + 10)) <= 1.0, index


class HeightTrunk(nn.Module):
    """Stand-in trunk: table-relative height pooled to 1/4 resolution (no learning)."""

    def __init__(self, config):
        super().__init__()
        self.offset = config.height_mean / config.height_std

    def forward(self, inputs):
        height = inputs[:, 3:4] + self.offset  # = height / height_std, 0 on the table
        features = F.avg_pool2d(height, 4)
        return features, features


class FixedFilterHead(nn.Module):
    """Stand-in head: 2x pooling, then one fixed kernel; obeys the heads' stride-2 contract."""

    stride = 2

    def __init__(self, kernel):
        super().__init__()
        self.register_buffer('kernel', torch.as_tensor(kernel, dtype=torch.float32)[None, None])

    def forward(self, canvases):
        k = self.kernel.shape[-2:]
        return F.conv2d(F.avg_pool2d(canvases, 2), self.kernel,
                        padding=(k[0] // 2, k[1] // 2))


def line_filter():
    """Responds to a bar lying along the canvas' +col axis (centre row +, rows at +-2 cells -)."""
    kernel = np.zeros((5, 9), dtype=np.float32)
    kernel[2, :] = 1.0
    kernel[0, :] = kernel[4, :] = -1.0
    return kernel


def look_ahead_filter(cells):
    """Q at a cell = the feature `cells` cells ahead along +col (where a push would go)."""
    kernel = np.zeros((1, 2 * cells + 1), dtype=np.float32)
    kernel[0, 2 * cells] = 1.0
    return kernel


def stand_in_network(kernel, num_rotations=16):
    config = QNetworkConfig(num_rotations=num_rotations)
    return RotatingQNetwork(config, HeightTrunk(config), FixedFilterHead(kernel),
                            FixedFilterHead(kernel), trunk_stride=4, head_stride=2).eval()


def bar_scene(grid, centre, angle, length=0.24, width=0.024, height=0.05):
    """Make colour and height maps with one bar at centre (x, y), along `angle` (base frame)."""
    rows, cols = np.indices(grid.shape)
    points = grid.pixel_to_point(rows, cols)
    offset = points[..., :2] - np.asarray(centre)
    along = offset @ np.array([math.cos(angle), math.sin(angle)])
    across = offset @ np.array([-math.sin(angle), math.cos(angle)])
    on_bar = (np.abs(along) <= length / 2) & (np.abs(across) <= width / 2)
    heights = np.where(on_bar, height, 0.0).astype(np.float32)
    color = np.full(grid.shape + (3,), 90, dtype=np.uint8)
    color[on_bar] = (200, 40, 40)
    return color, heights, on_bar


@pytest.mark.parametrize('bar_index', [0, 3, 6, 10])
@pytest.mark.parametrize('primitive,allowed', [(PUSH, PUSH_ONLY), (GRASP, GRASP_ONLY)])
def test_bar_scores_highest_at_its_rotation_and_maps_back_onto_it(
        bar_index, primitive, allowed):
    grid = HeightmapGrid()
    bar_angle = rotations.rotation_angle(bar_index, 16)
    centre = (-0.52, 0.03)
    color, height, on_bar = bar_scene(grid, centre, bar_angle)
    policy = Policy(stand_in_network(line_filter()))

    decision = policy.decide(color, height, grid, allowed=allowed)

    assert decision.primitive == primitive
    # A bar has no head or tail: theta and theta + pi align equally well.
    assert decision.rotation_index % 8 == bar_index % 8
    maps = decision.push_q if primitive == PUSH else decision.grasp_q
    best_per_rotation = maps.reshape(16, -1).max(axis=1)
    perpendicular = (bar_index + 4) % 16
    assert best_per_rotation[perpendicular] < 0.5 * best_per_rotation[decision.rotation_index]
    assert on_bar[decision.row, decision.col]
    # The 3-D point is on the bar, at its top.
    x, y, z = decision.position
    offset = np.array([x, y]) - np.array(centre)
    across = offset @ np.array([-math.sin(bar_angle), math.cos(bar_angle)])
    assert abs(across) <= 0.012 + grid.resolution
    assert z == pytest.approx(grid.z_min + 0.05)


@pytest.mark.parametrize('index', range(16))
def test_push_direction_sign(index):
    # With a head that reads the feature 5 cells (5 * 8 px) ahead, the Q map of rotation i
    # peaks 40 px *behind* a lone block along d_i: pushing from there moves towards it.
    grid = HeightmapGrid()
    block = (112, 112)
    height = np.zeros(grid.shape, np.float32)
    height[block[0] - 6:block[0] + 6, block[1] - 6:block[1] + 6] = 0.05
    color = np.zeros(grid.shape + (3,), np.uint8)
    network = stand_in_network(look_ahead_filter(5))
    push_q, _ = Policy(network).q_maps(color, height)
    row, col = np.unravel_index(int(push_q[index].argmax()), push_q[index].shape)
    drow, dcol = rotations.pixel_direction(rotations.rotation_angle(index, 16))
    expected = (block[0] - 40 * drow, block[1] - 40 * dcol)
    assert math.hypot(row - expected[0], col - expected[1]) <= 6.0


def test_grasp_maps_are_symmetric_under_half_turns():
    grid = HeightmapGrid()
    color, height, _ = bar_scene(grid, (-0.5, 0.0), 0.4)
    push_q, grasp_q = Policy(stand_in_network(look_ahead_filter(3))).q_maps(color, height)
    np.testing.assert_array_equal(grasp_q[:8], grasp_q[8:])
    assert not np.allclose(push_q[:8], push_q[8:])
