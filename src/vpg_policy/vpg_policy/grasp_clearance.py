"""
Where the open fingers of a top-down grasp have room to go down, from the heightmap alone.

A grasp sends the pinch point `grasp_depth` below the surface at the chosen pixel, but never
lower than `grasp_floor` above the table (the executor's safety envelope raises lower targets
to its z_min, so that the fingers never reach the table; for most blocks that is where the
pinch point ends up). The open
2F-85's pads stand beside it along the jaw axis and reach below it; where the heightmap shows
something under a pad higher than the pad's lowest point, the pad lands on it: the robot
controller stops the descent on contact (ur_robot_driver's tool contact stop) and the grasp
closes too high. In the MuJoCo cell such grasps almost never succeed
(`python -m vpg_training.grasp_landing`).

Pad geometry of the MuJoCo Menagerie 2F-85 with the fingers open, in the pinch point's frame:
the pads span 42.7-50.7 mm from the pinch point along the jaw axis, 22 mm across, and reach
4.4 mm below it. Angles as in vpg_policy.rotations: from +x towards +y, heightmap row = y and
col = x. Pure numpy / OpenCV.

A cell counts as under a pad when any part of its square may overlap the pad (the rectangle
grown by half a cell's diagonal), not only when its centre does: in the cell, grasps the mask
let through were stopped on a pad's corner or inner edge touching a block edge that fell
between cell centres (`tools/grasp_room_probe.py`). Beyond the map's edge the edge's heights
continue (a block the edge cuts goes on; bare table stays bare), since a pad reaching past
the edge lands on whatever the camera did not map there.
"""

import math

import cv2
import numpy as np

PAD_INNER = 0.0427
"""m from the pinch point to the open pads' inner faces, along the jaw axis."""
PAD_OUTER = 0.0507
"""m from the pinch point to the pads' outer faces."""
PAD_HALF_WIDTH = 0.011
"""m, half the pads' extent across the jaw axis."""
PAD_DIP = 0.0044
"""m the open pads reach below the pinch point."""
GRASP_DEPTH = 0.03
"""m below the surface the pinch point is sent (the executor's primitives.grasp_depth)."""
GRASP_FLOOR = 0.02
"""m above the table (heightmap zero) the pinch point never goes below (executor safety.z_min)."""
MARGIN = 0.005
"""m a surface under a pad must stand above the pad's lowest point to count (depth noise)."""


def pad_kernel(angle, resolution):
    """uint8 kernel (odd square, centred): 1 at the cells that may lie under either open pad."""
    grow = resolution / math.sqrt(2.0)  # half a cell's diagonal
    reach = int(math.ceil((PAD_OUTER + grow) / resolution)) + 1
    ys, xs = np.mgrid[-reach:reach + 1, -reach:reach + 1] * resolution
    along = xs * math.cos(angle) + ys * math.sin(angle)
    across = -xs * math.sin(angle) + ys * math.cos(angle)
    return ((np.abs(along) >= PAD_INNER - grow) & (np.abs(along) <= PAD_OUTER + grow)
            & (np.abs(across) <= PAD_HALF_WIDTH + grow)).astype(np.uint8)


def pad_bottom(surface, grasp_depth=GRASP_DEPTH, grasp_floor=GRASP_FLOOR):
    """Height (m above the table) of the open pads' lowest point at the end of the descent."""
    return np.maximum(surface - grasp_depth, grasp_floor) - PAD_DIP


def blocked(height, row, col, angle, resolution, grasp_depth=GRASP_DEPTH, margin=MARGIN,
            grasp_floor=GRASP_FLOOR):
    """Whether a pad of a grasp at (row, col) and jaw angle `angle` lands on something."""
    height = np.asarray(height, dtype=float)
    tip_z = float(pad_bottom(float(height[row, col]), grasp_depth, grasp_floor))
    kernel = pad_kernel(angle, resolution)
    reach = kernel.shape[0] // 2
    rows, cols = np.nonzero(kernel)
    # Beyond the edge the edge's heights continue (as clearance_masks' replicated border).
    rows = np.clip(rows + row - reach, 0, height.shape[0] - 1)
    cols = np.clip(cols + col - reach, 0, height.shape[1] - 1)
    return bool(height[rows, cols].max() > tip_z + margin)


def clearance_masks(height, resolution, num_rotations, grasp_depth=GRASP_DEPTH, margin=MARGIN,
                    grasp_floor=GRASP_FLOOR):
    """
    Boolean (R, H, W): True where a grasp at that rotation and pixel has room for both pads.

    Rotation i stands for the jaw angle i * 2 pi / R; the pads are symmetric, so i and i + R/2
    share one computation. Beyond the map's edge the edge's heights continue.
    """
    height = np.ascontiguousarray(height, dtype=np.float32)
    tip_z = (pad_bottom(height, np.float32(grasp_depth), np.float32(grasp_floor))
             + np.float32(margin)).astype(np.float32)
    masks = np.empty((num_rotations,) + height.shape, dtype=bool)
    done = {}
    for i in range(num_rotations):
        angle = 2.0 * math.pi * i / num_rotations
        key = round(math.degrees(angle) % 180.0, 6)
        if key not in done:
            highest = cv2.dilate(height, pad_kernel(angle, resolution),
                                 borderType=cv2.BORDER_REPLICATE)
            done[key] = highest <= tip_z
        masks[i] = done[key]
    return masks
