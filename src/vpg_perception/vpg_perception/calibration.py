"""
Camera calibration: the camera's pose in the robot base frame and its depth scale.

The file format (read by the heightmap node, written by the calibration tool and by the
simulated cell for its ground truth):

    # Pose of the camera optical frame in the robot base frame.
    frame_id: base
    camera_frame_id: camera_color_optical_frame
    translation: [x, y, z]          # metres
    rotation_xyzw: [qx, qy, qz, qw] # unit quaternion, base_R_camera
    depth_scale: 1.0                # multiplier on metric depth

The solver follows VPG's calibration: the robot carries a marker to known base-frame positions
(forward kinematics), the camera measures each marker as a pixel plus depth, and a rigid
transform between the two point sets is fitted together with a depth scale. Pure numpy and
cv2 (marker detection); no ROS.
"""

from dataclasses import dataclass
import math
from pathlib import Path
import re

import cv2
import numpy as np
from vpg_common.driver_names import CAMERA_FRAME
from vpg_perception.heightmap import backproject, check_intrinsics, check_pose
import yaml

CALIBRATION_KEYS = ('frame_id', 'camera_frame_id', 'translation', 'rotation_xyzw',
                    'depth_scale')
QUATERNION_NORM_TOLERANCE = 1e-3


@dataclass(frozen=True)
class CameraCalibration:
    """base_T_camera: 4x4 pose of camera_frame_id (optical frame) in frame_id."""

    base_T_camera: np.ndarray
    depth_scale: float = 1.0
    frame_id: str = 'base'
    camera_frame_id: str = CAMERA_FRAME


def quaternion_to_matrix(xyzw):
    """Rotation matrix (3, 3) of a unit quaternion given as (x, y, z, w)."""
    x, y, z, w = np.asarray(xyzw, dtype=np.float64) / np.linalg.norm(xyzw)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def matrix_to_quaternion(rotation):
    """Return the unit quaternion (x, y, z, w), w >= 0, of a rotation matrix (3, 3)."""
    r = np.asarray(rotation, dtype=np.float64)
    # The largest of the four candidates keeps the square root well away from zero.
    candidates = np.array([1 + r[0, 0] - r[1, 1] - r[2, 2], 1 - r[0, 0] + r[1, 1] - r[2, 2],
                           1 - r[0, 0] - r[1, 1] + r[2, 2], 1 + r[0, 0] + r[1, 1] + r[2, 2]])
    i = int(np.argmax(candidates))
    s = 2 * math.sqrt(candidates[i])
    if i == 0:
        q = [s / 4, (r[0, 1] + r[1, 0]) / s, (r[0, 2] + r[2, 0]) / s, (r[2, 1] - r[1, 2]) / s]
    elif i == 1:
        q = [(r[0, 1] + r[1, 0]) / s, s / 4, (r[1, 2] + r[2, 1]) / s, (r[0, 2] - r[2, 0]) / s]
    elif i == 2:
        q = [(r[0, 2] + r[2, 0]) / s, (r[1, 2] + r[2, 1]) / s, s / 4, (r[1, 0] - r[0, 1]) / s]
    else:
        q = [(r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s, s / 4]
    q = np.array(q) / np.linalg.norm(q)
    return q if q[3] >= 0 else -q


def _number_list(data, key, length, problems):
    value = data[key]
    if (not isinstance(value, (list, tuple)) or len(value) != length
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
        problems.append(f'{key} must be a list of {length} numbers, got {value!r}')
        return None
    array = np.array(value, dtype=np.float64)
    if not np.all(np.isfinite(array)):
        problems.append(f'{key} has non-finite values: {value!r}')
        return None
    return array


def load_calibration(path):
    """
    Read and validate a calibration file.

    Raises ValueError naming the file and every problem found: unreadable file, bad YAML,
    missing or unknown keys, empty frame ids, wrong list lengths, non-numbers or non-finite
    values, a quaternion whose norm differs from 1 by more than 1e-3 (it is then normalised),
    a depth scale that is not > 0.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise ValueError(f'calibration file {path}: cannot be read ({error.strerror})') from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ValueError(f'calibration file {path}: not valid YAML ({error})') from None
    if not isinstance(data, dict):
        raise ValueError(f'calibration file {path}: expected a mapping with keys '
                         f'{", ".join(CALIBRATION_KEYS)}, got {type(data).__name__}')
    problems = []
    missing = [key for key in CALIBRATION_KEYS if key not in data]
    if missing:
        problems.append(f'missing key(s) {", ".join(missing)}')
    unknown = sorted(str(key) for key in data if key not in CALIBRATION_KEYS)
    if unknown:
        problems.append(f'unknown key(s) {", ".join(unknown)}')
    for key in ('frame_id', 'camera_frame_id'):
        if key in data and (not isinstance(data[key], str) or not data[key].strip()):
            problems.append(f'{key} must be a non-empty string, got {data[key]!r}')
    translation = rotation = depth_scale = None
    if 'translation' in data:
        translation = _number_list(data, 'translation', 3, problems)
    if 'rotation_xyzw' in data:
        rotation = _number_list(data, 'rotation_xyzw', 4, problems)
        if rotation is not None:
            norm = np.linalg.norm(rotation)
            if abs(norm - 1.0) > QUATERNION_NORM_TOLERANCE:
                problems.append(f'rotation_xyzw is not a unit quaternion (norm {norm:.6g})')
                rotation = None
    if 'depth_scale' in data:
        value = data['depth_scale']
        if (isinstance(value, bool) or not isinstance(value, (int, float))
                or not math.isfinite(value) or value <= 0):
            problems.append(f'depth_scale must be a finite number > 0, got {value!r}')
        else:
            depth_scale = float(value)
    if problems:
        raise ValueError(f'calibration file {path}: ' + '; '.join(problems))
    pose = np.eye(4)
    pose[:3, :3] = quaternion_to_matrix(rotation)
    pose[:3, 3] = translation
    return CameraCalibration(base_T_camera=pose, depth_scale=depth_scale,
                             frame_id=data['frame_id'], camera_frame_id=data['camera_frame_id'])


INTRINSICS_COMMENT = re.compile(
    r'^#\s*intrinsics:\s*width\s+(\d+)\s+height\s+(\d+)\s+fx\s+(\S+)\s+fy\s+(\S+)'
    r'\s+cx\s+(\S+)\s+cy\s+(\S+)', re.M)
"""The comment line `calibrate` writes about the camera it calibrated (the file's keys stay
the pose alone, so older readers keep working)."""


def intrinsics_comment(width, height, fx, fy, cx, cy):
    """Return the comment (without '# ') recording the camera a calibration was made with."""
    return (f'intrinsics: width {int(width)} height {int(height)} fx {fx:.3f} fy {fy:.3f} '
            f'cx {cx:.3f} cy {cy:.3f}')


def recorded_intrinsics(text):
    """(width, height, fx, fy, cx, cy) from a calibration file's text, or None."""
    match = INTRINSICS_COMMENT.search(text)
    if not match:
        return None
    return (int(match.group(1)), int(match.group(2))) + tuple(
        float(v) for v in match.groups()[2:])


def calibration_to_yaml(calibration, comments=()):
    """Return the file text for a CameraCalibration; comments become '# ' lines on top."""
    pose = check_pose(calibration.base_T_camera)
    quaternion = matrix_to_quaternion(pose[:3, :3])
    lines = [f'# {line}' for line in comments]
    lines += [
        '# Pose of the camera optical frame in the robot base frame.',
        f'frame_id: {calibration.frame_id}',
        f'camera_frame_id: {calibration.camera_frame_id}',
        'translation: [{:.6f}, {:.6f}, {:.6f}]  # metres'.format(*pose[:3, 3]),
        'rotation_xyzw: [{:.8f}, {:.8f}, {:.8f}, {:.8f}]  # base_R_camera'.format(*quaternion),
        f'depth_scale: {calibration.depth_scale:.6f}  # multiplier on metric depth',
    ]
    return '\n'.join(lines) + '\n'


def save_calibration(path, calibration, comments=()):
    """Write a calibration file (see calibration_to_yaml); creates parent directories."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(calibration_to_yaml(calibration, comments))


@dataclass(frozen=True)
class CalibrationFit:
    """
    Result of fit_camera_pose.

    residuals: (N,) metres, distance between each base-frame marker position and its
    calibrated camera measurement (NaN for points dropped as outliers); inliers: (N,) bool.
    """

    base_T_camera: np.ndarray
    depth_scale: float
    residuals: np.ndarray
    inliers: np.ndarray

    @property
    def rmse(self):
        """Root mean square residual of the inliers, metres."""
        return float(np.sqrt(np.mean(self.residuals[self.inliers] ** 2)))


def _similarity(source, target, with_scale):
    """s, R, t minimising sum |target - (s R source + t)|^2 (Umeyama 1991)."""
    mu_s, mu_t = source.mean(axis=0), target.mean(axis=0)
    src, dst = source - mu_s, target - mu_t
    u, sigma, vt = np.linalg.svd(dst.T @ src / len(source))
    flip = np.diag([1.0, 1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt))])
    rotation = u @ flip @ vt
    scale = 1.0
    if with_scale:
        scale = float(np.trace(np.diag(sigma) @ flip) / np.mean(np.sum(src ** 2, axis=1)))
    return scale, rotation, mu_t - scale * rotation @ mu_s


def fit_camera_pose(base_points, camera_points, fit_depth_scale=True, max_residual=None,
                    min_points=4):
    """
    Camera pose (and depth scale) from marker positions seen by the robot and the camera.

    base_points: (N, 3) marker positions in the base frame (forward kinematics); camera_points:
    (N, 3) the same markers measured by the camera (pixel + raw depth back-projected), metres.
    Finds R, t, s minimising sum |base - (R (s camera) + t)|^2. Scaling depth scales the whole
    back-projected point, so VPG's search (a rigid fit for each candidate depth scale, keep the
    one with the smallest residual) has this closed-form optimum (Umeyama's similarity fit).
    With max_residual (metres), the worst point is dropped and the fit repeated while any
    residual exceeds it and more than min_points remain. Raises ValueError for fewer than 3
    points, mismatched shapes, non-finite values or collinear points.
    """
    base = np.asarray(base_points, dtype=np.float64)
    camera = np.asarray(camera_points, dtype=np.float64)
    if base.ndim != 2 or base.shape[1] != 3 or base.shape != camera.shape:
        raise ValueError(f'need two (N, 3) point sets, got {base.shape} and {camera.shape}')
    if len(base) < 3:
        raise ValueError(f'need at least 3 marker observations, got {len(base)}')
    if not (np.all(np.isfinite(base)) and np.all(np.isfinite(camera))):
        raise ValueError('marker positions must be finite')
    inliers = np.ones(len(base), dtype=bool)
    while True:
        src, dst = camera[inliers], base[inliers]
        spread = np.linalg.svd(src - src.mean(axis=0), compute_uv=False)
        if spread[1] < 1e-3 * max(spread[0], 1e-12) or spread[1] < 1e-6:
            raise ValueError('marker observations are (nearly) collinear; spread the '
                             'calibration grid over x and y')
        scale, rotation, translation = _similarity(src, dst, fit_depth_scale)
        predicted = scale * camera @ rotation.T + translation
        residuals = np.linalg.norm(predicted - base, axis=1)
        worst = np.argmax(np.where(inliers, residuals, -np.inf))
        if (max_residual is None or residuals[worst] <= max_residual
                or inliers.sum() <= max(min_points, 3)):
            break
        inliers[worst] = False
    pose = np.eye(4)
    pose[:3, :3] = rotation
    pose[:3, 3] = translation
    return CalibrationFit(base_T_camera=pose, depth_scale=scale,
                          residuals=np.where(inliers, residuals, np.nan), inliers=inliers)


def pose_difference(pose_a, pose_b):
    """Return (translation distance m, rotation angle deg) between two 4x4 poses."""
    pose_a, pose_b = np.asarray(pose_a), np.asarray(pose_b)
    relative = pose_a[:3, :3].T @ pose_b[:3, :3]
    cos_angle = np.clip((np.trace(relative) - 1) / 2, -1.0, 1.0)
    return (float(np.linalg.norm(pose_a[:3, 3] - pose_b[:3, 3])),
            float(np.degrees(np.arccos(cos_angle))))


def _is_regular_grid(corners, cols, rows, tolerance=0.25):
    """Whether (rows, cols, 2) corners form a grid: each inner one midway between neighbours."""
    spacing = np.median(np.linalg.norm(np.diff(corners, axis=1), axis=2))
    if not spacing > 2.0:
        return False
    along_rows = corners[:, 1:-1] - (corners[:, :-2] + corners[:, 2:]) / 2
    along_cols = corners[1:-1, :] - (corners[:-2, :] + corners[2:, :]) / 2
    deviation = max(np.abs(along_rows).max(initial=0.0), np.abs(along_cols).max(initial=0.0))
    return deviation < tolerance * spacing


def detect_checkerboard_center(color, inner_corners=(3, 3)):
    """
    Sub-pixel (u, v) of the centre inner corner of a checkerboard in an RGB image, or None.

    inner_corners: (columns, rows) of inner corners, both odd so that a centre corner exists
    (VPG's marker is a 3 x 3 board). The classic detector plus cornerSubPix (as VPG) is tried
    first, the sector-based detector second; a result counts only if its corners form a
    regular grid, since on small boards either detector can return a misplaced set.
    """
    cols, rows = inner_corners
    if cols % 2 == 0 or rows % 2 == 0:
        raise ValueError(f'inner_corners must both be odd, got {inner_corners}')
    gray = cv2.cvtColor(np.ascontiguousarray(color), cv2.COLOR_RGB2GRAY)
    found, corners = cv2.findChessboardCorners(
        gray, (cols, rows), flags=cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE)
    if found:
        grid = corners.reshape(rows, cols, 2)
        spacing = np.median(np.linalg.norm(np.diff(grid, axis=1), axis=2))
        half_window = int(np.clip(spacing / 4, 2, 5))
        criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 50, 1e-3)
        corners = cv2.cornerSubPix(gray, corners, (half_window, half_window), (-1, -1),
                                   criteria)
    if not found or not _is_regular_grid(corners.reshape(rows, cols, 2), cols, rows):
        found, corners = cv2.findChessboardCornersSB(gray, (cols, rows),
                                                     flags=cv2.CALIB_CB_NORMALIZE_IMAGE)
        if not found or not _is_regular_grid(corners.reshape(rows, cols, 2), cols, rows):
            return None
    return corners.reshape(rows, cols, 2)[rows // 2, cols // 2].astype(np.float64)


def depth_at(depth, pixel, radius=3, min_samples=6):
    """
    Depth (metres) at sub-pixel (u, v) of a locally planar surface, or None.

    Fits 1/depth, which is affine in (u, v) on any plane, to the valid pixels of the
    (2 radius + 1)^2 window and evaluates it at the sub-pixel location: exact on a flat
    marker, robust to single holes. None when fewer than min_samples pixels are valid.
    """
    depth = np.asarray(depth, dtype=np.float64)
    u, v = pixel
    cu, cv = int(round(u)), int(round(v))
    v0, v1 = max(cv - radius, 0), min(cv + radius + 1, depth.shape[0])
    u0, u1 = max(cu - radius, 0), min(cu + radius + 1, depth.shape[1])
    window = depth[v0:v1, u0:u1]
    vv, uu = np.mgrid[v0:v1, u0:u1]
    valid = np.isfinite(window) & (window > 0)
    if valid.sum() < min_samples:
        return None
    design = np.stack([np.ones(valid.sum()), uu[valid] - u, vv[valid] - v], axis=1)
    coefficients, *_ = np.linalg.lstsq(design, 1.0 / window[valid], rcond=None)
    if not coefficients[0] > 0:
        return None
    return float(1.0 / coefficients[0])


def observe_marker(color, depth, intrinsics, inner_corners=(3, 3)):
    """
    Camera-frame position (3,) of the checkerboard's centre corner, and its pixel (u, v).

    color: (H, W, 3) RGB uint8; depth: (H, W) metres, aligned to colour. Returns
    (None, None) if the board is not found and (None, pixel) if it has no depth.
    """
    pixel = detect_checkerboard_center(color, inner_corners)
    if pixel is None:
        return None, None
    z = depth_at(depth, pixel)
    if z is None:
        return None, pixel
    return backproject(pixel, z, check_intrinsics(intrinsics)), pixel


def calibration_grid(x_range, y_range, z_values, step):
    """
    Base-frame marker positions (N, 3): a grid over x_range x y_range at each z, step metres.

    The ends of each range are included; rows are ordered in a serpentine so that the robot
    moves only one step between consecutive positions.
    """
    if step <= 0:
        raise ValueError(f'step must be > 0, got {step}')
    axes = []
    for low, high in (x_range, y_range):
        if high < low:
            raise ValueError(f'range ({low}, {high}) is reversed')
        count = int(math.floor((high - low) / step + 1e-9)) + 1
        axes.append(np.linspace(low, low + (count - 1) * step, count))
    positions = []
    for z in z_values:
        for i, x in enumerate(axes[0]):
            ys = axes[1] if i % 2 == 0 else axes[1][::-1]
            positions.extend((x, y, z) for y in ys)
    return np.array(positions, dtype=np.float64)


def top_down_tool_pose(marker_position, marker_offset, yaw=0.0):
    """
    base_T_tool0 that puts the marker at marker_position with the tool pointing down.

    marker_offset: marker position (3,) in the tool0 frame; yaw: rotation of the tool about
    the base z axis, radians. The tool0 z axis points along -z of the base frame.
    """
    c, s = math.cos(yaw), math.sin(yaw)
    rotation = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) @ np.diag([1.0, -1.0, -1.0])
    pose = np.eye(4)
    pose[:3, :3] = rotation
    pose[:3, 3] = np.asarray(marker_position, dtype=np.float64) - rotation @ np.asarray(
        marker_offset, dtype=np.float64)
    return pose
