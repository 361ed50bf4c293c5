"""Camera calibration: file format, pose + depth-scale solver, marker detection."""

import numpy as np
import pytest
from vpg_perception.calibration import (calibration_grid, CameraCalibration,
                                        detect_checkerboard_center, fit_camera_pose,
                                        load_calibration, matrix_to_quaternion,
                                        observe_marker, pose_difference, quaternion_to_matrix,
                                        save_calibration, top_down_tool_pose)
from vpg_perception.heightmap import backproject, project
from vpg_test_support import synthetic_rgbd as synthetic

K = synthetic.intrinsics()
CAMERA = synthetic.look_at((-0.32, 0.025, 0.70), (-0.5, 0.005, 0.0), up=(-1.0, 0.0, 0.0))

GOOD_FILE = """\
# Pose of the camera optical frame in the robot base frame.
frame_id: base
camera_frame_id: camera_color_optical_frame
translation: [-0.32, 0.025, 0.7]
rotation_xyzw: [0.0, 0.0, 0.0, 1.0]
depth_scale: 1.0
"""


def test_quaternion_round_trip():
    rng = np.random.default_rng(0)
    for _ in range(50):
        q = rng.normal(size=4)
        q /= np.linalg.norm(q)
        q = q if q[3] >= 0 else -q
        rotation = quaternion_to_matrix(q)
        np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
        np.testing.assert_allclose(matrix_to_quaternion(rotation), q, atol=1e-12)


def test_save_and_load_round_trip(tmp_path):
    calibration = CameraCalibration(base_T_camera=CAMERA, depth_scale=1.0123,
                                    frame_id='base', camera_frame_id='cam_optical')
    path = tmp_path / 'sub' / 'calibration.yaml'
    save_calibration(path, calibration, comments=['fitted from 27 observations'])
    text = path.read_text()
    assert text.startswith('# fitted from 27 observations\n')
    loaded = load_calibration(path)
    assert loaded.frame_id == 'base' and loaded.camera_frame_id == 'cam_optical'
    assert loaded.depth_scale == pytest.approx(1.0123)
    distance, angle = pose_difference(loaded.base_T_camera, CAMERA)
    assert distance < 1e-6 and angle < 1e-5


def test_loads_the_documented_format(tmp_path):
    path = tmp_path / 'good.yaml'
    path.write_text(GOOD_FILE)
    loaded = load_calibration(path)
    np.testing.assert_allclose(loaded.base_T_camera[:3, 3], [-0.32, 0.025, 0.7])
    np.testing.assert_allclose(loaded.base_T_camera[:3, :3], np.eye(3))


@pytest.mark.parametrize('edit,problem', [
    (lambda t: t.replace('depth_scale: 1.0\n', ''), 'missing key(s) depth_scale'),
    (lambda t: t.replace('translation', 'translaton'), 'missing key(s) translation'),
    (lambda t: t + 'extra: 1\n', 'unknown key(s) extra'),
    (lambda t: t.replace('[0.0, 0.0, 0.0, 1.0]', '[0.0, 0.0, 0.0, 2.0]'),
     'not a unit quaternion'),
    (lambda t: t.replace('[0.0, 0.0, 0.0, 1.0]', '[0.0, 0.0, 1.0]'),
     'rotation_xyzw must be a list of 4 numbers'),
    (lambda t: t.replace('[-0.32, 0.025, 0.7]', '[-0.32, .nan, 0.7]'), 'non-finite'),
    (lambda t: t.replace('[-0.32, 0.025, 0.7]', '[-0.32, "a", 0.7]'),
     'translation must be a list of 3 numbers'),
    (lambda t: t.replace('depth_scale: 1.0', 'depth_scale: -1'), 'depth_scale must be'),
    (lambda t: t.replace('frame_id: base', 'frame_id: ""'), 'frame_id must be a non-empty'),
    (lambda t: 'translation: [1, 2\n', 'not valid YAML'),
    (lambda t: '- 1\n- 2\n', 'expected a mapping'),
])
def test_broken_files_name_file_and_problem(tmp_path, edit, problem):
    path = tmp_path / 'broken.yaml'
    path.write_text(edit(GOOD_FILE))
    with pytest.raises(ValueError) as error:
        load_calibration(path)
    assert str(path) in str(error.value) and problem in str(error.value)


def test_missing_file_is_named(tmp_path):
    path = tmp_path / 'nowhere.yaml'
    with pytest.raises(ValueError, match='cannot be read') as error:
        load_calibration(path)
    assert str(path) in str(error.value)


def synthetic_observations(rng, true_pose, true_scale, noise_px=0.2, noise_depth=0.001):
    """Marker positions on a grid, measured by a camera with depth off by 1/true_scale."""
    base = calibration_grid((-0.65, -0.35), (-0.15, 0.15), (0.05, 0.15, 0.25), 0.05)
    camera_true = (np.linalg.inv(true_pose) @ np.c_[base, np.ones(len(base))].T).T[:, :3]
    pixels = project(camera_true, K) + rng.normal(0, noise_px, (len(base), 2))
    raw_depth = camera_true[:, 2] / true_scale + rng.normal(0, noise_depth, len(base))
    return base, backproject(pixels, raw_depth, K)


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_fit_recovers_pose_and_depth_scale(seed):
    rng = np.random.default_rng(seed)
    true_scale = 1.0 + rng.choice([-1.0, 1.0]) * rng.uniform(0.02, 0.04)
    true_pose = CAMERA.copy()
    true_pose[:3, :3] = synthetic.rot_z(rng.normal(0, 0.1)) @ CAMERA[:3, :3]
    true_pose[:3, 3] += rng.normal(0, 0.05, 3)
    base, camera = synthetic_observations(rng, true_pose, true_scale)
    fit = fit_camera_pose(base, camera)
    distance, angle = pose_difference(fit.base_T_camera, true_pose)
    assert distance < 0.002 and angle < 0.1
    assert fit.depth_scale == pytest.approx(true_scale, abs=0.002)
    assert fit.rmse < 0.003 and fit.inliers.all()
    # Without the scale the pose absorbs the error: much worse.
    rigid = fit_camera_pose(base, camera, fit_depth_scale=False)
    assert rigid.depth_scale == 1.0
    assert rigid.rmse > 2 * fit.rmse


def test_closed_form_scale_is_vpg_search_optimum():
    """Match calibrate.py of VPG: rigid fit per candidate depth scale, smallest residual."""
    rng = np.random.default_rng(5)
    base, camera = synthetic_observations(rng, CAMERA, 1.02, noise_px=0.5, noise_depth=0.002)
    fit = fit_camera_pose(base, camera)

    def rigid_rmse(scale):
        return fit_camera_pose(base, camera * scale, fit_depth_scale=False).rmse

    scales = np.linspace(0.95, 1.05, 2001)
    errors = [rigid_rmse(s) for s in scales]
    assert fit.depth_scale == pytest.approx(scales[int(np.argmin(errors))], abs=1e-4)
    assert fit.rmse <= min(errors) + 1e-9


def test_outliers_are_dropped():
    rng = np.random.default_rng(8)
    base, camera = synthetic_observations(rng, CAMERA, 1.0)
    camera[[3, 17]] += [0.0, 0.0, 0.05]  # depth read off the board
    fit = fit_camera_pose(base, camera, max_residual=0.01)
    assert list(np.nonzero(~fit.inliers)[0]) == [3, 17]
    assert np.isnan(fit.residuals[[3, 17]]).all()
    distance, angle = pose_difference(fit.base_T_camera, CAMERA)
    assert distance < 0.002 and angle < 0.1


def test_fit_rejects_degenerate_input():
    with pytest.raises(ValueError, match='at least 3'):
        fit_camera_pose(np.zeros((2, 3)), np.zeros((2, 3)))
    line = np.c_[np.linspace(0, 1, 5), np.zeros(5), np.zeros(5)]
    with pytest.raises(ValueError, match='collinear'):
        fit_camera_pose(line, line + 1.0)
    with pytest.raises(ValueError, match='N, 3'):
        fit_camera_pose(np.zeros((4, 3)), np.zeros((5, 3)))


def render_board(rng, square=0.015):
    """Render a 3x3-inner-corner board at a random pose; return colour, depth, true point."""
    position = (rng.uniform(-0.62, -0.38), rng.uniform(-0.12, 0.12), rng.uniform(0.05, 0.3))
    tilt = synthetic.rot_x(rng.normal(0, 0.1)) @ synthetic.rot_y(rng.normal(0, 0.1))
    board_pose = synthetic.pose_from(synthetic.rot_z(rng.uniform(-np.pi, np.pi)) @ tilt,
                                     position)
    board = synthetic.Checkerboard(board_pose, square=square)
    color, depth = synthetic.render(K, CAMERA, board=board, supersample=2)
    color = np.clip(color + rng.normal(0, 3, color.shape), 0, 255).astype(np.uint8)
    truth = (np.linalg.inv(CAMERA) @ np.append(position, 1.0))[:3]
    return color, depth, truth


@pytest.mark.parametrize('seed', range(6))
def test_marker_detected_to_sub_pixel_and_sub_millimetre(seed):
    rng = np.random.default_rng(seed)
    color, depth, truth = render_board(rng)
    millimetres = np.round(depth * 1000) / 1000  # as a 16UC1 stream gives it
    point, pixel = observe_marker(color, millimetres, K)
    assert np.linalg.norm(pixel - project(truth, K)) < 0.3
    assert np.linalg.norm(point - truth) < 0.001


def test_no_marker_gives_none():
    color, depth = synthetic.render(K, CAMERA)
    assert detect_checkerboard_center(color) is None
    assert observe_marker(color, depth, K) == (None, None)


def test_marker_without_depth_gives_pixel_only():
    rng = np.random.default_rng(4)
    color, depth, truth = render_board(rng)
    point, pixel = observe_marker(color, np.zeros_like(depth), K)
    assert point is None and np.linalg.norm(pixel - project(truth, K)) < 0.3


def test_calibration_grid_and_tool_pose():
    grid = calibration_grid((-0.6, -0.4), (-0.1, 0.1), (0.1, 0.2), 0.1)
    assert grid.shape == (18, 3)
    # Serpentine: consecutive positions are one step apart within a layer.
    steps = np.linalg.norm(np.diff(grid[:9], axis=0), axis=1)
    np.testing.assert_allclose(steps, 0.1)
    offset = np.array([0.0, -0.1, 0.03])
    pose = top_down_tool_pose((-0.5, 0.0, 0.1), offset, yaw=0.3)
    np.testing.assert_allclose(pose[:3, :3] @ [0, 0, 1], [0, 0, -1], atol=1e-12)
    np.testing.assert_allclose((pose @ np.append(offset, 1.0))[:3], [-0.5, 0.0, 0.1])
    assert np.linalg.det(pose[:3, :3]) == pytest.approx(1.0)
