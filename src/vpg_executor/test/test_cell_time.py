"""The executor's present time: the node clock, or the newer joint-state stamp."""

import pytest
import rclpy
from rclpy.parameter import Parameter
from rclpy.time import Time
from vpg_executor.executor_node import ExecutorNode

JOINTS = ['shoulder_pan_joint']


@pytest.fixture
def node():
    context = rclpy.Context()
    rclpy.init(context=context)
    executor_node = ExecutorNode(context=context, parameter_overrides=[
        Parameter('use_sim_time', value=True)])
    try:
        yield executor_node
    finally:
        executor_node.destroy_node()
        rclpy.shutdown(context=context)


def _clock_at(node, seconds):
    """Set the node's sim clock as a /clock message would."""
    node.get_clock().set_ros_time_override(Time(seconds=seconds))


def test_the_clock_decides_until_a_newer_joint_state_came(node):
    _clock_at(node, 10.0)
    assert node.cell_time().nanoseconds == 10_000_000_000  # no joint state yet
    node._joint_states.update(JOINTS, [0.0], stamp=9.9)    # older than the clock
    assert node.cell_time().nanoseconds == 10_000_000_000
    # /clock comes a few times per simulated second, joint states more often: the newest
    # stamp is the better "now".
    node._joint_states.update(JOINTS, [0.0], stamp=10.18)
    assert node.cell_time().nanoseconds == 10_180_000_000
    _clock_at(node, 10.2)
    assert node.cell_time().nanoseconds == 10_200_000_000


def test_a_stamp_far_ahead_of_the_clock_is_not_taken(node):
    _clock_at(node, 2.0)
    node._joint_states.update(JOINTS, [0.0], stamp=50.0)  # the clock was set back
    assert node.cell_time().nanoseconds == 2_000_000_000
