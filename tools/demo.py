"""
`make demo`: smoke run of the ROS graph.

Starts a stand-in PickAll server as its own ROS 2 process, sends it one goal from this process
(as another ROS system would), and prints the feedback and the result. The MuJoCo cell, the
perception, policy and executor nodes replace the stand-in as they land.
"""

import os
from pathlib import Path
import subprocess
import sys
import time

import rclpy
from rclpy.action import ActionClient
from vpg_interfaces.action import PickAll

ROOT = Path(__file__).resolve().parents[1]
STAND_IN = ROOT / 'src' / 'vpg_bringup' / 'test' / 'nodes' / 'pick_all_fake_server.py'


def main():
    server = subprocess.Popen([sys.executable, str(STAND_IN)], env=dict(os.environ))
    try:
        with rclpy.init():
            node = rclpy.create_node('demo_client')
            client = ActionClient(node, PickAll, 'pick_all')
            if not client.wait_for_server(timeout_sec=30):
                print('demo: no pick_all server after 30 s', file=sys.stderr)
                return 1
            print('demo: sending pick_all goal (max_actions=5) to the stand-in server')
            goal = PickAll.Goal(max_actions=5, max_consecutive_failures=3)
            future = client.send_goal_async(goal, feedback_callback=lambda fb: print(
                f'  step {fb.feedback.step}: reward {fb.feedback.reward:.1f}, '
                f'{fb.feedback.objects_seen_remaining} objects seen remaining'))
            rclpy.spin_until_future_complete(node, future, timeout_sec=10)
            handle = future.result()
            if handle is None or not handle.accepted:
                print('demo: goal was not accepted', file=sys.stderr)
                return 1
            result_future = handle.get_result_async()
            rclpy.spin_until_future_complete(node, result_future, timeout_sec=60)
            if not result_future.done():
                print('demo: no result within 60 s', file=sys.stderr)
                return 1
            result = result_future.result().result
            print(f'demo: result: {result.reason} (code {result.reason_code}), '
                  f'{result.objects_removed} removed in {result.actions} actions')
            return 0 if result.table_cleared else 1
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
        time.sleep(0.1)


if __name__ == '__main__':
    sys.exit(main())
