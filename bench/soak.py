"""
Soak: 500 primitives on the MuJoCo graph; memory of every node and the action rate.

A thin wrapper over vpg_bringup.soak (see its docstring); took 17 minutes on a
2-core machine. Usage: python bench/soak.py [--primitives N] [--weights PATH]
The last line printed is one JSON object.
"""

import sys

from vpg_bringup.soak import main

if __name__ == '__main__':
    sys.exit(main())
