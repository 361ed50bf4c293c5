"""Goals for both gripper action types; bad values refused before anything is sent."""

import math

import pytest

from vpg_executor.gripper_action import (action_type, GripperInterface, make_goal,
                                         parse_interface, result_position)
from vpg_executor.parameters import build_parameters

JOINT = 'robotiq_85_left_knuckle_joint'


def test_gripper_command_goal_carries_position_and_effort():
    action = action_type('gripper_command')
    assert action.__name__ == 'GripperCommand'
    goal = make_goal(action, 'gripper_command', JOINT, 0.79, 40.0)
    assert goal.command.position == pytest.approx(0.79)
    assert goal.command.max_effort == pytest.approx(40.0)


def test_parallel_gripper_command_goal_names_the_joint_once():
    action = action_type(GripperInterface.PARALLEL_GRIPPER_COMMAND)
    assert action.__name__ == 'ParallelGripperCommand'
    goal = make_goal(action, 'parallel_gripper_command', JOINT, 0.5, 40.0)
    assert list(goal.command.name) == [JOINT]
    assert list(goal.command.position) == pytest.approx([0.5])
    assert list(goal.command.effort) == pytest.approx([40.0])
    assert list(goal.command.velocity) == []  # the controller's own max_velocity applies
    # No effort limit: the field stays empty, so the controller uses its max_effort parameter.
    assert list(make_goal(action, 'parallel_gripper_command', JOINT, 0.5, 0.0).command.effort) \
        == []


@pytest.mark.parametrize('interface', list(GripperInterface))
def test_non_finite_goals_are_refused(interface):
    action = action_type(interface)
    with pytest.raises(ValueError, match='finite'):
        make_goal(action, interface, JOINT, math.nan, 40.0)
    with pytest.raises(ValueError, match='finite'):
        make_goal(action, interface, JOINT, 0.5, math.inf)


def test_result_position_of_both_types():
    result = action_type('gripper_command').Result(position=0.61)
    assert result_position('gripper_command', result) == pytest.approx(0.61)
    parallel = action_type('parallel_gripper_command').Result()
    assert math.isnan(result_position('parallel_gripper_command', parallel))
    parallel.state.position = [0.42]
    assert result_position('parallel_gripper_command', parallel) == pytest.approx(0.42)


def test_unknown_interface_is_a_clear_error_at_start_up():
    with pytest.raises(ValueError, match='gripper.interface must be one of'):
        parse_interface('robotiq_serial')
    with pytest.raises(ValueError, match='gripper.interface'):
        build_parameters({'gripper.interface': 'GripperCommand'})
    assert build_parameters({}).values['gripper.interface'] == 'parallel_gripper_command'
