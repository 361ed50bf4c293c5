"""
ROS 2 tool `calibrate`: find the camera's pose in the robot base frame, VPG style.

The robot carries a checkerboard fixed to its tool through a grid of positions over the
workspace (tool pointing down). At each one the tool waits until /joint_states reach the
target, takes a fresh colour + aligned depth frame, finds the board's centre corner and
back-projects it; forward kinematics gives the same corner in the base frame. A rigid fit with
depth scale over all observations (calibration.fit_camera_pose) gives the calibration file the
heightmap node reads. The arm goes back to where it started at the end.

Motion uses the UR driver's interfaces (JointTrajectory on the scaled joint trajectory
controller's topic, /joint_states), so the same tool runs against a real UR5e or the MuJoCo
cell. Exit status 0 when the file was written, 1 otherwise. A commissioning tool of the cell,
beside preflight: it uses the executor's UR kinematics and vpg_perception.calibration's solver
and detector.
"""

from dataclasses import dataclass
import math
import threading
import time

import numpy as np
import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.logging import get_logger
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image, JointState
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint
from vpg_common.driver_names import CAMERA_FRAME, JOINT_STATES_TOPIC, TRAJECTORY_TOPIC, UR_JOINTS
from vpg_common.parameters import declare, float_range, int_range
from vpg_common.stamps import duration_msg
from vpg_executor.ur_kinematics import (forward_kinematics, inverse_kinematics, MODELS,
                                        nearest_solution)
from vpg_perception.calibration import (calibration_grid, CameraCalibration, fit_camera_pose,
                                        intrinsics_comment, load_calibration, observe_marker,
                                        pose_difference, save_calibration, top_down_tool_pose)
from vpg_perception.camera_input import CAMERA_INPUT_PARAMETERS
from vpg_perception.conversions import (color_image_to_rgb, depth_image_to_metres,
                                        ImageConversionError)
from vpg_perception.frame_sync import FramePairer, Stream
from vpg_perception.heightmap import check_intrinsics

# UR5e joint limits (rad): +-2 pi, the elbow +-pi (as the driver's URDF and the cell).
JOINT_LOWER = np.array([-2 * math.pi, -2 * math.pi, -math.pi, -2 * math.pi, -2 * math.pi,
                        -2 * math.pi])
JOINT_UPPER = -JOINT_LOWER
_NS = 1_000_000_000


@dataclass(frozen=True)
class CalibrationToolParams:
    """The tool's parameters (see declare_parameters for their meaning)."""

    output_file: str
    reference_file: str
    model: str
    marker_offset: tuple
    inner_corners: tuple
    grid_x: tuple
    grid_y: tuple
    grid_z: tuple
    grid_step: float
    min_tool_height: float
    tool_yaw: float
    joint_speed: float
    min_move_time: float
    position_tolerance: float
    move_timeout: float
    settle_time: float
    frame_timeout: float
    fit_depth_scale: bool
    max_residual: float
    min_observations: int
    frame_id: str
    camera_frame_id: str
    max_stamp_difference: float
    color_topic: str
    depth_topic: str
    camera_info_topic: str
    joint_states_topic: str
    trajectory_topic: str


def declare_parameters(node):
    """Declare every parameter once (type, default, description, range); return the params."""
    specs = [
        ('output_file', '', 'Calibration YAML to write. Required.', {}),
        ('reference_file', '',
         'Optional known calibration (e.g. the ground truth of the simulated camera) to report '
         'the result against.', {}),
        ('model', 'ur5e_menagerie',
         f'Arm kinematics, one of {sorted(MODELS)}: ur5e_menagerie for the MuJoCo cell, ur5e '
         'for a real UR5e.', {}),
        ('marker_offset', [0.0, -0.1, 0.03],
         'Checkerboard centre corner in the tool0 frame, metres (the MuJoCo cell: '
         'vpg_sim.scene.CALIBRATION_MARKER_OFFSET).', {}),
        ('inner_corners', [3, 3], 'Inner corners of the checkerboard (columns, rows), odd.', {}),
        ('grid.x_min', -0.55, 'Marker positions: x range in the base frame, metres.',
         float_range(-2, 2)),
        ('grid.x_max', -0.3, 'Marker positions: x range in the base frame, metres.',
         float_range(-2, 2)),
        ('grid.y_min', -0.2, 'Marker positions: y range in the base frame, metres.',
         float_range(-2, 2)),
        ('grid.y_max', 0.2, 'Marker positions: y range in the base frame, metres.',
         float_range(-2, 2)),
        ('grid.z_values', [0.2, 0.3],
         'Marker heights (metres, base frame); one layer of the grid each.', {}),
        ('min_tool_height', 0.2,
         'Positions that would bring tool0 lower than this (metres above the base) are '
         'skipped: the gripper below the flange must clear the table.', float_range(-2.0, 2.0)),
        ('grid.step', 0.1, 'Grid spacing in x and y, metres.', float_range(0.005, 1.0)),
        ('tool_yaw', math.pi / 2,
         'Rotation of the tool about the vertical, radians; with 0 tool0 x is base x. The '
         'default puts the marker of the MuJoCo cell on the far side of the tool from the arm.',
         float_range(-math.pi, math.pi)),
        ('joint_speed', 0.5, 'Largest joint speed of the moves, rad/s.', float_range(0.01, 3.0)),
        ('min_move_time', 1.0, 'Shortest move duration, seconds.', float_range(0.1, 60.0)),
        ('position_tolerance', 0.002,
         'A move has arrived when every joint is this close to its target, rad.',
         float_range(1e-5, 0.1)),
        ('move_timeout', 30.0, 'Wall time a move may take beyond its duration, seconds.',
         float_range(1.0, 600.0)),
        ('settle_time', 0.5,
         'Wait after arriving before taking a frame (node clock), seconds.',
         float_range(0.0, 10.0)),
        ('frame_timeout', 10.0, 'Wall time to wait for a fresh camera frame, seconds.',
         float_range(0.5, 600.0)),
        ('fit_depth_scale', True, 'Fit a depth scale along with the pose (as VPG).', {}),
        ('max_residual', 0.01,
         'Drop the worst observation and refit while a residual exceeds this, metres.',
         float_range(1e-4, 1.0)),
        ('min_observations', 6, 'Fewest marker observations to accept a calibration.',
         int_range(3, 10000)),
        ('frame_id', 'base',
         'Base frame the kinematics (and so the calibration) are expressed in: the base frame '
         'of the UR controller.', {}),
        ('camera_frame_id', CAMERA_FRAME, 'Camera optical frame name.', {}),
        *CAMERA_INPUT_PARAMETERS,
        ('joint_states_topic', JOINT_STATES_TOPIC, 'Arm joint states.', {}),
        ('trajectory_topic', TRAJECTORY_TOPIC,
         'JointTrajectory command topic of the arm controller.', {}),
    ]
    values = declare(node, specs)
    params = CalibrationToolParams(
        grid_x=(values.pop('grid.x_min'), values.pop('grid.x_max')),
        grid_y=(values.pop('grid.y_min'), values.pop('grid.y_max')),
        grid_z=tuple(values.pop('grid.z_values')), grid_step=values.pop('grid.step'),
        marker_offset=tuple(values.pop('marker_offset')),
        inner_corners=tuple(values.pop('inner_corners')), **values)
    if not params.output_file:
        raise ValueError('parameter output_file is empty: say where to write the calibration')
    if params.model not in MODELS:
        raise ValueError(f'model {params.model!r} unknown; use one of {sorted(MODELS)}')
    if len(params.marker_offset) != 3 or len(params.inner_corners) != 2:
        raise ValueError('marker_offset needs 3 values and inner_corners 2')
    return params


class CalibrationTool(Node):
    """Collects marker observations and writes the calibration; see the module docstring."""

    def __init__(self, **kwargs):
        super().__init__('calibrate', **kwargs)
        try:
            self.params = declare_parameters(self)
        except ValueError:
            self.destroy_node()
            raise
        p = self.params
        self._kinematics = MODELS[p.model]
        self._changed = threading.Condition()
        self._joints = None       # (6,) in UR_JOINTS order
        self._intrinsics = None
        self._image_size = None
        self._frame = None        # (stamp_ns, colour msg, depth msg), newest pair
        self._pairer = FramePairer(int(round(p.max_stamp_difference * _NS)))
        self.create_subscription(JointState, p.joint_states_topic, self._on_joint_state, 10)
        self.create_subscription(CameraInfo, p.camera_info_topic, self._on_camera_info,
                                 qos_profile_sensor_data)
        self.create_subscription(Image, p.color_topic,
                                 lambda msg: self._on_image(Stream.COLOR, msg),
                                 qos_profile_sensor_data)
        self.create_subscription(Image, p.depth_topic,
                                 lambda msg: self._on_image(Stream.DEPTH, msg),
                                 qos_profile_sensor_data)
        self._trajectory_pub = self.create_publisher(JointTrajectory, p.trajectory_topic, 10)

    # -- callbacks (executor threads) ----------------------------------------------------

    def _on_joint_state(self, msg):
        names = list(msg.name)
        if not all(joint in names for joint in UR_JOINTS):
            return
        with self._changed:
            self._joints = np.array([msg.position[names.index(j)] for j in UR_JOINTS])
            self._changed.notify_all()

    def _on_camera_info(self, msg):
        try:
            intrinsics = check_intrinsics(np.reshape(msg.k, (3, 3)))
        except ValueError as error:
            self.get_logger().warning(f'camera_info unusable: {error}',
                                      throttle_duration_sec=5.0)
            return
        with self._changed:
            self._intrinsics = intrinsics
            self._image_size = (msg.width, msg.height)
            self._changed.notify_all()

    def _on_image(self, stream, msg):
        stamp = msg.header.stamp.sec * _NS + msg.header.stamp.nanosec
        with self._changed:
            pair, _ = self._pairer.add(stream, stamp, msg)
            if pair is not None:
                self._frame = (pair[2], pair[0], pair[1])
                self._changed.notify_all()

    # -- the procedure (main thread) ------------------------------------------------------

    def _wait(self, predicate, timeout, what):
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f'timed out after {timeout:.1f} s waiting for {what}')
                self._changed.wait(min(remaining, 0.1))

    def _sleep_node_time(self, seconds, wall_timeout):
        """Sleep on the node clock (sim time when use_sim_time), bounded in wall time."""
        clock = self.get_clock()
        end = clock.now().nanoseconds + int(seconds * _NS)
        deadline = time.monotonic() + wall_timeout
        while clock.now().nanoseconds < end and time.monotonic() < deadline:
            time.sleep(0.01)

    def joints(self):
        with self._changed:
            return None if self._joints is None else self._joints.copy()

    def move_to(self, target):
        """Send a one-point trajectory to target (6,) and wait until the joints reach it."""
        p = self.params
        start = self.joints()
        duration = max(p.min_move_time, float(np.max(np.abs(target - start))) / p.joint_speed)
        msg = JointTrajectory(joint_names=list(UR_JOINTS))
        msg.points = [JointTrajectoryPoint(positions=target.tolist(), velocities=[0.0] * 6,
                                           time_from_start=duration_msg(duration))]
        self._trajectory_pub.publish(msg)
        try:
            self._wait(lambda: np.max(np.abs(self._joints - target)) < p.position_tolerance,
                       duration * 5 + p.move_timeout, 'the arm to reach its target')
        except TimeoutError as error:
            raise TimeoutError(f'{error}; joint errors (rad) '
                               f'{np.round(self.joints() - target, 4).tolist()}') from None

    def fresh_frame(self):
        """Colour (H, W, 3) RGB and depth (H, W) m of the first frame pair after this call."""
        with self._changed:
            last = None if self._frame is None else self._frame[0]
        self._wait(lambda: self._frame is not None and (last is None or self._frame[0] > last),
                   self.params.frame_timeout, 'a new colour + depth frame')
        with self._changed:
            _, color_msg, depth_msg = self._frame
        return color_image_to_rgb(color_msg), depth_image_to_metres(depth_msg)

    def collect(self):
        """Visit the grid; return (base-frame marker positions, camera-frame observations)."""
        p = self.params
        log = self.get_logger()
        self._wait(lambda: self._joints is not None, 30.0, p.joint_states_topic)
        self._wait(lambda: self._intrinsics is not None, 30.0, p.camera_info_topic)
        targets = calibration_grid(p.grid_x, p.grid_y, p.grid_z, p.grid_step)
        offset = np.append(np.asarray(p.marker_offset, dtype=np.float64), 1.0)
        base_points, camera_points = [], []
        log.info(f'{len(targets)} marker positions to visit')
        for index, target in enumerate(targets):
            seed = self.joints()
            pose = top_down_tool_pose(target, p.marker_offset, p.tool_yaw)
            if pose[2, 3] < p.min_tool_height:
                log.warning(f'position {index} {np.round(target, 3).tolist()}: tool0 would be '
                            f'at z = {pose[2, 3]:.3f} m, below min_tool_height, skipped')
                continue
            q = nearest_solution(inverse_kinematics(pose, self._kinematics), seed,
                                 JOINT_LOWER, JOINT_UPPER)
            if q is None:
                log.warning(f'position {index} {np.round(target, 3).tolist()}: out of reach, '
                            'skipped')
                continue
            self.move_to(q)
            self._sleep_node_time(p.settle_time, wall_timeout=p.settle_time * 10 + 5)
            try:
                color, depth = self.fresh_frame()
            except ImageConversionError as error:
                log.warning(f'position {index}: unreadable frame ({error}), skipped')
                continue
            marker_base = (forward_kinematics(self.joints(), self._kinematics) @ offset)[:3]
            with self._changed:
                intrinsics = self._intrinsics
            observed, pixel = observe_marker(color, depth, intrinsics, p.inner_corners)
            if observed is None:
                why = 'board not found' if pixel is None else 'no depth at the board'
                log.warning(f'position {index} {np.round(target, 3).tolist()}: {why}, '
                            'skipped')
                continue
            base_points.append(marker_base)
            camera_points.append(observed)
            log.info(f'position {index}: marker at pixel ({pixel[0]:.1f}, {pixel[1]:.1f}), '
                     f'{observed[2]:.3f} m from the camera')
        return np.array(base_points).reshape(-1, 3), np.array(camera_points).reshape(-1, 3)

    def solve_and_write(self, base_points, camera_points):
        """Fit the calibration, report residuals and write the file; returns the fit."""
        p = self.params
        log = self.get_logger()
        if len(base_points) < p.min_observations:
            raise RuntimeError(f'only {len(base_points)} marker observations, need '
                               f'{p.min_observations}')
        fit = fit_camera_pose(base_points, camera_points, p.fit_depth_scale, p.max_residual,
                              p.min_observations)
        used = int(fit.inliers.sum())
        residual_mm = np.round(fit.residuals * 1000, 2).tolist()
        log.info(f'residuals (mm, NaN = dropped): {residual_mm}')
        summary = (f'{used} of {len(base_points)} marker observations, residual rms '
                   f'{fit.rmse * 1000:.2f} mm, max {np.nanmax(fit.residuals) * 1000:.2f} mm, '
                   f'depth scale {fit.depth_scale:.5f}')
        calibration = CameraCalibration(fit.base_T_camera, fit.depth_scale, p.frame_id,
                                        p.camera_frame_id)
        k = self._intrinsics
        save_calibration(p.output_file, calibration,
                         comments=[f'Written by the calibrate tool ({p.model}): {summary}.',
                                   intrinsics_comment(self._image_size[0], self._image_size[1],
                                                      k[0, 0], k[1, 1], k[0, 2], k[1, 2])])
        log.info(f'wrote {p.output_file}: {summary}')
        if p.reference_file:
            reference = load_calibration(p.reference_file)
            distance, angle = pose_difference(fit.base_T_camera, reference.base_T_camera)
            log.info(f'against {p.reference_file}: {distance * 1000:.2f} mm, {angle:.3f} deg, '
                     f'depth scale {fit.depth_scale:.5f} vs {reference.depth_scale:.5f}')
        return fit

    def run(self):
        """Collect, go back to the start pose, solve and write; returns the fit."""
        p = self.params
        self._wait(lambda: self._joints is not None, 30.0, p.joint_states_topic)
        # A message published before the controller has subscribed would be lost.
        self._wait(lambda: self._trajectory_pub.get_subscription_count() > 0, 30.0,
                   f'a subscriber on {p.trajectory_topic}')
        start = self.joints()
        try:
            base_points, camera_points = self.collect()
        finally:
            self.move_to(start)
        return self.solve_and_write(base_points, camera_points)


def main(args=None):
    try:
        with rclpy.init(args=args):
            try:
                tool = CalibrationTool()
            except ValueError as error:
                get_logger('calibrate').fatal(f'cannot start: {error}')
                return 1
            executor = MultiThreadedExecutor(num_threads=2)
            executor.add_node(tool)
            spinner = threading.Thread(target=executor.spin, daemon=True)
            spinner.start()
            try:
                tool.run()
            except (TimeoutError, RuntimeError, ValueError) as error:
                tool.get_logger().fatal(f'calibration failed: {error}')
                return 1
            finally:
                executor.shutdown()
                spinner.join(timeout=10)
                tool.destroy_node()
    except (KeyboardInterrupt, ExternalShutdownException):
        return 1
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
