"""
Pictures of a decision: Q heatmaps over the colour map, and the action's geometry.

Images are rgb8 numpy arrays (H, W, 3) laid out like the heightmap (row = y, col = x), ready
for vpg_perception.conversions.numpy_to_image. Geometry helpers return base-frame points
for RViz markers. Pure numpy + OpenCV.
"""

import math

import cv2
import numpy as np

from vpg_policy.decision import GRASP, PUSH

ACTION_COLOR = (255, 255, 255)
OUTLINE_COLOR = (0, 0, 0)


def q_colormap(q_map, value_range=None):
    """
    Colour a Q map (H, W) with the JET colour map, as rgb8.

    value_range: (low, high) mapped to blue .. red (values outside are clipped); None uses
    the map's own minimum and maximum.
    """
    q_map = np.asarray(q_map, dtype=np.float32)
    low, high = value_range if value_range is not None else (float(q_map.min()),
                                                             float(q_map.max()))
    scale = 255.0 / (high - low) if high > low else 0.0
    levels = np.clip((q_map - low) * scale, 0, 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(levels, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)


def overlay(color, q_map, alpha=0.5, value_range=None):
    """Blend the colour map (H, W, 3) uint8 with the Q map's heatmap; alpha = heatmap weight."""
    heat = q_colormap(q_map, value_range)
    return cv2.addWeighted(heat, float(alpha), np.ascontiguousarray(color), 1.0 - float(alpha),
                           0.0)


def draw_action(image, row, col, angle, primitive, push_length_px, grasp_width_px):
    """
    Mark an action on an rgb8 image in place (and return it).

    A push is an arrow from the pixel along the push direction; a grasp is the line the
    fingers close along, with a bar for each finger. Direction (dcol, drow) =
    (cos angle, sin angle), as in rotations.py.
    """
    dcol, drow = math.cos(angle), math.sin(angle)
    centre = np.array([col, row], dtype=np.float64)
    direction = np.array([dcol, drow])
    normal = np.array([-drow, dcol])

    def pt(p):
        return int(round(p[0])), int(round(p[1]))

    for colour, thickness in ((OUTLINE_COLOR, 4), (ACTION_COLOR, 2)):
        if primitive == PUSH:
            cv2.arrowedLine(image, pt(centre), pt(centre + push_length_px * direction), colour,
                            thickness, cv2.LINE_AA, tipLength=0.25)
        else:
            half = grasp_width_px / 2.0
            finger = max(grasp_width_px / 4.0, 2.0)
            ends = (centre - half * direction, centre + half * direction)
            cv2.line(image, pt(ends[0]), pt(ends[1]), colour, thickness, cv2.LINE_AA)
            for end in ends:
                cv2.line(image, pt(end - finger * normal), pt(end + finger * normal), colour,
                         thickness, cv2.LINE_AA)
        cv2.circle(image, pt(centre), 3, colour, -1 if thickness == 2 else thickness,
                   cv2.LINE_AA)
    return image


def decision_images(color, decision, resolution, push_length=0.1, grasp_width=0.085,
                    alpha=0.5):
    """
    (push image, grasp image), rgb8: each primitive's best rotation over the colour map.

    The chosen action is drawn on its primitive's image; the other image shows its own best
    action, for comparison. Returns None for a primitive without Q maps (disallowed maps are
    still drawn when present). resolution: metres per pixel, to size the marks.
    """
    images = []
    for primitive, maps in ((PUSH, decision.push_q), (GRASP, decision.grasp_q)):
        if maps is None:
            images.append(None)
            continue
        if primitive == decision.primitive:
            rotation, row, col = decision.rotation_index, decision.row, decision.col
        else:
            rotation, row, col = np.unravel_index(int(np.argmax(maps)), maps.shape)
        angle = 2.0 * math.pi * int(rotation) / maps.shape[0]
        image = overlay(color, maps[int(rotation)], alpha)
        draw_action(image, int(row), int(col), angle, primitive, push_length / resolution,
                    grasp_width / resolution)
        images.append(image)
    return tuple(images)


def push_arrow_points(position, angle, length=0.1):
    """Start and end (x, y, z) of a push of `length` metres from `position` at `angle`."""
    start = np.asarray(position, dtype=np.float64)
    end = start + length * np.array([math.cos(angle), math.sin(angle), 0.0])
    return start, end


def grasp_jaw_segments(position, angle, width=0.085, finger_length=0.02):
    """
    Line segments [(p, q), ...] drawing an open parallel-jaw gripper at a grasp.

    The closing line of `width` metres along the grasp direction, and one finger of
    `finger_length` across it at each end.
    """
    centre = np.asarray(position, dtype=np.float64)
    direction = np.array([math.cos(angle), math.sin(angle), 0.0])
    normal = np.array([-math.sin(angle), math.cos(angle), 0.0])
    ends = (centre - width / 2 * direction, centre + width / 2 * direction)
    segments = [ends]
    for end in ends:
        segments.append((end - finger_length / 2 * normal, end + finger_length / 2 * normal))
    return segments
