"""
When a gripper command is done, judged as ros2_controllers' gripper action controller does.

The Robotiq driver (PickNikRobotics/ros2_robotiq_gripper) exposes the 2F-85 through a gripper
action controller on the finger joint `robotiq_85_left_knuckle_joint` (radians, 0 = open,
0.7929 = fully closed on the hardware). A goal succeeds when the joint comes within
goal_tolerance of the target, or, since the Robotiq configuration allows stalling, when the
fingers stop on an object; it is aborted after goal_timeout. The controller calls the fingers
stalled when their speed stays under a threshold; contact jitter in simulation makes the speed
flicker, so here they are stalled once they have moved less than stall_motion within the last
stall_timeout. Times are simulated seconds. Pure Python.
"""

from dataclasses import dataclass
import enum


@dataclass(frozen=True)
class GripperConfig:
    """
    Completion rules of a gripper goal.

    goal_tolerance, stall_motion: rad; stall_timeout, goal_timeout: s.
    """

    goal_tolerance: float = 0.02
    stall_motion: float = 0.003
    stall_timeout: float = 0.1
    goal_timeout: float = 5.0


class GripperOutcome(enum.Enum):
    """State of a gripper goal."""

    RUNNING = 0
    REACHED = 1
    STALLED = 2
    TIMED_OUT = 3


class GripperGoal:
    """Tracks one goal: feed it the finger joint state after each physics chunk."""

    def __init__(self, target, start_time, config=GripperConfig()):
        self.target = float(target)
        self.config = config
        self._start = float(start_time)
        self._reference = None  # (time, position) the fingers last moved away from
        self.outcome = GripperOutcome.RUNNING

    def update(self, time, position):
        """Update with the finger position (rad) at time (s); returns the outcome."""
        if self.outcome is not GripperOutcome.RUNNING:
            return self.outcome
        if (self._reference is None
                or abs(position - self._reference[1]) > self.config.stall_motion):
            self._reference = (time, position)
        if abs(position - self.target) <= self.config.goal_tolerance:
            self.outcome = GripperOutcome.REACHED
        elif time - self._reference[0] >= self.config.stall_timeout:
            self.outcome = GripperOutcome.STALLED
        elif time - self._start >= self.config.goal_timeout:
            self.outcome = GripperOutcome.TIMED_OUT
        return self.outcome
