"""
The gripper controller's action type, in either of the two that ros2_robotiq_gripper has served.

Before its PR #103 (Nov 2025; the Humble branch still) its 2F-85 configuration ran
position_controllers/GripperActionController: control_msgs/action/GripperCommand, goal
`command.position` + `command.max_effort`. Since then (gripper_controllers was removed in
Kilted) it runs parallel_gripper_action_controller/GripperActionController, available from
Jazzy on: control_msgs/action/ParallelGripperCommand, goal `command` a sensor_msgs/JointState
with exactly one position and optional velocity/effort limits. Both ends of the action (the
executor's client, the MuJoCo cell's server) name it with the same parameter value; where
control_msgs is not installed, identical copies in vpg_interfaces stand in.
"""

import enum


class GripperInterface(str, enum.Enum):
    """Which action type the gripper controller serves."""

    GRIPPER_COMMAND = 'gripper_command'
    PARALLEL_GRIPPER_COMMAND = 'parallel_gripper_command'


def parse_interface(value, name='gripper.interface'):
    """Return the GripperInterface named by value; ValueError naming the choices otherwise."""
    try:
        return GripperInterface(value)
    except ValueError:
        choices = ', '.join(repr(i.value) for i in GripperInterface)
        raise ValueError(f'{name} must be one of {choices}, got {value!r}') from None


def action_type(interface):
    """Return the action class of interface: control_msgs' where installed, else the copy."""
    if parse_interface(interface) is GripperInterface.GRIPPER_COMMAND:
        try:
            from control_msgs.action import GripperCommand as action
        except ImportError:  # control_msgs is not installable everywhere; same definition
            from vpg_interfaces.action import GripperCommand as action
    else:
        try:
            from control_msgs.action import ParallelGripperCommand as action
        except ImportError:
            from vpg_interfaces.action import ParallelGripperCommand as action
    return action
