"""
The `sim` node end to end, through its public topics, action and services only.

One node process (as fast as possible, empty table) serves the whole module; each test loads
its own scene with ~/reset_scene. Grasp and push are scripted as an executor would drive the
real drivers; success and displacement are read from /joint_states and the camera.
"""

import math
import os
from pathlib import Path
import subprocess
import sys
import time

from action_msgs.msg import GoalStatus
from geometry_msgs.msg import WrenchStamped
import numpy as np
import pytest
from rcl_interfaces.msg import Log
import rclpy
from rclpy.action import ActionClient
from rclpy.duration import Duration
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from vpg_common import tool_contact_action
from vpg_sim import blocks, scene
from vpg_test_support import camera_calibration
from vpg_test_support.cell_client import CellClient, EMPTY_GRASP_THRESHOLD

pytestmark = pytest.mark.slow

CUBE_RGBA = (0.9, 0.15, 0.1, 1.0)


@pytest.fixture(scope='module')
def sim():
    # os.environ is copied whole: the ROS wheels re-exec python with their library path.
    proc = subprocess.Popen(
        [sys.executable, '-m', 'vpg_sim.sim_node', '--ros-args',
         '-p', 'real_time_factor:=0.0', '-p', 'num_objects:=0', '-p', 'seed:=1'],
        env=dict(os.environ))
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('sim_test_client', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    client = CellClient(node, lambda timeout: executor.spin_once(timeout_sec=timeout),
                        camera=True)
    try:
        client.wait_until_ready(timeout=60.0)
        assert client.ik is not None  # builds the IK model once, before any test
        yield client
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)
        proc.terminate()
        try:
            assert proc.wait(timeout=15) == 0
        except subprocess.TimeoutExpired:
            proc.kill()
            raise


def load_scene(client, tmp_path, objects):
    path = Path(tmp_path) / 'case.txt'
    path.write_text(blocks.format_test_case(objects))
    response = client.reset_scene(test_case_file=str(path))
    assert response.success, response.message
    assert response.num_objects == len(objects)
    client.go_clear()


def cube_at(x, y, yaw=0.0):
    return blocks.ObjectSpec('cube', CUBE_RGBA, (x, y, 0.0255), blocks.euler_to_quat(0, 0, yaw))


def still_frame(client):
    """Wait for a frame taken after the arm's last move ended (out of view)."""
    return client.frame_after(client.last_move_end)


def block_top_points(client, frame, min_height=0.04):
    """Select base-frame points seen higher than min_height inside the workspace."""
    _, _, depth_mm, info, _ = frame
    points = camera_calibration.back_project(depth_mm / 1000.0, info.k,
                                             camera_calibration.load_calibration())
    inside = ((points[..., 0] > -0.74) & (points[..., 0] < -0.26)
              & (np.abs(points[..., 1]) < 0.24) & (points[..., 2] > min_height))
    return points[inside]


def test_driver_topics(sim):
    client = sim
    state = client.joint_state
    assert list(state.name) == list(scene.ARM_JOINTS) + ['robotiq_85_left_knuckle_joint']
    assert len(state.position) == len(state.velocity) == len(state.effort) == 7
    np.testing.assert_allclose(client.arm_position(), scene.CLEAR_POSE, atol=5e-3)

    clocks = []
    client.node.create_subscription(Clock, '/clock', clocks.append, 10)
    client.wait_for(lambda: len(clocks) >= 3, 10.0, '/clock')
    stamps = [c.clock.sec + c.clock.nanosec * 1e-9 for c in clocks]
    assert stamps == sorted(stamps) and stamps[-1] > stamps[0]

    wrenches = []
    client.node.create_subscription(WrenchStamped, '/force_torque_sensor_broadcaster/wrench',
                                    wrenches.append, 10)
    client.wait_for(lambda: len(wrenches) >= 3, 10.0, 'tool wrench')
    assert {w.header.frame_id for w in wrenches} == {'tool0_controller'}
    times = [w.header.stamp.sec + w.header.stamp.nanosec * 1e-9 for w in wrenches]
    assert times == sorted(times) and times[-1] > times[0]
    forces = [(w.wrench.force.x, w.wrench.force.y, w.wrench.force.z) for w in wrenches]
    assert max(np.linalg.norm(forces, axis=1)) < 8.0  # nothing touched: 1 N noise only

    stamp, rgb, depth, color_info, depth_info = still_frame(client)
    assert rgb.shape == (480, 640, 3) and rgb.dtype == np.uint8
    assert depth.shape == (480, 640) and depth.dtype == np.uint16
    assert 700 < np.median(depth) < 1100  # table about 0.8-1 m away, in millimetres
    for info in (color_info, depth_info):
        assert info.header.frame_id == 'camera_color_optical_frame'
        assert (info.width, info.height) == (640, 480)
    assert list(color_info.k) == list(depth_info.k)
    assert color_info.k[0] == pytest.approx(scene.FOCAL_LENGTH_PX)


def test_projection_of_a_known_point_lands_on_its_pixel(sim, tmp_path):
    """Top face of a cube placed at a known pose: camera_info + calibration give its pixel."""
    client = sim
    x, y = -0.45, 0.1
    load_scene(client, tmp_path, [cube_at(x, y, yaw=0.4)])
    _, rgb, depth_mm, info, _ = still_frame(client)
    calib = camera_calibration.load_calibration()
    (u, v), _ = camera_calibration.project(np.array([x, y, 0.05]), info.k, calib)
    # Observed top face: pixels whose depth puts them on the plane z = 0.05 m.
    points = camera_calibration.back_project(depth_mm / 1000.0, info.k, calib)
    top = np.abs(points[..., 2] - 0.05) < 0.002
    rows, cols = np.nonzero(top)
    assert rows.size > 500  # a 50 mm face at ~0.85 m covers ~1000 pixels
    assert abs(cols.mean() - u) < 2.0 and abs(rows.mean() - v) < 2.0
    r, g, b = rgb[int(round(v)), int(round(u))].astype(int)
    assert r > 2 * g and r > 2 * b  # the red cube


def test_top_down_grasp_succeeds_and_block_is_removed(sim, tmp_path):
    client = sim
    load_scene(client, tmp_path, [cube_at(-0.5, 0.05, yaw=0.2)])
    assert client.count_objects().in_workspace == 1
    success, finger = client.grasp((-0.5, 0.05, 0.03), 0.2)
    assert success, f'finger joint {finger:.3f} rad reads as an empty grasp'
    assert 0.2 < finger < EMPTY_GRASP_THRESHOLD
    status, result = client.gripper(0.0)
    assert status == GoalStatus.STATUS_SUCCEEDED and result.reached_goal
    client.go_clear()
    counts = client.count_objects()
    assert (counts.in_workspace, counts.removed, counts.out_of_workspace) == (0, 1, 0)
    assert block_top_points(client, still_frame(client), 0.01).size == 0  # table is empty


def test_empty_grasp_reads_as_failure(sim, tmp_path):
    client = sim
    load_scene(client, tmp_path, [cube_at(-0.5, 0.1)])
    success, finger = client.grasp((-0.6, -0.1, 0.03), 0.0)
    assert not success and finger > EMPTY_GRASP_THRESHOLD
    client.go_clear()
    assert client.count_objects().in_workspace == 1


def test_push_moves_block_about_ten_centimetres(sim, tmp_path):
    client = sim
    load_scene(client, tmp_path, [cube_at(-0.6, -0.05)])
    before = block_top_points(client, still_frame(client))[:, :2].mean(axis=0)
    assert np.linalg.norm(before - (-0.6, -0.05)) < 0.005
    angle = math.radians(20.0)
    direction = np.array([math.cos(angle), math.sin(angle)])
    # Closed fingers (about 16 mm thick at the tips) start 5 mm behind the face.
    start = before - direction * (0.025 + 0.016)
    client.push((start[0], start[1], 0.025), angle, length=0.1)
    client.go_clear()
    after = block_top_points(client, still_frame(client))[:, :2].mean(axis=0)
    moved = after - before
    along = moved @ direction
    across = abs(moved @ np.array([-direction[1], direction[0]]))
    assert 0.085 < along < 0.105, f'moved {along:.3f} m along the push'
    assert across < 0.02


def test_bad_trajectories_are_rejected_and_the_arm_stays(sim):
    client = sim
    errors = []
    qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    client.node.create_subscription(
        Log, '/rosout', lambda m: errors.append(m.msg) if m.name == 'sim'
        and m.level >= Log.ERROR else None, qos)
    time.sleep(0.5)  # let the /rosout subscription match
    client.go_clear()
    here = client.arm_position()
    good = list(here + 0.05)
    cases = {
        'unknown joint': (list(scene.ARM_JOINTS[:5]) + ['gripper_joint'], [(good, 1.0)]),
        'missing joint': (list(scene.ARM_JOINTS[:5]), [(good[:5], 1.0)]),
        'NaN': (list(scene.ARM_JOINTS), [([math.nan] + good[1:], 1.0)]),
        'outside limits': (list(scene.ARM_JOINTS), [(good[:2] + [3.5] + good[3:], 3.0)]),
        'non-increasing time': (list(scene.ARM_JOINTS), [(good, 1.0), (here.tolist(), 0.5)]),
    }
    publisher = client.node.create_publisher(
        JointTrajectory, '/scaled_joint_trajectory_controller/joint_trajectory', 10)
    for label, (names, points) in cases.items():
        count = len(errors)
        msg = JointTrajectory(joint_names=names)
        for positions, t in points:
            msg.points.append(JointTrajectoryPoint(
                positions=positions, time_from_start=Duration(seconds=t).to_msg()))
        publisher.publish(msg)
        client.wait_for(lambda: len(errors) > count, 10.0, f'an error log for {label}')
        assert 'trajectory rejected' in errors[-1], errors[-1]
    end = client.sim_time() + 1.5
    client.wait_for(lambda: client.sim_time() > end, 30.0, 'simulated time to pass')
    np.testing.assert_allclose(client.arm_position(), here, atol=1e-4)
    # The same topic still moves the arm with a valid trajectory.
    client.move([np.array(good)])
    np.testing.assert_allclose(client.arm_position(), good, atol=0.01)
    client.go_clear()


def test_gripper_commands_are_clamped_and_nan_refused(sim):
    client = sim
    status, result = client.gripper(5.0)
    assert status == GoalStatus.STATUS_SUCCEEDED
    assert result.reached_goal and 0.75 < client.result_position(result) < 0.8
    assert client.finger_position() == pytest.approx(client.result_position(result), abs=0.02)
    status, result = client.gripper(-3.0)
    assert status == GoalStatus.STATUS_SUCCEEDED and client.result_position(result) < 0.02
    assert client.gripper(math.nan) == (None, None)


def test_reset_scene_random_and_bad_file(sim, tmp_path):
    client = sim
    response = client.reset_scene(num_objects=5, seed=7)
    assert response.success and response.num_objects == 5
    counts = client.count_objects()
    assert counts.in_workspace + counts.out_of_workspace == 5 and counts.removed == 0
    assert counts.in_workspace >= 3
    response = client.reset_scene(test_case_file=str(Path(tmp_path) / 'missing.txt'))
    assert not response.success and 'missing.txt' in response.message
    assert client.count_objects().in_workspace + client.count_objects().out_of_workspace == 5


def test_tool_contact_action_stops_the_arm_as_the_robot_controller_would(sim, tmp_path):
    """ur_robot_driver's tool_contact_controller action: one goal at a time, stop on contact."""
    client = sim
    action = tool_contact_action.action_type()
    contact = ActionClient(client.node, action, '/tool_contact_controller/detect_tool_contact')
    assert contact.wait_for_server(timeout_sec=10.0)

    def send():
        future = contact.send_goal_async(action.Goal())
        client.wait_for(future.done, 10.0, 'the goal response')
        return future.result()

    # Cancelled before any contact: detection ends, the goal is cancelled, a new one accepted.
    first = send()
    assert first.accepted
    assert not send().accepted  # busy, as the controller
    result = first.get_result_async()
    first.cancel_goal_async()
    client.wait_for(result.done, 10.0, 'the cancelled result')
    assert result.result().status == GoalStatus.STATUS_CANCELED

    # A descent through a block's top, armed: the arm stops on the top and the goal succeeds.
    load_scene(client, tmp_path, [cube_at(-0.5, 0.0)])
    client.gripper(0.8)  # closed fingertips reach ~17.7 mm below the pinch point
    client.move_pinch([(-0.5, 0.0, 0.15)], 0.0)
    goal = send()
    assert goal.accepted
    result = goal.get_result_async()
    waypoints = client.pinch_waypoints([(-0.5, 0.0, 0.0)], 0.0)  # 15 cm in 3 s: 0.05 m/s
    client.send_trajectory(waypoints, [3.0])
    client.wait_for(result.done, 30.0, 'the tool contact result')
    assert result.result().status == GoalStatus.STATUS_SUCCEEDED
    stopped = client.arm_position()
    start = client.sim_time()
    client.wait_for(lambda: client.sim_time() > start + 1.0, 30.0, 'a second of stillness')
    np.testing.assert_allclose(client.arm_position(), stopped, atol=2e-3)  # held, not pressing
    pinch_z = client.ik.forward(client.arm_position())[0][2]
    assert 0.050 + 0.0177 - 0.003 < pinch_z < 0.050 + 0.0177 + 0.003
    client.gripper(0.0)
    client.go_clear()
