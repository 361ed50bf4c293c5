"""
Drive the cell through its public ROS interfaces only, as an executor would (tests, bench).

CellClient wraps a plain rclpy node: it sends joint trajectories to the UR topic, goals to the
gripper action, calls the scene services, and waits (with timeouts) on /joint_states and camera
frames. Scripted grasps and pushes use scripted_motion.ArmIk on the cell's own model.
Nothing here touches the simulator's internals.
"""

import math
import time

import numpy as np
from rclpy.action import ActionClient
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, JointState
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint
from vpg_common.driver_names import (COLOR_INFO_TOPIC, COLOR_TOPIC, DEPTH_INFO_TOPIC, DEPTH_TOPIC,
                                     GRIPPER_ACTION, GRIPPER_JOINT, TRAJECTORY_TOPIC)
from vpg_common.gripper_action import action_type
from vpg_common.stamps import duration_msg, to_seconds
from vpg_interfaces.srv import CountObjects, ResetScene
from vpg_perception.conversions import image_to_numpy
from vpg_sim import scene
from vpg_sim.sim_parameters import GRIPPER_INTERFACES
from vpg_test_support import scripted_motion

# Finger joint readings: fully closed on nothing ~0.78 rad; holding a block reads less.
EMPTY_GRASP_THRESHOLD = 0.75
FINGER_CLOSED = 0.8
FINGER_OPEN = 0.0


class CellClient:
    """
    Client side of the cell for scripts: wraps `node`, spun by `spin_once(timeout)`.

    spin_once is usually an executor's spin_once; every wait here takes a wall-clock timeout
    and raises TimeoutError when it passes.
    """

    def __init__(self, node, spin_once, camera=False, gripper_interface=GRIPPER_INTERFACES[0]):
        self.node = node
        self.gripper_interface = gripper_interface
        self._spin_once = spin_once
        self.joint_state = None
        self.last_move_end = 0.0  # simulated time the last move() trajectory ended
        self.frames = []  # (stamp_s, rgb, depth_mm, color_info, depth_info), newest last
        self._infos = {}
        self._images = {}
        self._traj_pub = node.create_publisher(JointTrajectory, TRAJECTORY_TOPIC, 10)
        # Depth 1: only the newest state matters, and a backlog would delay every wait.
        node.create_subscription(JointState, '/joint_states', self._on_joint_state, 1)
        self._gripper_action = action_type(gripper_interface)
        self._gripper = ActionClient(node, self._gripper_action, GRIPPER_ACTION)
        self._reset = node.create_client(ResetScene, '/sim/reset_scene')
        self._count = node.create_client(CountObjects, '/sim/count_objects')
        if camera:
            # Reliable, not sensor-data QoS: with Fast DDS's default transports, best-effort
            # readers lose about half of these ~1 MB frames (UDP fragments over loopback).
            qos = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)
            for topic in (COLOR_TOPIC, DEPTH_TOPIC):
                node.create_subscription(Image, topic, self._image_callback(topic), qos)
            for topic in (COLOR_INFO_TOPIC, DEPTH_INFO_TOPIC):
                node.create_subscription(CameraInfo, topic, self._info_callback(topic), qos)
        self._ik = None

    # -- waiting ------------------------------------------------------------------------

    def wait_for(self, predicate, timeout, what='condition'):
        """Spin until predicate() is true; raise TimeoutError after timeout wall seconds."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(f'timed out after {timeout} s waiting for {what}')
            self._spin_once(0.01)

    def wait_until_ready(self, timeout=30.0):
        """Wait for joint states, the gripper action server and the scene services."""
        self.wait_for(lambda: self.joint_state is not None, timeout, 'joint states')
        if not self._gripper.wait_for_server(timeout_sec=timeout):
            raise TimeoutError('gripper action server not available')
        for client in (self._reset, self._count):
            if not client.wait_for_service(timeout_sec=timeout):
                raise TimeoutError(f'service {client.srv_name} not available')

    def _on_joint_state(self, msg):
        self.joint_state = msg

    def _image_callback(self, topic):
        def callback(msg):
            self._images[topic] = msg
            self._try_pair()
        return callback

    def _info_callback(self, topic):
        def callback(msg):
            self._infos[topic] = msg
        return callback

    def _try_pair(self):
        color, depth = self._images.get(COLOR_TOPIC), self._images.get(DEPTH_TOPIC)
        if color is None or depth is None or color.header.stamp != depth.header.stamp:
            return
        stamp = to_seconds(color.header.stamp)
        if self.frames and self.frames[-1][0] >= stamp:
            return
        self.frames.append((stamp, image_to_numpy(color, 'rgb8'),
                            image_to_numpy(depth, '16UC1'),
                            self._infos.get(COLOR_INFO_TOPIC), self._infos.get(DEPTH_INFO_TOPIC)))
        del self.frames[:-3]

    def sim_time(self):
        """Stamp of the latest joint state (s): the cell's simulated time."""
        return to_seconds(self.joint_state.header.stamp)

    def frame_after(self, sim_time, timeout=30.0):
        """Wait for an RGB-D frame stamped at or after sim_time (s) and return it."""
        def fresh():
            # Both camera_infos: the first frames may come before a camera_info does.
            return (self.frames and self.frames[-1][0] >= sim_time and self.frames[-1][3]
                    and self.frames[-1][4])
        self.wait_for(fresh, timeout, f'a camera frame after t={sim_time:.3f}')
        return self.frames[-1]

    # -- joint states -------------------------------------------------------------------

    def arm_position(self):
        names = list(self.joint_state.name)
        return np.array([self.joint_state.position[names.index(j)] for j in scene.ARM_JOINTS])

    def finger_position(self):
        names = list(self.joint_state.name)
        return self.joint_state.position[names.index(GRIPPER_JOINT)]

    # -- arm ----------------------------------------------------------------------------

    def send_trajectory(self, waypoints, times, joint_names=scene.ARM_JOINTS, velocities=True,
                        start=None):
        """
        Publish a trajectory through joint waypoints (n, 6) at times (s from start).

        With velocities, interior points get central-difference velocities (start: the
        arm's current position) and the last point zero, so the controller runs a smooth
        cubic through them; without, it interpolates linearly.
        """
        waypoints = [np.asarray(q, dtype=np.float64) for q in waypoints]
        previous = [self.arm_position() if start is None else np.asarray(start)] + waypoints
        all_times = [0.0] + list(times)
        msg = JointTrajectory(joint_names=list(joint_names))
        for i, (q, t) in enumerate(zip(waypoints, times)):
            point = JointTrajectoryPoint(positions=[float(v) for v in q],
                                         time_from_start=duration_msg(t))
            if velocities:
                if i == len(waypoints) - 1:
                    v = np.zeros(len(q))
                else:
                    v = (waypoints[i + 1] - previous[i]) / (all_times[i + 2] - all_times[i])
                point.velocities = [float(x) for x in v]
            msg.points.append(point)
        self._traj_pub.publish(msg)

    def move(self, waypoints, times=None, max_velocity=2.0, tolerance=0.01, settle=0.5,
             timeout=30.0):
        """
        Move through joint waypoints and wait for the end, as a trajectory action would.

        times: arrival time of each waypoint (s); default from scripted_motion.waypoint_times.
        Done once the trajectory's time is over and every joint is within tolerance (rad) of the
        last waypoint; an arm held up by an obstacle counts as arrived `settle` simulated
        seconds later. Returns whether the tolerance was met.
        """
        waypoints = [np.asarray(q, dtype=np.float64) for q in waypoints]
        if times is None:
            times = scripted_motion.waypoint_times(waypoints, self.arm_position(), max_velocity)
        start = self.sim_time()
        self.send_trajectory(waypoints, times)
        goal = waypoints[-1]
        end = start + times[-1]

        def reached():
            return np.max(np.abs(self.arm_position() - goal)) < tolerance

        self.wait_for(
            lambda: self.sim_time() >= end and (reached() or self.sim_time() > end + settle),
            timeout, f'the arm to reach {np.round(goal, 3).tolist()}')
        self.last_move_end = end
        return reached()

    @property
    def ik(self):
        """IK on the cell's model (built on first use: about a second)."""
        if self._ik is None:
            self._ik = scripted_motion.ArmIk()
        return self._ik

    def pinch_waypoints(self, positions, angle):
        """IK along base-frame pinch positions (n, 3), top-down, fingers closing along angle."""
        seed = scripted_motion.TOP_DOWN_SEED
        waypoints = []
        for position in positions:
            seed = self.ik.top_down(position, angle, seed=seed)
            waypoints.append(seed)
        return waypoints

    def move_pinch(self, positions, angle, max_velocity=2.0, timeout=30.0):
        """Move the pinch point top-down through positions (n, 3), stopping at the last."""
        self.move(self.pinch_waypoints(positions, angle), max_velocity=max_velocity,
                  timeout=timeout)

    def go_clear(self, max_velocity=2.0, timeout=30.0):
        """Move out of the camera's view, to scene.CLEAR_POSE."""
        self.move([np.array(scene.CLEAR_POSE)], max_velocity=max_velocity, timeout=timeout)

    # -- gripper ------------------------------------------------------------------------

    def gripper(self, position, timeout=30.0):
        """Send a gripper goal and wait for its result; returns (status, result)."""
        goal = self._gripper_action.Goal()
        if self.gripper_interface == 'gripper_command':
            goal.command.position = float(position)
            goal.command.max_effort = 50.0
        else:
            goal.command = JointState(name=[GRIPPER_JOINT], position=[float(position)])
        future = self._gripper.send_goal_async(goal)
        self.wait_for(future.done, timeout, 'the gripper goal response')
        handle = future.result()
        if not handle.accepted:
            return None, None
        result_future = handle.get_result_async()
        self.wait_for(result_future.done, timeout, 'the gripper result')
        outcome = result_future.result()
        return outcome.status, outcome.result

    def result_position(self, result):
        """Finger position (rad) a gripper result reports, whichever the action type."""
        if self.gripper_interface == 'gripper_command':
            return result.position
        return result.state.position[0]

    # -- services -----------------------------------------------------------------------

    def _call(self, client, request, timeout):
        future = client.call_async(request)
        self.wait_for(future.done, timeout, f'{client.srv_name}')
        return future.result()

    def reset_scene(self, num_objects=0, seed=0, test_case_file='', timeout=60.0):
        request = ResetScene.Request(num_objects=num_objects, seed=seed,
                                     test_case_file=test_case_file)
        return self._call(self._reset, request, timeout)

    def count_objects(self, timeout=10.0):
        return self._call(self._count, CountObjects.Request(), timeout)

    # -- primitives ---------------------------------------------------------------------

    def grasp(self, position, angle, approach=0.15, lift=0.15, max_velocity=2.0):
        """
        Top-down grasp at position (pinch point, base frame) as VPG's executor does it.

        Opens, comes down from `approach` above, closes, lifts by `lift`, and judges success
        from the finger joint alone (fingers not fully closed). Returns (success, finger).
        The arm is left above the grasp point with the gripper closed.
        """
        x, y, z = position
        self.gripper(FINGER_OPEN)
        self.move_pinch([(x, y, z + approach)], angle, max_velocity)
        self.move_pinch([(x, y, z)], angle, max_velocity)
        self.gripper(FINGER_CLOSED)
        self.move_pinch([(x, y, z + lift)], angle, max_velocity)
        finger = self.finger_position()
        return finger < EMPTY_GRASP_THRESHOLD, finger

    def push(self, start, angle, length=0.1, speed=0.1, approach=0.15, max_velocity=2.0):
        """
        Push with closed fingers from start (pinch point) along angle (rad) for length (m).

        The jaw is turned broadside to the push direction, comes down from `approach` (m)
        above the start and moves at `speed` (m/s) along a straight line (IK every
        centimetre); the arm ends `approach` above the end point.
        """
        x, y, z = start
        end = (x + length * math.cos(angle), y + length * math.sin(angle), z)
        jaw = (angle + math.pi) % math.pi - math.pi / 2  # broadside, wrapped to [-pi/2, pi/2)
        self.gripper(FINGER_CLOSED)
        self.move_pinch([(x, y, z + approach)], jaw, max_velocity)
        self.move_pinch([(x, y, z)], jaw, max_velocity)
        steps = max(2, int(math.ceil(length / 0.01)))
        path = [(x + (end[0] - x) * k / steps, y + (end[1] - y) * k / steps, z)
                for k in range(1, steps + 1)]
        times = [length / speed * k / steps for k in range(1, steps + 1)]
        self.move(self.pinch_waypoints(path, jaw), times=times)
        self.move_pinch([(end[0], end[1], z + approach)], jaw, max_velocity)
