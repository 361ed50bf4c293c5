"""
Preflight of a robot cell: what is missing before the arm moves, in plain lines.

    ros2 run vpg_bringup preflight [--move] [--ur-type ur5e] [--calibration-file FILE]
    python -m vpg_bringup.preflight ...

It listens to the cell for a few seconds and asks its nodes (heightmap, policy, executor, the
controller manager) for what they run with; the checks themselves are the ROS-free functions of
vpg_bringup.preflight_checks. Each prints `PASS`/`FAIL`, what it saw and, on failure, a hint;
the exit code is 0 only when all passed. Nothing moves unless --move is given, and then only the
gripper, after asking. Runs in the SROS2 enclave /vpg/preflight unless told otherwise.
"""

import argparse
import sys
import threading
import time

from geometry_msgs.msg import PoseStamped
import numpy as np
from rcl_interfaces.srv import GetParameters
from rclpy.parameter import parameter_value_to_python
from rclpy.qos import qos_profile_sensor_data, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Header
from vpg_bringup import preflight_checks as checks
from vpg_bringup.graph import DEFAULT_UR_TYPE, enclave
from vpg_bringup.pick_all_client import _ActionClient
from vpg_common import tool_contact_action
from vpg_common.client_node import ClientNode
from vpg_common.driver_names import (COLOR_INFO_TOPIC, COLOR_TOPIC, DEPTH_TOPIC,
                                     JOINT_STATES_TOPIC, TCP_POSE_TOPIC, TOOL_CONTACT_ACTION)
from vpg_common.stamps import to_seconds
from vpg_executor import gripper_action
from vpg_executor.parameters import PARAMETERS
from vpg_interfaces.srv import ChoosePrimitive
from vpg_perception.conversions import heightmap_to_msg
from vpg_perception.grid import HeightmapGrid
from vpg_policy.weights import read_weights, WeightsError

ENCLAVE = enclave('preflight')
REQUIRED_CONTROLLERS = ('joint_state_broadcaster', 'scaled_joint_trajectory_controller',
                        'tool_contact_controller', 'robotiq_gripper_controller',
                        'robotiq_activation_controller')
EXECUTOR_PARAMETERS = ('robot.model', 'robot.tcp_offset', 'robot.tcp_yaw_offset',
                       'robot.trajectory_topic', 'robot.joint_states_topic', 'gripper.action',
                       'gripper.interface', 'gripper.joint', 'gripper.closed_position',
                       'gripper.max_effort', 'safety.z_min', 'safety.joint_lower',
                       'safety.joint_upper', 'primitives.workspace',
                       'primitives.approach_height')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog='preflight', description='Check a robot cell before the arm moves.')
    parser.add_argument('--ur-type', default=DEFAULT_UR_TYPE,
                        help='the arm on the table (ur5e or ur5); default %(default)s')
    parser.add_argument('--calibration-file', default='',
                        help="camera calibration; default: the heightmap node's "
                             'calibration_file parameter')
    parser.add_argument('--camera-rate', type=float, default=30.0,
                        help='expected camera frame rate, Hz (real.launch.py: 30)')
    parser.add_argument('--listen', type=float, default=3.0,
                        help='seconds to listen to the cell')
    parser.add_argument('--timeout', type=float, default=5.0,
                        help='seconds to wait for each node or service')
    parser.add_argument('--max-calibration-age', type=float, default=30.0,
                        help='days after which the calibration counts as stale')
    parser.add_argument('--move', action='store_true',
                        help='also open and close the gripper (asks first)')
    parser.add_argument('--yes', action='store_true', help='with --move: do not ask')
    args, ros_args = parser.parse_known_args(argv)
    return args, ros_args


def camera_qos(node, topic, sensor_data, wait=1.0):
    """
    Reliable when every publisher of topic is, else best effort (sensor data).

    A best-effort subscriber loses large frames on a busy host even from a reliable publisher,
    which would count against the camera; a reliable one gets nothing from a best-effort one.
    """
    deadline = time.monotonic() + wait
    publishers = node.get_publishers_info_by_topic(topic)
    while not publishers and time.monotonic() < deadline:
        time.sleep(0.05)
        publishers = node.get_publishers_info_by_topic(topic)
    if publishers and all(p.qos_profile.reliability == ReliabilityPolicy.RELIABLE
                          for p in publishers):
        return QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
    return sensor_data


class CellListener:
    """Subscriptions recording what the cell publishes (rclpy; messages to observations)."""

    def __init__(self, node, joint_states_topic=JOINT_STATES_TOPIC):
        self.lock = threading.Lock()
        self.color = checks.TopicObservation(COLOR_TOPIC)
        self.depth = checks.TopicObservation(DEPTH_TOPIC)
        self.info = checks.TopicObservation(COLOR_INFO_TOPIC)
        self.joints = checks.TopicObservation(joint_states_topic)
        self.tcp = checks.TopicObservation(TCP_POSE_TOPIC)
        self.positions, self.tool0, self.camera_info = {}, None, None
        for observation, msg_type in ((self.color, Image), (self.depth, Image),
                                      (self.info, CameraInfo)):
            node.create_subscription(msg_type, observation.topic,
                                     lambda msg, o=observation: self._on_camera(o, msg),
                                     camera_qos(node, observation.topic,
                                                qos_profile_sensor_data))
        node.create_subscription(JointState, joint_states_topic, self._on_joints, 50)
        node.create_subscription(PoseStamped, TCP_POSE_TOPIC, self._on_tcp, 10)

    def _on_camera(self, observation, msg):
        with self.lock:
            observation.receive_times.append(time.monotonic())
            observation.stamps.append(to_seconds(msg.header.stamp))
            observation.sizes.add((msg.width, msg.height))
            observation.frame_ids.add(msg.header.frame_id)
            if hasattr(msg, 'encoding'):
                observation.encodings.add(msg.encoding)
            else:
                k = msg.k
                self.camera_info = (msg.width, msg.height, k[0], k[4], k[2], k[5],
                                    msg.header.frame_id)

    def _on_joints(self, msg):
        with self.lock:
            self.joints.receive_times.append(time.monotonic())
            self.positions.update(zip(msg.name, msg.position))

    def _on_tcp(self, msg):
        with self.lock:
            self.tcp.receive_times.append(time.monotonic())
            p = msg.pose.position
            self.tool0 = (p.x, p.y, p.z)

    def ur_joints(self):
        with self.lock:
            if not all(name in self.positions for name in checks.UR_JOINTS):
                return None
            return [self.positions[name] for name in checks.UR_JOINTS]

    def joint(self, name):
        with self.lock:
            return self.positions.get(name)


class Preflight:
    """Runs the checks against a live cell through one rclpy node."""

    def __init__(self, node, args, ask=input, out=print):
        self.node, self.args, self.ask, self.out = node, args, ask, out
        self.listener = CellListener(node)
        self._action_clients = {}

    def action_client(self, action_type, name):
        """
        One action client per action for the whole run, destroyed by close().

        Destroying an rclpy action client while another thread spins the node can leave the
        executor adding the destroyed client to its wait set ("action client pointer is
        invalid"), which kills the spinning thread and every later check with it.
        """
        key = (action_type, name)
        if key not in self._action_clients:
            self._action_clients[key] = _ActionClient(self.node, action_type, name)
        return self._action_clients[key]

    def close(self):
        """Destroy the action clients; call once the node no longer spins."""
        for client in self._action_clients.values():
            client.destroy()
        self._action_clients.clear()

    # -- asking nodes -----------------------------------------------------------------------
    def parameters(self, node_name, names):
        """{name: value} of a running node's parameters; {} when it does not answer."""
        client = self.node.create_client(GetParameters, f'/{node_name}/get_parameters')
        try:
            if not client.wait_for_service(timeout_sec=self.args.timeout):
                return {}
            future = client.call_async(GetParameters.Request(names=list(names)))
            if not self._wait(future):
                return {}
            values = future.result().values
            return {name: parameter_value_to_python(value)
                    for name, value in zip(names, values) if value.type != 0}
        finally:
            self.node.destroy_client(client)

    def _wait(self, future, timeout=None):
        deadline = time.monotonic() + (timeout or self.args.timeout)
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.02)
        return future.done()

    def controller_states(self):
        """Return {controller: state} from controller_manager; None without one (MuJoCo)."""
        try:
            from controller_manager_msgs.srv import ListControllers
        except ImportError:
            return None
        client = self.node.create_client(ListControllers, '/controller_manager/list_controllers')
        try:
            if not client.wait_for_service(timeout_sec=min(self.args.timeout, 2.0)):
                return None
            future = client.call_async(ListControllers.Request())
            if not self._wait(future):
                return None
            return {c.name: c.state for c in future.result().controller}
        finally:
            self.node.destroy_client(client)

    def action_server_present(self, action_type, action):
        """Whether a server (not just a client, as the executor) of the action runs."""
        client = self.action_client(action_type, action)
        return client.wait_for_server(timeout_sec=min(self.args.timeout, 3.0))

    def served_weights_version(self):
        """Ask the policy for one decision on an empty heightmap; its weights version."""
        client = self.node.create_client(ChoosePrimitive, '/choose_primitive')
        try:
            if not client.wait_for_service(timeout_sec=self.args.timeout):
                return None
            grid = HeightmapGrid()
            size = grid.shape
            request = ChoosePrimitive.Request(heightmap=heightmap_to_msg(
                np.zeros(size + (3,), np.uint8), np.zeros(size, np.float32), grid,
                Header(frame_id='base')), epsilon=0.0)
            # Twice: under load a response can be lost in transport (the executor retries so).
            for _ in range(2):
                future = client.call_async(request)
                if self._wait(future, timeout=max(self.args.timeout, 10.0)):
                    return int(future.result().action.weights_version)
                client.remove_pending_request(future)
            return None
        finally:
            self.node.destroy_client(client)

    # -- the checks -------------------------------------------------------------------------
    def run(self):
        args = self.args
        time.sleep(args.listen)
        listener = self.listener
        results = []
        with listener.lock:
            color, depth, info = listener.color, listener.depth, listener.info
            results.append(checks.check_image_stream(
                'camera colour', color, args.camera_rate, checks.COLOR_ENCODINGS))
            results.append(checks.check_image_stream(
                'camera aligned depth', depth, args.camera_rate, checks.DEPTH_ENCODINGS))
            results.append(checks.check_camera_info(info))
            camera_info = listener.camera_info
            color_stamps, depth_stamps = list(color.stamps), list(depth.stamps)
        heightmap = self.parameters('heightmap', ['calibration_file', 'max_stamp_difference'])
        results.append(checks.check_stamp_pairing(
            color_stamps, depth_stamps, heightmap.get('max_stamp_difference', 0.02)))
        results.append(checks.check_calibration(
            args.calibration_file or heightmap.get('calibration_file', ''), camera_info,
            max_age_days=args.max_calibration_age))
        executor = self.executor_parameters()
        results.append(checks.check_joint_states(listener.joints, set(listener.positions),
                                                 executor['gripper.joint']))
        results.append(checks.check_executor_model(executor.get('robot.model'), args.ur_type,
                                                   bool(executor.get('_running'))))
        with listener.lock:
            tool0 = listener.tool0
        results.append(checks.check_arm_pose(listener.ur_joints(), tool0, args.ur_type))
        results.append(checks.check_controllers(
            self.controller_states(), REQUIRED_CONTROLLERS, graph_fallback={
                f'trajectory topic subscriber ({executor["robot.trajectory_topic"]})':
                    self.node.count_subscribers(executor['robot.trajectory_topic']) > 0,
                f'gripper action ({executor["gripper.action"]})':
                    self.action_server_present(
                        gripper_action.action_type(executor['gripper.interface']),
                        executor['gripper.action']),
                f'tool contact action ({TOOL_CONTACT_ACTION})':
                    self.action_server_present(tool_contact_action.action_type(),
                                               TOOL_CONTACT_ACTION)}))
        if args.move:
            results.append(self.gripper_motion(executor))
        policy = self.parameters('policy', ['weights_path'])
        results.append(self.policy_check(policy.get('weights_path', '')))
        z_min = executor['safety.z_min']
        results.append(checks.check_workspace_reach(
            executor['primitives.workspace'],
            (z_min, z_min + executor['primitives.approach_height']), args.ur_type,
            executor['robot.tcp_offset'], executor['robot.tcp_yaw_offset'],
            executor['safety.joint_lower'], executor['safety.joint_upper']))
        return results

    def executor_parameters(self):
        """Return the executor's values (running node), its defaults for what it lacks."""
        values = {name: default for name, default, *_ in PARAMETERS
                  if name in EXECUTOR_PARAMETERS}
        running = self.parameters('executor', EXECUTOR_PARAMETERS)
        values.update(running)
        values['_running'] = bool(running)
        return values

    def policy_check(self, weights_path):
        version = self.served_weights_version()
        file_version = file_sha256 = None
        if weights_path:
            try:
                loaded = read_weights(weights_path)
                file_version, file_sha256 = loaded.metadata.version, loaded.sha256
            except (OSError, WeightsError) as error:
                return checks.CheckResult('policy weights', False,
                                          f'{weights_path}: {error}',
                                          'pass a readable .safetensors file as weights:=')
        return checks.check_policy(weights_path, version, file_version, file_sha256)

    def gripper_motion(self, executor):
        """Open, close, open; the knuckle position after each (settled, or None)."""
        closed = float(executor['gripper.closed_position'])
        targets = [0.0, closed, 0.0]
        if not self.args.yes:
            answer = self.ask('The gripper will open, close and open. Nothing between the '
                              'fingers? [y/N] ')
            if answer.strip().lower() not in ('y', 'yes'):
                return checks.CheckResult('gripper open/close', False, 'not run (declined)',
                                          'run again and answer y, or leave out --move')
        interface = gripper_action.parse_interface(executor['gripper.interface'])
        action = gripper_action.action_type(interface)
        client = self.action_client(action, executor['gripper.action'])
        if not client.wait_for_server(timeout_sec=self.args.timeout):
            return checks.check_gripper_motion([None] * 3, targets)
        measured = [self._move_gripper(client, action, interface, executor, target)
                    for target in targets]
        return checks.check_gripper_motion(measured, targets)

    def _move_gripper(self, client, action, interface, executor, target):
        joint = executor['gripper.joint']
        start = self.listener.joint(joint)
        if start is None:
            return None
        settle = gripper_action.SettleDetector(target, start, time.monotonic())
        goal = gripper_action.make_goal(action, interface, joint, target,
                                        float(executor['gripper.max_effort']))
        sent = client.send_goal_async(goal)
        if not self._wait(sent) or not sent.result().accepted:
            return None
        result = sent.result().get_result_async()
        deadline = time.monotonic() + max(self.args.timeout, 5.0)
        while time.monotonic() < deadline:
            position = self.listener.joint(joint)
            if result.done() and settle.update(time.monotonic(), position):
                return position
            time.sleep(0.02)
        return None


def main(argv=None):
    args, ros_args = parse_args(sys.argv[1:] if argv is None else argv)
    if '--enclave' not in ros_args and '-e' not in ros_args:
        ros_args = ros_args + ['--ros-args', '--enclave', ENCLAVE]
    client = ClientNode('preflight', args=['preflight'] + ros_args, threads=2)
    preflight = Preflight(client.node, args)
    try:
        results = preflight.run()
    except KeyboardInterrupt:
        return 130
    finally:
        client.stop()
        preflight.close()
        client.close()
    print(checks.report(results), flush=True)
    return checks.exit_code(results)


if __name__ == '__main__':
    sys.exit(main())
