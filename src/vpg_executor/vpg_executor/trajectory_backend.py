"""
The joint-trajectory motion backend: UR inverse kinematics, trajectories, arrival on joint states.

`JointTrajectoryBackend` solves UR inverse kinematics and streams trajectory_msgs-style joint
trajectories to the joint trajectory controller (ur_robot_driver's
`scaled_joint_trajectory_controller`, or the MuJoCo cell), then checks arrival on
/joint_states. Its ROS I/O is injected as callables so the core stays ROS-free. Guarded moves
stop on contact (guarded_motion.py); guarded descents also arm the robot controller's own stop
on tool contact where one is offered (ur_robot_driver's tool_contact_controller, or the MuJoCo
cell's copy), which stops the arm within a control cycle instead of a ROS round trip.
"""

import numpy as np
from vpg_common.driver_names import UR_JOINTS
from vpg_executor.guarded_motion import ContactMonitor, StallDetector, TrackedPath
from vpg_executor.motion import MotionBackend, MotionError, ParallelGripper, TcpKinematics
from vpg_executor.safety import TopDownPose
from vpg_executor.ur_kinematics import inverse_kinematics, nearest_solution


def quintic_samples(q_from, q_to, duration, count):
    """Positions and velocities at `count` times along a rest-to-rest quintic profile."""
    q_from, q_to = np.asarray(q_from), np.asarray(q_to)
    times = np.linspace(duration / count, duration, count)
    s = times / duration
    pos = 10 * s ** 3 - 15 * s ** 4 + 6 * s ** 5
    vel = (30 * s ** 2 - 60 * s ** 3 + 30 * s ** 4) / duration
    positions = q_from + np.outer(pos, q_to - q_from)
    velocities = np.outer(vel, q_to - q_from)
    return times, positions, velocities


class JointTrajectoryBackend(MotionBackend):
    """
    IK + joint trajectories + arrival checks on joint states.

    publish_trajectory(joint_names, times, positions, velocities) sends one trajectory;
    gripper_command(position, max_effort) commands the fingers and returns once they settled
    (or its own timeout passed). tool_contact: None, or an object whose start() turns on the
    controller's tool contact stop and returns a request with triggered() and end() (None when
    the controller refused); guarded descents use it. Every pose and joint target passes the
    safety envelope.
    """

    def __init__(self, config, envelope, joint_states, publish_trajectory, gripper_command,
                 joint_names=UR_JOINTS, tool_contact=None):
        self.config = config
        self.envelope = envelope
        self.joint_states = joint_states
        self._publish = publish_trajectory
        self.gripper = ParallelGripper(config, joint_states, gripper_command)
        self.joint_names = tuple(joint_names)
        self.kinematics = TcpKinematics(config)
        self._params = self.kinematics.params
        self.commanded = []  # (kind, target) log of what was sent, newest last (bounded)
        self.tool_contact = tool_contact
        self.last_guard = None
        """
        What guarded the last guarded move: 'tool_contact' (the controller's stop, with the
        wrench beside it), 'force' (tool wrench) or 'path' (tracking).
        """
        self.last_contact_force = None
        """Tool-axis force change (N) at the last force-guarded stop."""
        self.last_stopped_by = None
        """What stopped the last guarded move that stopped: 'tool_contact', 'force', 'path'."""

    # --- kinematics -----------------------------------------------------------------------
    def tool0_pose(self, pose):
        """base_T_tool0 for a top-down TCP pose."""
        return self.kinematics.tool0_pose(pose)

    def tcp_position(self, q):
        """TCP position in the base frame for joints q (forward kinematics)."""
        return self.kinematics.tcp_position(q)

    def solve(self, pose, q_seed):
        """Joint angles reaching pose nearest q_seed within limits, or raise MotionError."""
        solutions = inverse_kinematics(self.tool0_pose(pose), self._params)
        q = nearest_solution(solutions, q_seed, self.envelope.joint_lower,
                             self.envelope.joint_upper)
        if q is None:
            raise MotionError(f'no reachable joint solution for {pose}')
        return q

    # --- motion ---------------------------------------------------------------------------
    def current_joints(self, timeout=2.0):
        q = self.joint_states.wait_for(self.joint_names, lambda _: True, timeout)
        if q is None:
            raise MotionError(f'no joint states for {self.joint_names} within {timeout} s')
        return q

    def current_tcp_position(self):
        return self.tcp_position(self.current_joints())

    def current_tcp_yaw(self):
        return self.tcp_yaw(self.current_joints())

    def move_to(self, pose, linear=False, guarded=False, speed=None):
        """
        Move the TCP to pose; every commanded waypoint's TCP stays inside the envelope.

        Returns True on arrival; a guarded move that is blocked stops and returns False.

        A joint-space move whose path would leave the envelope box becomes a straight-line move
        (the box is convex, so the line stays inside). The jaw yaw is taken modulo pi (a parallel
        gripper is symmetric) to turn the wrist least.
        """
        pose = self.envelope.check_pose(pose)
        q_now = self.current_joints()
        pose = self._nearest_equivalent_yaw(pose, q_now)
        if not linear:
            q = self.solve(pose, q_now)
            if self._joint_path_inside(q_now, q):
                return self._execute([q], q_now, guarded)
        return self._execute(self._linear_waypoints(q_now, pose), q_now, guarded, speed)

    def tcp_yaw(self, q):
        """Jaw-closing direction of the TCP for joints q, radians in the base xy-plane."""
        return self.kinematics.tcp_yaw(q)

    def _nearest_equivalent_yaw(self, pose, q_now):
        return self.kinematics.nearest_equivalent_yaw(pose, q_now)

    def _joint_path_inside(self, q_from, q_to, samples=200):
        path = q_from + np.linspace(0.0, 1.0, samples)[:, None] * (q_to - q_from)
        return self.kinematics.path_inside(path, self.envelope)

    def _linear_waypoints(self, q_now, pose):
        start = self.tcp_position(q_now)
        start_yaw = self.tcp_yaw(q_now)
        distance = float(np.linalg.norm(pose.position - start))
        turn = abs(pose.yaw - start_yaw)
        count = max(1, int(np.ceil(max(distance / self.config.linear_step, turn / 0.1))))
        waypoints, q_prev = [], q_now
        for i in range(1, count + 1):
            s = i / count
            p = start + (pose.position - start) * s
            waypoint = self.envelope.check_pose(
                TopDownPose(p[0], p[1], p[2], start_yaw + (pose.yaw - start_yaw) * s))
            q = self.solve(waypoint, q_prev)
            if np.max(np.abs(q - q_prev)) > self.config.max_joint_jump:
                raise MotionError('straight-line move would flip the arm configuration')
            waypoints.append(q)
            q_prev = q
        return waypoints

    def move_joints(self, q):
        q = self.envelope.check_joints(q)
        self._execute([q], self.current_joints())

    def _execute(self, waypoints, q_now, guarded=False, speed=None):
        for q in waypoints:
            self.envelope.check_joints(q)
        if len(waypoints) == 1:
            duration = max(self.config.min_move_duration,
                           1.875 * self.envelope.min_duration(q_now, waypoints[0]))
            times, positions, velocities = quintic_samples(q_now, waypoints[0], duration, 10)
        else:
            # Constant-speed pass through the waypoints, rest at the end only.
            steps = [self.envelope.min_duration(a, b) * 1.5
                     for a, b in zip([q_now] + waypoints[:-1], waypoints)]
            speed = self.config.guarded_speed if speed is None else speed
            if guarded and speed > 0:
                tcp = [self.tcp_position(q) for q in [q_now] + list(waypoints)]
                steps = [max(step, float(np.linalg.norm(b - a)) / speed)
                         for step, a, b in zip(steps, tcp[:-1], tcp[1:])]
            times = np.cumsum(np.maximum(steps, 0.02)) + 0.1
            positions = np.array(waypoints)
            velocities = np.gradient(positions, times, axis=0)
            velocities[-1] = 0.0
            duration = float(times[-1])
        self.commanded.append(('joints', positions[-1].copy()))
        del self.commanded[:-1000]
        request = None
        if guarded and self.tool_contact is not None and self._is_descent(q_now, positions[-1]):
            request = self.tool_contact.start()
        try:
            return self._follow(times, positions, velocities, duration, q_now, guarded,
                                request)
        finally:
            if request is not None:
                request.end()

    def _is_descent(self, q_from, q_to):
        """Whether the TCP goes straight down (within 1 cm sideways) from q_from to q_to."""
        start, end = self.tcp_position(q_from), self.tcp_position(q_to)
        drop = float(start[2] - end[2])
        return drop > 1e-3 and float(np.linalg.norm(end[:2] - start[:2])) < 0.01

    def _follow(self, times, positions, velocities, duration, q_now, guarded, request):
        """Send the trajectory and wait for arrival, or for a block if the move is guarded."""
        self._publish(self.joint_names, times, positions, velocities)
        path = TrackedPath(np.concatenate([[0.0], times]), np.vstack([q_now, positions]),
                           self.config.path_lag)
        target = positions[-1]
        # The path's clock starts when the arm is seen leaving its start: delivery delays
        # then do not count against the arm (they are large in simulated seconds when the
        # simulator runs faster than real time).
        # Well above what an arm that just arrived may still drift, so the end of the last
        # move is not taken for the start of this one.
        start_motion = min(self.config.start_motion,
                           0.5 * float(np.max(np.abs(target - q_now))))
        leave_time = path.leave_time(start_motion)
        start = []
        stall = StallDetector(duration + self.config.path_lag, self.config.stall_window,
                              self.config.stall_motion)
        blocked = []
        contact = self._contact_monitor() if guarded else None
        if guarded:
            self.last_guard = ('tool_contact' if request is not None
                               else 'force' if contact is not None else 'path')

        def arrived_or_blocked(q):
            if request is not None and request.triggered():
                stopped_by = 'tool_contact'
            elif contact is not None and contact.touched():
                stopped_by = 'force'
            else:
                stopped_by = None
            if stopped_by is not None:
                blocked.append((0.0, float(np.max(np.abs(q - target))), 0.0, q))
                self.last_stopped_by = stopped_by
                return True
            if np.max(np.abs(q - target)) < self.config.arrival_tolerance:
                return True
            now = self.joint_states.now()
            if not start:
                if np.max(np.abs(q - q_now)) < start_motion:
                    return False
                # Seen late when this thread woke late: place it by where the arm is.
                start.append(now - max(leave_time, path.nearest_time(q)))
            t = now - start[0]
            error = path.error(q, t)
            if error > self.config.path_tolerance or stall.update(q, t):
                blocked.append((error, float(np.max(np.abs(q - target))), t, q))
                self.last_stopped_by = 'path'
                return True
            return False

        timeout = duration + self.config.arrival_timeout_margin
        q_end = self.joint_states.wait_for(self.joint_names, arrived_or_blocked, timeout)
        if q_end is None:
            q_last = self.joint_states.get(self.joint_names)
            off = '' if q_last is None else (
                f' (still {np.max(np.abs(q_last - target)):.3f} rad off, joint '
                f'{self.joint_names[int(np.argmax(np.abs(q_last - target)))]})')
            raise MotionError(f'arm did not reach its target within {timeout:.1f} s{off}')
        if not blocked:
            return True
        if contact is not None:
            self.last_contact_force = contact.peak
        present = path.at(self.joint_states.now() - start[0]) if start else q_now
        held, hold_time = self._hold(q_end, (q_now, target, present))
        # Return once the arm stands at the hold point, so that what the caller reads next
        # (the TCP height a finger landed at, the start of the next move) is where it is.
        self.joint_states.wait_for(
            self.joint_names,
            lambda q: np.max(np.abs(q - held)) < self.config.arrival_tolerance,
            hold_time + 1.0)
        if guarded:
            return False
        error, remaining, t, q = blocked[0]
        raise MotionError(
            f'arm blocked on its way: {error:.3f} rad off its path after {t:.2f} s of '
            f'{duration:.2f} s, {remaining:.3f} rad short of the target; joints '
            f'{np.round(q, 3).tolist()}, started at {np.round(q_now, 3).tolist()}')

    def _contact_monitor(self):
        """Make a ContactMonitor tared on the readings just before now (None: no wrench)."""
        if self.config.contact_force <= 0:
            return None
        latest = self.joint_states.latest_wrench()
        now = self.joint_states.now()
        if latest is None or now - latest[0] > self.config.wrench_max_age:
            return None
        readings = self.joint_states.wrenches_since(latest[0] - self.config.wrench_baseline)
        baseline = np.mean([f for _, f in readings], axis=0)
        axis = self.kinematics.tool_axis_in_tool0()
        return ContactMonitor(self.joint_states, baseline, axis, latest[0],
                              self.config.contact_force)

    def _hold(self, q, commanded):
        """
        Stop where the arm is: a short trajectory to its current position.

        Returns the hold point and the trajectory's duration (s).

        A new trajectory starts from the controller's commanded state, which runs ahead of a
        blocked arm; commanded lists where that may be (the path's start, its end, its
        estimated present), and the way back is timed within the speed limit from any.
        """
        q = self.envelope.check_joints(q)
        self.commanded.append(('joints', np.array(q, dtype=float)))
        duration = max([self.config.min_move_duration / 3]
                       + [1.5 * self.envelope.min_duration(c, q) for c in commanded])
        self._publish(self.joint_names, np.array([duration]), np.array([q]),
                      np.zeros((1, len(q))))
        return q, duration

    # --- gripper --------------------------------------------------------------------------
    def set_gripper(self, closed):
        return self.gripper.set_closed(closed)

    def gripper_closure(self):
        return self.gripper.closure()
