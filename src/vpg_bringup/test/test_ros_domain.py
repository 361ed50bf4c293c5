"""Domain ids claimed by one process are not handed to another; discovery range of a run."""

import os
import subprocess
import sys

from vpg_bringup.ros_domain import claim_free_domain_id, discovery_range


def test_a_claimed_id_is_not_claimed_again(tmp_path):
    first = claim_free_domain_id(range(5, 7), lock_dir=str(tmp_path))
    second = claim_free_domain_id(range(5, 7), lock_dir=str(tmp_path))
    assert {first, second} == {5, 6}
    code = ('import sys; from vpg_bringup.ros_domain import claim_free_domain_id as c\n'
            'try:\n    c(range(5, 7), lock_dir=sys.argv[1])\nexcept RuntimeError:\n'
            '    sys.exit(7)\n')
    other = subprocess.run([sys.executable, '-c', code, str(tmp_path)])
    assert other.returncode == 7  # both ids are held by this process


_SEGMENT_PROBE = """
import os, rclpy
from vpg_bringup.ros_domain import isolate
isolate()
rclpy.init()
node = rclpy.create_node('segment_probe')
sizes = []
with open('/proc/self/maps') as maps:
    for line in maps:
        path = line.split()[-1]
        name = os.path.basename(path)
        if path.startswith('/dev/shm/fastdds_') and not name.startswith('fastdds_port'):
            sizes.append(os.path.getsize(path))
print(os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'], max(sizes))
node.destroy_node()
rclpy.shutdown()
"""


def test_an_isolated_run_keeps_fast_dds_large_data_segments():
    """
    A camera image fits the shared-memory segment of an isolated run's nodes.

    With LOCALHOST discovery rmw_fastrtps ignored FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA and gave
    every node a 512 KB segment, too small for one 0.9 MB colour image.
    """
    env = dict(os.environ, FASTDDS_BUILTIN_TRANSPORTS='LARGE_DATA')
    env.pop('ROS_AUTOMATIC_DISCOVERY_RANGE', None)
    out = subprocess.run([sys.executable, '-c', _SEGMENT_PROBE], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    discovery, segment = out.stdout.split()[-2:]
    assert int(segment) >= 2 * 640 * 480 * 3  # two colour images
    assert discovery == 'SYSTEM_DEFAULT'


def test_without_fast_dds_transports_discovery_stays_on_this_host():
    assert discovery_range({}) == 'LOCALHOST'
    assert discovery_range({'FASTDDS_BUILTIN_TRANSPORTS': 'LARGE_DATA'}) == 'SYSTEM_DEFAULT'
    assert discovery_range({'FASTDDS_BUILTIN_TRANSPORTS': 'LARGE_DATA'},
                           large_data=False) == 'LOCALHOST'
