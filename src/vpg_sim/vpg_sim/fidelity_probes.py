"""
Physical probes of the cell's gripper-object contact, each judged against a limit with a reason.

The cell is judged by these probes, never tuned on evaluation or training outcomes. Every probe
sets up blocks of VPG's 50 mm cube (`4.obj`), runs the executor's own joint-trajectory backend
and primitives on the cell (in-process: the backend's I/O is bound to the cell, joint states at
100 Hz and the tool wrench at 100 Hz of simulated time, as the sim node publishes them by
default), and reads ground truth from MuJoCo. Needs vpg_executor (imported when a probe runs).

    python -m vpg_sim.fidelity_probes --out results/fidelity/probes.json [--only NAME ...]

writes `{"probes": [{"name", "measured", "limit", "unit", "pass", "argument", "detail"}]}`.
`limit` is a number (measured must not exceed it) or [low, high].
"""

import argparse
import dataclasses
from dataclasses import dataclass
import json
import math
from pathlib import Path
import sys

import mujoco
import numpy as np
from vpg_executor.motion import JointStateCache, MotionError, TrajectoryConfig
from vpg_executor.primitives import PrimitiveConfig, PrimitiveExecutor
from vpg_executor.safety import SafetyEnvelope, TopDownPose
from vpg_executor.trajectory_backend import JointTrajectoryBackend
from vpg_sim import blocks, scene
from vpg_sim.cell import Cell, CellConfig
from vpg_sim.force_sensor import ForceSensor, ForceSensorConfig
from vpg_sim.gripper import GripperConfig, GripperGoal, GripperOutcome
from vpg_sim.tool_contact import CellToolContact
from vpg_sim.trajectory import TrajectoryPoint

CUBE = 0.050          # VPG's cube edge (4.obj: 50.1 mm), m
CUBE_Z = 0.0255       # centre height placed (it settles onto the table)
GAP = 0.002           # the layouts: cubes 2 mm apart
FLUSH_GAP = 0.0005    # "flush": under 1 mm
WOOD_DENSITY = scene.BLOCK_DENSITY
G = 9.81
# The executor asks for gripper.max_effort = 50 N; ros2_robotiq_gripper writes it to the force
# register as 50/235 of full scale. If the register spans 0..235 N that is 50 N, if it spans the
# 2F-85's 20..235 N linearly 20 + 50/235 * 215 = 65.7 N (Robotiq gives no curve).
COMMANDED_GRIP_FORCE = 50.0
GRIP_FORCE_RANGE = (COMMANDED_GRIP_FORCE, 20.0 + COMMANDED_GRIP_FORCE / 235.0 * 215.0)
# ros2_robotiq_gripper: speed multiplier 1.0 of gripper_max_speed 0.150 m/s.
DRIVER_CLOSING_SPEED = 0.150
CONTACT_FORCE = 20.0  # the executor's default robot.contact_force, N
TOOL_CONTACT_FORCE = 20.0  # the sim node's default tool_contact_force, N


def cube(x, y, yaw=0.0):
    """Place a 50 mm cube on the table at (x, y)."""
    return blocks.ObjectSpec('cube', (0.8, 0.6, 0.4, 1.0), (x, y, CUBE_Z),
                             blocks.euler_to_quat(0.0, 0.0, yaw))


@dataclass
class ProbeResult:
    """One probe's figure and verdict."""

    name: str
    measured: float
    limit: object
    unit: str
    argument: str
    detail: str = ''

    @property
    def passed(self):
        if isinstance(self.limit, (list, tuple)):
            return bool(self.limit[0] <= self.measured <= self.limit[1])
        return bool(self.measured <= self.limit)

    def as_dict(self):
        return {'name': self.name, 'measured': round(float(self.measured), 4),
                'limit': self.limit, 'unit': self.unit, 'pass': self.passed,
                'argument': self.argument, 'detail': self.detail}


class CellRig:
    """
    The executor's JointTrajectoryBackend and PrimitiveExecutor driving a Cell in-process.

    The backend's waits step the cell; joint states and tool wrenches are fed to it at the
    given rates of simulated time, the wrench through the simulated sensor (noise, offset).
    contact_force 0 = no wrench guard (the executor without a wrench); tool_contact_force 0 =
    no controller-side stop on tool contact (the cell's, as the sim graph offers it).
    """

    def __init__(self, objects, contact_force=CONTACT_FORCE, guarded_speed=None,
                 grip_effort=True, contact_lift=None, joint_rate=100.0,
                 wrench_rate=100.0, sensor=ForceSensorConfig(force_offset=(1.5, -2.0, 3.0)),
                 cell_config=CellConfig(), tool_contact_force=TOOL_CONTACT_FORCE):

        rig = self

        class SteppedStates(JointStateCache):
            """Joint-state waits that advance the cell instead of sleeping."""

            def wait_for(self, names, predicate, timeout):
                start = rig.cell.time
                while True:
                    values = self.get(names)
                    if values is not None and predicate(values):
                        return values
                    if rig.cell.time - start >= timeout:
                        return None
                    rig.advance()

        self.cell = Cell(cell_config)
        self.cell.reset(objects)
        self.cell.settle()
        self.sensor = ForceSensor(sensor, seed=0)
        self.states = SteppedStates()
        self._grip_effort = grip_effort
        self._joint_period = 1.0 / joint_rate
        self._wrench_period = 1.0 / wrench_rate
        self._next_joint = self._next_wrench = self.cell.time
        self.watchers = []  # callables run after every physics chunk (ground-truth logs)
        config = TrajectoryConfig(model='ur5e_menagerie', contact_force=contact_force)
        if guarded_speed is not None:
            config = dataclasses.replace(config, guarded_speed=guarded_speed)
        # The sim graph's joint speed limit (vpg_bringup/config/sim.yaml).
        tool_contact = (CellToolContact(self.cell, tool_contact_force)
                        if tool_contact_force > 0 else None)
        self.backend = JointTrajectoryBackend(config, SafetyEnvelope(max_joint_speed=2.0),
                                              self.states, self._publish, self._gripper,
                                              tool_contact=tool_contact)
        primitives = PrimitiveConfig()
        if contact_lift is not None:
            primitives = dataclasses.replace(primitives, contact_lift=contact_lift)
        self.primitives = PrimitiveExecutor(self.backend, primitives)
        self.advance()

    def advance(self):
        """Step to the next joint-state or wrench time and feed what is due."""
        cell = self.cell
        cell.advance_to(min(self._next_joint, self._next_wrench))
        for watch in self.watchers:
            watch(cell)
        now = cell.time
        if now >= self._next_joint - 1e-9:
            self._next_joint = now + self._joint_period
            self.states.update(list(scene.ARM_JOINTS) + ['robotiq_85_left_knuckle_joint'],
                               list(cell.arm_position()) + [cell.finger_position()], now)
        if now >= self._next_wrench - 1e-9:
            self._next_wrench = now + self._wrench_period
            force, _ = self.sensor.read(*cell.tool_wrench())
            self.states.update_wrench(force, now)

    def _publish(self, names, times, positions, velocities):
        points = [TrajectoryPoint(tuple(q), tuple(qd), (), float(t))
                  for t, q, qd in zip(times, positions, velocities)]
        self.cell.set_trajectory(list(names), points)

    def _gripper(self, position, max_effort):
        target = self.cell.set_gripper(position, max_effort if self._grip_effort else None)
        goal = GripperGoal(target, self.cell.time, GripperConfig())
        while goal.update(self.cell.time, self.cell.finger_position()) is GripperOutcome.RUNNING:
            self.advance()

    def run(self, seconds):
        end = self.cell.time + seconds
        while self.cell.time < end:
            self.advance()

    def block_position(self, index):
        adr = self.cell.model.jnt_qposadr[self.cell.model.joint(f'block{index}_joint').id]
        return self.cell.data.qpos[adr:adr + 3].copy()

    def block_positions(self):
        return np.array([self.block_position(i) for i in range(len(self.cell.objects))])

    def tcp(self):
        return self.cell.data.site_xpos[self.cell.model.site(scene.PINCH_SITE).id].copy()


class ContactLog:
    """Ground truth during a motion: deepest gripper-block penetration, largest tool force."""

    def __init__(self, rig, blocks_of_interest=None):
        self.rig = rig
        self.blocks = blocks_of_interest
        self.depth = 0.0
        self.peak_axial = 0.0
        self.first_contact_tcp = None
        rig.watchers.append(self)

    def __call__(self, cell):
        model, data = cell.model, cell.data
        touching = False
        for i in range(data.ncon):
            contact = data.contact[i]
            b1, b2 = model.geom_bodyid[contact.geom1], model.geom_bodyid[contact.geom2]
            names = model.body(b1).name, model.body(b2).name
            grip = [n.startswith(scene.GRIPPER_PREFIX) for n in names]
            block = [n.startswith('block') for n in names]
            if (grip[0] and block[1]) or (grip[1] and block[0]):
                index = int((names[1] if block[1] else names[0])[len('block'):])
                if self.blocks is None or index in self.blocks:
                    touching = True
                    self.depth = max(self.depth, -float(contact.dist))
        if touching and self.first_contact_tcp is None:
            self.first_contact_tcp = self.rig.tcp()
        force, _ = cell.tool_wrench()
        self.peak_axial = max(self.peak_axial, abs(float(force[2])))

    def close(self):
        self.rig.watchers.remove(self)


def _descend(rig, x, y, z_target, yaw, closed=False):
    """Approach above (x, y), then one guarded straight descent; returns (arrived, log)."""
    backend = rig.backend
    backend.set_gripper(closed)
    backend.move_to(TopDownPose(x, y, 0.15, yaw))
    log = ContactLog(rig)
    arrived = backend.move_to(TopDownPose(x, y, z_target, yaw), linear=True, guarded=True)
    rig.run(0.3)  # held where it stopped
    log.close()
    return arrived, log


# -- probes -------------------------------------------------------------------------------

def probe_fingertip_sink(rig_factory):
    """Land a fingertip on a cube's top face and measure how deep it goes into the block."""
    rig = rig_factory([cube(-0.5, 0.0)])
    # Jaws along x, centred 42 mm beside the cube: the -x finger lands on its top face.
    arrived, log = _descend(rig, -0.5 + 0.042, 0.0, 0.0, 0.0)
    return ProbeResult(
        'fingertip_sink_into_block_top', log.depth * 1e3, 1.0, 'mm',
        'A fingertip pressing a wooden block top with tens of N over a ~22 x 8 mm pad '
        'indents wood and the silicone pad by far less than 1 mm (wood E ~ 10 GPa); MuJoCo '
        'contacts are soft, so penetration is what the model gets wrong first.',
        f'guard {rig.backend.last_guard}, arrived {arrived}, '
        f'tool-axis force at stop {rig.backend.last_contact_force}')


def _two_by_two(origin=(-0.5, 0.0), gap=GAP):
    pitch = CUBE + gap
    x0, y0 = origin
    return [cube(x0 + i * pitch, y0 + j * pitch) for i in (0, 1) for j in (0, 1)]


def probe_descent_results(rig_factory):
    """Measure one guarded descent onto a neighbour: overtravel, peak force, shove."""
    rig = rig_factory(_two_by_two())
    backend = rig.backend
    yaw = 0.0
    backend.set_gripper(False)
    backend.move_to(TopDownPose(-0.5, 0.0, CUBE + 0.15, yaw))
    before = rig.block_positions()
    log = ContactLog(rig, blocks_of_interest={2})  # block2: the +x neighbour (i=1, j=0)
    arrived = backend.move_to(TopDownPose(-0.5, 0.0, CUBE - 0.03, yaw), linear=True,
                              guarded=True)
    stop_tcp = rig.tcp()
    rig.run(0.3)
    log.close()
    moved = np.linalg.norm((rig.block_positions() - before)[:, :2], axis=1)
    overtravel = (log.first_contact_tcp[2] - stop_tcp[2]) if log.first_contact_tcp is not None \
        else math.nan
    # The log samples every 10 ms; the cell's own stop saw the force at the step it crossed.
    stop = rig.cell.tool_contact_stop
    peak = max(log.peak_axial, stop[1] if stop is not None else 0.0)
    detail = (f'guard {backend.last_guard}, stopped by {backend.last_stopped_by}, arrived '
              f'{arrived}, stop TCP z {stop_tcp[2]:.4f} m, sensor tool-axis change at stop '
              f'{backend.last_contact_force}, cell stop {stop}')
    return [
        ProbeResult(
            'guarded_descent_overtravel_after_contact', overtravel * 1e3, 5.0, 'mm',
            'A UR whose controller stops on tool contact (tool_contact(), 500 Hz) or a guard '
            'on its flange sensor (20 N) stops within a few mm of touching; position-error '
            'guards react only after ~2 cm of path error.',
            detail),
        ProbeResult(
            'guarded_descent_peak_force', peak, 2.5 * CONTACT_FORCE, 'N',
            f'Detection at {CONTACT_FORCE:.0f} N plus what the arm adds while it stops; a '
            'few tens of N, far from the UR default 150 N protective-stop force.', detail),
        ProbeResult(
            'guarded_descent_neighbour_shove', float(moved.max()) * 1e3, 2.0, 'mm',
            'A fingertip landing on a flat top pushes down, not sideways: a neighbour may '
            'only creep by contact jitter, never be shoved aside by centimetres.', detail),
    ]


def probe_corner_grasps(rig_factory):
    """Grasp the corner cube of a 2x2 square (2 mm apart) at 0/45/90/135 deg, from home."""
    successes, shoves = {}, {}
    for degrees in (0, 45, 90, 135):
        rig = rig_factory(_two_by_two())
        rig.primitives.go_home()  # where /pick_all starts every primitive from
        before = rig.block_positions()
        try:
            outcome = rig.primitives.grasp((-0.5, 0.0, CUBE), math.radians(degrees))
            successes[degrees] = 'held' if outcome.success else 'failed'
        except MotionError:
            successes[degrees] = 'failed, arm blocked'
        if rig.cell.count_objects().removed == 0:
            moved = np.linalg.norm((rig.block_positions() - before)[:, :2], axis=1)
            shoves[degrees] = float(moved.max()) * 1e3
    blocked = sum(successes[d] == 'held' for d in (0, 45, 90))
    detail = '; '.join(f'{d} deg: {successes[d]}'
                       + (f', a block moved {shoves[d]:.1f} mm' if d in shoves else '')
                       for d in successes)
    failed_shift = max([shoves[d] for d in (0, 45, 90) if d in shoves] or [0.0])
    return [ProbeResult(
        'corner_2x2_grasps_through_a_neighbour', blocked, 0, 'grasps of 3',
        'At 0, 45 and 90 deg one fingertip of the 85 mm opening lies over a neighbour 2 mm '
        'away: it lands on that top face and the jaws close above the target, which must '
        'fail (a real 2F-85 cannot pass a 10 mm finger through a 2 mm gap); 135 deg clears '
        'the neighbours and may succeed.', detail),
        ProbeResult(
            'corner_2x2_failed_grasp_block_shift', failed_shift, 2.0, 'mm',
            'A grasp that fails because a fingertip landed on a neighbour must not be a push '
            'in disguise: the fingers close above the blocks (the 2F-85 fingertips dip 13 mm '
            'while closing, so the executor first rises by that and a margin), and no block may '
            'move more than contact jitter.', detail)]


def probe_flush_pair_wedge(rig_factory):
    """Lower closed fingers onto the seam of two flush cubes (0.5 mm apart)."""
    pitch = CUBE + FLUSH_GAP
    rig = rig_factory([cube(-0.5, 0.0), cube(-0.5 + pitch, 0.0)])
    before = rig.block_positions()
    # Jaw broadside across the seam (fingers closing along y): the finger bottoms span it.
    _descend(rig, -0.5 + pitch / 2, 0.0, CUBE - 0.02, math.pi / 2, closed=True)
    after = rig.block_positions()
    gap_growth = ((after[1, 0] - after[0, 0]) - (before[1, 0] - before[0, 0])) * 1e3
    mass = WOOD_DENSITY * CUBE ** 3
    return ProbeResult(
        'closed_fingers_wedge_flush_pair', gap_growth, 1.0, 'mm',
        f'The flat finger bottoms press down on both tops; to open the seam they would have to '
        f'push the {mass * 1e3:.0f} g cubes sideways, and a vertical press on flat tops makes '
        'no sideways force (a real finger cannot enter a 0.5 mm seam).',
        f'guard {rig.backend.last_guard}')


def probe_row_middle_free_axis(rig_factory):
    """Grasp the middle of a flush row of three along the free axis: neighbours stay put."""
    pitch = CUBE + FLUSH_GAP
    rig = rig_factory([cube(-0.5 - pitch, 0.0), cube(-0.5, 0.0), cube(-0.5 + pitch, 0.0)])
    before = rig.block_positions()
    moved_max = [0.0]

    def watch(cell):
        now = rig.block_positions()
        shift = np.linalg.norm((now - before)[[0, 2], :2], axis=1)
        moved_max[0] = max(moved_max[0], float(shift.max()))

    rig.watchers.append(watch)
    outcome = rig.primitives.grasp((-0.5, 0.0, CUBE), math.pi / 2)
    rig.watchers.remove(watch)
    return ProbeResult(
        'row_middle_grasp_neighbour_shift', moved_max[0] * 1e3, 1.0, 'mm',
        'Jaws across the free axis touch only the middle cube; the neighbours 0.5 mm away '
        'feel at most friction from its sliding faces while it rises (no normal force: no '
        'friction), so they may move well under 1 mm.',
        f'grasp {"held" if outcome.success else "failed"}')


def probe_grip_force(rig_factory):
    """Pad normal force on a held 50 mm cube against the driver's default force setting."""
    rig = rig_factory([cube(-0.5, 0.0)])
    backend = rig.backend
    backend.set_gripper(False)
    backend.move_to(TopDownPose(-0.5, 0.0, 0.15, 0.0))
    backend.move_to(TopDownPose(-0.5, 0.0, CUBE - 0.03, 0.0), linear=True, guarded=True)
    backend.set_gripper(True)
    rig.run(0.3)
    per_side = _pad_forces(rig.cell)
    force = float(np.mean(list(per_side.values()))) if per_side else 0.0
    low, high = round(0.75 * GRIP_FORCE_RANGE[0], 1), round(1.25 * GRIP_FORCE_RANGE[1], 1)
    return ProbeResult(
        'grip_force_on_cube', force, [low, high], 'N',
        f'The executor closes with max_effort {COMMANDED_GRIP_FORCE:.0f} N; on the 2F-85 '
        f'that is {GRIP_FORCE_RANGE[0]:.0f}-{GRIP_FORCE_RANGE[1]:.0f} N depending on how '
        'the force register maps to newtons (not published); within 25 % of that range.',
        f'per finger: {per_side}')


def _pad_forces(cell):
    """Sum the normal force (N) each finger presses on blocks with, by side."""
    model, data = cell.model, cell.data
    sides = {}
    local = np.zeros(6)
    for i in range(data.ncon):
        contact = data.contact[i]
        names = [model.body(model.geom_bodyid[g]).name for g in (contact.geom1, contact.geom2)]
        for name, other in (names, names[::-1]):
            if name.startswith(scene.GRIPPER_PREFIX) and other.startswith('block'):
                side = 'left' if 'left' in name else 'right'
                mujoco.mj_contactForce(model, data, i, local)
                sides[side] = round(sides.get(side, 0.0) + float(local[0]), 2)
    return sides


def probe_closing_speed(rig_factory):
    """Free closing of the fingers from open: mean pad speed."""
    rig = rig_factory([])
    cell = rig.cell
    cell.set_gripper(0.0)
    rig.run(1.0)
    start = cell.time
    cell.set_gripper(scene.FINGER_JOINT_MAX)
    q_closed = 0.78
    while cell.finger_position() < 0.95 * q_closed and cell.time - start < 3.0:
        rig.advance()
    seconds = cell.time - start
    speed = 0.085 * 0.95 / seconds  # 85 mm stroke, both pads together
    return ProbeResult(
        'finger_closing_speed', speed * 1e3, [20.0, DRIVER_CLOSING_SPEED * 1e3], 'mm/s',
        '2F-85 closing speed 20-150 mm/s (Robotiq datasheet); the driver default speed '
        'multiplier 1.0 asks for 150 mm/s.', f'95 % of the stroke in {seconds:.2f} s')


def probe_held_block_slip(rig_factory):
    """Grasp an isolated cube, lift, carry to the drop-off: slip of the block in the jaws."""
    rig = rig_factory([cube(-0.5, 0.0)])
    backend = rig.backend
    backend.set_gripper(False)
    backend.move_to(TopDownPose(-0.5, 0.0, 0.15, 0.0))
    backend.move_to(TopDownPose(-0.5, 0.0, CUBE - 0.03, 0.0), linear=True, guarded=True)
    backend.set_gripper(True)
    pinch = rig.cell.model.site(scene.PINCH_SITE).id

    def in_pinch():
        data = rig.cell.data
        rotation = data.site_xmat[pinch].reshape(3, 3)
        return rotation.T @ (rig.block_position(0) - data.site_xpos[pinch])

    start = in_pinch()
    backend.move_to(TopDownPose(-0.5, 0.0, 0.2, 0.0), linear=True)
    backend.move_to(TopDownPose(-0.5, 0.38, 0.2, 0.0))  # the drop-off, as a grasp carries it
    rig.run(0.5)
    slip = float(np.linalg.norm(in_pinch() - start))
    mass = WOOD_DENSITY * CUBE ** 3
    return ProbeResult(
        'held_block_slip_lift_and_transfer', slip * 1e3, 2.0, 'mm',
        f'Two pads, friction ~0.6 x grip force of tens of N hold far more than the {mass * G:.2f} '
        'N weight plus the inertia of a 2 rad/s transfer: the block must not slide in the jaws.',
        f'offset in the pinch frame before {np.round(start * 1e3, 1).tolist()} mm')


def probe_block_sink_under_load(rig_factory):
    """Press a resting cube onto the table with 100 N: how far it sinks into the table."""
    rig = rig_factory([cube(-0.5, 0.0)])
    cell = rig.cell
    body = cell.model.body('block0').id
    half = 0.5 * blocks.load_shapes()['cube'].extents[2]
    rig.run(0.3)
    resting = half - rig.block_position(0)[2]
    cell.data.xfrc_applied[body, :3] = [0.0, 0.0, -100.0]
    rig.run(0.5)
    loaded = half - rig.block_position(0)[2]
    cell.data.xfrc_applied[body, :] = 0.0
    return ProbeResult(
        'block_sink_into_table_under_100N', max(0.0, loaded) * 1e3, 0.5, 'mm',
        'A closing 2F-85 drags a block down with pad friction x grip force (~0.6 x 2 x 120 N) '
        'and a pressing finger adds tens of N; wood on a table compresses by micrometres '
        'under 100 N over 25 cm2, so half a millimetre is generous for soft contacts.',
        f'at rest {max(0.0, resting) * 1e3:.3f} mm')


def probe_block_table_friction(rig_factory):
    """Pull a resting cube sideways with a slowly rising force: friction coefficient at slip."""
    rig = rig_factory([cube(-0.5, 0.0)])
    cell = rig.cell
    body = cell.model.body('block0').id
    mass = float(cell.model.body_mass[body])
    start = rig.block_position(0)
    ramp = 0.5 * mass * G  # N per second
    t0 = cell.time
    force = 0.0
    while np.linalg.norm(rig.block_position(0)[:2] - start[:2]) < 0.0003:
        force = ramp * (cell.time - t0)
        cell.data.xfrc_applied[body, :3] = [force, 0.0, 0.0]
        cell.step(5)
        if force > 2.0 * mass * G:
            break
    cell.data.xfrc_applied[body, :] = 0.0
    return ProbeResult(
        'block_table_friction_coefficient', force / (mass * G), [0.25, 0.5], '',
        "VPG's blocks are wood; dry, clean wood on wood has a static friction coefficient of "
        "0.25-0.5 (Engineering Toolbox / Engineer's Handbook table); the table top is taken "
        'as wood or laminate (an assumption).',
        f'slid at {force:.2f} N for a {mass * 1e3:.0f} g cube')


PROBES = {
    'fingertip_sink': probe_fingertip_sink,
    'guarded_descent': probe_descent_results,
    'corner_grasps': probe_corner_grasps,
    'flush_pair_wedge': probe_flush_pair_wedge,
    'row_middle': probe_row_middle_free_axis,
    'grip_force': probe_grip_force,
    'closing_speed': probe_closing_speed,
    'held_slip': probe_held_block_slip,
    'sink_under_load': probe_block_sink_under_load,
    'table_friction': probe_block_table_friction,
}


# The cell before the contact audit: MuJoCo's default contact softness, friction 1 everywhere
# but the pads, the Menagerie's finger force limit (5) whatever the goal's effort.
BEFORE_AUDIT = {'BLOCK_FRICTION': (1.0, 0.005, 0.003), 'TABLE_FRICTION': (1.0, 0.005, 0.0001),
                'GRIPPER_LINK_FRICTION': (1.0, 0.005, 0.0001),
                'CONTACT_SOLREF': (0.02, 1.0), 'CONTACT_SOLIMP': (0.9, 0.95, 0.001, 0.5, 2.0),
                'GRIPPER_DEFAULT_FORCE': 5.0 * scene.GRIPPER_NEWTONS_PER_UNIT}


def run_probes(names=None, contact_force=CONTACT_FORCE, guarded_speed=None, before=False,
               tool_contact_force=TOOL_CONTACT_FORCE):
    """
    Run the named probes (all by default); returns a list of ProbeResult.

    contact_force, guarded_speed: the executor's robot.contact_force and robot.guarded_speed
    (None: its default); tool_contact_force: the cell's tool contact stop (0: not offered).
    before=True measures the state before the contact audit: the cell with BEFORE_AUDIT's
    settings and the executor's path/stall guard at full joint speed (contact_force 0,
    guarded_speed 0, no tool contact stop), its effort ignored, no rise before closing.
    """
    saved = {name: getattr(scene, name) for name in BEFORE_AUDIT}
    if before:
        contact_force, guarded_speed, tool_contact_force = 0.0, 0.0, 0.0
        for name, value in BEFORE_AUDIT.items():
            setattr(scene, name, value)

    def factory(objects):
        return CellRig(objects, contact_force=contact_force, guarded_speed=guarded_speed,
                       grip_effort=not before, contact_lift=0.0 if before else None,
                       tool_contact_force=tool_contact_force)

    results = []
    try:
        for name in names or PROBES:
            outcome = PROBES[name](factory)
            results.extend(outcome if isinstance(outcome, list) else [outcome])
    finally:
        for name, value in saved.items():
            setattr(scene, name, value)
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', default='results/fidelity/probes.json')
    parser.add_argument('--only', nargs='*', choices=sorted(PROBES))
    parser.add_argument('--contact-force', type=float, default=CONTACT_FORCE,
                        help='executor robot.contact_force, N (0: path/stall guard only)')
    parser.add_argument('--guarded-speed', type=float, default=None,
                        help='executor robot.guarded_speed, m/s (default: its default)')
    parser.add_argument('--tool-contact-force', type=float, default=TOOL_CONTACT_FORCE,
                        help="the cell's tool contact stop, N (0: not offered)")
    parser.add_argument('--before', action='store_true',
                        help='measure the cell and executor as before the contact audit')
    args = parser.parse_args(argv)
    results = run_probes(args.only, args.contact_force, args.guarded_speed, args.before,
                         args.tool_contact_force)
    for r in results:
        print(f'{"PASS" if r.passed else "FAIL"} {r.name}: {r.measured:.3f} {r.unit} '
              f'(limit {r.limit}) {r.detail}')
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    speed = TrajectoryConfig().guarded_speed if args.guarded_speed is None else args.guarded_speed
    out.write_text(json.dumps({'before_audit': args.before,
                               'contact_force': 0.0 if args.before else args.contact_force,
                               'guarded_speed': 0.0 if args.before else speed,
                               'tool_contact_force': (0.0 if args.before
                                                      else args.tool_contact_force),
                               'probes': [r.as_dict() for r in results]}, indent=1) + '\n')
    print(json.dumps({'passed': sum(r.passed for r in results), 'total': len(results)}))
    return 0


if __name__ == '__main__':
    sys.exit(main())
