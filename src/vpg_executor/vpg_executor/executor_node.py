"""
executor_node: runs push/grasp primitives on the arm and serves the `pick_all` action.

Thin rclpy wrapper over the ROS-free core (pick_all.PickAllLoop, primitives, motion, safety).
Talks to the arm like ur_robot_driver expects (JointTrajectory on the joint trajectory
controller's topic, /joint_states), to the gripper through control_msgs' GripperCommand or
ParallelGripperCommand action (parameter gripper.interface), to the robot controller's stop on
tool contact for guarded descents (ur_robot_driver's tool_contact_controller, tool_contact_client),
to perception through `get_heightmap` and to the policy through `choose_primitive`; publishes
every executed action as a Transition on `transitions`.

One goal at a time: a goal arriving while another runs is rejected (not queued). Cancel is
checked between primitives; the arm then goes home. Debug: `execute_primitive` runs one given
primitive when no goal is running.
"""

import math
import threading
import time

from action_msgs.msg import GoalStatus
from geometry_msgs.msg import WrenchStamped
import numpy as np
from rclpy.action import ActionClient, ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.impl.implementation_singleton import rclpy_implementation
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from rclpy.time import Time
from sensor_msgs.msg import JointState
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint
from vpg_common.futures import wait_future
from vpg_common.node_runner import run_node
from vpg_common.qos import TRANSITIONS_QOS
from vpg_common.stamps import duration_msg, to_seconds
from vpg_executor import gripper_action
from vpg_executor.motion import JointStateCache, MotionError
from vpg_executor.moveit_backend import MoveItBackend
from vpg_executor.parameters import declare_parameters
from vpg_executor.pick_all import (Choice, format_timing, Goal, goal_problem, Observation,
                                   PerceptionError, PickAllLoop, PolicyError, ReasonCode)
from vpg_executor.primitives import PrimitiveExecutor
from vpg_executor.rewards import reward, scene_changed
from vpg_executor.safety import TargetRejected
from vpg_executor.tool_contact_client import ToolContactClient
from vpg_executor.trajectory_backend import JointTrajectoryBackend
from vpg_interfaces.action import PickAll
from vpg_interfaces.msg import PrimitiveAction, Transition
from vpg_interfaces.srv import ChoosePrimitive, ExecutePrimitive, GetHeightmap
from vpg_perception.conversions import heightmap_from_msg


_STATUS_NAMES = {GoalStatus.STATUS_ABORTED: 'aborted', GoalStatus.STATUS_CANCELED: 'canceled',
                 GoalStatus.STATUS_UNKNOWN: 'unknown'}


class RobotStateListener:
    """
    Receive the arm's joint states and tool wrench on a node and thread of their own.

    The node is `<name>_state`, spun by a single-threaded executor. The messages come at
    hundreds per wall second (more when a simulator runs faster than real time). rclpy's
    MultiThreadedExecutor, which the executor node needs for its long-running goal, spent
    most of the node's CPU dispatching them (0.86 CPU s per action in the MuJoCo training
    graph, 80 % of it in executor overhead, bench/actions.py and py-spy); a
    SingleThreadedExecutor runs each callback inline (about 0.16 ms a message).
    The topics are resolved by the main node, so its remappings and namespace apply.
    """

    def __init__(self, node, joint_states_topic, wrench_topic, on_joint_states, on_wrench):
        self.node = Node(f'{node.get_name()}_state', namespace=node.get_namespace(),
                         context=node.context, use_global_arguments=False,
                         start_parameter_services=False)
        # A short queue: only the newest states matter, and a subscriber that falls behind (a
        # simulator running several times faster than real time, a busy machine) then reads
        # the arm where it is, not where it was a long queue ago (50 queued states were a
        # second of simulated time: trajectories started from there). 5, not 1, so that a
        # second publisher on the topic (a gripper's broadcaster) is not crowded out.
        self.node.create_subscription(JointState, node.resolve_topic_name(joint_states_topic),
                                      on_joint_states, 5)
        if wrench_topic:
            # Sensor-data QoS as the broadcaster's readers use: only the newest readings count.
            self.node.create_subscription(WrenchStamped, node.resolve_topic_name(wrench_topic),
                                          on_wrench, qos_profile_sensor_data)
        self._executor = SingleThreadedExecutor(context=node.context)
        self._executor.add_node(self.node)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, name='robot_state', daemon=True)
        self._thread.start()

    def _spin(self):
        try:
            while not self._stop.is_set() and self.node.context.ok():
                self._executor.spin_once(timeout_sec=0.1)
        except (ExternalShutdownException, rclpy_implementation.RCLError):
            pass  # the context was shut down while the wait set was built: a requested stop

    def close(self):
        """Stop and join the thread, then destroy the node; later calls do nothing."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
        self._executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()


class ExecutorNode(Node):

    def __init__(self, backend=None, **kwargs):
        super().__init__('executor', **kwargs)
        self.params = declare_parameters(self)
        values = self.params.values
        self._io_group = ReentrantCallbackGroup()
        self._joint_states = JointStateCache()
        self._stopping = threading.Event()
        self._state_listener = RobotStateListener(
            self, values['robot.joint_states_topic'], values['robot.wrench_topic'],
            self._on_joint_states, self._on_wrench)
        self._trajectory_pub = self.create_publisher(
            JointTrajectory, values['robot.trajectory_topic'], 10)
        self._gripper_interface = gripper_action.parse_interface(values['gripper.interface'])
        self._gripper_action = gripper_action.action_type(self._gripper_interface)
        self._gripper_client = ActionClient(self, self._gripper_action, values['gripper.action'],
                                            callback_group=self._io_group)
        self._heightmap_client = self.create_client(GetHeightmap, 'get_heightmap',
                                                    callback_group=self._io_group)
        self._policy_client = self.create_client(ChoosePrimitive, 'choose_primitive',
                                                 callback_group=self._io_group)
        self._transition_pub = self.create_publisher(Transition, 'transitions', TRANSITIONS_QOS)

        self.backend = backend or self._make_backend()
        self.robot = PrimitiveExecutor(self.backend, self.params.primitives)
        self.cell_name = self.params.cell_name or self.get_namespace().strip('/') or 'cell0'
        self._busy = threading.Lock()
        self._episode = 0
        self._actions_total = int(values['exploration.start_step'])
        group = ReentrantCallbackGroup()
        self._server = ActionServer(
            self, PickAll, 'pick_all', self._execute, goal_callback=self._on_goal,
            cancel_callback=lambda _: CancelResponse.ACCEPT, callback_group=group)
        self.create_service(ExecutePrimitive, 'execute_primitive', self._on_execute_primitive,
                            callback_group=group)
        self.get_logger().info(
            f'executor ready: backend {self.params.motion_backend}, cell {self.cell_name}')

    # --- hardware I/O -----------------------------------------------------------------------
    def _make_backend(self):
        if self.params.motion_backend == 'moveit':
            return MoveItBackend(self.params.trajectory, self.params.envelope,
                                 joint_states=self._joint_states,
                                 gripper_command=self._gripper_command,
                                 settings=self.params.moveit)
        values = self.params.values
        tool_contact = None
        if values['robot.tool_contact_action']:
            tool_contact = ToolContactClient(
                self, values['robot.tool_contact_action'], values['robot.tool_contact_timeout'],
                callback_group=self._io_group, stop=self._stopping)
        return JointTrajectoryBackend(self.params.trajectory, self.params.envelope,
                                      self._joint_states, self._publish_trajectory,
                                      self._gripper_command, tool_contact=tool_contact)

    def _on_joint_states(self, msg):
        if len(msg.name) != len(msg.position) or not np.all(np.isfinite(msg.position)):
            self.get_logger().error('malformed joint state ignored',
                                    throttle_duration_sec=5.0)
            return
        stamp = to_seconds(msg.header.stamp)
        self._joint_states.update(msg.name, msg.position, stamp)

    def _on_wrench(self, msg):
        force = msg.wrench.force
        stamp = to_seconds(msg.header.stamp)
        self._joint_states.update_wrench((force.x, force.y, force.z), stamp)

    def _publish_trajectory(self, joint_names, times, positions, velocities):
        msg = JointTrajectory(joint_names=list(joint_names))
        for t, q, qd in zip(times, positions, velocities):
            msg.points.append(JointTrajectoryPoint(
                positions=[float(x) for x in q], velocities=[float(x) for x in qd],
                time_from_start=duration_msg(float(t))))
        self._trajectory_pub.publish(msg)

    def _gripper_command(self, position, max_effort):
        timeout = float(self.params.values['gripper.timeout'])
        if not self._gripper_client.wait_for_server(timeout_sec=timeout):
            raise MotionError(f'gripper action {self.params.values["gripper.action"]} '
                              f'not available within {timeout} s')
        joint = self.params.values['gripper.joint']
        goal = gripper_action.make_goal(self._gripper_action, self._gripper_interface,
                                        joint, position, max_effort)
        started = time.monotonic()
        # Wait for one: right after start-up (or on a loaded machine) none may have come yet.
        start = self._joint_states.wait_for([joint], lambda _: True, timeout)
        if start is None:
            self._raise_if_stopping(MotionError)
            raise MotionError(f'no joint state for {joint} within {timeout} s: cannot tell '
                              'when the fingers have moved')
        settle = gripper_action.SettleDetector(position, start[0], self._joint_states.now(),
                                               self.params.gripper_settle)
        sent = self._gripper_client.send_goal_async(goal)
        if not wait_future(sent, timeout, self._stopping) or not sent.result().accepted:
            self._raise_if_stopping(MotionError)
            raise MotionError('gripper goal not accepted')
        handle = sent.result()
        result = handle.get_result_async()
        if not wait_future(result, timeout, self._stopping):
            # Do not leave the controller working on a goal nobody waits for.
            handle.cancel_goal_async()
            self._raise_if_stopping(MotionError)
            raise MotionError(f'gripper did not finish within {timeout} s (goal cancelled)')
        status = result.result().status
        if status != GoalStatus.STATUS_SUCCEEDED:
            # Not an error: a controller without allow_stalling aborts a goal whose fingers
            # stop on an object, which is a grasp. The finger joint state decides the reward.
            finger = gripper_action.result_position(self._gripper_interface,
                                                    result.result().result)
            self.get_logger().warning(
                f'gripper goal to {position:.3f} ended with status '
                f'{_STATUS_NAMES.get(status, status)}; finger at {finger:.3f}')
        self._wait_for_fingers(settle, joint, timeout - (time.monotonic() - started))

    def _wait_for_fingers(self, settle, joint, timeout):
        """
        Return once the knuckle position has settled (SettleDetector), not when the action ends.

        The controller may report success before the fingers move (see SettleDetector).
        """
        settled = self._joint_states.wait_for(
            [joint], lambda q: settle.update(self._joint_states.now(), q[0]),
            max(timeout, settle.config.still_time))
        if settled is None:
            self._raise_if_stopping(MotionError)
            current = self._joint_states.get([joint])
            raise MotionError(
                f'fingers did not settle within gripper.timeout after the goal to '
                f'{settle.target:.3f} (knuckle at '
                f'{"unknown" if current is None else f"{current[0]:.3f}"})')

    def stop(self):
        """
        End the waits of a goal in progress at once, so that the process can exit.

        Also joins the robot-state listener's thread: a thread still inside rclpy's wait when
        the interpreter exits aborts the process ("terminate called without an active
        exception").
        """
        self._stopping.set()
        self._joint_states.close()
        self._state_listener.close()

    def destroy_node(self):
        """Stop the waits and the robot-state listener, close the backend, destroy the node."""
        self.stop()
        close = getattr(self.backend, 'close', None)
        if close is not None:
            close()
        super().destroy_node()

    def _raise_if_stopping(self, error):
        if self._stopping.is_set():
            raise error('stopped waiting: the node is shutting down')

    # --- perception and policy --------------------------------------------------------------
    def _call(self, client, request, timeout, what, error):
        if not client.wait_for_service(
                timeout_sec=float(self.params.values['timeouts.services_at_start'])):
            raise error(f'{what} service {client.srv_name} is not available')
        retries = max(0, int(self.params.values['timeouts.retries']))
        for attempt in range(retries + 1):
            future = client.call_async(request)
            if wait_future(future, timeout, self._stopping):
                return future.result()
            client.remove_pending_request(future)
            self._raise_if_stopping(error)
            if attempt < retries:
                # Seen under load: the server answered, but DDS dropped the response.
                self.get_logger().warning(f'{what} did not answer within {timeout} s; '
                                          f'asking again ({attempt + 1} of {retries})')
        raise error(f'{what} did not answer within {timeout} s '
                    f'({retries + 1} tries)')

    def cell_time(self):
        """
        Return the robot's present time: the node clock, or the newest joint-state stamp if later.

        With use_sim_time the node clock moves in /clock steps, and the simulator publishes
        only a few per simulated second (each message wakes every node of the graph, which
        cost more CPU than anything else it carries: bench/actions.py). Joint states come
        ten times as often, so "a heightmap newer than now" cannot accept a frame from before
        the arm arrived. A stamp more than JointStateCache.CLOCK_JUMP ahead of the clock is
        not taken (a clock set back that the states have not caught up with).
        """
        clock = self.get_clock().now()
        stamp = self._joint_states.stamp()
        if stamp is None:
            return clock
        stamp_ns = int(round(stamp * 1e9))
        if 0 < stamp_ns - clock.nanoseconds <= JointStateCache.CLOCK_JUMP * 1e9:
            return Time(nanoseconds=stamp_ns, clock_type=clock.clock_type)
        return clock

    def _perceive(self):
        timeout = float(self.params.values['timeouts.heightmap'])
        request = GetHeightmap.Request(newer_than=self.cell_time().to_msg(),
                                       timeout=duration_msg(timeout))
        response = self._call(self._heightmap_client, request, timeout + 2.0, 'perception',
                              PerceptionError)
        if not response.success:
            raise PerceptionError(f'no heightmap: {response.message}')
        try:
            _, height, grid = heightmap_from_msg(response.heightmap)
        except ValueError as error:
            raise PerceptionError(f'unusable heightmap: {error}') from error
        return Observation(height, response.heightmap, grid)

    def _choose(self, observation, epsilon, allowed):
        request = ChoosePrimitive.Request(heightmap=observation.message,
                                          epsilon=float(epsilon), allowed=int(allowed))
        response = self._call(self._policy_client, request,
                              float(self.params.values['timeouts.policy']), 'policy',
                              PolicyError)
        if not response.success:
            raise PolicyError(f'policy failed: {response.message}')
        return choice_from_msg(response.action)

    def _epsilon(self):
        v = self.params.values
        return max(v['exploration.start'] * v['exploration.decay'] ** self._actions_total,
                   v['exploration.floor'])

    # --- pick_all ---------------------------------------------------------------------------
    def _on_goal(self, goal_request):
        problem = goal_problem(to_goal(goal_request),
                               int(self.params.values['max_actions_limit']))
        if problem:
            self.get_logger().warning(f'pick_all goal rejected: {problem}')
            return GoalResponse.REJECT
        if not self._busy.acquire(blocking=False):
            self.get_logger().warning('pick_all goal rejected: another goal is running')
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    def _execute(self, goal_handle):
        try:
            return self._run_goal(goal_handle)
        finally:
            self._busy.release()

    def _run_goal(self, goal_handle):
        goal = to_goal(goal_handle.request)
        self._episode += 1
        episode = self._episode

        def on_transition(before, choice, after, report):
            self._actions_total += 1
            self._transition_pub.publish(self._transition(episode, before, choice, after,
                                                          report))

        def on_feedback(report):
            feedback = PickAll.Feedback(
                step=report.step, reward=float(report.reward),
                grasp_success=report.grasp_success, push_changed=report.push_changed,
                objects_seen_remaining=report.objects_seen_remaining,
                consecutive_failures=report.consecutive_failures,
                weights_version=int(report.choice.weights_version),
                epsilon=float(report.epsilon))
            if report.choice.message is not None:
                feedback.action = report.choice.message
            goal_handle.publish_feedback(feedback)
            note = f' ({report.motion_error})' if report.motion_error else ''
            self.get_logger().info(
                f'step {report.step}: {"grasp" if report.choice.primitive else "push"} '
                f'reward {report.reward:.1f}, {report.objects_seen_remaining} seen left{note}; '
                f'{format_timing(report)}')

        loop = PickAllLoop(self.robot, self._perceive, self._choose, on_transition,
                           self.params.rewards, self._epsilon,
                           sim_clock=lambda: self.cell_time().nanoseconds * 1e-9)
        outcome = loop.run(goal, lambda: goal_handle.is_cancel_requested, on_feedback)
        result = PickAll.Result(
            objects_removed=outcome.objects_removed, actions=outcome.actions,
            grasp_attempts=outcome.grasp_attempts, grasp_successes=outcome.grasp_successes,
            push_attempts=outcome.push_attempts, table_cleared=outcome.table_cleared,
            reason_code=int(outcome.reason_code), reason=outcome.reason)
        if outcome.reason_code == ReasonCode.CANCELED:
            goal_handle.canceled()
        elif outcome.reason_code in (ReasonCode.TABLE_CLEARED, ReasonCode.MAX_ACTIONS,
                                     ReasonCode.TOO_MANY_FAILURES):
            goal_handle.succeed()
        else:
            goal_handle.abort()
        self.get_logger().info(f'pick_all finished: {outcome.reason}')
        return result

    def _transition(self, episode, before, choice, after, report):
        msg = Transition(cell_name=self.cell_name, episode_id=episode, step=report.step,
                         reward=float(report.reward), grasp_success=report.grasp_success,
                         push_changed=report.push_changed,
                         changed_pixels=int(report.changed_pixels),
                         scene_changed=bool(report.scene_changed),
                         weights_version=int(choice.weights_version))
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.heightmap_before = before.message
        msg.heightmap_after = after.message
        if choice.message is not None:
            msg.action = choice.message
        msg.episode_done = report.objects_seen_remaining == 0
        return msg

    def _on_execute_primitive(self, request, response):
        if not self._busy.acquire(blocking=False):
            response.success, response.message = False, 'a pick_all goal is running'
            return response
        try:
            choice = choice_from_msg(request.action)
            before = self._perceive()
            grasp_success = False
            if choice.primitive == PrimitiveAction.GRASP:
                grasp_success = self.robot.grasp(choice.position, choice.angle,
                                                 heightmap=before).success
            else:
                self.robot.push(choice.position, choice.angle, heightmap=before)
            self.robot.go_home()
            after = self._perceive()
            changed = scene_changed(before.height, after.height, self.params.rewards)
            response.grasp_success = bool(grasp_success)
            response.push_changed = bool(choice.primitive == PrimitiveAction.PUSH and changed)
            response.reward = float(reward(choice.primitive == PrimitiveAction.GRASP,
                                           grasp_success, response.push_changed,
                                           self.params.rewards))
            response.success, response.message = True, 'executed'
        except (MotionError, TargetRejected, PerceptionError, PolicyError) as error:
            response.success, response.message = False, f'{type(error).__name__}: {error}'
        finally:
            self._busy.release()
        return response


def to_goal(request):
    return Goal(max_actions=int(request.max_actions),
                max_consecutive_failures=int(request.max_consecutive_failures),
                explore=bool(request.explore), epsilon=float(request.epsilon),
                allowed=int(request.allowed))


def choice_from_msg(action):
    """Convert a PrimitiveAction message to a core Choice; PolicyError when it is unusable."""
    position = (action.position.x, action.position.y, action.position.z)
    if action.primitive not in (PrimitiveAction.PUSH, PrimitiveAction.GRASP):
        raise PolicyError(f'unknown primitive {action.primitive}')
    if not all(math.isfinite(v) for v in (*position, action.angle)):
        raise PolicyError(f'non-finite action {position}, angle {action.angle}')
    return Choice(int(action.primitive), position, float(action.angle),
                  int(action.weights_version), action)


def main(args=None):
    return run_node(ExecutorNode, 'executor', threads=4, args=args)


if __name__ == '__main__':
    raise SystemExit(main())
