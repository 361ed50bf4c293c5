"""
The simulated cell in motion: physics, arm trajectory following, gripper and block bookkeeping.

Cell owns the MuJoCo model and data and advances them step by step. The arm's six position
servos (Menagerie UR5e actuators, with gravity compensation) follow a checked joint trajectory
with velocity feed-forward; the 2F-85's single actuator takes a finger position. Blocks are
watched: one lifted more than `removal_height` above the table while touching the gripper counts
as removed (as in VPG) and is taken out of the scene as soon as it leaves the gripper, so the
finger joint reads exactly what it would on hardware while the block is held. Pure MuJoCo +
numpy; not thread-safe (the node serialises access).
"""

import copy
from dataclasses import dataclass
import enum
import math

import mujoco
import numpy as np

from vpg_sim import blocks, randomization, scene
from vpg_sim.tool_contact import ToolContactWatch
from vpg_sim.trajectory import check_trajectory, TrajectoryFollower

_BOOKKEEPING_INTERVAL = 10  # physics steps between block checks
# Restores of an unstable state that may follow each other before the cell gives up: each one
# within this many steps of the previous counts as a repeat.
_MAX_REPEATED_RECOVERIES = 10
_REPEAT_WINDOW_STEPS = 50


class CellUnstable(RuntimeError):
    """The physics stays unstable after restoring the state: the cell cannot go on."""


@dataclass(frozen=True)
class CellConfig:
    """
    Settings of the simulated cell.

    timestep: physics step (s).
    workspace_x, workspace_y: workspace bounds in the base frame (m); blocks whose centre lies
        outside count as out of the workspace.
    removal_height: a block held by the gripper whose centre rises this far above the table
        (m) counts as removed.
    calibration_marker: fix the checkerboard to the tool (scene.CALIBRATION_MARKER_OFFSET).
    initial_arm_pose: joint angles (rad) the arm starts at.
    max_joint_velocity: trajectories needing more (rad/s, mean per segment) are rejected.
    start_tolerance: largest jump (rad) allowed to a first point at time_from_start 0.
    settle_min_time, settle_max_time: after a reset the scene counts as settled once every
        block's centre moves slower than settle_speed (m/s), but not before settle_min_time and
        at the latest after settle_max_time (s of simulated time). Rotation is not checked:
        soft contacts let blocks leaning on each other creep at up to ~0.05 rad/s.
    rest_speed: arm joints (rad/s) and block centres (m/s) slower than this, no trajectory
        running and fingers still mean the cell is at rest.
    randomization: randomization.RandomizationRanges to draw each scene's friction, masses,
        colours, light, camera pose and depth scale from (training); None = the nominal cell.
    randomization_seed: seed of those draws (scene k of a cell uses (seed, k)).
    """

    timestep: float = 0.002
    workspace_x: tuple = (-0.724, -0.276)
    workspace_y: tuple = (-0.224, 0.224)
    removal_height: float = 0.1
    calibration_marker: bool = False
    initial_arm_pose: tuple = scene.CLEAR_POSE
    max_joint_velocity: float = math.pi
    start_tolerance: float = 0.05
    settle_min_time: float = 0.5
    settle_max_time: float = 4.0
    settle_speed: float = 0.005
    rest_speed: float = 0.01
    randomization: object = None
    randomization_seed: int = 0

    def __post_init__(self):
        if not (0.0 < self.timestep <= 0.01):
            raise ValueError(f'timestep must lie in (0, 0.01] s, got {self.timestep}')
        for name in ('workspace_x', 'workspace_y'):
            low, high = getattr(self, name)
            if not low < high:
                raise ValueError(f'{name} must be (min, max) with min < max')
        if len(self.initial_arm_pose) != len(scene.ARM_JOINTS):
            raise ValueError('initial_arm_pose needs one angle per arm joint')
        if self.removal_height <= 0 or self.max_joint_velocity <= 0:
            raise ValueError('removal_height and max_joint_velocity must be > 0')


class BlockState(enum.Enum):
    """Where a block is in its life: in the scene, held clear of the table, or taken out."""

    IN_SCENE = 0
    LIFTED = 1
    REMOVED = 2


@dataclass(frozen=True)
class ObjectCounts:
    """Ground truth for evaluation: blocks in the workspace, removed, elsewhere."""

    in_workspace: int
    removed: int
    out_of_workspace: int


@dataclass(frozen=True)
class Snapshot:
    """What a renderer needs for one frame: the model and a copy of qpos at a time (s)."""

    model: object
    qpos: np.ndarray
    time: float
    depth_scale: float = 1.0


class Cell:
    """The simulated UR5e + 2F-85 + camera + blocks, advanced by step()."""

    def __init__(self, config=CellConfig()):
        self.config = config
        self.model = None
        self.data = None
        self._objects = []
        self._follower = None
        self._initial = np.asarray(config.initial_arm_pose, dtype=np.float64)
        self._gripper_target = 0.0
        self._desired = (self._initial.copy(), np.zeros(len(scene.ARM_JOINTS)))
        self._reset_time = 0.0
        self.instability_recoveries = 0
        """Times the physics went unstable and the state was restored (see _recover)."""
        self._repeated_recoveries = 0
        self._last_recovery_step = -_REPEAT_WINDOW_STEPS - 1
        self._scenes_built = 0
        self._tool_contact = None
        self.tool_contact_stop = None
        """(time s, force change N) of the last tool contact stop since arming; None: none."""
        self.tool_contact_touches = ()
        """At that stop: (gripper geom, body it touched) of every gripper contact, for logs."""
        self.tool_contact_points = ()
        """At that stop: (gripper geom, body, contact point (3,) in the world) per contact."""
        self.scene_randomization = None
        """The RandomizationSample of the current scene (None: nominal cell)."""
        self._build([], previous=None)

    # -- building -----------------------------------------------------------------------

    def _build(self, objects, previous):
        model = scene.build_model(objects, self.config.calibration_marker)
        model.opt.timestep = self.config.timestep
        data = mujoco.MjData(model)
        self.scene_randomization = None
        if self.config.randomization is not None:
            rng = np.random.default_rng([self.config.randomization_seed, self._scenes_built])
            self.scene_randomization = randomization.draw(self.config.randomization,
                                                          len(objects), rng)
            randomization.apply(model, self.scene_randomization)
        self._scenes_built += 1
        joint = model.joint
        self._arm_qpos = np.array([model.jnt_qposadr[joint(j).id] for j in scene.ARM_JOINTS])
        self._arm_dof = np.array([model.jnt_dofadr[joint(j).id] for j in scene.ARM_JOINTS])
        self._arm_act = np.array([model.actuator(j.replace('_joint', '')).id
                                  for j in scene.ARM_JOINTS])
        self._kp = model.actuator_gainprm[self._arm_act, 0].copy()
        self._kv = -model.actuator_biasprm[self._arm_act, 2].copy()
        self._acceleration = np.zeros(model.nv)  # only the arm's entries are ever set
        self._inertial_torque = np.zeros(model.nv)
        self._arm_lower = model.jnt_range[[joint(j).id for j in scene.ARM_JOINTS], 0].copy()
        self._arm_upper = model.jnt_range[[joint(j).id for j in scene.ARM_JOINTS], 1].copy()
        finger = joint(scene.FINGER_JOINT).id
        self._finger_qpos = model.jnt_qposadr[finger]
        self._finger_dof = model.jnt_dofadr[finger]
        self._gripper_act = model.actuator(scene.GRIPPER_ACTUATOR).id
        if previous is not None:  # the grip force setting outlives a reset, as on hardware
            model.actuator_forcerange[self._gripper_act] = (-self._gripper_limit,
                                                            self._gripper_limit)
        else:
            self._gripper_limit = float(model.actuator_forcerange[self._gripper_act, 1])

        self._block_qpos = np.array([model.jnt_qposadr[joint(f'block{i}_joint').id]
                                     for i in range(len(objects))], dtype=int)
        self._block_dof = np.array([model.jnt_dofadr[joint(f'block{i}_joint').id]
                                    for i in range(len(objects))], dtype=int)
        self._block_body = np.array([model.body(f'block{i}').id for i in range(len(objects))],
                                    dtype=int)
        # Body id -> block index (-1: not a block); mask of gripper bodies.
        self._body_block = np.full(model.nbody, -1, dtype=int)
        self._body_block[self._block_body] = np.arange(len(objects))
        self._gripper_body = np.array(
            [model.body(b).name.startswith(scene.GRIPPER_PREFIX) for b in range(model.nbody)])
        self._tool_site = model.site(scene.TOOL_SITE).id
        self._site_jacobian = np.zeros((3, model.nv))
        robot_nq = model.nq - 7 * len(objects)
        robot_nv = model.nv - 6 * len(objects)
        assert len(objects) == 0 or self._block_qpos[0] == robot_nq, 'robot joints come first'

        if previous is None:
            data.qpos[self._arm_qpos] = self._initial
            data.ctrl[self._arm_act] = self._initial
        else:
            _, old_data = previous
            data.time = old_data.time
            data.qpos[:robot_nq] = old_data.qpos[:robot_nq]
            data.qvel[:robot_nv] = old_data.qvel[:robot_nv]
            if model.na:
                data.act[:] = old_data.act
            data.ctrl[:] = old_data.ctrl[:model.nu]
        mujoco.mj_forward(model, data)
        self.model, self.data = model, data
        self._objects = list(objects)
        self._states = [BlockState.IN_SCENE] * len(objects)
        self._removed = 0
        self._steps = 0

    def reset(self, objects):
        """
        Replace the blocks with `objects` (ObjectSpec list) at their given poses.

        The arm, gripper and simulated time carry on unchanged. Blocks then fall and settle
        as the cell is stepped; see settled() and settle().
        """
        self._build(list(objects), previous=(self.model, self.data))
        self._reset_time = self.data.time

    def reset_random(self, num_objects, seed):
        """Drop num_objects random VPG blocks into the workspace (deterministic for a seed)."""
        self.reset(blocks.random_objects(num_objects, seed, self.config.workspace_x,
                                         self.config.workspace_y))

    # -- commands -----------------------------------------------------------------------

    def set_trajectory(self, joint_names, points, start_time=None):
        """
        Follow a new joint trajectory, replacing any current one.

        points: trajectory.TrajectoryPoint list; start_time (s, simulated): when its time 0
        is; None or a past time means now. Raises TrajectoryError (the arm keeps doing what it
        did) for anything the controller refuses. Returns the checked Trajectory.
        """
        trajectory = check_trajectory(
            joint_names, points, scene.ARM_JOINTS, self._arm_lower, self._arm_upper,
            self.config.max_joint_velocity, self.arm_position(), self.config.start_tolerance)
        now = self.data.time
        start = now if start_time is None else max(now, float(start_time))
        position, velocity = self._desired
        self._follower = TrajectoryFollower(trajectory, start, position, velocity)
        return trajectory

    def set_gripper(self, position, force=None):
        """
        Command the finger joint to position (rad, 0 = open .. 0.8 = closed).

        Values outside 0..0.8 are clamped; returns the value used. The fingers stop early on
        an object (the actuator's force is limited), as the real gripper does. force: the grip
        force (N) to close with, as the 2F-85's force setting (clamped to its 20-235 N); None
        or <= 0 keeps the current one (at start scene.GRIPPER_DEFAULT_FORCE).
        """
        position = float(np.clip(position, 0.0, scene.FINGER_JOINT_MAX))
        if force is not None and force > 0:
            newtons = float(np.clip(force, *scene.GRIPPER_FORCE_RANGE))
            self._gripper_limit = newtons / scene.GRIPPER_NEWTONS_PER_UNIT
            self.model.actuator_forcerange[self._gripper_act] = (-self._gripper_limit,
                                                                 self._gripper_limit)
        # step() moves the set point there at GRIPPER_SPEED, from where the fingers are: the
        # gripper's controller starts from its measured position, so fingers stopped on an
        # object open at once instead of after the set point has come back to them.
        self._gripper_target = position
        self.data.ctrl[self._gripper_act] = (
            float(np.clip(self.finger_position(), 0.0, scene.FINGER_JOINT_MAX))
            / scene.FINGER_JOINT_MAX * scene.GRIPPER_CTRL_MAX)
        return position

    # -- stepping -----------------------------------------------------------------------

    def step(self, count=1):
        """Advance the physics by count steps, updating arm commands and block states."""
        model, data = self.model, self.data
        for _ in range(count):
            follower = self._follower
            if follower is not None:
                position, velocity, acceleration = follower.sample(data.time)
                self._desired = (position, velocity)
                data.ctrl[self._arm_act] = self._servo_target(position, velocity, acceleration)
                if data.time > follower.end_time:
                    self._follower = None  # ctrl keeps the last point
            self._ramp_gripper()
            time_before, qpos_before, ctrl_before = data.time, data.qpos.copy(), data.ctrl.copy()
            mujoco.mj_step(model, data)
            if data.time < time_before:
                self._recover(time_before, qpos_before, ctrl_before)
            if self._tool_contact is not None:
                self._check_tool_contact()
            self._steps += 1
            if self._steps % _BOOKKEEPING_INTERVAL == 0 and len(self._objects):
                self._update_blocks()

    def arm_tool_contact(self, threshold):
        """
        Stop the arm on the next tool contact, as the UR controller does under tool_contact().

        From the next step on, a contact force that has changed by more than threshold (N)
        since now, against the commanded TCP motion (any direction while it is at rest), stops
        the arm where it is: the trajectory is dropped and the servos hold the present joints.
        tool_contact_stop then holds (time, force change); detection ends with the stop or
        with disarm_tool_contact().
        """
        self._tool_contact = ToolContactWatch(self._contact_force_base(), threshold)
        self.tool_contact_stop = None
        self.tool_contact_touches = ()
        self.tool_contact_points = ()

    def disarm_tool_contact(self):
        """End tool contact detection (the arm is not stopped)."""
        self._tool_contact = None

    @property
    def tool_contact_armed(self):
        """Whether tool contact detection is on."""
        return self._tool_contact is not None

    def _check_tool_contact(self):
        watch = self._tool_contact
        model, data = self.model, self.data
        force = self._contact_force_base()
        if not watch.could_touch(force):
            return  # no direction of motion makes this a contact: spare the Jacobian
        mujoco.mj_jacSite(model, data, self._site_jacobian, None, self._tool_site)
        velocity = self._site_jacobian[:, self._arm_dof] @ self._desired[1]
        if watch.touched(force, velocity):
            self.tool_contact_stop = (float(data.time), watch.peak)
            self.tool_contact_points = self.gripper_contact_points()
            self.tool_contact_touches = tuple(sorted({(geom, body) for geom, body, _
                                                      in self.tool_contact_points}))
            self._tool_contact = None
            self.stop_arm()

    def stop_arm(self):
        """Drop the trajectory; the servos hold the joints where they are now."""
        q = self.arm_position()
        still = np.zeros_like(q)
        self._follower = None
        self._desired = (q.copy(), still)
        self.data.ctrl[self._arm_act] = self._servo_target(q, still, still)

    def _ramp_gripper(self):
        """Move the finger set point toward the target at the 2F-85's speed (one step)."""
        ctrl = self.data.ctrl
        goal = self._gripper_target / scene.FINGER_JOINT_MAX * scene.GRIPPER_CTRL_MAX
        now = ctrl[self._gripper_act]
        if now != goal:
            rate = scene.GRIPPER_CTRL_MAX * scene.GRIPPER_SPEED / scene.GRIPPER_STROKE
            largest = rate * self.model.opt.timestep
            ctrl[self._gripper_act] = now + min(max(goal - now, -largest), largest)

    def _recover(self, time_before, qpos_before, ctrl_before):
        """
        Undo MuJoCo's automatic reset after an instability (NaN or huge qacc/qvel/qpos).

        MuJoCo then resets the whole state, time included, which would send the simulated
        clock backwards and bring removed blocks back. Instead: the positions from before the
        failed step, every velocity zero, the same commands, time going on. When that does not
        help (more than _MAX_REPEATED_RECOVERIES restores in a row, each within
        _REPEAT_WINDOW_STEPS steps of the last; seen once, a gripper linkage DOF that blew up
        again at every step and left the arm's joints at thousands of radians), raises
        CellUnstable: a cell that cannot be trusted must stop rather than go on.
        """
        if self._steps - self._last_recovery_step <= _REPEAT_WINDOW_STEPS:
            self._repeated_recoveries += 1
        else:
            self._repeated_recoveries = 0
        self._last_recovery_step = self._steps
        if self._repeated_recoveries >= _MAX_REPEATED_RECOVERIES:
            raise CellUnstable(
                f'physics still unstable after {self._repeated_recoveries + 1} restores in a '
                f'row at {time_before:.3f} s; restart the cell')
        data = self.data
        data.time = time_before + self.model.opt.timestep
        data.qpos[:] = qpos_before
        data.qvel[:] = 0.0
        data.ctrl[:] = ctrl_before
        mujoco.mj_forward(self.model, data)
        self.instability_recoveries += 1

    def _servo_target(self, position, velocity, acceleration):
        """
        Servo set-point that makes the position servo track (q, qd, qdd) closely.

        The Menagerie servo applies kp (ctrl - q) - kv qd. Feeding forward the desired
        velocity and the inverse-dynamics torque (M qdd + Coriolis; gravity is compensated)
        turns it into a PD on the tracking error with computed torque, so the arm follows
        trajectories about as tightly as the UR's own controller does.
        """
        data, arm = self.data, self._arm_dof
        # M qdd for the arm's rows: MuJoCo's sparse product with qdd placed in the arm's DOFs
        # (the dense M is nv x nv, 70+ square with ten free blocks, at every step).
        self._acceleration[arm] = acceleration
        mujoco.mj_mulM(self.model, data, self._inertial_torque, self._acceleration)
        torque = (self._inertial_torque[arm] + data.qfrc_bias[arm] - data.qfrc_gravcomp[arm])
        return position + (self._kv * velocity + torque) / self._kp

    def advance_to(self, time):
        """Step until the simulated time reaches `time` (s); returns the steps taken."""
        steps = max(0, int(math.ceil((time - self.data.time) / self.model.opt.timestep - 1e-9)))
        self.step(steps)
        return steps

    def settled(self):
        """Whether the blocks have come to rest after the last reset (see CellConfig)."""
        elapsed = self.data.time - self._reset_time
        if elapsed < self.config.settle_min_time:
            return False
        if elapsed >= self.config.settle_max_time or not len(self._objects):
            return True
        return self._block_speed() < self.config.settle_speed

    def _block_speed(self):
        """Largest linear speed (m/s) of a block still in the scene; 0 without blocks."""
        active = [i for i, s in enumerate(self._states) if s is BlockState.IN_SCENE]
        if not active:
            return 0.0
        dofs = (self._block_dof[active][:, None] + np.arange(3)).ravel()
        velocities = self.data.qvel[dofs].reshape(-1, 3)
        return float(np.max(np.linalg.norm(velocities, axis=1)))

    def settle(self):
        """Step until settled(); returns the simulated seconds it took."""
        start = self.data.time
        while not self.settled():
            self.step(25)
        return self.data.time - start

    # -- blocks -------------------------------------------------------------------------

    def _update_blocks(self):
        model, data = self.model, self.data
        touching = set()
        if data.ncon:
            geoms = data.contact.geom[:data.ncon]
            bodies = model.geom_bodyid[geoms]
            grip = self._gripper_body[bodies]
            block = self._body_block[bodies]
            for side in (0, 1):
                hits = grip[:, side] & (block[:, 1 - side] >= 0)
                touching.update(block[hits, 1 - side].tolist())
        for index, state in enumerate(self._states):
            if state is BlockState.REMOVED:
                continue
            held = index in touching
            if state is BlockState.IN_SCENE:
                height = data.qpos[self._block_qpos[index] + 2]
                if held and height > self.config.removal_height:
                    self._states[index] = BlockState.LIFTED
            elif not held:
                self._park(index)

    def _park(self, index):
        """Take a block out of the scene: out of view, out of contact, floating still."""
        model, data = self.model, self.data
        adr, dof, body = self._block_qpos[index], self._block_dof[index], self._block_body[index]
        data.qpos[adr:adr + 3] = np.asarray(scene.PARKING_ORIGIN) + [0.15 * self._removed, 0, 0]
        data.qpos[adr + 3:adr + 7] = [1.0, 0.0, 0.0, 0.0]
        data.qvel[dof:dof + 6] = 0.0
        model.body_gravcomp[body] = 1.0
        geoms = model.geom_bodyid == body
        model.geom_contype[geoms] = 0
        model.geom_conaffinity[geoms] = 0
        self._states[index] = BlockState.REMOVED
        self._removed += 1

    def count_objects(self):
        """Ground-truth ObjectCounts (evaluation only)."""
        inside = removed = outside = 0
        x_range, y_range = self.config.workspace_x, self.config.workspace_y
        for index, state in enumerate(self._states):
            if state is not BlockState.IN_SCENE:
                removed += 1
                continue
            x, y, _ = self.data.qpos[self._block_qpos[index]:self._block_qpos[index] + 3]
            if x_range[0] <= x <= x_range[1] and y_range[0] <= y <= y_range[1]:
                inside += 1
            else:
                outside += 1
        return ObjectCounts(inside, removed, outside)

    def block_poses(self):
        """Ground truth: list of (ObjectSpec as placed, BlockState, position (3,), quat (4,))."""
        poses = []
        for index, obj in enumerate(self._objects):
            adr = self._block_qpos[index]
            poses.append((obj, self._states[index], self.data.qpos[adr:adr + 3].copy(),
                          self.data.qpos[adr + 3:adr + 7].copy()))
        return poses

    # -- state --------------------------------------------------------------------------

    @property
    def time(self):
        """Return the simulated clock in seconds."""
        return self.data.time

    @property
    def objects(self):
        return list(self._objects)

    def arm_position(self):
        return self.data.qpos[self._arm_qpos].copy()

    def arm_velocity(self):
        return self.data.qvel[self._arm_dof].copy()

    def arm_effort(self):
        """Joint torques of the arm servos (N m)."""
        return self.data.actuator_force[self._arm_act].copy()

    def tool_wrench(self):
        """
        Contact wrench on the gripper, as a flange force/torque sensor measures it.

        Sums the forces every contact between a gripper body and anything else (blocks,
        table, arm) exerts on the gripper, and their moments about tool0's origin; returns
        (force (3,), torque (3,)) in the tool0 frame, N and N m. The gripper's own weight and
        inertia are left out, as the UR's payload compensation removes them; a real sensor's
        noise and offset are added by the caller (see wrench.WrenchNoise).
        """
        force, torque = self._contact_wrench_base()
        rotation = self.data.site_xmat[self._tool_site].reshape(3, 3)
        return rotation.T @ force, rotation.T @ torque

    def _contact_force_base(self):
        """Return the contact force (3,) N on the gripper in the base frame (see tool_wrench)."""
        return self._contact_wrench_base()[0]

    def _gripper_contacts(self):
        """
        Return the gripper's contacts with anything else: (indices, gripper mask (ncon, 2)).

        The mask says which of each contact's two geoms belong to the gripper. One array
        lookup instead of a Python pass over every contact: blocks on the table make dozens
        per step, and the wrench is read at every step while a tool contact stop is armed.
        """
        model, data = self.model, self.data
        if not data.ncon:
            return [], None
        grip = self._gripper_body[model.geom_bodyid[data.contact.geom[:data.ncon]]]
        return np.flatnonzero(grip[:, 0] != grip[:, 1]).tolist(), grip

    def gripper_contact_points(self):
        """(gripper geom name, body it touches, contact point (3,)) of every gripper contact."""
        model, data = self.model, self.data
        indices, grip = self._gripper_contacts()
        points = []
        for i in indices:
            geom1, geom2 = (int(g) for g in data.contact.geom[i])
            mine, other = (geom1, geom2) if grip[i, 0] else (geom2, geom1)
            name = model.geom(mine).name or f'{model.body(model.geom_bodyid[mine]).name} geom'
            points.append((name, model.body(model.geom_bodyid[other]).name,
                           data.contact.pos[i].copy()))
        return tuple(points)

    def gripper_touches(self):
        """(gripper geom name, name of the body it touches) of every contact the gripper has."""
        return tuple(sorted({(geom, body) for geom, body, _ in self.gripper_contact_points()}))

    def _contact_wrench_base(self):
        model, data = self.model, self.data
        force = np.zeros(3)
        torque = np.zeros(3)
        origin = data.site_xpos[self._tool_site]
        indices, grip = self._gripper_contacts()
        local = np.zeros(6)
        for i in indices:
            contact = data.contact[i]
            grip2 = grip[i, 1]
            mujoco.mj_contactForce(model, data, i, local)
            frame = contact.frame.reshape(3, 3)
            # The contact force acts on geom2 along +normal (from geom1 to geom2).
            sign = 1.0 if grip2 else -1.0
            f_world = sign * (frame.T @ local[:3])
            t_world = sign * (frame.T @ local[3:])
            force += f_world
            torque += np.cross(contact.pos - origin, f_world) + t_world
        return force, torque

    def tool_axis(self):
        """Direction (3,) of tool0's z axis in the base frame (down for a top-down tool)."""
        return self.data.site_xmat[self._tool_site].reshape(3, 3)[:, 2].copy()

    def tool0_pose(self):
        """tool0 (the flange) in the base frame: position (3,) m, quaternion (w, x, y, z)."""
        site = self.data.site(scene.TOOL_SITE)
        quaternion = np.zeros(4)
        mujoco.mju_mat2Quat(quaternion, site.xmat)
        return site.xpos.copy(), quaternion

    def finger_position(self):
        """Finger (driver) joint angle, rad: ~0 open, ~0.78 closed on nothing."""
        return float(self.data.qpos[self._finger_qpos])

    def finger_velocity(self):
        return float(self.data.qvel[self._finger_dof])

    def gripper_force_setting(self):
        """Grip force (N) the fingers now close with (the 2F-85's force setting)."""
        return self._gripper_limit * scene.GRIPPER_NEWTONS_PER_UNIT

    def finger_effort(self):
        return float(self.data.actuator_force[self._gripper_act])

    @property
    def gripper_target(self):
        return self._gripper_target

    def trajectory_active(self):
        """Whether a trajectory is still being followed (its last point not yet reached)."""
        return self._follower is not None

    def at_rest(self):
        """No trajectory running, arm, fingers and blocks still (see CellConfig.rest_speed)."""
        if self._follower is not None:
            return False
        limit = self.config.rest_speed
        if float(np.max(np.abs(self.data.qvel[self._arm_dof]))) >= limit:
            return False
        if abs(self.finger_velocity()) >= 5 * limit:
            return False
        return self._block_speed() < limit

    def snapshot(self):
        """Copy the state a renderer needs (see Snapshot)."""
        scale = 1.0 if self.scene_randomization is None else self.scene_randomization.depth_scale
        return Snapshot(self.model, self.data.qpos.copy(), self.data.time, scale)

    # -- saving and restoring -----------------------------------------------------------

    def save_state(self):
        """
        Copy the whole state of the cell, to go back to it with restore_state().

        MuJoCo continues bit for bit from a copied MjData, so a primitive tried from a restored
        state does exactly what it would have done from the original one (what-if queries such
        as vpg_evaluation.oracle). The copy holds the physics (a full MjData), the model fields
        that taking a block out changes, and the cell's own bookkeeping (trajectory, gripper
        target, block states). Valid until the next reset().
        """
        data = mujoco.MjData(self.model)
        mujoco.mj_copyData(data, self.model, self.data)
        model_fields = {name: getattr(self.model, name).copy() for name in _PARKING_FIELDS}
        own = {key: copy.deepcopy(value) for key, value in vars(self).items()
               if key not in ('model', 'data', 'config')}
        return CellState(self.model, data, model_fields, own)

    def restore_state(self, state):
        """Return to a state from save_state(); ValueError after a reset() since then."""
        if state.model is not self.model:
            raise ValueError('this state was saved before the last reset(); it cannot be '
                             'restored')
        mujoco.mj_copyData(self.data, self.model, state.data)
        for name, values in state.model_fields.items():
            getattr(self.model, name)[:] = values
        for key, value in state.own.items():
            setattr(self, key, copy.deepcopy(value))


# Model fields _park() changes; restore_state() puts them back.
_PARKING_FIELDS = ('body_gravcomp', 'geom_contype', 'geom_conaffinity')


@dataclass(frozen=True)
class CellState:
    """A copy of the cell's state (Cell.save_state); opaque to callers."""

    model: object
    data: object
    model_fields: dict
    own: dict
