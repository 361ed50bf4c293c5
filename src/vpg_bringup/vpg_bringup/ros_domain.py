"""
Claim a ROS_DOMAIN_ID that no other run on this machine holds.

ROS 2 processes on one host that share a domain id discover each other, so two test runs, or a
test run beside a demo, would cross-talk. A run claims an id by holding an exclusive lock on a
per-id file for as long as it lives; its child processes inherit the environment.
"""

import fcntl
import os
import random
import tempfile

DOMAIN_IDS = range(110, 200)  # clear of 0 (the default) and of the ids people usually pick
_held = []


def claim_free_domain_id(ids=DOMAIN_IDS, lock_dir=None):
    """Lock and return a free domain id; the lock is held until this process exits."""
    lock_dir = lock_dir or tempfile.gettempdir()
    candidates = list(ids)
    random.Random(os.getpid()).shuffle(candidates)
    for domain_id in candidates:
        handle = open(os.path.join(lock_dir, f'vpg_ros2_domain_{domain_id}.lock'), 'w')
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        _held.append(handle)
        return domain_id
    raise RuntimeError(f'no free ROS_DOMAIN_ID in {ids}')


def isolate(environ=os.environ):
    """Set ROS_DOMAIN_ID to a claimed free id and keep discovery on this host."""
    environ['ROS_DOMAIN_ID'] = str(claim_free_domain_id())
    environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    return int(environ['ROS_DOMAIN_ID'])
