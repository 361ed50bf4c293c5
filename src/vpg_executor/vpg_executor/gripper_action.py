"""
Goals to and results from the gripper controller's action, in either type it may serve.

The two types and which drivers serve them: vpg_common.gripper_action. The executor parameter
`gripper.interface` says which one the cell runs.
"""

from dataclasses import dataclass
import math

from sensor_msgs.msg import JointState
# The action types themselves: vpg_common.gripper_action, here for the executor's users.
from vpg_common.gripper_action import action_type, GripperInterface  # noqa: F401
from vpg_common.gripper_action import parse_interface


def make_goal(action, interface, joint, position, max_effort):
    """
    Build the goal moving the finger joint to position (rad) with an effort limit.

    ParallelGripperCommand carries the joint by name; its effort limit is sent only when
    positive (the controller then uses it if it has a max-effort interface, else its own
    max_effort parameter).
    """
    position, max_effort = float(position), float(max_effort)
    if not math.isfinite(position) or not math.isfinite(max_effort):
        raise ValueError(f'gripper goal needs finite numbers, got position {position}, '
                         f'max_effort {max_effort}')
    goal = action.Goal()
    if parse_interface(interface) is GripperInterface.GRIPPER_COMMAND:
        goal.command.position = position
        goal.command.max_effort = max_effort
    else:
        goal.command = JointState(name=[joint], position=[position],
                                  effort=[max_effort] if max_effort > 0 else [])
    return goal


def result_position(interface, result):
    """Finger position a result reports (nan where it reports none)."""
    if parse_interface(interface) is GripperInterface.GRIPPER_COMMAND:
        return float(result.position)
    return float(result.state.position[0]) if len(result.state.position) else math.nan


@dataclass(frozen=True)
class SettleConfig:
    """When the finger joint counts as settled after a gripper goal (see SettleDetector)."""

    still_time: float = 0.1
    """Seconds the knuckle must stay within `tolerance` of one position."""
    tolerance: float = 0.005
    """rad; above the 2F-85's position resolution (0.7929 rad / 255 counts = 0.0031 rad)."""
    target_tolerance: float = 0.02
    """rad; a knuckle this close to the commanded position has arrived (the controller's
    goal_tolerance)."""
    start_timeout: float = 0.5
    """Seconds after the goal after which a knuckle that never moved counts as blocked."""

    def __post_init__(self):
        if min(self.still_time, self.tolerance, self.target_tolerance, self.start_timeout) <= 0:
            raise ValueError(f'gripper settle settings must be > 0, got {self}')


class SettleDetector:
    """
    Decide from knuckle positions whether the fingers have finished moving after a goal.

    ros2_robotiq_gripper's hardware interface never updates the knuckle's velocity state, so
    parallel_gripper_action_controller sees a "stall" and, with allow_stalling, reports success
    stall_timeout after accepting the goal, before the fingers have moved. The action's result
    alone therefore says nothing; the knuckle position does. Settled means: still for
    still_time, and either at the target, or moved away from where it started (stopped on an
    object), or start_timeout passed without any motion (already blocked).
    """

    def __init__(self, target, start_position, start_time, config=SettleConfig()):
        self.target, self.start_position = float(target), float(start_position)
        self.start_time, self.config = float(start_time), config
        self._anchor_position, self._anchor_time = float(start_position), float(start_time)
        self.moved = False

    def update(self, time, position):
        """Feed one knuckle position (rad) at time (s); return whether the fingers settled."""
        position, time, c = float(position), float(time), self.config
        if not math.isfinite(position):
            return False
        if abs(position - self.start_position) > c.tolerance:
            self.moved = True
        if abs(position - self._anchor_position) > c.tolerance:
            self._anchor_position, self._anchor_time = position, time
            return False
        if time - self._anchor_time < c.still_time:
            return False
        arrived = abs(position - self.target) <= c.target_tolerance
        return arrived or self.moved or time - self.start_time >= c.start_timeout
