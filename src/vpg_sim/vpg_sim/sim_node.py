"""
ROS 2 node `sim`: the MuJoCo cell behind the topics of the real UR, Robotiq and RealSense drivers.

Interfaces (absolute names are the real drivers'):
- /joint_states (sensor_msgs/JointState): the six UR joints and robotiq_85_left_knuckle_joint.
- /scaled_joint_trajectory_controller/joint_trajectory (trajectory_msgs/JointTrajectory): the
  arm follows it; a new one replaces the current one. Rejected with a logged error, arm
  unchanged: unknown, missing or duplicate joints, NaN/inf, positions outside the joint limits,
  non-increasing times, mean segment speeds above the UR's pi rad/s.
- /robotiq_gripper_controller/gripper_cmd: control_msgs/action/ParallelGripperCommand as
  ros2_robotiq_gripper serves it from Kilted on (command: one position of
  robotiq_85_left_knuckle_joint), or GripperCommand as up to Jazzy (parameter
  gripper.interface, as the executor's; identical vpg_interfaces copies where control_msgs is
  not installed).
  The position is the finger joint angle in rad (0 open .. 0.8 closed; outside values are
  clamped, a NaN goal is rejected); the effort is the grip force in N (20-235, as the 2F-85's
  force setting; none given: the last one, at start 50 N). Succeeds when the target is
  reached or the fingers stall on an object (result.stalled); a new goal aborts the running
  one.
- /camera/camera/color/image_raw (rgb8), /camera/camera/aligned_depth_to_color/image_raw
  (16UC1, mm, 0 = no data) and their camera_info, frame camera_color_optical_frame, one stamp
  per colour/depth pair.
- /clock (rosgraph_msgs/Clock): simulated time; run other nodes with use_sim_time.
- /force_torque_sensor_broadcaster/wrench (geometry_msgs/WrenchStamped, frame tool0_controller):
  the contact wrench on the gripper as ur_robot_driver's force_torque_sensor_broadcaster
  publishes the UR's flange sensor, with noise and an offset (force_sensor.py).
- /tool_contact_controller/detect_tool_contact (ur_msgs/action/ToolContact, or its identical
  vpg_interfaces copy): as ur_robot_driver's tool_contact_controller, while a goal is active
  the arm stops on a tool contact (tool_contact.py, at the physics step it happens) and the goal
  succeeds; a second goal is refused, a cancelled one ends detection. tool_contact_force 0 = not
  served.
- ~/reset_scene (vpg_interfaces/ResetScene), ~/count_objects (vpg_interfaces/CountObjects):
  simulation only; the count is ground truth for evaluation.

Threads: physics (steps the cell, publishes clock and joint states, paces to the real-time
factor), rendering (one frame at a time from a copy of the state; a frame falling due while one
is rendering is dropped, as a camera drops frames), and the ROS executor for callbacks.
MUJOCO_GL selects the render backend (egl by default here, or osmesa).
"""

import array
import ctypes
import math
import os
import threading
import time

from geometry_msgs.msg import PoseStamped, WrenchStamped
import numpy as np
from rcl_interfaces.msg import SetParametersResult
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Header
from trajectory_msgs.msg import JointTrajectory
from vpg_common import tool_contact_action
from vpg_common.driver_names import (CAMERA_FRAME, COLOR_INFO_TOPIC, COLOR_TOPIC, DEPTH_INFO_TOPIC,
                                     DEPTH_TOPIC, GRIPPER_ACTION, GRIPPER_JOINT,
                                     JOINT_STATES_TOPIC, TCP_POSE_TOPIC, TOOL_CONTACT_ACTION,
                                     TRAJECTORY_TOPIC, WRENCH_FRAME, WRENCH_TOPIC)
from vpg_common.gripper_action import action_type
from vpg_common.node_runner import run_node
from vpg_common.stamps import split_seconds, to_seconds
from vpg_interfaces.srv import CountObjects, ResetScene
from vpg_perception.conversions import numpy_to_image
from vpg_sim import blocks, depth_model, scene
from vpg_sim.camera import RgbdRenderer
from vpg_sim.cell import Cell, CellConfig
from vpg_sim.force_sensor import ForceSensor, ForceSensorConfig
from vpg_sim.gripper import GripperConfig, GripperGoal, GripperOutcome
from vpg_sim.randomization import RandomizationRanges
from vpg_sim.sim_parameters import declare_parameters
from vpg_sim.timing import FrameScheduler, pace_rate, Pacer, Periodic
from vpg_sim.trajectory import TrajectoryError, TrajectoryPoint


def gripper_goal_position(interface, request):
    """Finger target of a goal; ValueError for a goal the real controller would reject."""
    if interface == 'gripper_command':
        position = float(request.command.position)
    else:
        # parallel_gripper_action_controller rejects any other number of positions.
        if len(request.command.position) != 1:
            raise ValueError(f'expects 1 position, got {len(request.command.position)}')
        position = float(request.command.position[0])
    if not math.isfinite(position):
        raise ValueError('position is not finite')
    return position


def gripper_goal_effort(interface, request):
    """
    Grip force (N) a goal asks for, or None to keep the current one.

    GripperCommand: command.max_effort; ParallelGripperCommand: command.effort[0] when given
    (parallel_gripper_action_controller then writes it to its max-effort interface, and
    ros2_robotiq_gripper turns it into the force register). 0, absent or non-finite: None.
    """
    if interface == 'gripper_command':
        effort = float(request.command.max_effort)
    else:
        effort = float(request.command.effort[0]) if len(request.command.effort) else 0.0
    return effort if math.isfinite(effort) and effort > 0 else None


TCP_POSE_EVERY = 5
"""Publish the tool pose with every 5th joint state (10-20 Hz): every message costs CPU."""
_SERVICE_TIMEOUT = 60.0  # s of wall time a reset may take to settle
_REST_FRAME_DWELL = 0.03  # s of simulated stillness before the extra rest frame


class PublishGuard:
    """
    Publishes from the cell's worker threads; a failed write is dropped like a lost sample.

    Fast DDS can refuse a write for a moment when a reader falls behind and its resources are
    exhausted ("cannot publish data"; ros2/rmw#209): a real driver's next message simply
    follows. Only `limit` failures in a row on one topic (a second of joint states at 50 Hz)
    re-raise, so a publisher that stays broken still ends the cell; so does any failure while
    `stopping()` (the context going down).
    """

    def __init__(self, logger, limit=50, stopping=lambda: False):
        self._logger = logger
        self._limit = limit
        self._stopping = stopping
        self._failures = {}
        self.dropped = 0
        """Messages dropped so far, all topics."""

    def publish(self, publisher, msg):
        """Publish msg; RCLError: log and drop it, or re-raise at `limit` failures in a row."""
        try:
            publisher.publish(msg)
        except _rclpy.RCLError as error:
            topic = publisher.topic_name
            count = self._failures.get(topic, 0) + 1
            if count >= self._limit or self._stopping():
                raise  # broken for good, or shutting down: the thread's handler decides
            self._failures[topic] = count
            self.dropped += 1
            self._logger.warning(f'publishing on {topic} failed, message dropped ({count} in a '
                                 f'row, {self.dropped} in all): {error}',
                                 throttle_duration_sec=5.0)
            return
        if self._failures:
            self._failures.pop(publisher.topic_name, None)


class _RejectionLog:
    """Logs bad input as errors; repeats of the same reason within 1 s are counted, not logged."""

    def __init__(self, logger, period=1.0):
        self._logger = logger
        self._period = period
        self._last = (None, -math.inf)
        self._suppressed = 0

    def error(self, reason):
        now = time.monotonic()
        last_reason, last_time = self._last
        if reason == last_reason and now - last_time < self._period:
            self._suppressed += 1
            return
        suffix = f' ({self._suppressed} similar suppressed)' if self._suppressed else ''
        self._suppressed = 0
        self._last = (reason, now)
        self._logger.error(reason + suffix)


class _GripperJob:
    """A running gripper goal: the tracker, and an event set when it ends or is preempted."""

    def __init__(self, goal):
        self.goal = goal
        self.done = threading.Event()
        self.preempted = False


def _release_free_memory():
    """
    Hand freed heap memory back to the OS (glibc only; elsewhere nothing happens).

    Each reset compiles a new model and frees the old one; with several threads glibc keeps
    the freed blocks in per-thread heaps and the process grew by ~80 MB per reset (measured).
    """
    try:
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except (OSError, AttributeError):
        pass


class SimNode(Node):
    """The cell behind real-driver topics; see the module docstring."""

    def __init__(self, **kwargs):
        super().__init__('sim', **kwargs)
        self._stop = threading.Event()
        self._publisher = PublishGuard(
            self.get_logger(), stopping=lambda: self._stop.is_set() or not self.context.ok())
        self.failure = None
        """The exception that stopped a worker thread, if one did (the process then exits 1)."""
        self._physics_thread = self._render_thread = None
        self.params = declare_parameters(self)
        p = self.params
        self._cell_config = CellConfig(
            timestep=p.physics_timestep, calibration_marker=p.calibration_marker,
            removal_height=p.removal_height, randomization_seed=p.randomization_seed,
            randomization=RandomizationRanges() if p.randomize else None)
        self._gripper_config = GripperConfig()
        self._force_sensor = ForceSensor(
            ForceSensorConfig(force_noise_std=p.wrench_noise_std,
                              torque_noise_std=0.02 * p.wrench_noise_std,
                              force_offset=p.wrench_offset), seed=p.seed)
        self._depth_model = depth_model.profile(p.depth_model)
        self._lock = threading.Lock()
        self._cell = Cell(self._cell_config)
        if p.test_case_file:
            try:
                self._cell.reset(blocks.load_test_case(p.test_case_file))
            except blocks.TestCaseError as error:
                self.get_logger().fatal(f'cannot load test_case_file: {error}')
                raise
        else:
            self._cell.reset_random(p.num_objects, p.seed)
        self._camera_enabled = p.camera_enabled
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._gripper_job = None
        self._pending_resets = []  # (objects, event) for the physics thread to carry out
        self._settle_waiters = []
        self._rejections = _RejectionLog(self.get_logger())

        fx, fy, cx, cy = scene.camera_intrinsics(self._cell.model)
        self._camera_info = CameraInfo(
            width=scene.IMAGE_WIDTH, height=scene.IMAGE_HEIGHT, distortion_model='plumb_bob',
            d=[0.0] * 5, k=[fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0],
            r=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
            p=[fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0])
        self._camera_info.header.frame_id = CAMERA_FRAME

        self._clock_msg = Clock()
        self._joint_msg = JointState(name=list(scene.ARM_JOINTS) + [GRIPPER_JOINT])
        self._wrench_msg = WrenchStamped()
        self._wrench_msg.header.frame_id = WRENCH_FRAME
        group = ReentrantCallbackGroup()
        self._clock_pub = self.create_publisher(Clock, '/clock', 10)
        self._joint_pub = self.create_publisher(JointState, JOINT_STATES_TOPIC, 10)
        self._wrench_pub = self.create_publisher(WrenchStamped, WRENCH_TOPIC, 10)
        # As ur_robot_driver's tcp_pose_broadcaster: tool0 in `base`, the pose the robot
        # itself computes (the preflight compares the kinematics of ur_type with it).
        self._tcp_pub = self.create_publisher(PoseStamped, TCP_POSE_TOPIC, 10)
        self._tcp_msg = PoseStamped()
        self._tcp_msg.header.frame_id = 'base'
        # Reliable, as realsense2_camera's default image QoS (SYSTEM_DEFAULT); depth 10 keeps a
        # frame for a reader that falls behind by a few frames under load instead of dropping it.
        self._color_pub = self.create_publisher(Image, COLOR_TOPIC, 10)
        self._color_info_pub = self.create_publisher(CameraInfo, COLOR_INFO_TOPIC, 10)
        self._depth_pub = self.create_publisher(Image, DEPTH_TOPIC, 10)
        self._depth_info_pub = self.create_publisher(CameraInfo, DEPTH_INFO_TOPIC, 10)
        self.create_subscription(JointTrajectory, TRAJECTORY_TOPIC, self._on_trajectory, 10,
                                 callback_group=group)
        self._gripper_action = action_type(p.gripper_interface)
        self._gripper_server = ActionServer(
            self, self._gripper_action, GRIPPER_ACTION, execute_callback=self._execute_gripper,
            goal_callback=self._on_gripper_goal, cancel_callback=lambda _: CancelResponse.ACCEPT,
            callback_group=group)
        self._tool_contact_busy = False
        self._tool_contact_stopped = threading.Event()
        if p.tool_contact_force > 0:
            self._tool_contact_action = tool_contact_action.action_type()
            ActionServer(self, self._tool_contact_action, TOOL_CONTACT_ACTION,
                         execute_callback=self._execute_tool_contact,
                         goal_callback=self._on_tool_contact_goal,
                         cancel_callback=self._on_tool_contact_cancel, callback_group=group)
        self.create_service(ResetScene, '~/reset_scene', self._on_reset_scene,
                            callback_group=group)
        self.create_service(CountObjects, '~/count_objects', self._on_count_objects,
                            callback_group=group)

        self._render_lock = threading.Condition()
        self._render_job = None
        self._render_busy = False
        self._physics_thread = threading.Thread(target=self._physics_loop, name='sim_physics',
                                                daemon=True)
        self._render_thread = threading.Thread(target=self._render_loop, name='sim_render',
                                               daemon=True)
        self._render_thread.start()
        self._physics_thread.start()
        self.get_logger().info(
            f'cell ready: {len(self._cell.objects)} blocks, real_time_factor '
            f'{p.real_time_factor}, camera {p.camera_rate_hz} Hz, MUJOCO_GL='
            f'{os.environ.get("MUJOCO_GL")}')

    # -- ROS callbacks ------------------------------------------------------------------

    def _on_trajectory(self, msg):
        points = [TrajectoryPoint(tuple(pt.positions), tuple(pt.velocities),
                                  tuple(pt.accelerations),
                                  to_seconds(pt.time_from_start))
                  for pt in msg.points]
        stamp = msg.header.stamp
        start = None if (stamp.sec == 0 and stamp.nanosec == 0) else to_seconds(stamp)
        try:
            with self._lock:
                self._cell.set_trajectory(msg.joint_names, points, start_time=start)
        except TrajectoryError as error:
            self._rejections.error(f'trajectory rejected, arm not moved: {error}')

    def _on_gripper_goal(self, goal_request):
        try:
            gripper_goal_position(self.params.gripper_interface, goal_request)
        except ValueError as error:
            self._rejections.error(f'gripper goal rejected: {error}')
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    def _gripper_result(self, job, feedback=False):
        with self._lock:
            position = self._cell.finger_position()
            effort = self._cell.finger_effort()
        outcome = job.goal.outcome
        flags = {'stalled': outcome is GripperOutcome.STALLED,
                 'reached_goal': outcome is GripperOutcome.REACHED}
        message = self._gripper_action.Feedback if feedback else self._gripper_action.Result
        if self.params.gripper_interface == 'gripper_command':
            return message(position=position, effort=effort, **flags)
        state = JointState(name=[GRIPPER_JOINT], position=[position], effort=[effort])
        return message(state=state) if feedback else message(state=state, **flags)

    def _execute_gripper(self, goal_handle):
        position = gripper_goal_position(self.params.gripper_interface, goal_handle.request)
        effort = gripper_goal_effort(self.params.gripper_interface, goal_handle.request)
        with self._lock:
            target = self._cell.set_gripper(position, effort)
            job = _GripperJob(GripperGoal(target, self._cell.time, self._gripper_config))
            previous, self._gripper_job = self._gripper_job, job
        if previous is not None:
            previous.preempted = True
            previous.done.set()
        deadline = time.monotonic() + _SERVICE_TIMEOUT
        while not job.done.wait(timeout=0.05):
            if (goal_handle.is_cancel_requested or time.monotonic() > deadline
                    or not self.context.ok()):
                break
            goal_handle.publish_feedback(self._gripper_result(job, feedback=True))
        result = self._gripper_result(job)
        if job.preempted:
            goal_handle.abort()
        elif goal_handle.is_cancel_requested and not job.done.is_set():
            with self._lock:
                # As the controller does on cancel: hold where the fingers are.
                self._cell.set_gripper(self._cell.finger_position())
                if self._gripper_job is job:
                    self._gripper_job = None
            goal_handle.canceled()
        elif job.goal.outcome in (GripperOutcome.REACHED, GripperOutcome.STALLED):
            goal_handle.succeed()
        else:
            self.get_logger().error(f'gripper goal {target:.3f} rad not reached in time')
            goal_handle.abort()
        return result

    def _on_tool_contact_goal(self, _request):
        # As tool_contact_controller: one detection at a time, a second goal is refused.
        with self._lock:
            if self._tool_contact_busy:
                self._rejections.error('tool contact goal rejected: one is already active')
                return GoalResponse.REJECT
            self._tool_contact_busy = True
        return GoalResponse.ACCEPT

    def _on_tool_contact_cancel(self, _goal_handle):
        # Wake the goal's wait at once: the executor waits for the cancel to finish after
        # every descent, and the next descent's goal is refused until it has.
        self._tool_contact_stopped.set()
        return CancelResponse.ACCEPT

    def _execute_tool_contact(self, goal_handle):
        with self._lock:
            self._tool_contact_stopped.clear()
            self._cell.arm_tool_contact(self.params.tool_contact_force)
        try:
            while True:
                woken = self._tool_contact_stopped.wait(timeout=0.05)
                with self._lock:
                    stopped = self._cell.tool_contact_stop is not None
                if stopped or self._stop.is_set() or not self.context.ok():
                    break
                if woken or goal_handle.is_cancel_requested:
                    # Cancelled: the goal turns CANCELING right after the callback returns.
                    deadline = time.monotonic() + 1.0
                    while not goal_handle.is_cancel_requested and time.monotonic() < deadline:
                        time.sleep(0.001)
                    break
        finally:
            with self._lock:
                stop = self._cell.tool_contact_stop
                touches = self._cell.tool_contact_touches
                self._cell.disarm_tool_contact()
                self._tool_contact_busy = False
        if stop is not None:
            self.get_logger().info(
                f'tool contact: arm stopped at {stop[0]:.3f} s, {stop[1]:.1f} N against the '
                'motion; touching: ' + ', '.join(f'{mine} on {other}' for mine, other in touches))
            goal_handle.succeed()
        elif goal_handle.is_cancel_requested:
            goal_handle.canceled()
        else:
            goal_handle.abort()
        return self._tool_contact_action.Result()

    def _on_reset_scene(self, request, response):
        try:
            if request.test_case_file:
                objects = blocks.load_test_case(request.test_case_file)
            else:
                objects = blocks.random_objects(
                    request.num_objects, request.seed, self._cell_config.workspace_x,
                    self._cell_config.workspace_y)
        except (blocks.TestCaseError, ValueError) as error:
            self._rejections.error(f'reset_scene refused: {error}')
            response.success = False
            response.message = str(error)
            return response
        settled = threading.Event()
        with self._lock:
            self._pending_resets.append((objects, settled))  # carried out by the physics thread
        deadline = time.monotonic() + _SERVICE_TIMEOUT
        while not settled.wait(timeout=0.1):
            if time.monotonic() > deadline or not self.context.ok():
                response.success = False
                response.message = 'blocks did not settle in time'
                return response
        response.success = True
        response.num_objects = len(objects)
        response.message = f'{len(objects)} blocks placed and settled'
        return response

    def _on_count_objects(self, request, response):
        with self._lock:
            counts = self._cell.count_objects()
        response.in_workspace = counts.in_workspace
        response.removed = counts.removed
        response.out_of_workspace = counts.out_of_workspace
        return response

    # -- physics thread -----------------------------------------------------------------

    def _joint_state(self, stamp, cell):
        # One message object, refilled: building a fresh JointState (with its names and
        # per-element field checks) costs several times more than publishing it.
        msg = self._joint_msg
        msg.header.stamp.sec, msg.header.stamp.nanosec = stamp
        msg.position = array.array('d', (*cell.arm_position(), cell.finger_position()))
        msg.velocity = array.array('d', (*cell.arm_velocity(), cell.finger_velocity()))
        msg.effort = array.array('d', (*cell.arm_effort(), cell.finger_effort()))
        return msg

    def _wrench(self, stamp, cell):
        msg = self._wrench_msg
        msg.header.stamp.sec, msg.header.stamp.nanosec = stamp
        force, torque = self._force_sensor.read(*cell.tool_wrench())
        w = msg.wrench
        w.force.x, w.force.y, w.force.z = (float(v) for v in force)
        w.torque.x, w.torque.y, w.torque.z = (float(v) for v in torque)
        return msg

    def _tcp_pose(self, stamp, cell):
        msg = self._tcp_msg
        msg.header.stamp.sec, msg.header.stamp.nanosec = stamp
        position, (w, x, y, z) = cell.tool0_pose()
        p, o = msg.pose.position, msg.pose.orientation
        p.x, p.y, p.z = (float(v) for v in position)
        o.w, o.x, o.y, o.z = float(w), float(x), float(y), float(z)
        return msg

    def _physics_loop(self):
        p = self.params
        cell = self._cell
        clock = Periodic(p.clock_rate_hz, cell.time)
        joints = Periodic(p.joint_state_rate_hz, cell.time)
        wrenches = Periodic(p.wrench_rate_hz, cell.time)  # rate 0: never due
        frames = FrameScheduler(p.camera_rate_hz, p.camera_max_wall_rate_hz,
                                rest_dwell=_REST_FRAME_DWELL, start=cell.time)
        pacer = Pacer()
        recoveries = cell.instability_recoveries
        joint_count = 0
        try:
            while not self._stop.is_set():
                with self._lock:
                    cell.advance_to(min(clock.next_time, joints.next_time, wrenches.next_time,
                                        frames.next_time))
                    if cell.instability_recoveries != recoveries:
                        recoveries = cell.instability_recoveries
                        self.get_logger().error(
                            f'physics went unstable at {cell.time:.3f} s (MuJoCo reset its '
                            'state): positions before the step restored, velocities zeroed '
                            f'({recoveries} so far)')
                    now = cell.time
                    stamp = split_seconds(now)
                    clock_msg = joint_msg = wrench_msg = snapshot = None
                    if clock.due(now):
                        clock_msg = self._clock_msg
                        clock_msg.clock.sec, clock_msg.clock.nanosec = stamp
                    tcp_msg = None
                    if joints.due(now):
                        joint_msg = self._joint_state(stamp, cell)
                        joint_count += 1
                        if joint_count % TCP_POSE_EVERY == 0:
                            tcp_msg = self._tcp_pose(stamp, cell)
                    if wrenches.due(now):
                        wrench_msg = self._wrench(stamp, cell)
                    self._update_waiters(now)
                    at_rest = (self._gripper_job is None and not self._settle_waiters
                               and not self._pending_resets and cell.at_rest())
                    render, _ = frames.update(now, time.monotonic(), at_rest,
                                              self._render_busy)
                    if render and self._camera_wanted():
                        snapshot = cell.snapshot()
                if clock_msg is not None:
                    self._publisher.publish(self._clock_pub, clock_msg)
                if joint_msg is not None:
                    self._publisher.publish(self._joint_pub, joint_msg)
                if wrench_msg is not None:
                    self._publisher.publish(self._wrench_pub, wrench_msg)
                if tcp_msg is not None:
                    self._publisher.publish(self._tcp_pub, tcp_msg)
                if snapshot is not None:
                    self._offer_frame(snapshot)
                rate = pace_rate(p.real_time_factor, p.idle_real_time_factor, at_rest)
                delay = pacer.delay(now, time.monotonic(), rate)
                if delay > 0.0:
                    self._stop.wait(delay)
        except Exception as error:
            self._thread_failed('physics', error)

    def _update_waiters(self, now):
        """Carry out requested resets; finish gripper goals and resets that are done (locked)."""
        cell, job = self._cell, self._gripper_job
        for objects, settled in self._pending_resets:
            cell.reset(objects)
            if cell.scene_randomization is not None:
                self.get_logger().info(
                    f'scene randomised: {cell.scene_randomization.describe()}')
            self._settle_waiters.append(settled)
            _release_free_memory()
        self._pending_resets = []
        if job is not None:
            outcome = job.goal.update(now, cell.finger_position())
            if outcome is not GripperOutcome.RUNNING:
                self._gripper_job = None
                job.done.set()
        if cell.tool_contact_stop is not None and self._tool_contact_busy:
            self._tool_contact_stopped.set()
        if self._settle_waiters and cell.settled():
            for waiter in self._settle_waiters:
                waiter.set()
            self._settle_waiters = []

    # -- rendering thread ---------------------------------------------------------------

    def _on_set_parameters(self, parameters):
        """Apply camera_enabled at run time (rclpy has already checked its type)."""
        for parameter in parameters:
            if parameter.name == 'camera_enabled':
                self._camera_enabled = bool(parameter.value)
                self.get_logger().warning(
                    f'camera {"on" if parameter.value else "off"} (camera_enabled)')
        return SetParametersResult(successful=True)

    def _camera_wanted(self):
        if not self._camera_enabled:
            return False
        return (self._color_pub.get_subscription_count() > 0
                or self._depth_pub.get_subscription_count() > 0)

    def _offer_frame(self, snapshot):
        with self._render_lock:
            self._render_job = snapshot  # a pending frame not yet started is replaced
            self._render_lock.notify()

    def _render_loop(self):
        renderer = None
        rng = np.random.default_rng(self.params.seed)
        try:
            while not self._stop.is_set():
                with self._render_lock:
                    if self._render_job is None:
                        self._render_lock.wait(timeout=0.2)
                    job, self._render_job = self._render_job, None
                    self._render_busy = job is not None
                if job is None:
                    continue
                if renderer is None:
                    renderer = RgbdRenderer(job.model)
                rgb, depth = renderer.render_qpos(job.model, job.qpos)
                self._publish_frame(job.time, rgb, depth, rng, job.depth_scale)
                with self._render_lock:
                    self._render_busy = False
        except Exception as error:
            self._thread_failed('render', error)
        finally:
            if renderer is not None:
                renderer.close()

    def _publish_frame(self, sim_time, rgb, depth, rng, depth_scale):
        header = Header(frame_id=CAMERA_FRAME)
        header.stamp.sec, header.stamp.nanosec = split_seconds(sim_time)
        millimetres = self._depth_model.apply(depth, rgb, rng, self._camera_info.k[0],
                                              depth_scale)
        info = CameraInfo()
        info.header = header
        for field in ('height', 'width', 'distortion_model', 'd', 'k', 'r', 'p'):
            setattr(info, field, getattr(self._camera_info, field))
        self._publisher.publish(self._color_pub, numpy_to_image(rgb, 'rgb8', header))
        self._publisher.publish(self._color_info_pub, info)
        self._publisher.publish(self._depth_pub, numpy_to_image(millimetres, '16UC1', header))
        self._publisher.publish(self._depth_info_pub, info)

    # -- lifecycle ----------------------------------------------------------------------

    def _thread_failed(self, name, error):
        """
        Report a worker thread ended by an exception: quiet at shutdown, fatal otherwise.

        A fatal failure shuts the node's context down, so the process exits non-zero (see
        main) and whoever runs the graph sees a dead cell, instead of a cell whose clock and
        joint states stopped or went wrong.
        """
        if self._stop.is_set() or not self.context.ok():
            return  # publishing after the context was shut down (e.g. SIGTERM): expected
        self.get_logger().fatal(f'{name} thread stopped: {error!r}')
        self.failure = error
        self.context.try_shutdown()
        raise error

    @property
    def exit_code(self):
        """1 after a worker thread failed (the process then exits non-zero), else 0."""
        return 0 if self.failure is None else 1

    def destroy_node(self):
        """Stop the physics and render threads, then destroy the node."""
        self._stop.set()
        if self._render_thread is not None:
            with self._render_lock:
                self._render_lock.notify_all()
        for thread in (self._physics_thread, self._render_thread):
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout=10.0)
        super().destroy_node()


def main(args=None):
    return run_node(SimNode, 'sim', threads=4, args=args)


if __name__ == '__main__':
    raise SystemExit(main())
