"""The heightmap node with real rclpy messages: heightmaps, bad input, service, bad calibration."""

import os
import subprocess
import sys
import threading
import time

from builtin_interfaces.msg import Duration, Time
import numpy as np
import pytest
from rcl_interfaces.msg import Log
import rclpy
from rclpy.executors import MultiThreadedExecutor
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header
from vpg_interfaces.msg import Heightmap
from vpg_interfaces.srv import GetHeightmap
from vpg_perception.calibration import CameraCalibration, save_calibration
from vpg_perception.conversions import heightmap_from_msg, image_to_numpy, numpy_to_image
from vpg_perception.heightmap_node import HeightmapNode
from vpg_test_support import synthetic_rgbd as synthetic

K = synthetic.intrinsics()
CAMERA = synthetic.look_at((-0.32, 0.025, 0.70), (-0.5, 0.005, 0.0), up=(-1.0, 0.0, 0.0))
BOX_CENTRE = (-0.5, 0.0)
BOX = synthetic.Box(synthetic.pose_from(np.eye(3), BOX_CENTRE + (0.025,)), (0.06, 0.06, 0.05),
                    (30, 160, 220))
COLOR_TOPIC = '/camera/camera/color/image_raw'
DEPTH_TOPIC = '/camera/camera/aligned_depth_to_color/image_raw'
INFO_TOPIC = '/camera/camera/color/camera_info'


@pytest.fixture(scope='module')
def scene():
    color, depth = synthetic.render(K, CAMERA, boxes=[BOX])
    return color, np.round(depth * 1000).astype(np.uint16)


@pytest.fixture
def calibration_file(tmp_path):
    path = tmp_path / 'camera_calibration.yaml'
    save_calibration(path, CameraCalibration(base_T_camera=CAMERA, depth_scale=1.0,
                                             frame_id='base'))
    return path


class Harness:
    """The node under test and a client node, spun by one executor in a background thread."""

    def __init__(self, calibration_file):
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = HeightmapNode(context=self.context, parameter_overrides=[
            Parameter('calibration_file', value=str(calibration_file)),
            Parameter('log_throttle', value=0.0)])
        self.client = rclpy.create_node('heightmap_test_client', context=self.context)
        self.heightmaps, self.color_maps, self.height_images, self.warnings = [], [], [], []
        self.client.create_subscription(Heightmap, 'heightmap', self.heightmaps.append, 10)
        self.client.create_subscription(Image, 'heightmap/color', self.color_maps.append, 10)
        self.client.create_subscription(Image, 'heightmap/height_colored',
                                        self.height_images.append, 10)
        self.client.create_subscription(Log, '/rosout', self._on_log, 100)
        self.color_pub = self.client.create_publisher(Image, COLOR_TOPIC, 10)
        self.depth_pub = self.client.create_publisher(Image, DEPTH_TOPIC, 10)
        self.info_pub = self.client.create_publisher(CameraInfo, INFO_TOPIC, 10)
        self.service = self.client.create_client(GetHeightmap, 'get_heightmap')
        self.executor = MultiThreadedExecutor(num_threads=4, context=self.context)
        self.executor.add_node(self.node)
        self.executor.add_node(self.client)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()
        assert wait_for(lambda: self.color_pub.get_subscription_count() > 0
                        and self.depth_pub.get_subscription_count() > 0
                        and self.info_pub.get_subscription_count() > 0
                        and len(self.client.get_publishers_info_by_topic('heightmap')) > 0)

    def _on_log(self, msg):
        if msg.name == 'heightmap' and msg.level >= Log.WARN:
            self.warnings.append(msg.msg)

    def close(self):
        self.executor.shutdown()
        self.thread.join(timeout=10)
        self.node.destroy_node()
        self.client.destroy_node()
        rclpy.shutdown(context=self.context)

    def send_info(self, k=K, width=640, height=480):
        self.info_pub.publish(CameraInfo(width=width, height=height,
                                         k=np.asarray(k, dtype=float).ravel().tolist()))

    def send_frame(self, stamp_s, color, depth, color_encoding='rgb8', depth_encoding='16UC1',
                   depth_stamp_s=None):
        def header(t):
            return Header(frame_id='camera_color_optical_frame',
                          stamp=Time(sec=int(t), nanosec=int(round((t % 1) * 1e9))))
        self.color_pub.publish(numpy_to_image(color, color_encoding, header(stamp_s)))
        depth_stamp_s = stamp_s if depth_stamp_s is None else depth_stamp_s
        self.depth_pub.publish(numpy_to_image(depth, depth_encoding, header(depth_stamp_s)))

    def heightmap_stamped(self, stamp_s, timeout=10.0):
        def find():
            for msg in self.heightmaps:
                if msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9 == pytest.approx(
                        stamp_s):
                    return msg
            return None
        wait_for(lambda: find() is not None, timeout)
        return find()

    def warning_containing(self, text, timeout=10.0):
        wait_for(lambda: any(text in w for w in self.warnings), timeout)
        return next((w for w in self.warnings if text in w), None)


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


@pytest.fixture
def harness(calibration_file):
    h = Harness(calibration_file)
    yield h
    h.close()


def box_height(msg):
    color, height, grid = heightmap_from_msg(msg)
    row, col = grid.point_to_pixel(np.array(BOX_CENTRE))
    return height[row, col], color[row, col]


def test_publishes_heightmap_from_camera_messages(harness, scene):
    color, depth = scene
    harness.send_info()
    time.sleep(0.2)
    harness.send_frame(12.5, color, depth)
    msg = harness.heightmap_stamped(12.5)
    assert msg is not None, f'no heightmap; warnings: {harness.warnings}'
    assert msg.header.frame_id == 'base'
    assert msg.resolution == pytest.approx(0.002) and msg.x_min == pytest.approx(-0.724)
    height, box_color = box_height(msg)
    assert height == pytest.approx(0.05 - msg.z_min, abs=0.002)
    assert tuple(box_color) == BOX.color
    assert wait_for(lambda: harness.color_maps and harness.height_images)
    assert harness.color_maps[0].encoding == 'rgb8' and harness.color_maps[0].width == 224
    colored = image_to_numpy(harness.height_images[0], 'rgb8')
    assert colored.shape == (224, 224, 3)

    # 32FC1 metres and bgr8 colour are read too, to the same map.
    metres = depth.astype(np.float32) * np.float32(1e-3)  # as the node reads 16UC1
    harness.send_frame(13.0, color[..., ::-1].copy(), metres, color_encoding='bgr8',
                       depth_encoding='32FC1')
    other = harness.heightmap_stamped(13.0)
    assert other is not None, f'no heightmap; warnings: {harness.warnings}'
    np.testing.assert_array_equal(heightmap_from_msg(other)[0], heightmap_from_msg(msg)[0])
    np.testing.assert_allclose(heightmap_from_msg(other)[1], heightmap_from_msg(msg)[1],
                               atol=1e-6)


def test_survives_each_bad_input(harness, scene):
    color, depth = scene
    stamp = 20.0

    def expect_rejected(send, text):
        nonlocal stamp
        stamp += 1.0
        count = len(harness.heightmaps)
        send(stamp)
        warning = harness.warning_containing(text)
        assert warning is not None, f'no warning with {text!r}; got {harness.warnings}'
        assert 'no heightmap for this frame' in warning
        assert len(harness.heightmaps) == count
        harness.warnings.clear()

    expect_rejected(lambda t: harness.send_frame(t, color, depth), 'no usable camera_info')
    harness.send_info()
    time.sleep(0.2)
    expect_rejected(lambda t: harness.send_frame(
        t, color[..., 0].copy(), depth, color_encoding='mono8'), "encoding 'mono8'")
    expect_rejected(lambda t: harness.send_frame(
        t, color, depth.astype(np.uint8), depth_encoding='mono8'), "encoding 'mono8'")
    expect_rejected(lambda t: harness.send_frame(t, color, depth[::2, ::2].copy()),
                    'colour image is 640x480 but depth is 320x240')
    expect_rejected(lambda t: harness.send_frame(t, color, np.zeros_like(depth)),
                    'no valid pixel')
    expect_rejected(lambda t: harness.send_frame(
        t, color, np.full(depth.shape, np.nan, np.float32), depth_encoding='32FC1'),
        'no valid pixel')
    expect_rejected(lambda t: harness.send_frame(
        t, color, np.full(depth.shape, np.inf, np.float32), depth_encoding='32FC1'),
        'no valid pixel')

    def zero_size(t):
        harness.send_frame(t, color[:0, :0].copy(), depth[:0, :0].copy())
    expect_rejected(zero_size, 'empty image (0x0)')

    def far_apart(t):
        harness.send_frame(t, color, depth, depth_stamp_s=t + 0.5)
        time.sleep(0.2)
        harness.send_frame(t + 0.9, color, depth, depth_stamp_s=t + 1.4)
    expect_rejected(far_apart, 'within max_stamp_difference')
    stamp += 1.0

    # Still alive: a good frame gives a heightmap.
    stamp += 1.0
    harness.send_frame(stamp, color, depth)
    assert harness.heightmap_stamped(stamp) is not None, harness.warnings


def test_get_heightmap_waits_for_a_new_enough_frame(harness, scene):
    color, depth = scene
    assert harness.service.wait_for_service(timeout_sec=10)
    harness.send_info()
    time.sleep(0.2)
    harness.send_frame(30.0, color, depth)
    assert harness.heightmap_stamped(30.0) is not None

    # Already there: answered at once.
    future = harness.service.call_async(GetHeightmap.Request(
        newer_than=Time(sec=29), timeout=Duration(sec=0)))
    assert wait_for(future.done, 5)
    assert future.result().success
    assert future.result().heightmap.header.stamp.sec == 30

    # Not there yet: the call waits while frames keep arriving.
    start = time.monotonic()
    future = harness.service.call_async(GetHeightmap.Request(
        newer_than=Time(sec=31), timeout=Duration(sec=10)))
    time.sleep(0.5)
    assert not future.done()
    harness.send_frame(31.0, color, depth)
    assert wait_for(future.done, 10)
    assert future.result().success, future.result().message
    assert future.result().heightmap.header.stamp.sec == 31
    assert time.monotonic() - start < 5

    # Never comes: times out with a reason.
    future = harness.service.call_async(GetHeightmap.Request(
        newer_than=Time(sec=100), timeout=Duration(sec=0, nanosec=300_000_000)))
    assert wait_for(future.done, 5)
    assert not future.result().success
    assert 'latest from 31.000 s' in future.result().message


def test_broken_calibration_stops_node_in_process(tmp_path):
    path = tmp_path / 'calibration.yaml'
    path.write_text('frame_id: base\ntranslation: [0, 0, 1]\n')
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        with pytest.raises(ValueError) as error:
            HeightmapNode(context=context, parameter_overrides=[
                Parameter('calibration_file', value=str(path))])
        assert str(path) in str(error.value) and 'missing key(s)' in str(error.value)
    finally:
        rclpy.shutdown(context=context)


def test_broken_calibration_stops_node_process(tmp_path):
    path = tmp_path / 'calibration.yaml'
    path.write_text('frame_id: base\ncamera_frame_id: cam\ntranslation: [0, 0, 1]\n'
                    'rotation_xyzw: [0, 0, 0, 0.5]\ndepth_scale: 1.0\n')
    # os.environ is copied whole: the ROS wheels re-exec python with their library path.
    proc = subprocess.run(
        [sys.executable, '-m', 'vpg_perception.heightmap_node', '--ros-args', '-p',
         f'calibration_file:={path}'], env=dict(os.environ), capture_output=True, text=True,
        timeout=60)
    assert proc.returncode == 1
    assert str(path) in proc.stderr and 'not a unit quaternion' in proc.stderr
