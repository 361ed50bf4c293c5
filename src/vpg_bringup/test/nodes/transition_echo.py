"""Test-only node: echoes every Transition from `ping` back on `pong` with step + 1."""

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
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
    try:
        with rclpy.init():
            rclpy.spin(TransitionEcho())
    except (KeyboardInterrupt, ExternalShutdownException):
        pass


if __name__ == '__main__':
    main()
