"""Executor parameters: declared once with descriptions, validated into the core's configs."""

import pytest
import rclpy
from vpg_executor.parameters import build_parameters, declare_parameters, PARAMETERS


def test_every_parameter_has_a_description_and_a_unique_name():
    names = [name for name, _, _ in PARAMETERS]
    assert len(names) == len(set(names))
    assert all(description for _, _, description in PARAMETERS)


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
        described = node.describe_parameters([name for name, _, _ in PARAMETERS])
        assert all(d.description for d in described)
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
