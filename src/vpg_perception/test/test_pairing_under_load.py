"""
Colour and depth still pair when both cores are busy.

With best-effort (sensor-data) subscriptions, CPU hogs on both cores made the node lose about
80 % of each stream's frames, each stream independently, so frames lost their partner for
seconds (measured: 32 pairing failures in 147 pairs at 5 Hz; 0 with reliable QoS, depth 10 at
both ends). This test runs the node as a process beside two busy-looping processes and fails on
any pairing failure.
"""

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header
from vpg_interfaces.msg import Heightmap
from vpg_perception.calibration import CameraCalibration, save_calibration
from vpg_perception.conversions import numpy_to_image
from vpg_test_support import synthetic_rgbd as synthetic

K = synthetic.intrinsics()
CAMERA = synthetic.look_at((-0.32, 0.025, 0.70), (-0.5, 0.005, 0.0), up=(-1.0, 0.0, 0.0))
TOPICS = ('/camera/camera/color/image_raw', '/camera/camera/aligned_depth_to_color/image_raw',
          '/camera/camera/color/camera_info')
PAIRS, RATE_HZ = 60, 5.0  # the cell publishes at most 5 frames per simulated second


@pytest.mark.slow
def test_frames_pair_with_both_cores_busy(tmp_path):
    calibration = tmp_path / 'camera_calibration.yaml'
    save_calibration(calibration, CameraCalibration(base_T_camera=CAMERA, depth_scale=1.0,
                                                    frame_id='base'))
    box = synthetic.Box(synthetic.pose_from(np.eye(3), (-0.5, 0.0, 0.025)), (0.06, 0.06, 0.05),
                        (30, 160, 220))
    color, depth = synthetic.render(K, CAMERA, boxes=[box])
    depth_mm = np.round(depth * 1000).astype(np.uint16)
    hogs = [subprocess.Popen([sys.executable, '-c', 'while True: pass'])
            for _ in range(os.cpu_count() or 2)]
    node = subprocess.Popen(
        [sys.executable, '-m', 'vpg_perception.heightmap_node', '--ros-args', '-p',
         f'calibration_file:={calibration}', '-p', 'log_throttle:=0.0'],
        env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = []
    reader = threading.Thread(target=lambda: output.extend(node.stdout), daemon=True)
    reader.start()
    context = rclpy.Context()
    rclpy.init(context=context)
    client = rclpy.create_node('pairing_load_test', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(client)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        # Publishers as the cell's: reliable, depth 10 (realsense2_camera: SYSTEM_DEFAULT).
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        color_pub = client.create_publisher(Image, TOPICS[0], qos)
        depth_pub = client.create_publisher(Image, TOPICS[1], qos)
        info_pub = client.create_publisher(CameraInfo, TOPICS[2], qos)
        heightmaps = []
        client.create_subscription(Heightmap, 'heightmap', heightmaps.append, 10)
        deadline = time.monotonic() + 30
        while depth_pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert depth_pub.get_subscription_count() > 0, 'heightmap node did not subscribe'
        info = CameraInfo(width=640, height=480, k=[float(v) for v in K.ravel()])
        for i in range(PAIRS):
            header = Header(frame_id='camera_color_optical_frame')
            header.stamp.sec, header.stamp.nanosec = 100 + i // 5, (i % 5) * 200_000_000
            info.header = header
            info_pub.publish(info)
            color_pub.publish(numpy_to_image(color, 'rgb8', header))
            depth_pub.publish(numpy_to_image(depth_mm, '16UC1', header))
            time.sleep(1.0 / RATE_HZ)
        time.sleep(3.0)
    finally:
        for hog in hogs:
            hog.kill()
        node.terminate()
        node.wait(timeout=20)
        reader.join(timeout=5)
        executor.shutdown()
        client.destroy_node()
        rclpy.shutdown(context=context)
    failures = [line for line in output if 'has no' in line and 'frame within' in line]
    assert not failures, f'{len(failures)} pairing failures:\n' + ''.join(failures[:5])
    assert heightmaps, 'no heightmap built'
