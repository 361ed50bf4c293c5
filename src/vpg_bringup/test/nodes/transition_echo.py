"""Test-only node: echoes every Transition from `ping` back on `pong` with step + 1."""

from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from vpg_common.node_runner import run_node
from vpg_interfaces.msg import Transition


class TransitionEcho(Node):

    def __init__(self):
        super().__init__('transition_echo')
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self._pub = self.create_publisher(Transition, 'pong', qos)
        self.create_subscription(Transition, 'ping', self._on_ping, qos)

    def _on_ping(self, msg):
        msg.step += 1
        self._pub.publish(msg)


def main():
    # run_node, not rclpy.spin: rclpy's signal handler can shut the context down while spin
    # builds its wait set, and the node then exits 1 on a plain stop (see node_runner).
    return run_node(TransitionEcho, 'transition_echo')


if __name__ == '__main__':
    raise SystemExit(main())
