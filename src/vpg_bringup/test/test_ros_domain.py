"""Domain ids claimed by one process are not handed to another until it exits."""

import subprocess
import sys

from vpg_bringup.ros_domain import claim_free_domain_id


def test_a_claimed_id_is_not_claimed_again(tmp_path):
    first = claim_free_domain_id(range(5, 7), lock_dir=str(tmp_path))
    second = claim_free_domain_id(range(5, 7), lock_dir=str(tmp_path))
    assert {first, second} == {5, 6}
    code = ('import sys; from vpg_bringup.ros_domain import claim_free_domain_id as c\n'
            'try:\n    c(range(5, 7), lock_dir=sys.argv[1])\nexcept RuntimeError:\n'
            '    sys.exit(7)\n')
    other = subprocess.run([sys.executable, '-c', code, str(tmp_path)])
    assert other.returncode == 7  # both ids are held by this process
