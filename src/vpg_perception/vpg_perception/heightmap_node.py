"""
ROS 2 node `heightmap`: RealSense colour + aligned depth -> VPG heightmaps of the workspace.

Subscribes to realsense2_camera's colour image (rgb8 or bgr8), depth aligned to colour (16UC1
millimetres or 32FC1 metres) and colour camera_info; pairs colour and depth by stamp. The
subscriptions are reliable with depth 10 by default (realsense2_camera publishes images with
SYSTEM_DEFAULT QoS, i.e. reliable): with best-effort ones, a busy machine lost most frames of
each stream independently and colour and depth stopped pairing for seconds
(test_pairing_under_load.py); `camera_qos:=sensor_data` is for a camera set to SENSOR_DATA.
Publishes, per built frame, `heightmap` (vpg_interfaces/Heightmap, in the
calibration file's frame_id, stamped with the camera frame's stamp) and, for RViz,
`heightmap/color` and `heightmap/height_colored` (rgb8). Serves `get_heightmap`
(vpg_interfaces/GetHeightmap): the latest heightmap from a frame stamped no earlier than the
request's newer_than, waiting up to its timeout (node clock, so use_sim_time works).

The frame callbacks only pair frames; a worker thread builds the newest pair, skipping pairs
that arrived while it was busy, so taking frames never waits behind a build and a request is
answered from the freshest frame rather than from a backlog.

Heights are measured from the table plane found in each frame (`table_refit`, see
vpg_perception.heightmap.TableFit), so a depth scale or tilt error of the camera does not raise
the table towards object height; a plane too far from workspace.z_min is reported, not applied.
The camera pose and depth scale come from the calibration file; a broken file stops the node
at start with a message naming the file and the problem. Bad frames are logged (throttled per
kind of problem) and skipped.
"""

from dataclasses import dataclass
import math
import threading
import time

import numpy as np
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header
from vpg_common.node_runner import run_node
from vpg_common.parameters import check_choice, declare, float_range, one_of
from vpg_common.stamps import NS_PER_S, to_nanoseconds
from vpg_interfaces.msg import Heightmap
from vpg_interfaces.srv import GetHeightmap
from vpg_perception.calibration import load_calibration
from vpg_perception.camera_input import CAMERA_INPUT_PARAMETERS
from vpg_perception.conversions import (color_image_to_rgb, depth_image_to_metres,
                                        heightmap_to_msg, ImageConversionError, numpy_to_image)
from vpg_perception.frame_sync import FramePairer, Stream
from vpg_perception.grid import HeightmapGrid
from vpg_perception.heightmap import check_intrinsics, colorize_height, HeightmapBuilder, TableFit

# Camera subscription QoS by name (parameter camera_qos).
CAMERA_QOS = {
    'reliable': QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE),
    'sensor_data': qos_profile_sensor_data,
}


@dataclass(frozen=True)
class HeightmapNodeParams:
    """The node's parameters (see declare_parameters for their meaning)."""

    calibration_file: str
    grid: HeightmapGrid
    max_stamp_difference: float
    color_topic: str
    depth_topic: str
    camera_info_topic: str
    visualization_max_height: float
    max_service_wait: float
    log_throttle: float
    camera_qos: str
    table_fit: TableFit | None


def declare_parameters(node):
    """Declare every parameter once (type, default, description, range); return the params."""
    default = HeightmapGrid()
    specs = [
        ('calibration_file', '',
         'Camera calibration YAML (pose of the camera optical frame in the base frame, depth '
         'scale), as written by the calibrate tool. Required.', {}),
        ('workspace.x_min', default.x_min, 'Workspace box in the base frame, metres.',
         float_range(-10, 10)),
        ('workspace.x_max', default.x_max, 'Workspace box in the base frame, metres.',
         float_range(-10, 10)),
        ('workspace.y_min', default.y_min, 'Workspace box in the base frame, metres.',
         float_range(-10, 10)),
        ('workspace.y_max', default.y_max, 'Workspace box in the base frame, metres.',
         float_range(-10, 10)),
        ('workspace.z_min', default.z_min,
         'Table top, metres; heights are measured from here, points below read 0.',
         float_range(-10, 10)),
        ('workspace.z_max', default.z_max,
         'Points at or above this height (metres, base frame) are ignored.', float_range(-10, 10)),
        ('heightmap_resolution', default.resolution, 'Metres per heightmap pixel.',
         float_range(1e-4, 0.1)),
        *CAMERA_INPUT_PARAMETERS,
        ('visualization_max_height', 0.15,
         'Height (metres) shown at the top of the colour scale of heightmap/height_colored.',
         float_range(1e-3, 10.0)),
        ('max_service_wait', 30.0,
         'Upper bound on the wall time (seconds) one get_heightmap call waits, whatever its '
         'timeout says on the node clock.', float_range(0.0, 3600.0)),
        ('log_throttle', 5.0,
         'Seconds between two log messages about the same kind of bad input.',
         float_range(0.0, 3600.0)),
        ('camera_qos', 'reliable',
         'QoS of the camera subscriptions: reliable (keep last 10; matches realsense2_camera '
         'default image QoS, SYSTEM_DEFAULT) or sensor_data (best effort, for a camera '
         'publishing with SENSOR_DATA). Best effort lost 80 % of the frames of each stream, '
         'each independently, with both cores busy, so colour and depth stopped pairing.',
         one_of(*CAMERA_QOS)),
        ('table_refit', True,
         'Measure heights from the table plane fitted in each frame instead of from '
         'workspace.z_min (vpg_perception.heightmap.TableFit): removes what a depth scale or '
         'camera tilt error does to the table.', {}),
        ('table_refit_max_correction', TableFit.max_correction,
         'Metres; a fitted table plane farther than this from workspace.z_min is not applied '
         '(and a warning says to check the calibration).', float_range(1e-3, 0.1)),
    ]
    values = declare(node, specs)
    check_choice('camera_qos', values['camera_qos'], tuple(CAMERA_QOS))
    grid = HeightmapGrid(
        x_min=values.pop('workspace.x_min'), x_max=values.pop('workspace.x_max'),
        y_min=values.pop('workspace.y_min'), y_max=values.pop('workspace.y_max'),
        z_min=values.pop('workspace.z_min'), z_max=values.pop('workspace.z_max'),
        resolution=values.pop('heightmap_resolution'))
    max_correction = values.pop('table_refit_max_correction')
    table_fit = TableFit(max_correction=max_correction) if values.pop('table_refit') else None
    return HeightmapNodeParams(grid=grid, table_fit=table_fit, **values)


class _ThrottledLog:
    """One warning per kind of problem every `period` seconds (wall time), with a count."""

    def __init__(self, logger, period):
        self._logger = logger
        self._period = period
        self._last = {}
        self._suppressed = {}

    def warning(self, kind, message):
        now = time.monotonic()
        if now - self._last.get(kind, -math.inf) < self._period:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return
        count = self._suppressed.pop(kind, 0)
        self._last[kind] = now
        self._logger.warning(message + (f' ({count} more since the last report)' if count
                                        else ''))


class HeightmapNode(Node):
    """See the module docstring."""

    def __init__(self, **kwargs):
        super().__init__('heightmap', **kwargs)
        try:
            self.params = declare_parameters(self)
            if not self.params.calibration_file:
                raise ValueError('parameter calibration_file is empty: give the calibration '
                                 'YAML written by the calibrate tool')
            self.calibration = load_calibration(self.params.calibration_file)
        except ValueError:
            self.destroy_node()
            raise
        p = self.params
        self._builder = HeightmapBuilder(p.grid, p.table_fit)
        self._pairer = FramePairer(int(round(p.max_stamp_difference * NS_PER_S)))
        self._log = _ThrottledLog(self.get_logger(), p.log_throttle)
        self._intrinsics = None
        self._info_size = None
        self._latest = None  # (stamp_ns, Heightmap msg)
        self._latest_problem = None
        self._new_heightmap = threading.Condition()

        frames = MutuallyExclusiveCallbackGroup()
        camera_qos = CAMERA_QOS[p.camera_qos]
        self.create_subscription(Image, p.color_topic,
                                 lambda msg: self._on_frame(Stream.COLOR, msg),
                                 camera_qos, callback_group=frames)
        self.create_subscription(Image, p.depth_topic,
                                 lambda msg: self._on_frame(Stream.DEPTH, msg),
                                 camera_qos, callback_group=frames)
        self.create_subscription(CameraInfo, p.camera_info_topic, self._on_camera_info,
                                 camera_qos, callback_group=frames)
        reliable = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)
        self._heightmap_pub = self.create_publisher(Heightmap, 'heightmap', reliable)
        self._color_pub = self.create_publisher(Image, 'heightmap/color', reliable)
        self._height_pub = self.create_publisher(Image, 'heightmap/height_colored', reliable)
        self.create_service(GetHeightmap, 'get_heightmap', self._on_get_heightmap,
                            callback_group=ReentrantCallbackGroup())
        self._pending = None  # newest pair not built yet
        self._pending_ready = threading.Condition()
        self._closing = False
        self._build_thread = threading.Thread(target=self._build_newest,
                                              name='heightmap_builder', daemon=True)
        self._build_thread.start()
        t = self.calibration.base_T_camera[:3, 3]
        self.get_logger().info(
            f'calibration {p.calibration_file}: camera at ({t[0]:.3f}, {t[1]:.3f}, '
            f'{t[2]:.3f}) m in {self.calibration.frame_id}, depth scale '
            f'{self.calibration.depth_scale:.4f}; heightmap {p.grid.shape[0]}x'
            f'{p.grid.shape[1]} at {p.grid.resolution} m/px')

    def _reject(self, kind, message):
        self._latest_problem = message
        self._log.warning(kind, message + '; no heightmap for this frame')

    def _on_camera_info(self, msg):
        try:
            self._intrinsics = check_intrinsics(np.reshape(msg.k, (3, 3)))
            self._info_size = (msg.height, msg.width)
        except ValueError as error:
            self._intrinsics = None
            self._reject('camera_info', f'camera_info on {self.params.camera_info_topic} '
                                        f'unusable: {error}')

    def _on_frame(self, stream, msg):
        pair, unmatched = self._pairer.add(stream, to_nanoseconds(msg.header.stamp), msg)
        for frame in unmatched:
            self._reject('stamps', f'{frame.stream.value} frame stamped '
                                   f'{frame.stamp_ns / NS_PER_S:.3f} s has no '
                                   f'{frame.stream.other.value} frame within '
                                   f'max_stamp_difference {self.params.max_stamp_difference} s '
                                   f'(nearest {frame.nearest_ns / NS_PER_S:.3f} s away)')
        if pair is not None:
            with self._pending_ready:
                self._pending = pair
                self._pending_ready.notify()

    def _build_newest(self):
        while True:
            with self._pending_ready:
                while self._pending is None and not self._closing:
                    self._pending_ready.wait()
                if self._closing:
                    return
                pair, self._pending = self._pending, None
            try:
                self._process(*pair)
            except Exception as error:  # one frame's failure must not end the building
                self._reject('build', f'building the heightmap failed: {error!r}')

    def destroy_node(self):
        thread = getattr(self, '_build_thread', None)
        if thread is not None:
            with self._pending_ready:
                self._closing = True
                self._pending_ready.notify_all()
            thread.join(timeout=5.0)
        return super().destroy_node()

    def _process(self, color_msg, depth_msg, stamp_ns):
        p = self.params
        if self._intrinsics is None:
            self._reject('camera_info', f'no usable camera_info received on '
                                        f'{p.camera_info_topic} yet')
            return
        try:
            color = color_image_to_rgb(color_msg)
            depth = depth_image_to_metres(depth_msg)
        except ImageConversionError as error:
            self._reject('encoding', f'cannot read camera image: {error}')
            return
        if color.shape[:2] != depth.shape:
            self._reject('size', f'colour image is {color.shape[1]}x{color.shape[0]} but '
                                 f'depth is {depth.shape[1]}x{depth.shape[0]}; is depth '
                                 'aligned to colour?')
            return
        if self._info_size not in (depth.shape, (0, 0)):
            self._reject('size', f'camera_info is for {self._info_size[1]}x'
                                 f'{self._info_size[0]} images, frames are {depth.shape[1]}x'
                                 f'{depth.shape[0]}')
            return
        if not ((depth > 0) & (depth < math.inf)).any():
            self._reject('depth', 'depth image has no valid pixel (all 0, NaN or inf)')
            return
        calibration = self.calibration
        maps = self._builder.build(color, depth, self._intrinsics, calibration.base_T_camera,
                                   calibration.depth_scale)
        if maps.table is not None and not maps.table.applied:
            self._log.warning('table', f'heights measured from workspace.z_min, not from the '
                                       f'table: {maps.table.reason}')
        if not maps.observed.any():
            self._reject('workspace', 'no depth point fell inside the workspace box; check '
                                      f'{p.calibration_file} and the workspace.* parameters')
            return
        header = Header(frame_id=calibration.frame_id, stamp=color_msg.header.stamp)
        msg = heightmap_to_msg(maps.color, maps.height, p.grid, header)
        # Cached before it is published, so whoever sees the topic can also get it on request.
        with self._new_heightmap:
            self._latest = (stamp_ns, msg)
            self._latest_problem = None
            self._new_heightmap.notify_all()
        self._heightmap_pub.publish(msg)
        self._color_pub.publish(msg.color)
        self._height_pub.publish(numpy_to_image(
            colorize_height(maps.height, p.visualization_max_height), 'rgb8', header))

    def _on_get_heightmap(self, request, response):
        newer_than = to_nanoseconds(request.newer_than)
        timeout_ns = max(to_nanoseconds(request.timeout), 0)
        clock = self.get_clock()
        deadline = clock.now().nanoseconds + timeout_ns
        wall_deadline = time.monotonic() + self.params.max_service_wait
        with self._new_heightmap:
            while self._latest is None or self._latest[0] < newer_than:
                remaining_wall = wall_deadline - time.monotonic()
                if clock.now().nanoseconds >= deadline or remaining_wall <= 0:
                    break
                # Short slices: on sim time the deadline moves with /clock, not the wall.
                self._new_heightmap.wait(min(0.05, remaining_wall))
            latest = self._latest
        if latest is not None and latest[0] >= newer_than:
            response.success = True
            response.heightmap = latest[1]
            response.message = f'heightmap from the frame stamped {latest[0] / NS_PER_S:.3f} s'
            return response
        response.success = False
        seen = 'none yet' if latest is None else f'latest from {latest[0] / NS_PER_S:.3f} s'
        response.message = ('no heightmap from a frame stamped at or after '
                            f'{newer_than / NS_PER_S:.3f} s within the timeout ({seen})')
        if self._latest_problem:
            response.message += f'; last problem: {self._latest_problem}'
        return response


def main(args=None):
    return run_node(HeightmapNode, 'heightmap', threads=4, args=args)


if __name__ == '__main__':
    raise SystemExit(main())
