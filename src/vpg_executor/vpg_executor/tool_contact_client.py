"""
The robot controller's stop on tool contact, requested through ur_robot_driver's action.

JointTrajectoryBackend arms it for each guarded descent (its `tool_contact`): a goal to
tool_contact_controller's `detect_tool_contact` (ur_msgs/action/ToolContact) before the
descent is sent, cancelled after it. The controller evaluates URScript's tool_contact() every
control cycle and stops the arm itself; the goal then succeeds, and the backend holds the arm
where it stopped. Without the server (controller not active, another driver) start() returns
None and the executor's own wrench and path guards decide alone.
"""

from action_msgs.msg import GoalStatus
from rclpy.action import ActionClient
from vpg_common import tool_contact_action
from vpg_common.futures import wait_future


class ToolContactClient:
    """
    start() arms the stop and returns a ToolContactRequest, or None where it is not offered.

    timeout: seconds to wait for the goal to be accepted and, after end(), to be finished;
    stop: an Event that ends the waits early (node shutdown).
    """

    def __init__(self, node, action_name, timeout, callback_group=None, stop=None):
        self._action = tool_contact_action.action_type()
        self._client = ActionClient(node, self._action, action_name,
                                    callback_group=callback_group)
        self._logger = node.get_logger()
        self._name = action_name
        self._timeout = float(timeout)
        self._stop = stop

    def start(self):
        if not self._client.server_is_ready():
            self._logger.warning(
                f'tool contact action {self._name} not available: guarded descents rely on '
                'the wrench and path guards alone', throttle_duration_sec=60.0)
            return None
        sent = self._client.send_goal_async(self._action.Goal())
        if not wait_future(sent, self._timeout, self._stop) or not sent.result().accepted:
            self._logger.warning(f'tool contact goal not accepted by {self._name}',
                                 throttle_duration_sec=10.0)
            return None
        return ToolContactRequest(sent.result(), self._timeout, self._stop)


class ToolContactRequest:
    """One armed detection: triggered() once the controller stopped the arm on a contact."""

    def __init__(self, handle, timeout, stop=None):
        self._handle = handle
        self._result = handle.get_result_async()
        self._timeout, self._stop = timeout, stop

    def triggered(self):
        if not self._result.done():
            return False
        return self._result.result().status == GoalStatus.STATUS_SUCCEEDED

    def end(self):
        """Cancel detection if it still runs, and wait until the controller is free again."""
        if not self._result.done():
            self._handle.cancel_goal_async()
        wait_future(self._result, self._timeout, self._stop)
