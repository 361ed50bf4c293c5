"""
The heightmap algorithm of the original VPG code (`utils.get_heightmap`), kept as an oracle.

Tests and bench/heightmap.py compare HeightmapBuilder against it. It follows the original step
by step: back-project every pixel, transform all points to the base frame, sort them by
height, drop points outside the workspace in x, y or above z_max, then scatter into the map
so that (later, higher) points overwrite lower ones. Empty cells come out NaN, as in VPG; its
`main.py` sets them to 0 before use. Slow by design; do not use it in the pipeline.
"""

import numpy as np


def vpg_heightmap(color, depth, intrinsics, base_T_camera, grid, depth_scale=1.0):
    """
    Return VPG's (color (rows, cols, 3) uint8, height (rows, cols) float64) of one frame.

    Same arguments as HeightmapBuilder.build. Heights are z - grid.z_min, clamped at 0, with NaN
    where no point fell.
    """
    k = np.asarray(intrinsics, dtype=np.float64)
    pose = np.asarray(base_T_camera, dtype=np.float64)
    depth = np.asarray(depth, dtype=np.float64) * depth_scale
    im_h, im_w = depth.shape
    rows, cols = grid.shape

    pix_x, pix_y = np.meshgrid(np.linspace(0, im_w - 1, im_w), np.linspace(0, im_h - 1, im_h))
    cam_x = (pix_x - k[0, 2]) * (depth / k[0, 0])
    cam_y = (pix_y - k[1, 2]) * (depth / k[1, 1])
    cam_points = np.stack([cam_x.ravel(), cam_y.ravel(), depth.ravel()], axis=1)
    colors = color.reshape(-1, 3)

    points = (pose[:3, :3] @ cam_points.T + pose[:3, 3:]).T
    order = np.argsort(points[:, 2])
    points = points[order]
    colors = colors[order]

    keep = ((points[:, 0] >= grid.x_min) & (points[:, 0] < grid.x_max)
            & (points[:, 1] >= grid.y_min) & (points[:, 1] < grid.y_max)
            & (points[:, 2] < grid.z_max))
    points = points[keep]
    colors = colors[keep]

    color_map = np.zeros((rows, cols, 3), dtype=np.uint8)
    height = np.zeros((rows, cols))
    pix_col = np.floor((points[:, 0] - grid.x_min) / grid.resolution).astype(int)
    pix_row = np.floor((points[:, 1] - grid.y_min) / grid.resolution).astype(int)
    color_map[pix_row, pix_col] = colors
    height[pix_row, pix_col] = points[:, 2]
    height = height - grid.z_min
    height[height < 0] = 0
    height[height == -grid.z_min] = np.nan
    return color_map, height
