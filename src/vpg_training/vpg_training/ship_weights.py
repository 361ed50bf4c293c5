"""
Copy a training run's final weights into the repository's weights/ folder with their record.

weights/<name>.safetensors is the run's latest checkpoint (its sha256 checked on the way);
weights/<name>.json holds what produced it: the command that reproduces the run, the seed,
the number of actions, the grasp success over the last 200 attempts, the wall-clock minutes,
and the run's other figures (run.json), and the policy node's parameters the run trained with
(`policy_parameters`: action mask, grasp centring), which every graph serving the weights
applies (vpg_policy.weights_record).

Usage: python -m vpg_training.ship_weights --run-dir results/runs/vpg-seed0 --name vpg
"""

import argparse
import json
import math
import os
import shlex
import shutil
import sys

from vpg_common.parameters import named_values
from vpg_policy.weights import read_weights, WeightsError

REQUIRED = ('command', 'seed', 'actions', 'grasp_success_last200', 'wall_minutes')


def relative_command(command, run_dir):
    """Return the run's command with its run folder relative to the working directory."""
    absolute = os.path.abspath(run_dir)
    return command.replace(absolute, os.path.relpath(absolute))


def policy_parameters_of(run):
    """
    Return the policy node's parameters a run trained with.

    run.json's own field, or, for runs recorded before it, the --policy-param values of the
    run's command.
    """
    if 'policy_parameters' in run:
        return dict(run['policy_parameters'])
    words = shlex.split(run['command'])
    return named_values(value for flag, value in zip(words, words[1:])
                        if flag == '--policy-param')


def ship(run_dir, name, out_dir='weights'):
    """Copy the run's weights to out_dir/<name>.safetensors; return the record written."""
    with open(os.path.join(run_dir, 'run.json')) as stream:
        run = json.load(stream)
    missing = [key for key in REQUIRED + ('weights', 'sha256') if key not in run]
    if missing:
        raise ValueError(f'{run_dir}/run.json lacks {missing}; was the run finished?')
    source = run['weights']
    if not os.path.isabs(source):
        source = os.path.join(run_dir, source)
    # Refuses a corrupt, foreign or tampered file (sha256 of run.json) before it is shipped.
    read_weights(source, expected_sha256=run['sha256'])
    os.makedirs(out_dir, exist_ok=True)
    target = os.path.join(out_dir, name + '.safetensors')
    shutil.copyfile(source, target + '.tmp')
    os.replace(target + '.tmp', target)
    record = {key: run[key] for key in REQUIRED}
    record.update({
        'command': relative_command(run['command'], run_dir),
        'name': name,
        'sha256': run['sha256'],
        'weights_version': run.get('weights_version'),
        'grasp_attempts': run.get('grasp_attempts'),
        'push_success_last200': run.get('push_success_last200'),
        'push_attempts': run.get('push_attempts'),
        'updates': run.get('updates'),
        'policy_parameters': policy_parameters_of(run),
        'size_bytes': os.path.getsize(target),
    })
    # A rate of a primitive never tried (push in a grasp-only run) is null, not NaN (not JSON).
    record = {key: None if isinstance(value, float) and math.isnan(value) else value
              for key, value in record.items()}
    with open(os.path.join(out_dir, name + '.json'), 'w') as stream:
        json.dump(record, stream, indent=1, allow_nan=False)
        stream.write('\n')
    return record


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--run-dir', required=True)
    parser.add_argument('--name', required=True, help='weights/<name>.safetensors')
    parser.add_argument('--out', default='weights')
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        record = ship(args.run_dir, args.name, args.out)
    except (OSError, ValueError, WeightsError) as error:
        print(f'ship_weights: {error}', file=sys.stderr)
        return 1
    print(json.dumps(record, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
