"""
Orthographic colour and height maps of the workspace from one RGB-D frame, as VPG builds them.

Every depth pixel is back-projected with the intrinsics, moved into the robot base frame with
the calibrated camera pose and dropped into the HeightmapGrid cell below it; where several
points fall into one cell the highest wins (it is the surface a top-down gripper meets).
Pure numpy (cv2 only to colourise heights for display); no ROS.

Policy for imperfect depth, the same for every caller:

- depth that is 0, negative, NaN or infinite is no data: the pixel gives no point;
- points outside the workspace box in x or y, or at or above z_max, are ignored (the arm
  above the table, the floor beyond it);
- points below z_min are kept and read as height 0, as in VPG: depth noise on the table top
  then still marks table cells as seen instead of leaving holes;
- cells no point falls into get height 0 and colour black (VPG's `main.py` turns its NaN holes
  into 0 before use); `Heightmaps.observed` tells them apart from seen table.

Optionally (`TableFit`, on in the heightmap node) the table is found in each frame and heights
are measured from it rather than from z_min: a plane is fitted to the lowest observed cells
and subtracted before heights below 0 are clipped. A depth scale off by 1 % (within what a
RealSense's absolute accuracy and a calibration fit leave) puts a table 0.88 m from the camera
9 mm above z_min, and with the sensor's noise 18 % of its cells then stand higher than the
1 cm at which the policy's action mask and VPG's rewards see an object (measured in the MuJoCo
cell with the D415 model); a camera tilted by 0.3° tilts the table by 2 mm across the
workspace. The fit removes both. Its correction is bounded (`max_correction`): a larger one
means a wrong calibration, or a table hidden under objects, and is not applied.
"""

from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np

from vpg_perception.grid import HeightmapGrid

# High word below every ordered float32 height (-inf maps to -2139095041).
_EMPTY_KEY = np.int64(np.iinfo(np.int32).min) << 32


class Heightmaps(NamedTuple):
    """
    The maps of one frame; rows along base-frame y, columns along x (see HeightmapGrid).

    color: (rows, cols, 3) uint8 RGB; height: (rows, cols) float32 metres above grid.z_min;
    observed: (rows, cols) bool, True where at least one camera point fell.
    """

    color: np.ndarray
    height: np.ndarray
    observed: np.ndarray
    table: 'TablePlane | None' = None
    """The table fit of this frame, when the builder has a TableFit."""


@dataclass(frozen=True)
class TableFit:
    """How the table plane is found in a frame (see fit_table_plane)."""

    max_correction: float = 0.015
    """m; a fitted plane farther than this from z_min at a workspace corner is not applied
    (the smallest VPG block is 25 mm tall, so object tops cannot pass as the table)."""
    inlier_band: float = 0.004
    """m; cells this close to the plane are table (D415 noise at 0.9 m is about 1.1 mm RMS,
    plus 1 mm quantisation)."""
    init_fraction: float = 0.3
    """The first fit uses the lowest this fraction of observed cells (objects may cover the
    rest)."""
    min_inliers: float = 0.2
    """The fit is not applied when fewer than this fraction of observed cells are table."""
    stride: int = 4
    """Every stride-th cell in x and y enters the fit (the plane has three parameters)."""

    def __post_init__(self):
        if not (self.max_correction > 0 and self.inlier_band > 0 and self.stride >= 1
                and 0 < self.init_fraction <= 1 and 0 <= self.min_inliers <= 1):
            raise ValueError(f'invalid TableFit {self}')


class TablePlane(NamedTuple):
    """
    A table plane fitted to one frame: height offset (m) = a·col + b·row + c on the grid.

    applied: whether it was subtracted; reason: why not, when not.
    """

    a: float
    b: float
    c: float
    inliers: float
    """Fraction of the fitted cells within the inlier band."""
    correction: float
    """Largest |offset| at the workspace's corners, m."""
    applied: bool
    reason: str = ''

    def offsets(self, shape):
        """Return the plane's height offset at every cell of a (rows, cols) grid, float32."""
        rows, cols = np.ogrid[:shape[0], :shape[1]]
        return (self.a * cols + self.b * rows + self.c).astype(np.float32)


def fit_table_plane(height, observed, config=TableFit()):
    """
    Fit the table plane to raw heights (m above z_min, not clipped at 0) of observed cells.

    Least squares on the lowest init_fraction of the cells, then twice on the cells within
    inlier_band of the plane. Returns a TablePlane; applied is False (with the reason) when too
    few cells are table or the plane lies farther than max_correction from z_min.
    """
    height = np.asarray(height, dtype=np.float64)
    rows_n, cols_n = height.shape
    rows, cols = np.mgrid[0:rows_n:config.stride, 0:cols_n:config.stride]
    keep = np.asarray(observed)[rows, cols] & np.isfinite(height[rows, cols])
    z = height[rows, cols][keep]
    if z.size < 3:
        return TablePlane(0.0, 0.0, 0.0, 0.0, 0.0, False, 'no observed cells')
    design = np.column_stack([cols[keep], rows[keep], np.ones(z.size)]).astype(np.float64)
    select = z <= np.quantile(z, config.init_fraction)
    coef = np.zeros(3)
    for _ in range(3):
        if select.sum() < 3:
            break
        coef = np.linalg.lstsq(design[select], z[select], rcond=None)[0]
        select = np.abs(z - design @ coef) < config.inlier_band
    inliers = float(select.mean())
    corners = np.array([[0, 0, 1], [cols_n - 1, 0, 1], [0, rows_n - 1, 1],
                        [cols_n - 1, rows_n - 1, 1]], dtype=np.float64) @ coef
    correction = float(np.max(np.abs(corners)))
    a, b, c = (float(v) for v in coef)
    if inliers < config.min_inliers:
        return TablePlane(a, b, c, inliers, correction, False,
                          f'only {100 * inliers:.0f} % of the cells lie on a plane')
    if correction > config.max_correction:
        return TablePlane(a, b, c, inliers, correction, False,
                          f'the table plane lies {1000 * correction:.1f} mm from z_min, more '
                          f'than {1000 * config.max_correction:.1f} mm: check the calibration')
    return TablePlane(a, b, c, inliers, correction, True)


def check_intrinsics(intrinsics):
    """Return K as a float64 (3, 3) array; ValueError unless it is a finite pinhole matrix."""
    k = np.asarray(intrinsics, dtype=np.float64)
    if k.shape != (3, 3) or not np.all(np.isfinite(k)):
        raise ValueError(f'intrinsics must be a finite 3x3 matrix, got {k.tolist()}')
    if k[0, 0] <= 0 or k[1, 1] <= 0 or np.any(k[1:, 0] != 0) or k[2, 1] != 0 or k[2, 2] != 1:
        raise ValueError(f'intrinsics are not a pinhole camera matrix: {k.tolist()}')
    return k


def check_pose(pose, name='base_T_camera'):
    """Return a float64 (4, 4) rigid transform; ValueError if it is not one."""
    t = np.asarray(pose, dtype=np.float64)
    if t.shape != (4, 4) or not np.all(np.isfinite(t)):
        raise ValueError(f'{name} must be a finite 4x4 transform')
    rotation = t[:3, :3]
    if (not np.allclose(rotation.T @ rotation, np.eye(3), atol=1e-6)
            or np.linalg.det(rotation) < 0 or not np.array_equal(t[3], [0, 0, 0, 1])):
        raise ValueError(f'{name} is not a rigid transform (rotation not orthonormal, or '
                         'reflected, or bottom row not [0, 0, 0, 1])')
    return t


def camera_rays(shape, intrinsics):
    """
    Per-pixel viewing rays in the camera's optical frame (x right, y down, z forward).

    shape: (H, W) of the image. Returns (H, W, 3) float64 with z = 1, so that
    point = depth * ray for planar (z-buffer) depth such as a RealSense's.
    """
    k = check_intrinsics(intrinsics)
    height, width = shape
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    y = (v - k[1, 2]) / k[1, 1]
    x = (u - k[0, 2] - k[0, 1] * y) / k[0, 0]
    return np.stack([x, y, np.ones_like(x)], axis=-1)


def backproject(pixels, depth, intrinsics):
    """
    Camera-frame 3-D points (..., 3) of (sub-)pixels (..., 2) as (u, v) with depth (...).

    u is the column, v the row; depth in metres along the optical axis.
    """
    k = check_intrinsics(intrinsics)
    pixels = np.asarray(pixels, dtype=np.float64)
    depth = np.asarray(depth, dtype=np.float64)
    y = (pixels[..., 1] - k[1, 2]) / k[1, 1]
    x = (pixels[..., 0] - k[0, 2] - k[0, 1] * y) / k[0, 0]
    return np.stack([x * depth, y * depth, depth], axis=-1)


def project(points, intrinsics):
    """Pixels (..., 2) as (u, v) of camera-frame points (..., 3); points must have z > 0."""
    k = check_intrinsics(intrinsics)
    points = np.asarray(points, dtype=np.float64)
    homogeneous = points @ k.T
    return homogeneous[..., :2] / homogeneous[..., 2:3]


class HeightmapBuilder:
    """
    Builds Heightmaps for one grid, fast enough to run on every camera frame.

    The per-pixel geometry (rays in the base frame, scaled to grid cells) depends only on the
    image size, intrinsics, camera pose and depth scale; it is computed once and reused while
    those stay the same, and the work buffers are reused between frames. Not thread-safe: use
    one builder per thread.
    """

    def __init__(self, grid=None, table_fit=None):
        self.grid = grid if grid is not None else HeightmapGrid()
        self.table_fit = table_fit
        """A TableFit to measure heights from the table found in each frame; None: z_min."""
        self._geometry_key = None
        self._geometry = None
        self._buffers = None

    def build(self, color, depth, intrinsics, base_T_camera, depth_scale=1.0):
        """
        Colour and height maps of the workspace from one aligned RGB-D frame.

        color: (H, W, 3) uint8 RGB; depth: (H, W) float, metres along the optical axis,
        aligned to the colour image (0, NaN, inf = no data); intrinsics: 3x3 K of that image;
        base_T_camera: 4x4 pose of the camera optical frame in the base frame; depth_scale:
        multiplier on depth from calibration. Returns Heightmaps (see module docstring for how
        holes and out-of-range points are treated). Raises ValueError on inconsistent input.
        """
        color = np.asarray(color)
        depth = np.asarray(depth)
        if depth.ndim != 2 or not np.issubdtype(depth.dtype, np.floating):
            raise ValueError(f'depth must be a 2-D float array in metres, got {depth.dtype} '
                             f'{depth.shape}')
        if color.shape != depth.shape + (3,) or color.dtype != np.uint8:
            raise ValueError(f'color must be uint8 of shape {depth.shape + (3,)}, got '
                             f'{color.dtype} {color.shape}')
        rays, offsets = self._geometry_for(depth.shape, intrinsics, base_T_camera, depth_scale)
        col_f, row_f, z, z_flat, inside, scratch, color_flat = self._buffers
        rows, cols = self.grid.shape
        no_point = z_flat.size - 1  # index of the sentinel entry behind the last pixel

        # Continuous cell coordinates and height of every pixel's point, in place.
        for out, ray, offset in zip((col_f, row_f, z), rays, offsets):
            np.multiply(depth, ray, out=out)
            out += offset
        np.greater(depth, 0.0, out=inside)
        # NaN fails every comparison, so NaN and inf depth drop out here as well.
        inside &= np.greater_equal(col_f, 0.0, out=scratch)
        inside &= np.less(col_f, cols, out=scratch)
        inside &= np.greater_equal(row_f, 0.0, out=scratch)
        inside &= np.less(row_f, rows, out=scratch)
        inside &= np.less(z, self.grid.z_max, out=scratch)
        pixel = np.flatnonzero(inside)

        # Highest point per cell: one scatter-max over int64 keys that order by height (float32
        # bits mapped to ordered integers, in the high word) and then by pixel index (low
        # word), so the winning pixel, hence its colour, comes out of the same pass.
        cell = np.take(row_f.reshape(-1), pixel).astype(np.int32)
        cell *= cols
        cell += np.take(col_f.reshape(-1), pixel).astype(np.int32)
        height = np.take(z_flat, pixel)
        height -= self.grid.z_min
        bits = height.astype(np.float32).view(np.int32)
        bits ^= (bits >> 31) & 0x7FFFFFFF
        key = bits.astype(np.int64) << 32
        key |= pixel
        # Cells nothing falls into keep a key below any point's that decodes to the sentinel.
        best = np.full(rows * cols, _EMPTY_KEY | no_point, dtype=np.int64)
        np.maximum.at(best, cell, key)

        winner = best & 0xFFFFFFFF
        height = np.take(z_flat, winner)
        height -= self.grid.z_min
        observed = (winner != no_point).reshape(rows, cols)
        height = height.reshape(rows, cols)
        table = None
        if self.table_fit is not None:
            table = fit_table_plane(height, observed, self.table_fit)
            if table.applied:
                height -= np.where(observed, table.offsets(height.shape), 0.0)
        np.maximum(height, 0.0, out=height)
        color_flat[:-1] = color.reshape(-1, 3)
        color_map = np.take(color_flat.reshape(-1).view('V3'), winner).view(np.uint8)
        return Heightmaps(color_map.reshape(rows, cols, 3), height.astype(np.float32),
                          observed, table)

    def _geometry_for(self, shape, intrinsics, base_T_camera, depth_scale):
        k = check_intrinsics(intrinsics)
        pose = check_pose(base_T_camera)
        scale = float(depth_scale)
        if not np.isfinite(scale) or scale <= 0:
            raise ValueError(f'depth_scale must be finite and > 0, got {depth_scale}')
        key = (shape, k.tobytes(), pose.tobytes(), scale)
        if key != self._geometry_key:
            grid = self.grid
            base_rays = camera_rays(shape, k) @ (scale * pose[:3, :3].T)
            rays = (base_rays[..., 0] / grid.resolution, base_rays[..., 1] / grid.resolution,
                    np.ascontiguousarray(base_rays[..., 2]))
            offsets = ((pose[0, 3] - grid.x_min) / grid.resolution,
                       (pose[1, 3] - grid.y_min) / grid.resolution, pose[2, 3])
            self._geometry = (rays, offsets)
            self._geometry_key = key
            # z and colour get one extra entry behind the image: the sentinel point that empty
            # cells decode to, at height 0 and black.
            z_flat = np.empty(shape[0] * shape[1] + 1)
            z_flat[-1] = grid.z_min
            color_flat = np.zeros((z_flat.size, 3), dtype=np.uint8)
            self._buffers = (np.empty(shape), np.empty(shape), z_flat[:-1].reshape(shape),
                             z_flat, np.empty(shape, dtype=bool), np.empty(shape, dtype=bool),
                             color_flat)
        return self._geometry


def build_heightmap(color, depth, intrinsics, base_T_camera, grid=None, depth_scale=1.0):
    """One-off HeightmapBuilder(grid).build(...); keep a builder to reuse its geometry."""
    return HeightmapBuilder(grid).build(color, depth, intrinsics, base_T_camera, depth_scale)


def heightmap_pixel_to_point(grid, height, row, col):
    """
    Base-frame 3-D point (..., 3) of the surface seen at heightmap pixel (row, col).

    x, y are the cell centre, z = grid.z_min + height[row, col]. This is how the executor turns
    a chosen pixel into a push or grasp position. Raises IndexError outside the map.
    """
    height = np.asarray(height)
    if height.shape != grid.shape:
        raise ValueError(f'height map {height.shape} does not match the grid {grid.shape}')
    row, col = np.asarray(row), np.asarray(col)
    if not np.all(grid.contains(row, col)):
        raise IndexError(f'pixel (row {row}, col {col}) outside the {grid.shape} map')
    return grid.pixel_to_point(row, col, height[row, col])


def colorize_height(height, max_height=0.15):
    """
    Height map (H, W) in metres as an RGB (H, W, 3) uint8 image for display.

    0 m is dark blue and max_height (metres) or more is dark red (the jet colour map).
    """
    if not max_height > 0:
        raise ValueError(f'max_height must be > 0, got {max_height}')
    level = np.clip(np.nan_to_num(np.asarray(height, dtype=np.float32)) / max_height, 0.0, 1.0)
    bgr = cv2.applyColorMap(np.round(level * 255).astype(np.uint8), cv2.COLORMAP_JET)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
