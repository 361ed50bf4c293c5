"""
The tool contact action of ur_robot_driver, ur_msgs' type where installed, else an exact copy.

ur_robot_driver's tool_contact_controller (ur_controllers, 2025) serves
`/tool_contact_controller/detect_tool_contact` (ur_msgs/action/ToolContact: no goal, result or
feedback fields). While a goal is active the robot controller runs URScript's tool_contact()
at its 500 Hz control rate along the commanded TCP motion, stops the arm on a contact and the
goal succeeds; cancelling the goal ends the detection. The executor's guarded descents and
the MuJoCo cell (which stands in for the controller) use it through this module.
"""


def action_type():
    """Return the ToolContact action class: ur_msgs' where installed, else vpg_interfaces'."""
    try:
        from ur_msgs.action import ToolContact as action
    except ImportError:  # ur_msgs is not installable everywhere; same (empty) definition
        from vpg_interfaces.action import ToolContact as action
    return action
