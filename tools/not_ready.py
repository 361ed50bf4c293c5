"""Placeholder for Makefile targets whose pipeline is not in the workspace yet."""

import sys

TARGETS = {
    'train': 'online training in the MuJoCo cell (vpg_trainer + the node graph)',
    'eval': "VPG's evaluation protocol over the node graph",
}

if __name__ == '__main__':
    target = sys.argv[1]
    print(f'make {target}: {TARGETS[target]} is not available yet in this workspace.',
          file=sys.stderr)
    sys.exit(2)
