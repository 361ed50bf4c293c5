"""
The camera calibration file and pinhole projection, as a consumer of the camera topics uses them.

vpg_sim's `config/camera_calibration.yaml` holds the true pose of the camera optical frame in the
robot base frame (written from the model by scene.calibration_yaml). These helpers read it and
map between base-frame points and pixels with a camera_info K, for tests and scripts that may
only use what a real system publishes. Pure numpy + PyYAML.
"""

from dataclasses import dataclass
from pathlib import Path

from ament_index_python.packages import get_package_share_directory
import numpy as np
import yaml

# vpg_sim's file in a source checkout (src/vpg_sim/config), else its installed share/config.
_SOURCE_FILE = (Path(__file__).resolve().parents[2] / 'vpg_sim' / 'config'
                / 'camera_calibration.yaml')


def default_calibration_file():
    """Locate the cell's calibration file: vpg_sim's source tree, else share/vpg_sim/config."""
    if _SOURCE_FILE.exists():
        return _SOURCE_FILE
    return Path(get_package_share_directory('vpg_sim')) / 'config' / 'camera_calibration.yaml'


@dataclass(frozen=True)
class CameraCalibration:
    """base_T_camera: translation (3,) m and rotation (3, 3) base_R_camera (OpenCV axes)."""

    translation: np.ndarray
    rotation: np.ndarray
    depth_scale: float = 1.0


def quat_xyzw_to_matrix(quat):
    x, y, z, w = np.asarray(quat, dtype=np.float64) / np.linalg.norm(quat)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                     [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                     [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])


def load_calibration(path=None):
    """Read a calibration YAML file; raises ValueError when a field is missing or malformed."""
    path = default_calibration_file() if path is None else path
    data = yaml.safe_load(Path(path).read_text(encoding='utf-8'))
    try:
        translation = np.asarray(data['translation'], dtype=np.float64)
        quat = np.asarray(data['rotation_xyzw'], dtype=np.float64)
        depth_scale = float(data.get('depth_scale', 1.0))
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f'{path}: not a camera calibration ({error})') from None
    if translation.shape != (3,) or quat.shape != (4,) or not abs(np.linalg.norm(quat) - 1) < 1e-6:
        raise ValueError(f'{path}: translation needs 3 values and rotation_xyzw a unit quaternion')
    return CameraCalibration(translation, quat_xyzw_to_matrix(quat), depth_scale)


def intrinsics_from_k(k):
    """(fx, fy, cx, cy) from a camera_info K (9 values, row-major)."""
    k = np.asarray(k, dtype=np.float64).reshape(3, 3)
    return k[0, 0], k[1, 1], k[0, 2], k[1, 2]


def project(points, k, calibration):
    """
    Pixel coordinates (..., 2) as (u, v) and camera depth (...,) of base-frame points (..., 3).

    u grows to the right, v downwards; pixel centres are at integer coordinates.
    """
    fx, fy, cx, cy = intrinsics_from_k(k)
    camera = (np.asarray(points) - calibration.translation) @ calibration.rotation
    z = camera[..., 2]
    uv = np.stack([fx * camera[..., 0] / z + cx, fy * camera[..., 1] / z + cy], axis=-1)
    return uv, z


def back_project(depth_m, k, calibration):
    """Base-frame points (H, W, 3) of a metric depth image (H, W); zero depth gives NaN."""
    fx, fy, cx, cy = intrinsics_from_k(k)
    h, w = depth_m.shape
    v, u = np.mgrid[0:h, 0:w]
    z = np.where(depth_m > 0, depth_m * calibration.depth_scale, np.nan)
    camera = np.stack([(u - cx) * z / fx, (v - cy) * z / fy, z], axis=-1)
    return camera @ calibration.rotation.T + calibration.translation
