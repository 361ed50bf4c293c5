"""
The preflight's checks of a robot cell, without ROS: observations in, a verdict and a hint out.

`preflight.py` (the rclpy layer) listens to the cell for a few seconds, asks its nodes for their
parameters and turns what it saw into the small dataclasses below; each check here returns a
CheckResult with a plain one-line detail and, when it fails, what to do about it. Nothing here
moves the arm: the gripper check judges positions the rclpy layer measured.
"""

from dataclasses import dataclass, field
import math
from pathlib import Path
import time

import numpy as np
from vpg_common.driver_names import UR_JOINTS
from vpg_executor.motion import TcpKinematics, TrajectoryConfig
from vpg_executor.safety import TopDownPose
from vpg_executor.ur_kinematics import forward_kinematics, inverse_kinematics, MODELS
from vpg_perception.calibration import load_calibration, recorded_intrinsics

COLOR_ENCODINGS = ('rgb8', 'bgr8')
DEPTH_ENCODINGS = ('16UC1', '32FC1')
"""What the heightmap node reads (vpg_perception.conversions)."""


@dataclass(frozen=True)
class CheckResult:
    """One line of the preflight: a check's name, whether it passed, what was seen, what to do."""

    name: str
    ok: bool
    detail: str
    hint: str = ''

    def lines(self):
        """Return the printed lines: `PASS name: detail` or `FAIL ...` plus `  hint: ...`."""
        head = f'{"PASS" if self.ok else "FAIL"} {self.name}: {self.detail}'
        return [head] if self.ok or not self.hint else [head, f'     hint: {self.hint}']


@dataclass
class TopicObservation:
    """What arrived on one topic while the preflight listened."""

    topic: str
    receive_times: list = field(default_factory=list)
    """Wall-clock seconds of each message's arrival."""
    stamps: list = field(default_factory=list)
    """Header stamps (s) of each message."""
    encodings: set = field(default_factory=set)
    sizes: set = field(default_factory=set)
    """(width, height) of images and camera_info."""
    frame_ids: set = field(default_factory=set)

    def rate(self):
        """Messages per second over the time they arrived in (0 with fewer than 2)."""
        if len(self.receive_times) < 2:
            return 0.0
        span = self.receive_times[-1] - self.receive_times[0]
        return (len(self.receive_times) - 1) / span if span > 0 else 0.0


def check_image_stream(name, observation, expected_rate, encodings, min_fraction=0.8):
    """
    Check that an image topic arrives at min_fraction x expected_rate (Hz), in one of encodings.

    The hint names the topic and, for a silent one, the usual causes.
    """
    rate = observation.rate()
    seen = ', '.join(sorted(observation.encodings)) or 'none'
    size = ', '.join(f'{w}x{h}' for w, h in sorted(observation.sizes)) or '-'
    detail = f'{observation.topic}: {rate:.1f} Hz, encoding {seen}, {size}'
    if not observation.receive_times:
        return CheckResult(name, False, f'{observation.topic}: nothing arrived',
                           'is the camera driver running and streaming (realsense2_camera '
                           'with enable_color, enable_depth and align_depth.enable)? USB '
                           'cable and `rs-enumerate-devices`')
    if rate < min_fraction * expected_rate:
        return CheckResult(name, False, detail + f' (expected {expected_rate:g} Hz)',
                           'a slow stream: check the USB 3 link, the profile '
                           '(rgb_camera.color_profile / depth_module.depth_profile) and the '
                           "host's load")
    bad = observation.encodings - set(encodings)
    if bad:
        return CheckResult(name, False, detail,
                           f'the heightmap node reads {", ".join(encodings)}; set the '
                           "driver's format (rgb_camera.color_format / "
                           'depth_module.depth_format)')
    return CheckResult(name, True, detail)


def check_camera_info(observation):
    """camera_info arrives with a size and a frame id."""
    if not observation.receive_times:
        return CheckResult('camera_info', False, f'{observation.topic}: nothing arrived',
                           'the camera driver publishes camera_info with each colour frame')
    size = ', '.join(f'{w}x{h}' for w, h in sorted(observation.sizes))
    return CheckResult('camera_info', True,
                       f'{observation.topic}: {observation.rate():.1f} Hz, {size}, frame '
                       f'{", ".join(sorted(observation.frame_ids))}')


def check_stamp_pairing(color_stamps, depth_stamps, max_difference):
    """
    Check that colour and depth frames pair by their stamps.

    A colour frame's partner is the nearest depth frame within half a frame period (its own
    frame slot). Pass: some colour frames have one, and the median offset to it is within
    max_difference seconds (the heightmap node's max_stamp_difference). Frames lost in
    transport leave their partner alone, which the heightmap node survives and the detail
    reports; streams whose stamps are offset (no enable_sync, another clock) fail.
    """
    name = 'depth/colour pairing'
    if not color_stamps or not depth_stamps:
        return CheckResult(name, False, 'no frames to pair',
                           'needs both colour and aligned depth (see the camera checks)')
    colour = np.sort(np.asarray(color_stamps, dtype=float))
    depth = np.sort(np.asarray(depth_stamps, dtype=float))
    period = float(np.median(np.diff(colour))) if len(colour) > 1 else math.inf
    offsets = []
    for stamp in colour:
        i = np.searchsorted(depth, stamp)
        offsets.append(min(abs(depth[j] - stamp) for j in (i - 1, i) if 0 <= j < len(depth)))
    offsets = np.asarray(offsets)
    partners = offsets[offsets <= max(period / 2, max_difference)]
    hint = ('start realsense2_camera with enable_sync:=true (real.launch.py does), both '
            'streams at one frame rate and stamped by the same clock')
    if not len(partners):
        return CheckResult(name, False, f'no colour frame has a depth frame within half a '
                           f'frame period (nearest {float(np.min(offsets)) * 1000:.0f} ms)',
                           hint)
    median = float(np.median(partners))
    detail = (f'median offset {median * 1000:.1f} ms (limit {max_difference * 1000:.0f} ms); '
              f'{len(partners)} of {len(offsets)} colour frames have their depth frame')
    if median > max_difference:
        return CheckResult(name, False, detail, hint)
    return CheckResult(name, True, detail)


def check_calibration(path, camera_info=None, now=None, max_age_days=30.0,
                      tolerance=0.01):
    """
    Check that the calibration file exists, loads and was made for this camera; say its age.

    camera_info: (width, height, fx, fy, cx, cy, frame_id) of the running camera, or None when
    none arrived. "For this camera": its camera_frame_id is camera_info's frame id, and the
    intrinsics `calibrate` recorded (if the file has them) agree within tolerance (relative).
    Older than max_age_days fails: a camera that was bumped needs a new calibration.
    """
    name = 'calibration'
    hint_new = ('calibrate: ros2 run vpg_bringup calibrate (checkerboard on the tool), '
                'then pass the file as calibration_file:=')
    if not path:
        return CheckResult(name, False, 'no calibration file given', hint_new)
    path = Path(path)
    if not path.is_file():
        return CheckResult(name, False, f'{path} does not exist', hint_new)
    try:
        calibration = load_calibration(path)
    except ValueError as error:
        return CheckResult(name, False, str(error), hint_new)
    now = time.time() if now is None else now
    age_days = (now - path.stat().st_mtime) / 86400.0
    detail = f'{path}, {age_days:.1f} days old'
    if camera_info is not None:
        width, height, fx, fy, cx, cy, frame_id = camera_info
        if frame_id and frame_id != calibration.camera_frame_id:
            return CheckResult(name, False, f'{detail}; made for frame '
                               f'{calibration.camera_frame_id}, the camera publishes '
                               f'{frame_id}', 'recalibrate with this camera, or fix '
                               "the driver's camera_name")
        recorded = recorded_intrinsics(path.read_text())
        if recorded is None:
            detail += '; intrinsics not recorded in the file, frame id matches'
        else:
            now_values = (width, height, fx, fy, cx, cy)
            off = [abs(a - b) / max(abs(b), 1.0) for a, b in zip(recorded, now_values)]
            if max(off) > tolerance:
                return CheckResult(name, False, f'{detail}; made with a camera of '
                                   f'{recorded}, this one is {now_values}',
                                   'another camera or another profile: ' + hint_new)
            detail += '; intrinsics match the camera'
    if age_days > max_age_days:
        return CheckResult(name, False, detail + f' (more than {max_age_days:g} days)',
                           'recalibrate if the camera or the table moved; ' + hint_new)
    return CheckResult(name, True, detail)


def check_joint_states(observation, names, gripper_joint):
    """/joint_states arrives and carries the six UR joints and the gripper's knuckle."""
    if not observation.receive_times:
        return CheckResult('joint states', False, f'{observation.topic}: nothing arrived',
                           'is ur_robot_driver running (robot_ip, External Control program '
                           'on the pendant) and the joint_state_broadcaster active?')
    missing = [n for n in (*UR_JOINTS, gripper_joint) if n not in names]
    detail = f'{observation.topic}: {observation.rate():.0f} Hz, {len(names)} joints'
    if missing:
        return CheckResult('joint states', False, f'{detail}; missing {", ".join(missing)}',
                           'the gripper joints come from the gripper hardware in the same '
                           'controller manager (urdf/vpg_cell.urdf.xacro)')
    return CheckResult('joint states', True, detail)


def check_arm_pose(joints, measured_tool0, ur_type, tolerance=0.01):
    """
    Check the arm is where the description says: ur_type's kinematics vs the measured tool0.

    joints: the six UR joint angles (rad); measured_tool0: (x, y, z) of tool0 in the base
    frame as the robot controller computes it (ur_robot_driver's tcp_pose_broadcaster), or None.
    A wrong ur_type puts the computed tool0 centimetres off.
    """
    name = 'arm pose vs description'
    if joints is None:
        return CheckResult(name, False, 'no UR joint states', 'see the joint states check')
    if measured_tool0 is None:
        return CheckResult(name, False, 'no measured tool pose (/tcp_pose_broadcaster/pose)',
                           "ur_robot_driver's tcp_pose_broadcaster publishes it; is it "
                           'active (ros2 control list_controllers)?')
    if ur_type not in MODELS:
        return CheckResult(name, False, f'unknown ur_type {ur_type!r}',
                           f'one of {", ".join(sorted(MODELS))}')
    computed = forward_kinematics(np.asarray(joints, dtype=float), MODELS[ur_type])[:3, 3]
    error = float(np.linalg.norm(computed - np.asarray(measured_tool0, dtype=float)))
    detail = f'{ur_type} kinematics put tool0 {error * 1000:.1f} mm from the measured pose'
    if error > tolerance:
        return CheckResult(name, False, detail + f' (more than {tolerance * 1000:.0f} mm)',
                           'ur_type does not match the arm (UR5 vs UR5e?), or the pendant '
                           "has a TCP offset set (the broadcaster reports the pendant's TCP; "
                           'set it to the flange), or the kinematics calibration '
                           '(kinematics_params_file) is missing')
    return CheckResult(name, True, detail)


KINEMATICS_OF = {'ur5': 'ur5', 'ur5e': 'ur5e', 'ur5e_menagerie': 'ur5e'}
"""The arm each of the executor's kinematics models is (the Menagerie UR5e is a UR5e)."""


def check_executor_model(model, ur_type, running=True):
    """Check the executor's kinematics (robot.model) are the arm's on the table (ur_type)."""
    name = 'executor kinematics'
    if not running:
        return CheckResult(name, False, 'the executor did not answer (not running?)',
                           'start the cell (ros2 launch vpg_bringup real.launch.py ...)')
    if KINEMATICS_OF.get(model) != ur_type:
        return CheckResult(name, False, f'executor robot.model {model}, the arm is {ur_type}',
                           'launch with ur_type:=<the arm> (it sets the driver and the '
                           'executor alike)')
    return CheckResult(name, True, f'robot.model {model} for a {ur_type}')


def check_controllers(states, required, graph_fallback=None):
    """
    Check that the controllers the cell needs are active.

    states: {controller name: state} from controller_manager's list_controllers, or None when
    there is no controller manager (MuJoCo cell); then graph_fallback {what: present} says
    whether the topics and actions those controllers serve exist.
    """
    name = 'controllers'
    if states is None:
        missing = [what for what, present in (graph_fallback or {}).items() if not present]
        detail = ('no controller_manager; ' + ', '.join(
            f'{what} {"present" if present else "MISSING"}'
            for what, present in (graph_fallback or {}).items()))
        if missing or not graph_fallback:
            return CheckResult(name, False, detail,
                               'spawn the missing controller (real.launch.py spawns '
                               'robotiq_gripper_controller and robotiq_activation_controller; '
                               'ur_control.launch.py the trajectory controller)')
        return CheckResult(name, True, detail)
    inactive = [c for c in required if states.get(c) != 'active']
    detail = ', '.join(f'{c} {states.get(c, "not loaded")}' for c in required)
    if inactive:
        return CheckResult(name, False, detail,
                           'a UR program that is not running deactivates them '
                           '(controller_stopper): press play on the pendant; otherwise '
                           'see the spawner output, e.g. `ros2 control list_controllers`; '
                           'ur_control.launch.py loads tool_contact_controller inactive: '
                           '`ros2 control switch_controllers --activate '
                           'tool_contact_controller`')
    return CheckResult(name, True, detail)


def check_gripper_motion(measured, targets, tolerance=0.05):
    """
    Check that the gripper moved its knuckle to each commanded position (rad), within tolerance.

    measured: knuckle positions after each command (same order as targets), None for a
    command that failed.
    """
    name = 'gripper open/close'
    pairs = ', '.join(f'{t:.2f}->{"-" if m is None else f"{m:.2f}"}'
                      for t, m in zip(targets, measured))
    if any(m is None or abs(m - t) > tolerance for m, t in zip(measured, targets)):
        return CheckResult(name, False, f'commanded -> knuckle: {pairs}',
                           'is the gripper activated (robotiq_activation_controller), '
                           'powered, on gripper_com_port, with nothing between the fingers?')
    return CheckResult(name, True, f'commanded -> knuckle: {pairs}')


def check_policy(weights_path, served_version, file_version=None, file_sha256=None):
    """
    Check that the policy answers with weights loaded from a file (not a random init).

    served_version: the weights version in its answer (None if it did not answer).
    """
    name = 'policy weights'
    if served_version is None:
        return CheckResult(name, False, 'the policy did not answer choose_primitive',
                           'is the policy node running? see its log')
    if not weights_path:
        return CheckResult(name, False, f'serving version {served_version} of a RANDOM '
                           'initialisation (weights_path empty)',
                           'pass weights:=<file>.safetensors (e.g. weights/vpg.safetensors)')
    detail = (f'serving version {served_version}; {weights_path} holds version '
              f'{file_version}, sha256 {str(file_sha256)[:12]}')
    if file_version is not None and served_version < file_version:
        return CheckResult(name, False, detail, 'the policy did not load the file; see its log')
    return CheckResult(name, True, detail)


def check_workspace_reach(workspace, heights, ur_type, tcp_offset, tcp_yaw_offset,
                          joint_lower, joint_upper, yaws=(0.0, math.pi / 4, math.pi / 2,
                                                          3 * math.pi / 4)):
    """
    Check every corner of the workspace box is reachable top-down at each height and jaw angle.

    workspace: (x_min, x_max, y_min, y_max) in the base frame, heights: TCP heights (m); the
    TCP is tcp_offset in front of tool0. Reachable: an analytic IK solution within the joint
    limits.
    """
    name = 'workspace in reach'
    if ur_type not in ('ur5', 'ur5e', 'ur5e_menagerie'):
        return CheckResult(name, False, f'unknown ur_type {ur_type!r}', 'ur5 or ur5e')
    kinematics = TcpKinematics(TrajectoryConfig(model=ur_type, tcp_offset=tcp_offset,
                                                tcp_yaw_offset=tcp_yaw_offset))
    lower, upper = np.asarray(joint_lower), np.asarray(joint_upper)
    x_min, x_max, y_min, y_max = workspace
    unreachable = []
    for x in (x_min, x_max):
        for y in (y_min, y_max):
            for z in heights:
                for yaw in yaws:
                    pose = kinematics.tool0_pose(TopDownPose(x, y, z, yaw))
                    solutions = inverse_kinematics(pose, kinematics.params)
                    inside = [q for q in solutions
                              if np.all(q >= lower - 1e-9) and np.all(q <= upper + 1e-9)]
                    if not inside:
                        unreachable.append((x, y, z, round(math.degrees(yaw))))
    count = 4 * len(heights) * len(yaws)
    detail = (f'{count - len(unreachable)} of {count} corner poses reachable ({ur_type}, '
              f'x {x_min:.3f}..{x_max:.3f}, y {y_min:.3f}..{y_max:.3f}, z '
              f'{", ".join(f"{z:.3f}" for z in heights)})')
    if unreachable:
        return CheckResult(name, False, detail + f'; e.g. {unreachable[0]} is not',
                           'move the workspace box (executor primitives.workspace, '
                           "heightmap workspace.*) nearer the robot's base")
    return CheckResult(name, True, detail)


def exit_code(results):
    """0 when every check passed, 1 otherwise."""
    return 0 if results and all(r.ok for r in results) else 1


def report(results):
    """Return the printed report: every check's lines, then a summary naming the failures."""
    lines = [line for result in results for line in result.lines()]
    failed = [r.name for r in results if not r.ok]
    lines.append(f'preflight: {len(results) - len(failed)} of {len(results)} checks passed'
                 + (f'; FAILED: {", ".join(failed)}' if failed else ''))
    return '\n'.join(lines)
