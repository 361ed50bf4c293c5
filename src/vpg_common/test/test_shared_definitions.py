"""The shared codes, conversions and types agree with the messages they stand for."""

import hashlib

from builtin_interfaces.msg import Duration, Time
import pytest
from vpg_common import primitives
from vpg_common.files import file_sha256
from vpg_common.gripper_action import action_type, GripperInterface, parse_interface
from vpg_common.qos import TRANSITIONS_QOS, TRANSITIONS_SUBSCRIPTION_QOS
from vpg_common.stamps import (duration_msg, split_seconds, time_msg, to_nanoseconds,
                               to_seconds)
from vpg_interfaces.msg import PrimitiveAction
from vpg_interfaces.srv import ChoosePrimitive


def test_primitive_codes_are_the_messages():
    assert (primitives.PUSH, primitives.GRASP) == (PrimitiveAction.PUSH, PrimitiveAction.GRASP)
    request = ChoosePrimitive.Request
    assert (primitives.ALLOW_BOTH, primitives.PUSH_ONLY, primitives.GRASP_ONLY) == (
        request.ALLOW_BOTH, request.PUSH_ONLY, request.GRASP_ONLY)


@pytest.mark.parametrize('seconds', [0.0, 1.5, 12.999999999, 1e6 + 0.25])
def test_stamps_round_trip(seconds):
    sec, nanosec = split_seconds(seconds)
    assert 0 <= nanosec < 1_000_000_000
    assert isinstance(time_msg(seconds), Time) and isinstance(duration_msg(seconds), Duration)
    assert to_seconds(time_msg(seconds)) == pytest.approx(seconds, abs=1e-9)
    assert to_nanoseconds(duration_msg(seconds)) == sec * 1_000_000_000 + nanosec
    with pytest.raises(ValueError):
        split_seconds(float('nan'))


def test_gripper_action_types():
    assert parse_interface('gripper_command') is GripperInterface.GRIPPER_COMMAND
    with pytest.raises(ValueError, match='parallel_gripper_command'):
        parse_interface('robotiq_serial')
    assert action_type('gripper_command').__name__ == 'GripperCommand'
    assert action_type('parallel_gripper_command').__name__ == 'ParallelGripperCommand'


def test_file_sha256(tmp_path):
    path = tmp_path / 'blob'
    data = bytes(range(256)) * 9000  # more than one read chunk
    path.write_bytes(data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()


def test_transitions_are_kept_for_a_late_trainer():
    assert TRANSITIONS_QOS.depth >= 100
    assert TRANSITIONS_QOS.durability.name == 'TRANSIENT_LOCAL'
    # The trainer's end differs only in its queue depth.
    assert TRANSITIONS_SUBSCRIPTION_QOS.depth == 1000
    for policy in ('reliability', 'durability', 'history'):
        assert getattr(TRANSITIONS_SUBSCRIPTION_QOS, policy) == getattr(TRANSITIONS_QOS, policy)
