"""
Synthetic RGB-D frames with exactly known geometry, for tests and benchmarks.

A tiny vectorised ray caster: a pinhole camera at a known pose sees a table plane, oriented
boxes and optionally a planar checkerboard. Depth is planar (along the optical axis) in
metres, like a RealSense's aligned depth; colour is RGB uint8. No ROS, no renderer.
"""

from dataclasses import dataclass

import numpy as np

from vpg_perception.heightmap import camera_rays


@dataclass(frozen=True)
class Box:
    """An oriented box: pose base_T_box (4x4, centre and axes) and full size (3,) metres."""

    pose: np.ndarray
    size: tuple
    color: tuple = (200, 40, 40)


@dataclass(frozen=True)
class Checkerboard:
    """
    A checkerboard of inner_corners (cols, rows) with square size metres on a white margin.

    pose: base_T_board; the board lies in its x-y plane, faces +z, and its centre inner corner
    (for odd counts) is the origin.
    """

    pose: np.ndarray
    inner_corners: tuple = (3, 3)
    square: float = 0.02
    margin: float = 0.01


def pose_from(rotation=np.eye(3), translation=(0.0, 0.0, 0.0)):
    """Return the 4x4 transform of a rotation matrix and a translation."""
    pose = np.eye(4)
    pose[:3, :3] = rotation
    pose[:3, 3] = translation
    return pose


def rot_x(angle):
    """Rotation matrix about x by angle radians."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rot_y(angle):
    """Rotation matrix about y by angle radians."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rot_z(angle):
    """Rotation matrix about z by angle radians."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def look_at(eye, target, up=(0.0, 0.0, 1.0)):
    """
    base_T_camera of an optical frame (x right, y down, z forward) at eye looking at target.

    up is the base-frame direction that should appear upward in the image.
    """
    eye, target, up = (np.asarray(v, dtype=np.float64) for v in (eye, target, up))
    forward = target - eye
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, up)
    if np.linalg.norm(right) < 1e-9:
        raise ValueError('up is parallel to the viewing direction')
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    return pose_from(np.stack([right, down, forward], axis=1), eye)


def intrinsics(width=640, height=480, focal=615.0):
    """Pinhole K with square pixels and the principal point at the image centre."""
    return np.array([[focal, 0.0, (width - 1) / 2], [0.0, focal, (height - 1) / 2],
                     [0.0, 0.0, 1.0]])


def random_boxes(rng, count=10):
    """
    Scatter `count` boxes (2.5-10 cm tall, 3-10 cm sides, random yaw and colour) on the table.

    They stand inside VPG's workspace, drawn from rng in a fixed order, so a seed gives one scene.
    """
    boxes = []
    for _ in range(count):
        height = rng.uniform(0.025, 0.1)
        pose = pose_from(rot_z(rng.uniform(0, np.pi)),
                         (rng.uniform(-0.68, -0.32), rng.uniform(-0.18, 0.18), height / 2))
        boxes.append(Box(pose, (rng.uniform(0.03, 0.1), rng.uniform(0.03, 0.1), height),
                         tuple(rng.integers(0, 255, 3).tolist())))
    return boxes


def render(k, base_T_camera, shape=(480, 640), boxes=(), table_z=0.0,
           table_color=(120, 120, 120), board=None, supersample=1):
    """
    Colour (H, W, 3) uint8 and planar depth (H, W) float64 of the scene.

    The table is the infinite plane z = table_z; pixels that see nothing get depth 0.
    supersample n > 1 averages n x n rays per pixel for colour (anti-aliased edges, as a real
    camera gives) and takes the centre ray's depth.
    """
    height, width = shape
    n = int(supersample)
    fine_k = np.array(k, dtype=np.float64)
    if n > 1:
        # A camera with n times the resolution whose pixel centres tile the original pixels.
        fine_k[:2] *= n
        fine_k[0, 2] += (n - 1) / 2
        fine_k[1, 2] += (n - 1) / 2
    rays_cam = camera_rays((height * n, width * n), fine_k).reshape(-1, 3)
    rotation, origin = base_T_camera[:3, :3], base_T_camera[:3, 3]
    rays = rays_cam @ rotation.T  # base frame, scaled so that t along it is planar depth

    depth = np.full(len(rays), np.inf)
    color = np.zeros((len(rays), 3))
    with np.errstate(divide='ignore', invalid='ignore'):
        t = (table_z - origin[2]) / rays[:, 2]
    hit = np.isfinite(t) & (t > 0)
    depth[hit] = t[hit]
    color[hit] = table_color
    for box in boxes:
        t = _ray_box(origin, rays, box)
        closer = t < depth
        depth[closer] = t[closer]
        color[closer] = box.color
    if board is not None:
        t, value = _ray_board(origin, rays, board)
        closer = t < depth
        depth[closer] = t[closer]
        color[closer] = value[closer, None]

    depth[~np.isfinite(depth)] = 0.0
    color = color.reshape(height, n, width, n, 3).mean(axis=(1, 3))
    depth = depth.reshape(height, n, width, n)[:, n // 2, :, n // 2]
    return np.round(color).astype(np.uint8), depth


def _ray_box(origin, rays, box):
    """Distance (in units of the ray vectors) to the first hit of each ray with the box."""
    box_R, box_t = box.pose[:3, :3], box.pose[:3, 3]
    o = box_R.T @ (origin - box_t)
    d = rays @ box_R
    half = np.asarray(box.size, dtype=np.float64) / 2
    with np.errstate(divide='ignore', invalid='ignore'):
        t1 = (-half - o) / d
        t2 = (half - o) / d
    near, far = np.minimum(t1, t2), np.maximum(t1, t2)
    # fmax/fmin skip the NaN of rays parallel to a face through its plane.
    t_near = np.fmax(np.fmax(near[:, 0], near[:, 1]), near[:, 2])
    t_far = np.fmin(np.fmin(far[:, 0], far[:, 1]), far[:, 2])
    hit = (t_near <= t_far) & (t_near > 0)
    return np.where(hit, t_near, np.inf)


def _ray_board(origin, rays, board):
    """Hit distance and grey level (0 black, 255 white) of each ray on the board."""
    board_R, board_t = board.pose[:3, :3], board.pose[:3, 3]
    o = board_R.T @ (origin - board_t)
    d = rays @ board_R
    with np.errstate(divide='ignore', invalid='ignore'):
        t = -o[2] / d[:, 2]
    local = o[:2] + t[:, None] * d[:, :2]
    cols, rows = board.inner_corners
    # Squares span [-(n+1)/2, (n+1)/2] * square around the centre corner (odd counts).
    half = np.array([(cols + 1) / 2, (rows + 1) / 2]) * board.square
    on_board = np.all(np.abs(local) <= half + board.margin, axis=1) & (t > 0)
    cell = np.floor(local / board.square + np.array([(cols + 1) / 2, (rows + 1) / 2]))
    in_squares = np.all(np.abs(local) < half, axis=1)
    black = in_squares & ((cell[:, 0] + cell[:, 1]) % 2 == 0)
    value = np.where(black, 0.0, 255.0)
    return np.where(on_board, t, np.inf), value
