"""The record beside a weights file: the policy parameters the weights were trained with."""

import json

import pytest
from vpg_policy.weights_record import (record_path, trained_policy_parameters,
                                       WeightsRecordError)


def test_the_record_is_the_json_beside_the_weights(tmp_path):
    assert record_path(tmp_path / 'vpg.safetensors') == tmp_path / 'vpg.json'


def test_parameters_come_from_the_record(tmp_path):
    weights = tmp_path / 'vpg.safetensors'
    record_path(weights).write_text(json.dumps(
        {'seed': 0, 'policy_parameters': {'action_mask_grasp_clearance': True,
                                          'grasp_centring': 0.016}}))
    assert trained_policy_parameters(weights) == {'action_mask_grasp_clearance': True,
                                                  'grasp_centring': 0.016}
    assert trained_policy_parameters(str(weights)) == trained_policy_parameters(weights)


def test_no_weights_no_record_or_no_field_means_the_defaults(tmp_path):
    weights = tmp_path / 'vpg.safetensors'
    assert trained_policy_parameters('') == {}
    assert trained_policy_parameters(weights) == {}
    record_path(weights).write_text(json.dumps({'seed': 0}))  # shipped before the field
    assert trained_policy_parameters(weights) == {}


@pytest.mark.parametrize('text, fragment', [
    ('{"policy_parameters": ', 'unreadable'),
    ('{"policy_parameters": ["grasp_centring", 0.016]}', 'must map names'),
    ('{"policy_parameters": {"grasp_centring": [0.016]}}', 'must map names'),
    ('{"policy_parameters": {"": 1}}', 'must map names'),
])
def test_a_malformed_record_is_a_clear_error(tmp_path, text, fragment):
    weights = tmp_path / 'vpg.safetensors'
    record_path(weights).write_text(text)
    with pytest.raises(WeightsRecordError, match=fragment):
        trained_policy_parameters(weights)
