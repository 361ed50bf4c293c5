"""The cell model: camera calibration file, view of the workspace, renderer, calibration marker."""

import math

import mujoco
import numpy as np
import pytest

from vpg_sim import camera, scene
from vpg_test_support import camera_calibration, scripted_motion

WORKSPACE_X = (-0.724, -0.276)
WORKSPACE_Y = (-0.224, 0.224)


@pytest.fixture(scope='module')
def model():
    return scene.build_model()


@pytest.fixture(scope='module')
def marker_model():
    return scene.build_model(calibration_marker=True)


def arm_qpos(model):
    return [model.jnt_qposadr[model.joint(j).id] for j in scene.ARM_JOINTS]


def test_calibration_file_is_the_model_camera(model):
    """The installed YAML must equal the camera's pose read straight from MuJoCo's data."""
    text = camera_calibration.default_calibration_file().read_text()
    assert text == scene.calibration_yaml(model)  # regenerate the file if the camera moved
    lines = text.splitlines()
    assert 'frame_id: base' in lines
    assert 'camera_frame_id: camera_color_optical_frame' in lines
    mj_data = mujoco.MjData(model)
    mujoco.mj_forward(model, mj_data)
    cam = model.camera(scene.CAMERA).id
    # MuJoCo cameras look along -z with y up; the optical frame looks along +z with y down.
    expected_rotation = mj_data.cam_xmat[cam].reshape(3, 3) @ np.diag([1.0, -1.0, -1.0])
    loaded = camera_calibration.load_calibration()
    assert loaded.depth_scale == 1.0
    np.testing.assert_allclose(loaded.translation, mj_data.cam_xpos[cam], atol=1e-8)
    np.testing.assert_allclose(loaded.rotation, expected_rotation, atol=1e-8)
    # A modest tilt: the optical axis is 10-20 degrees off straight down.
    tilt = math.degrees(math.acos(-loaded.rotation[2, 2]))
    assert 10.0 < tilt < 20.0


def test_intrinsics_match_the_field_of_view(model):
    fx, fy, cx, cy = scene.camera_intrinsics(model)
    assert fx == fy == pytest.approx(scene.FOCAL_LENGTH_PX)
    assert (cx, cy) == (319.5, 239.5)


def test_workspace_in_view_and_clear_pose_out_of_view(model, marker_model):
    fx, fy, cx, cy = scene.camera_intrinsics(model)
    k = [fx, 0, cx, 0, fy, cy, 0, 0, 1]
    calib = camera_calibration.load_calibration()
    corners = np.array([[x, y, z] for x in WORKSPACE_X for y in WORKSPACE_Y for z in (0, 0.1)])
    uv, depth = camera_calibration.project(corners, k, calib)
    assert np.all(depth > 0)
    assert np.all((uv[:, 0] > 20) & (uv[:, 0] < 620) & (uv[:, 1] > 20) & (uv[:, 1] < 460))

    for cell_model in (model, marker_model):
        data = mujoco.MjData(cell_model)
        renderer = mujoco.Renderer(cell_model, scene.IMAGE_HEIGHT, scene.IMAGE_WIDTH)
        renderer.enable_segmentation_rendering()
        robot_geoms = [g for g in range(cell_model.ngeom) if cell_model.geom_bodyid[g] != 0]
        visible = {}
        for name, q in (('clear', scene.CLEAR_POSE),
                        ('over the workspace', scripted_motion.TOP_DOWN_SEED)):
            data.qpos[arm_qpos(cell_model)] = q
            mujoco.mj_forward(cell_model, data)
            renderer.update_scene(data, scene.CAMERA)
            visible[name] = int(np.isin(renderer.render()[..., 0], robot_geoms).sum())
        renderer.close()
        assert visible['clear'] == 0  # arm (and calibration marker) out of view
        assert visible['over the workspace'] > 1000  # the check can see the arm at all


def test_one_pass_depth_equals_mujoco_renderer(model):
    data = mujoco.MjData(model)
    data.qpos[arm_qpos(model)] = scripted_motion.TOP_DOWN_SEED
    mujoco.mj_forward(model, data)
    rgbd = camera.RgbdRenderer(model)
    rgb, depth = rgbd.render(data)
    rgbd.close()
    reference = mujoco.Renderer(model, scene.IMAGE_HEIGHT, scene.IMAGE_WIDTH)
    reference.update_scene(data, scene.CAMERA)
    reference_rgb = reference.render()
    reference.enable_depth_rendering()
    reference.update_scene(data, scene.CAMERA)
    reference_depth = reference.render()
    reference.close()
    assert rgb.shape == (480, 640, 3) and depth.shape == (480, 640)
    np.testing.assert_allclose(depth, reference_depth, rtol=1e-5)
    assert np.mean(np.abs(rgb.astype(int) - reference_rgb.astype(int))) < 1.0
    # Table pixels back-project onto z = 0 (planar depth along the optical axis).
    fx, fy, cx, cy = scene.camera_intrinsics(model)
    points = camera_calibration.back_project(depth.astype(np.float64),
                                             [fx, 0, cx, 0, fy, cy, 0, 0, 1],
                                             camera_calibration.load_calibration())
    assert abs(points[470, 320, 2]) < 1e-3 and abs(points[470, 20, 2]) < 1e-3


def test_calibration_marker_corner_matches_the_documented_offset(marker_model):
    """Detect the checkerboard; its centre corner must project from CALIBRATION_MARKER_OFFSET."""
    cv2 = pytest.importorskip('cv2')
    model = marker_model
    data = mujoco.MjData(model)
    ik = scripted_motion.ArmIk(model, site=scene.TOOL_SITE)
    rgbd = camera.RgbdRenderer(model)
    fx, fy, cx, cy = scene.camera_intrinsics(model)
    k = [fx, 0, cx, 0, fy, cy, 0, 0, 1]
    calib = camera_calibration.load_calibration()
    site = model.site(scene.TOOL_SITE).id
    errors = []
    for position in ((-0.62, -0.12, 0.3), (-0.5, 0.0, 0.4), (-0.38, 0.12, 0.3)):
        data.qpos[arm_qpos(model)] = ik.solve(position, scripted_motion.top_down_rotation(0.0))
        mujoco.mj_forward(model, data)
        np.testing.assert_allclose(data.site_xpos[site], position, atol=1e-3)
        rgb, _ = rgbd.render(data)
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        found, corners = cv2.findChessboardCorners(gray, (3, 3))
        assert found, f'checkerboard not found with tool0 at {position}'
        corners = cv2.cornerSubPix(
            gray, corners, (5, 5), (-1, -1),
            (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 30, 0.01))
        corner = (data.site_xpos[site]
                  + data.site_xmat[site].reshape(3, 3) @ np.array(scene.CALIBRATION_MARKER_OFFSET))
        expected, _ = camera_calibration.project(corner, k, calib)
        errors.append(np.linalg.norm(corners.reshape(-1, 2)[4] - expected))
    rgbd.close()
    assert max(errors) < 1.0, errors


def test_camera_matrices_are_the_intrinsics_and_pose_as_matrices():
    model = scene.build_model()
    intrinsics, pose = scene.camera_matrices(model)
    fx, fy, cx, cy = scene.camera_intrinsics(model)
    assert np.allclose(intrinsics, [[fx, 0, cx], [0, fy, cy], [0, 0, 1]])
    translation, rotation = scene.camera_pose(model)
    assert np.allclose(pose[:3, :3], rotation) and np.allclose(pose[:3, 3], translation)
    assert np.allclose(pose[3], [0, 0, 0, 1])
