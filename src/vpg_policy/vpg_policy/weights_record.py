"""
The record shipped beside a weights file (weights/<name>.json), read without torch.

vpg_training.ship_weights writes it: the command that made the weights, their figures, and the
policy node's parameters they were trained with. Launch files read it, so it must stay cheap
to import.
"""

import json
from pathlib import Path


class WeightsRecordError(ValueError):
    """The record beside a weights file is unreadable or malformed; the message says why."""


def record_path(weights_path):
    """Return the path of the record shipped beside a weights file: weights/<name>.json."""
    return Path(weights_path).with_suffix('.json')


def trained_policy_parameters(weights_path):
    """
    Return the policy node's parameters the weights were trained with, from their record.

    Weights trained with an action mask or grasp centring must be served with the same ones:
    ship_weights writes them into the record as `policy_parameters`. {} without weights,
    without a record, or for a record that names none (trained with the defaults). Raises
    WeightsRecordError for a record that cannot be read or whose parameters are not
    {name: number, bool or string}.
    """
    if not weights_path:
        return {}
    path = record_path(weights_path)
    if not path.is_file():
        return {}
    try:
        record = json.loads(path.read_text(encoding='utf-8'))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise WeightsRecordError(f'weights record {path} is unreadable: {error}') from None
    parameters = record.get('policy_parameters') if isinstance(record, dict) else None
    if parameters is None:
        return {}
    if not isinstance(parameters, dict) or not all(
            isinstance(name, str) and name and isinstance(value, (bool, int, float, str))
            for name, value in parameters.items()):
        raise WeightsRecordError(f'weights record {path}: policy_parameters must map names to '
                                 f'numbers, booleans or strings, got {parameters!r}')
    return dict(parameters)
