"""
Test-only PickAll server: pretends to remove one object per step, 0.1 s apart.

Rejects goals with max_actions == 0, sends one feedback per step and honours cancel
between steps, the contract the real executor keeps.
"""

import time

import rclpy
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node
from vpg_interfaces.action import PickAll
from vpg_interfaces.msg import PrimitiveAction


class PickAllFakeServer(Node):

    def __init__(self):
        super().__init__('pick_all_fake_server')
        self._server = ActionServer(
            self, PickAll, 'pick_all', self._execute,
            goal_callback=self._on_goal, cancel_callback=lambda _: CancelResponse.ACCEPT,
            callback_group=ReentrantCallbackGroup())

    def _on_goal(self, goal):
        return GoalResponse.ACCEPT if goal.max_actions > 0 else GoalResponse.REJECT

    def _execute(self, goal_handle):
        result = PickAll.Result()
        for step in range(1, goal_handle.request.max_actions + 1):
            if goal_handle.is_cancel_requested:
                goal_handle.canceled()
                result.reason_code = PickAll.Result.CANCELED
                result.reason = 'canceled by client'
                return result
            time.sleep(0.1)
            feedback = PickAll.Feedback(step=step, reward=1.0, grasp_success=True,
                                        weights_version=7)
            feedback.action.primitive = PrimitiveAction.GRASP
            feedback.objects_seen_remaining = goal_handle.request.max_actions - step
            goal_handle.publish_feedback(feedback)
            result.actions = result.grasp_attempts = result.grasp_successes = step
            result.objects_removed = step
        goal_handle.succeed()
        result.table_cleared = True
        result.reason_code = PickAll.Result.TABLE_CLEARED
        result.reason = 'table cleared'
        return result


def main():
    try:
        with rclpy.init():
            executor = MultiThreadedExecutor(num_threads=2)
            executor.add_node(PickAllFakeServer())
            executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass


if __name__ == '__main__':
    main()
