"""
The executor's primitives run in-process on the MuJoCo cell core: no ROS graph, one thread.

The executor drives an arm through `JointTrajectoryBackend` with its I/O injected: a
publish_trajectory callable, a gripper_command callable and a `JointStateCache` fed by
/joint_states. Here the same backend class and the same `PrimitiveExecutor` get I/O that talks
to a `vpg_sim.cell.Cell` directly:

* trajectories go to `Cell.set_trajectory`, as the sim node's trajectory callback does;
* joint states are read off the cell every 1/joint_state_rate_hz simulated seconds, and a wait
  for the arm steps the cell forward instead of sleeping (`SteppedJointStates`), so every
  guarded-descent and arrival check of the executor runs unchanged on simulated time;
* a gripper command sets the finger target and steps until the goal is reached or stalled,
  judged by the sim node's own rule (`vpg_sim.gripper.GripperGoal`);
* guarded descents arm the cell's stop on tool contact directly
  (`vpg_sim.tool_contact.CellToolContact`), as the executor does through the sim node's action.
  No tool wrench is fed: the executor's wrench guard, which only stands beside that stop, is
  left out.

What is left out is the transport: no message latency and no real-time pacing, so a run is
deterministic. Parameters come from the sim graph's config (vpg_bringup config/sim.yaml:
the executor's and the sim node's sections), so the primitives here are the ones the graph runs.
"""

import math
from pathlib import Path

from ament_index_python.packages import get_package_share_directory
import numpy as np
from vpg_executor.motion import JointStateCache, MotionError
from vpg_executor.parameters import build_parameters
from vpg_executor.primitives import PrimitiveExecutor
from vpg_executor.trajectory_backend import JointTrajectoryBackend
from vpg_sim import scene
from vpg_sim.cell import BlockState, Cell, CellConfig
from vpg_sim.gripper import GripperConfig, GripperGoal, GripperOutcome
from vpg_sim.tool_contact import CellToolContact
from vpg_sim.trajectory import TrajectoryError, TrajectoryPoint
import yaml


def sim_config_path():
    """Path of vpg_bringup's config/sim.yaml (installed share directory, else the source tree)."""
    try:
        path = Path(get_package_share_directory('vpg_bringup')) / 'config' / 'sim.yaml'
        if path.exists():
            return path
    except (ImportError, LookupError, OSError):  # not installed, or no ament environment
        pass
    return Path(__file__).resolve().parents[2] / 'vpg_bringup' / 'config' / 'sim.yaml'


def graph_parameters(path=None):
    """
    Read the sim graph's parameter values: (sim node's dict, executor's dict).

    Read from the `/**/sim` and `/**/executor` sections of config/sim.yaml (or `path`).
    """
    data = yaml.safe_load(Path(path or sim_config_path()).read_text(encoding='utf-8'))

    def section(node):
        for key, value in data.items():
            if key.split('/')[-1] == node:
                return dict((value or {}).get('ros__parameters', {}))
        return {}

    return section('sim'), section('executor')


class SteppedJointStates(JointStateCache):
    """
    A JointStateCache filled from a Cell; waiting on it advances the cell.

    Joint states are taken at multiples of 1/rate_hz simulated seconds, as the sim node
    publishes them, stamped with the cell's time; the arm joints under scene.ARM_JOINTS and
    the finger under `finger_joint` (the driver's name the executor reads).
    """

    def __init__(self, cell, rate_hz, finger_joint):
        super().__init__()
        if not rate_hz > 0:
            raise ValueError(f'joint state rate must be > 0 Hz, got {rate_hz}')
        self.cell = cell
        self.period = 1.0 / float(rate_hz)
        self._names = list(scene.ARM_JOINTS) + [finger_joint]
        self.sample()

    def sample(self):
        """Store the cell's joint positions now, stamped with its time."""
        positions = [*self.cell.arm_position(), self.cell.finger_position()]
        self.update(self._names, positions, stamp=self.cell.time)

    def tick(self):
        """Step the cell to the next joint-state time and sample it."""
        next_time = (math.floor(self.cell.time / self.period + 1e-6) + 1) * self.period
        self.cell.advance_to(next_time)
        self.sample()

    def wait_for(self, names, predicate, timeout):
        """Step until predicate(positions) holds (positions) or timeout simulated s pass (None)."""
        start = self.cell.time
        while True:
            values = self.get(names)
            if values is not None and predicate(values):
                return values
            if self.cell.time - start >= timeout:
                return None
            self.tick()


class CellRobot:
    """
    The executor's PrimitiveExecutor on a JointTrajectoryBackend wired to a Cell in-process.

    `robot` has push, grasp and go_home exactly as the executor node runs them; `cell` is the
    physics. Built from the sim graph's parameters (graph_parameters) unless others are given.
    """

    def __init__(self, cell=None, sim_values=None, executor_values=None):
        if sim_values is None or executor_values is None:
            graph_sim, graph_executor = graph_parameters()
            sim_values = graph_sim if sim_values is None else sim_values
            executor_values = graph_executor if executor_values is None else executor_values
        self.params = build_parameters(executor_values)
        if cell is None:
            cell = Cell(CellConfig(timestep=float(sim_values.get('physics_timestep', 0.002)),
                                   removal_height=float(sim_values.get('removal_height', 0.1))))
        self.cell = cell
        self.gripper_config = GripperConfig()
        self.joint_states = SteppedJointStates(
            cell, float(sim_values.get('joint_state_rate_hz', 100.0)),
            self.params.trajectory.gripper_joint)
        # The sim node's stop on tool contact, where the graph serves and the executor uses it.
        tool_contact_force = float(sim_values.get('tool_contact_force', 20.0))
        tool_contact = (CellToolContact(cell, tool_contact_force)
                        if tool_contact_force > 0
                        and self.params.values['robot.tool_contact_action'] else None)
        self.backend = JointTrajectoryBackend(
            self.params.trajectory, self.params.envelope, self.joint_states,
            self._publish_trajectory, self._gripper_command, tool_contact=tool_contact)
        self.robot = PrimitiveExecutor(self.backend, self.params.primitives)
        self.gripper_timeout = float(self.params.values['gripper.timeout'])

    def _publish_trajectory(self, joint_names, times, positions, velocities):
        points = [TrajectoryPoint(tuple(float(x) for x in q), tuple(float(x) for x in qd), (),
                                  float(t))
                  for t, q, qd in zip(times, positions, velocities)]
        try:
            self.cell.set_trajectory(joint_names, points)
        except TrajectoryError as error:
            # The sim node logs and drops such a trajectory; the executor then times out.
            raise MotionError(f'trajectory rejected by the cell: {error}') from error

    def _gripper_command(self, position, max_effort):
        target = self.cell.set_gripper(position)
        goal = GripperGoal(target, self.cell.time, self.gripper_config)
        start = self.cell.time
        while goal.update(self.cell.time, self.cell.finger_position()) is GripperOutcome.RUNNING:
            if self.cell.time - start > self.gripper_timeout:
                raise MotionError(f'gripper did not finish within {self.gripper_timeout} s')
            self.joint_states.tick()
        self.joint_states.sample()

    def reset(self, objects):
        """Place objects (vpg_sim ObjectSpec list), let them settle, send the arm home."""
        self.cell.reset(objects)
        self.cell.settle()
        self.joint_states.sample()
        self.robot.go_home()

    def sync(self):
        """Re-read the joint states after the cell's state was restored from a copy."""
        # The restored clock is earlier than the newest stamp the cache holds.
        self.joint_states.reset_clock()
        self.joint_states.sample()

    def block_positions(self):
        """Centres (N, 3) of the blocks, NaN rows for blocks no longer in the scene (m)."""
        rows = [position if state is BlockState.IN_SCENE else np.full(3, np.nan)
                for _, state, position, _ in self.cell.block_poses()]
        return np.array(rows).reshape(-1, 3)
