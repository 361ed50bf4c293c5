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


def discovery_range(environ=os.environ, large_data=True):
    """
    ROS_AUTOMATIC_DISCOVERY_RANGE for a run: LOCALHOST, unless Fast DDS transports are wanted.

    For LOCALHOST, rmw_fastrtps builds its own transports (UDP on this host and shared memory
    with Fast DDS's default 512 KB segment) and ignores FASTDDS_BUILTIN_TRANSPORTS. A camera
    image (0.9 MB) does not fit such a segment: it goes in fragments that the writer recycles
    when a reader falls behind, and a reliable reader then holds every later image until the
    lost fragment is sent again (heightmaps arrived in bursts up to 7 s late in long training
    runs). With large_data and FASTDDS_BUILTIN_TRANSPORTS set (tools/env.sh sets LARGE_DATA: an
    8.5 MB segment), SYSTEM_DEFAULT leaves the transports to Fast DDS; discovery is then Fast
    DDS's multicast, so the claimed domain id is what keeps runs apart (on this host; a run on
    another host of the same network with the same id would be seen).
    """
    if large_data and environ.get('FASTDDS_BUILTIN_TRANSPORTS'):
        return 'SYSTEM_DEFAULT'
    return 'LOCALHOST'


def isolate(environ=os.environ, large_data=True):
    """Set ROS_DOMAIN_ID to a claimed free id, and the discovery range (discovery_range)."""
    environ['ROS_DOMAIN_ID'] = str(claim_free_domain_id())
    environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = discovery_range(environ, large_data)
    return int(environ['ROS_DOMAIN_ID'])
