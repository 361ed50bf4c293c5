"""
Workspace-wide pytest setup: every test run gets a DDS domain of its own.

ROS 2 processes on one host that share a ROS_DOMAIN_ID discover each other, so two test runs
(or a test run beside a running demo) would cross-talk. Before any test starts a node, this
claims a domain id no other run on the machine holds (an exclusive lock file per id) and keeps
discovery on localhost. Child processes inherit the environment.
"""

import fcntl
import os
import random
import tempfile

_DOMAIN_IDS = range(110, 200)  # clear of 0 (the default) and of the ids people usually pick
_lock_file = None


def _claim_free_domain_id():
    global _lock_file
    ids = list(_DOMAIN_IDS)
    random.Random(os.getpid()).shuffle(ids)
    for domain_id in ids:
        path = os.path.join(tempfile.gettempdir(), f'vpg_ros2_domain_{domain_id}.lock')
        handle = open(path, 'w')
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        _lock_file = handle  # held until this pytest process exits
        return domain_id
    raise RuntimeError(f'no free ROS_DOMAIN_ID in {_DOMAIN_IDS}')


def pytest_configure(config):
    os.environ['ROS_DOMAIN_ID'] = str(_claim_free_domain_id())
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    os.environ.setdefault('MUJOCO_GL', 'egl')


def pytest_report_header(config):
    return f"ROS_DOMAIN_ID={os.environ.get('ROS_DOMAIN_ID')} (claimed for this run)"
