"""Executor parameters: declared once with descriptions, validated into the core's configs."""

import math

import pytest
import rclpy
from rclpy.exceptions import InvalidParameterValueException
from vpg_common.parameters import unranged
from vpg_executor.parameters import build_parameters, declare_parameters, PARAMETERS


def test_every_parameter_has_a_description_and_a_unique_name():
    names = [name for name, *_ in PARAMETERS]
    assert len(names) == len(set(names))
    assert all(description for _, _, description, *_ in PARAMETERS)


def test_defaults_build_and_overrides_reach_the_configs():
    params = build_parameters({'robot.model': 'ur5e_menagerie', 'safety.z_min': 0.03,
                               'moveit.params_file': '/x.yaml'})
    assert params.trajectory.model == 'ur5e_menagerie'
    assert params.envelope.z_min == 0.03
    assert params.moveit.params_files == ('/x.yaml',)
    force = build_parameters({'robot.contact_force': 35.0, 'robot.guarded_speed': 0.02,
                              'robot.wrench_max_age': 0.3}).trajectory
    assert (force.contact_force, force.guarded_speed, force.wrench_max_age) == (35.0, 0.02, 0.3)


@pytest.mark.parametrize('values', [{'motion_backend': 'teleport'},
                                    {'robot.home_joints': [0.0] * 5},
                                    {'safety.x_min': 1.0},
                                    {'primitives.dropoff': [0.0, float('nan'), 0.1]},
                                    {'robot.contact_force': -1.0},
                                    {'robot.guarded_speed': float('nan')},
                                    {'robot.wrench_max_age': 0.0}])
def test_invalid_values_raise_at_start(values):
    with pytest.raises(ValueError):
        build_parameters(values)


def test_node_declares_every_parameter():
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = rclpy.create_node('params_probe', context=context,
                                 parameter_overrides=[rclpy.parameter.Parameter(
                                     'robot.model', value='ur5')])
        params = declare_parameters(node)
        assert params.trajectory.model == 'ur5'
        described = node.describe_parameters([name for name, *_ in PARAMETERS])
        assert all(d.description for d in described)
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)


def test_every_number_declares_its_range():
    assert unranged(PARAMETERS) == []
    assert unranged([('probe', 1.0, 'a number without a range')]) == ['probe']


def test_out_of_range_value_is_refused_when_declared():
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = rclpy.create_node('params_probe', context=context,
                                 parameter_overrides=[rclpy.parameter.Parameter(
                                     'robot.contact_force', value=-5.0)])
        with pytest.raises(InvalidParameterValueException,
                           match='robot.contact_force'):
            declare_parameters(node)
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)


def test_moveit_velocity_scaling_above_the_safety_joint_speed_refuses_to_start():
    """The UR's pi rad/s, scaled by MoveIt: 0.2 x pi = 0.63 rad/s would break 0.5 rad/s."""
    real = {'motion_backend': 'moveit', 'safety.max_joint_speed': 0.5}
    with pytest.raises(ValueError, match='exceeds safety.max_joint_speed 0.5 rad/s.*0.159'):
        build_parameters({**real, 'moveit.max_velocity_scaling': 0.2})
    params = build_parameters({**real, 'moveit.max_velocity_scaling': 0.15})
    assert params.moveit.max_velocity_scaling * math.pi <= params.envelope.max_joint_speed
    # The joint-trajectory backend times its own moves within max_joint_speed: no MoveIt check.
    build_parameters({**real, 'motion_backend': 'joint_trajectory',
                      'moveit.max_velocity_scaling': 0.2})


def test_real_cell_configuration_passes_the_velocity_check():
    from pathlib import Path
    import yaml
    config = Path(__file__).resolve().parents[2] / 'vpg_bringup' / 'config' / 'real.yaml'
    values = yaml.safe_load(config.read_text())['/**/executor']['ros__parameters']
    params = build_parameters(values)
    assert params.motion_backend == 'moveit'
    assert params.trajectory.model == 'ur5e'


def test_gripper_settle_settings_reach_the_config_and_bad_ones_raise():
    params = build_parameters({'gripper.settle_time': 0.3, 'gripper.motion_start_timeout': 1.0})
    assert (params.gripper_settle.still_time, params.gripper_settle.start_timeout) == (0.3, 1.0)
    with pytest.raises(ValueError, match='settle'):
        build_parameters({'gripper.settle_tolerance': 0.0})
