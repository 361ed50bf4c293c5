"""Heatmap overlays and action geometry."""

import math

import numpy as np
import pytest

from vpg_policy.decision import Decision, GRASP, PUSH
from vpg_policy.visualization import (decision_images, draw_action, grasp_jaw_segments,
                                      overlay, push_arrow_points, q_colormap)


def test_colormap_runs_blue_to_red():
    q = np.linspace(0, 1, 100, dtype=np.float32).reshape(10, 10)
    image = q_colormap(q)
    assert image.shape == (10, 10, 3) and image.dtype == np.uint8
    low, high = image[0, 0], image[-1, -1]
    assert low[2] > low[0] and high[0] > high[2]  # rgb: blue at the minimum, red at the max
    flat = q_colormap(np.zeros((4, 4), np.float32))  # constant maps do not divide by zero
    assert flat.shape == (4, 4, 3)
    clipped = q_colormap(q, value_range=(0.0, 0.5))
    np.testing.assert_array_equal(clipped[-1, -1], clipped[-1, -2])


def test_overlay_blends_colour_and_heat():
    color = np.full((8, 8, 3), 200, np.uint8)
    q = np.zeros((8, 8), np.float32)
    out = overlay(color, q, alpha=0.0)
    np.testing.assert_array_equal(out, color)
    out = overlay(color, q, alpha=1.0)
    np.testing.assert_array_equal(out, q_colormap(q))


@pytest.mark.parametrize('primitive', [PUSH, GRASP])
def test_action_is_drawn_where_it_acts(primitive):
    image = np.zeros((64, 64, 3), np.uint8)
    draw_action(image, 20, 30, 0.0, primitive, push_length_px=20, grasp_width_px=16)
    assert image[20, 30].max() == 255  # centre marked
    if primitive == PUSH:
        assert image[20, 45].max() == 255  # shaft along +col (angle 0 = +x = +col)
        assert image[20, 15].max() == 0
    else:
        assert image[20, 22].max() == 255 and image[20, 38].max() == 255  # jaw line
        assert image[16, 38].max() == 255  # a finger across it


def test_decision_images_mark_the_chosen_rotation():
    rng = np.random.default_rng(0)
    push_q = rng.random((4, 32, 32)).astype(np.float32)
    grasp_q = rng.random((4, 32, 32)).astype(np.float32)
    decision = Decision(primitive=GRASP, rotation_index=1, num_rotations=4, angle=math.pi / 2,
                        row=10, col=12, position=(0.0, 0.0, 0.0), q_value=1.0,
                        exploratory=False, max_push_q=1.0, max_grasp_q=1.0, push_q=push_q,
                        grasp_q=grasp_q)
    color = np.zeros((32, 32, 3), np.uint8)
    push_image, grasp_image = decision_images(color, decision, 0.01, alpha=1.0)
    assert push_image.shape == grasp_image.shape == (32, 32, 3)
    # The grasp picture shows rotation 1 (away from the marks) and the mark at (10, 12).
    expected = q_colormap(grasp_q[1])
    np.testing.assert_array_equal(grasp_image[28:, :4], expected[28:, :4])
    assert grasp_image[10, 12].tolist() == [255, 255, 255]


def test_marker_geometry_in_the_base_frame():
    start, end = push_arrow_points((1.0, 2.0, 0.05), math.pi / 2, 0.1)
    np.testing.assert_allclose(start, [1.0, 2.0, 0.05])
    np.testing.assert_allclose(end, [1.0, 2.1, 0.05], atol=1e-12)
    segments = grasp_jaw_segments((0.0, 0.0, 0.0), 0.0, width=0.08, finger_length=0.02)
    np.testing.assert_allclose(segments[0][0], [-0.04, 0, 0])
    np.testing.assert_allclose(segments[0][1], [0.04, 0, 0])
    np.testing.assert_allclose(segments[1][0], [-0.04, -0.01, 0], atol=1e-12)
    assert len(segments) == 3
