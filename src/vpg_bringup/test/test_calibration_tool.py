"""The calibrate tool against a fake arm and a ray-cast camera that sees the tool's board."""

import threading

import numpy as np
import pytest
import rclpy
from rclpy.executors import MultiThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image, JointState
from trajectory_msgs.msg import JointTrajectory
from vpg_bringup.calibration_tool import CalibrationTool
from vpg_common.driver_names import UR_JOINTS
from vpg_executor.ur_kinematics import forward_kinematics, MODELS
from vpg_perception.calibration import load_calibration, pose_difference
from vpg_perception.conversions import numpy_to_image
from vpg_test_support import synthetic_rgbd as synthetic

KINEMATICS = MODELS['ur5e_menagerie']
K = synthetic.intrinsics(320, 240, 307.5)
CAMERA = synthetic.look_at((-0.32, 0.025, 0.70), (-0.5, 0.005, 0.0), up=(-1.0, 0.0, 0.0))
MARKER_OFFSET = (0.0, -0.1, 0.03)
DEPTH_SCALE = 1.02  # the fake camera reads depth 2 % short
START = np.array([-1.5708, -1.5708, 1.5708, -1.5708, -1.5708, 0.0])


class FakeCell:
    """Joint states that jump to each commanded target; a camera that renders the board."""

    def __init__(self, node):
        self.node = node
        self.q = START.copy()
        self.targets = []
        self._frame = None
        self._lock = threading.Lock()
        node.create_subscription(JointTrajectory,
                                 '/scaled_joint_trajectory_controller/joint_trajectory',
                                 self._on_trajectory, 10)
        self._joint_pub = node.create_publisher(JointState, '/joint_states', 10)
        self._color_pub = node.create_publisher(Image, '/camera/camera/color/image_raw',
                                                qos_profile_sensor_data)
        self._depth_pub = node.create_publisher(
            Image, '/camera/camera/aligned_depth_to_color/image_raw', qos_profile_sensor_data)
        self._info_pub = node.create_publisher(CameraInfo, '/camera/camera/color/camera_info',
                                               qos_profile_sensor_data)
        node.create_timer(0.02, self._publish_joints)
        node.create_timer(0.1, self._publish_frame)

    def _on_trajectory(self, msg):
        names = list(msg.joint_names)
        target = np.array([msg.points[-1].positions[names.index(j)] for j in UR_JOINTS])
        with self._lock:
            self.targets.append(target)
            self.q = target
            self._frame = None

    def _publish_joints(self):
        msg = JointState(name=list(UR_JOINTS), position=self.q.tolist())
        msg.header.stamp = self.node.get_clock().now().to_msg()
        self._joint_pub.publish(msg)

    def _publish_frame(self):
        with self._lock:
            if self._frame is None:
                board_pose = forward_kinematics(self.q, KINEMATICS) @ synthetic.pose_from(
                    np.eye(3), MARKER_OFFSET)
                board = synthetic.Checkerboard(board_pose, square=0.015, margin=0.0175)
                color, depth = synthetic.render(K, CAMERA, shape=(240, 320), board=board,
                                                supersample=2)
                self._frame = (color, np.round(depth / DEPTH_SCALE * 1000).astype(np.uint16))
            color, millimetres = self._frame
        stamp = self.node.get_clock().now().to_msg()
        color_msg = numpy_to_image(color, 'rgb8')
        depth_msg = numpy_to_image(millimetres, '16UC1')
        color_msg.header.stamp = depth_msg.header.stamp = stamp
        self._color_pub.publish(color_msg)
        self._depth_pub.publish(depth_msg)
        self._info_pub.publish(CameraInfo(width=320, height=240, k=K.ravel().tolist()))


@pytest.fixture
def ros_context():
    context = rclpy.Context()
    rclpy.init(context=context)
    yield context
    rclpy.shutdown(context=context)


def test_tool_recovers_pose_and_depth_scale(ros_context, tmp_path):
    output = tmp_path / 'calibration.yaml'
    tool = CalibrationTool(context=ros_context, parameter_overrides=[
        Parameter('output_file', value=str(output)),
        Parameter('marker_offset', value=list(MARKER_OFFSET)),
        Parameter('grid.x_min', value=-0.5), Parameter('grid.x_max', value=-0.3),
        Parameter('grid.y_min', value=-0.1), Parameter('grid.y_max', value=0.1),
        Parameter('grid.step', value=0.2), Parameter('grid.z_values', value=[0.2, 0.3]),
        Parameter('min_move_time', value=0.1), Parameter('settle_time', value=0.05)])
    cell_node = rclpy.create_node('fake_cell', context=ros_context)
    cell = FakeCell(cell_node)
    executor = MultiThreadedExecutor(num_threads=3, context=ros_context)
    executor.add_node(tool)
    executor.add_node(cell_node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        fit = tool.run()
    finally:
        executor.shutdown()
        spinner.join(timeout=10)
        tool.destroy_node()
        cell_node.destroy_node()

    assert fit.inliers.sum() == 8  # 2 x 2 x 2 positions, all seen
    written = load_calibration(output)
    assert written.frame_id == 'base'
    distance, angle = pose_difference(written.base_T_camera, CAMERA)
    assert distance < 0.002 and angle < 0.2
    assert written.depth_scale == pytest.approx(DEPTH_SCALE, abs=0.003)
    # Every grid position was visited with the tool pointing down, then the arm went back.
    assert len(cell.targets) == 9
    for q in cell.targets[:-1]:
        np.testing.assert_allclose(forward_kinematics(q, KINEMATICS)[:3, 2], [0, 0, -1],
                                   atol=1e-9)
    np.testing.assert_allclose(cell.targets[-1], START, atol=1e-9)


def test_tool_refuses_to_start_without_output_file(ros_context):
    with pytest.raises(ValueError, match='output_file'):
        CalibrationTool(context=ros_context)
