"""
The gripper controller's action, in either of the two types ros2_robotiq_gripper has served.

Up to Jazzy its 2F-85 configuration ran position_controllers/GripperActionController:
control_msgs/action/GripperCommand, goal `command.position` + `command.max_effort`. From Kilted
on (the gripper_controllers package was removed) it runs
parallel_gripper_action_controller/GripperActionController: control_msgs/action/
ParallelGripperCommand, goal `command` a sensor_msgs/JointState with exactly one position and
optional velocity/effort limits. The executor parameter `gripper.interface` says which one the
cell runs; where control_msgs is not installed, identical copies in vpg_interfaces stand in.
"""

import enum
import math

from sensor_msgs.msg import JointState


class GripperInterface(str, enum.Enum):
    """Which action type the gripper controller serves."""

    GRIPPER_COMMAND = 'gripper_command'
    PARALLEL_GRIPPER_COMMAND = 'parallel_gripper_command'


def parse_interface(value):
    """Return the GripperInterface named by value; ValueError naming the choices otherwise."""
    try:
        return GripperInterface(value)
    except ValueError:
        choices = ', '.join(repr(i.value) for i in GripperInterface)
        raise ValueError(f'gripper.interface must be one of {choices}, got {value!r}') from None


def action_type(interface):
    """Return the action class of interface: control_msgs' where installed, else the copy."""
    if parse_interface(interface) is GripperInterface.GRIPPER_COMMAND:
        try:
            from control_msgs.action import GripperCommand as action
        except ImportError:
            from vpg_interfaces.action import GripperCommand as action
    else:
        try:
            from control_msgs.action import ParallelGripperCommand as action
        except ImportError:
            from vpg_interfaces.action import ParallelGripperCommand as action
    return action


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
