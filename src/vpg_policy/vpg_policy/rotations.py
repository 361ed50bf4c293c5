"""
Rotation bookkeeping for the 16 push directions and grasp orientations (policy and trainer).

The convention, used everywhere in the stack (PrimitiveAction.angle says the same):

* Rotation index ``i`` in ``[0, R)`` stands for the angle ``theta_i = i * 2 * pi / R`` radians
  (R = 16: 22.5 degree steps).
* ``theta`` is measured in the robot base frame's xy-plane, from +x towards +y
  (counter-clockwise seen from above, z up). The action direction is
  ``d = (cos theta, sin theta)`` in base-frame (x, y): the direction a push moves the closed
  gripper, or the line the parallel-jaw fingers close along for a grasp.
* Heightmaps index ``row = y`` and ``col = x`` (vpg_perception.grid), so in pixel terms
  ``d = (dcol, drow) = (cos theta, sin theta)``. Drawn as an image with row 0 at the top,
  +y points down and theta therefore grows clockwise on screen.
* The network judges every action in a canonical frame where the action points along +col.
  For rotation i it resamples a (feature) map into a square "canvas" with
  ``canvas(u) = map(c + Rot(theta_i) (u - c))`` (u and c in (col, row) pixel coordinates, c the
  centre), so the canvas' +col axis is ``d`` in the map. The canvas is large enough to hold
  the whole map at every angle (its side is at least the map's diagonal), so no corner is
  lost; cells outside the map read zero. Scores on the canvas are mapped back with the
  inverse rotation.
* A parallel-jaw grasp at theta and at theta + pi is the same grasp: with an even R,
  ``grasp_equivalent_index(i)`` maps i and i + R/2 to one index.

The resampling uses torch.nn.functional.affine_grid / grid_sample with align_corners=False,
where normalised coordinate -1..1 spans the outer edges of the map, so maps of different
resolutions over the same extent (features, canvas, full-resolution Q maps) stay aligned to
the pixel centres.
"""

import math

import torch
import torch.nn.functional as F


def rotation_angle(index, num_rotations):
    """Angle in radians, in [0, 2*pi), that rotation `index` stands for."""
    if num_rotations < 1:
        raise ValueError(f'num_rotations must be >= 1, got {num_rotations}')
    if not 0 <= index < num_rotations:
        raise ValueError(f'rotation index {index} outside [0, {num_rotations})')
    return index * 2.0 * math.pi / num_rotations


def rotation_angles(num_rotations):
    """All R angles as a float64 tensor (R,)."""
    if num_rotations < 1:
        raise ValueError(f'num_rotations must be >= 1, got {num_rotations}')
    return torch.arange(num_rotations, dtype=torch.float64) * (2.0 * math.pi / num_rotations)


def nearest_rotation_index(angle, num_rotations):
    """Return the rotation index whose angle is closest to `angle` (radians, any value)."""
    step = 2.0 * math.pi / num_rotations
    return int(round(angle / step)) % num_rotations


def grasp_equivalent_index(index, num_rotations):
    """
    Index of the grasp that equals grasp `index` (a grasp at theta + pi is the same grasp).

    Works on ints and integer tensors. For an odd R no two rotations are half a turn apart,
    so the index is returned unchanged.
    """
    if num_rotations % 2:
        return index
    return index % (num_rotations // 2)


def action_direction(angle):
    """Return the unit direction (x, y) in the base frame of an action at `angle` radians."""
    return math.cos(angle), math.sin(angle)


def pixel_direction(angle):
    """Return the same direction on the heightmap, as (drow, dcol) per unit length."""
    return math.sin(angle), math.cos(angle)


def canvas_size(height, width, multiple=1):
    """
    Side of the square canvas that holds an h x w map at any rotation.

    At least the map's diagonal, rounded up to a multiple of `multiple` (the stride of the
    layers that run on the canvas, so their output covers the canvas exactly).
    """
    diagonal = math.sqrt(height * height + width * width)
    return int(math.ceil(diagonal / multiple - 1e-9)) * multiple


def to_canvas_thetas(angles, height, width, canvas):
    """
    affine_grid matrices (N, 2, 3) that sample rotated canvases out of an h x w map.

    For canvas normalised coordinates u, the map is read at Rot(theta) u scaled so that one
    canvas cell has the size of one map cell: canvas(u) = map(c + Rot(theta)(u - c)).
    """
    cos, sin = torch.cos(angles), torch.sin(angles)
    theta = torch.zeros(angles.shape[0], 2, 3, dtype=angles.dtype, device=angles.device)
    theta[:, 0, 0] = cos * (canvas / width)
    theta[:, 0, 1] = -sin * (canvas / width)
    theta[:, 1, 0] = sin * (canvas / height)
    theta[:, 1, 1] = cos * (canvas / height)
    return theta


def from_canvas_thetas(angles, height, width, canvas):
    """
    affine_grid matrices (N, 2, 3) that read a map's cells back out of rotated canvases.

    The inverse of to_canvas_thetas: map(p) = canvas(c + Rot(-theta)(p - c)). The output may
    have any resolution; it covers the extent of the h x w map the canvas was made from.
    """
    cos, sin = torch.cos(angles), torch.sin(angles)
    theta = torch.zeros(angles.shape[0], 2, 3, dtype=angles.dtype, device=angles.device)
    theta[:, 0, 0] = cos * (width / canvas)
    theta[:, 0, 1] = sin * (height / canvas)
    theta[:, 1, 0] = -sin * (width / canvas)
    theta[:, 1, 1] = cos * (height / canvas)
    return theta


def to_canvas_grid(angles, map_size, canvas, dtype=torch.float32):
    """Build the sampling grids (N, canvas, canvas, 2) of rotated canvases, one per angle."""
    height, width = map_size
    theta = to_canvas_thetas(angles.to(torch.float64), height, width, canvas)
    return F.affine_grid(theta, (angles.shape[0], 1, canvas, canvas),
                         align_corners=False).to(dtype)


def from_canvas_grid(angles, map_size, canvas, out_size, dtype=torch.float32):
    """Build the sampling grids (N, out_h, out_w, 2) that undo them, one per angle."""
    height, width = map_size
    theta = from_canvas_thetas(angles.to(torch.float64), height, width, canvas)
    return F.affine_grid(theta, (angles.shape[0], 1) + tuple(out_size),
                         align_corners=False).to(dtype)


def sample(maps, grid):
    """Bilinear grid_sample with zeros outside, in the align_corners=False convention."""
    return F.grid_sample(maps, grid, mode='bilinear', padding_mode='zeros', align_corners=False)


def rotate_to_canvas(maps, angles, canvas):
    """
    Resample maps (N, C, h, w) into rotated square canvases (N, C, canvas, canvas).

    angles: (N,) radians, one per map. Bilinear; cells outside the map read zero.
    """
    grid = to_canvas_grid(angles.to(maps.device), maps.shape[-2:], canvas, maps.dtype)
    return sample(maps, grid)


def unrotate_canvas(canvases, angles, map_size, canvas, out_size):
    """
    Map rotated canvases (N, C, P, P) back onto an (out_h, out_w) grid over the map's extent.

    map_size: (h, w) of the map the canvases were cut from; canvas: the side P0 they were
    cut with (rotate_to_canvas). The canvases may have been resampled since (any P): only
    extents matter. Bilinear, so rotating back and upsampling to the heightmap's resolution
    are one step.
    """
    grid = from_canvas_grid(angles.to(canvases.device), map_size, canvas, out_size,
                            canvases.dtype)
    return sample(canvases, grid)
