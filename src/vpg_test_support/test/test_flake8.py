"""Style: flake8 with ament's configuration (99 columns, Google import order)."""

from pathlib import Path

import ament_flake8
from ament_flake8.main import main_with_errors
import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[1]


@pytest.mark.flake8
@pytest.mark.linter
def test_flake8(tmp_path):
    # ament's settings, checked in this process: flake8's default worker processes are forked,
    # which can crash when earlier tests left DDS threads running in the test process.
    config = Path(ament_flake8.__file__).parent / 'configuration' / 'ament_flake8.ini'
    serial = tmp_path / 'ament_flake8_serial.ini'
    serial.write_text(config.read_text() + 'jobs = 1\n')
    rc, errors = main_with_errors(argv=['--config', str(serial), str(PACKAGE_DIR)])
    assert rc == 0, 'Found %d code style errors / warnings:\n' % len(errors) + '\n'.join(errors)
