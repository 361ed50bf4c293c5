"""
The heightmap grid: which workspace box a heightmap covers and at what resolution.

VPG's convention: pixel (row, col) covers x in [x_min + col * res, x_min + (col + 1) * res) and
y in [y_min + row * res, ...) of the robot base frame; heights are z - z_min (metres above the
table). Pure numpy; shared by perception (building maps) and the executor (pixel -> 3-D point).
"""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class HeightmapGrid:
    """Workspace bounds in the robot base frame (metres) and the map resolution (m/px)."""

    x_min: float = -0.724
    x_max: float = -0.276
    y_min: float = -0.224
    y_max: float = 0.224
    z_min: float = -0.0001
    z_max: float = 0.4
    resolution: float = 0.002

    def __post_init__(self):
        values = (self.x_min, self.x_max, self.y_min, self.y_max, self.z_min, self.z_max,
                  self.resolution)
        if not all(np.isfinite(values)):
            raise ValueError(f'heightmap grid values must be finite, got {values}')
        if self.resolution <= 0:
            raise ValueError(f'resolution must be > 0 m/px, got {self.resolution}')
        if self.x_max <= self.x_min or self.y_max <= self.y_min or self.z_max <= self.z_min:
            raise ValueError('workspace bounds must satisfy min < max on every axis')

    @property
    def shape(self):
        """(rows, cols) of the maps: rows along y, cols along x."""
        rows = int(round((self.y_max - self.y_min) / self.resolution))
        cols = int(round((self.x_max - self.x_min) / self.resolution))
        return rows, cols

    def pixel_to_point(self, row, col, height=0.0):
        """
        Centre of pixel (row, col) as a base-frame point; height in metres above z_min.

        Accepts scalars or equal-shaped arrays; returns an array (..., 3).
        """
        row, col, height = np.broadcast_arrays(np.asarray(row, dtype=np.float64),
                                               np.asarray(col, dtype=np.float64),
                                               np.asarray(height, dtype=np.float64))
        x = self.x_min + (col + 0.5) * self.resolution
        y = self.y_min + (row + 0.5) * self.resolution
        return np.stack([x, y, self.z_min + height], axis=-1)

    def point_to_pixel(self, points):
        """
        (row, col) integer pixel of base-frame points (..., 3) or (..., 2), no bounds check.

        Use `contains` to know whether the pixel lies in the map.
        """
        points = np.asarray(points, dtype=np.float64)
        col = np.floor((points[..., 0] - self.x_min) / self.resolution).astype(np.int64)
        row = np.floor((points[..., 1] - self.y_min) / self.resolution).astype(np.int64)
        return row, col

    def contains(self, row, col):
        """Whether pixel indices lie inside the map."""
        rows, cols = self.shape
        row, col = np.asarray(row), np.asarray(col)
        return (row >= 0) & (row < rows) & (col >= 0) & (col < cols)
