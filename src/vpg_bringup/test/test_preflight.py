"""
`python -m vpg_bringup.preflight` against the MuJoCo cell.

Every check passes on a healthy cell; a cell with one fault (camera off, gripper controller
missing, wrong ur_type, no calibration) fails with that fault named and a non-zero exit code.

The cell runs as separate processes (vpg_bringup.runner) with the shipped weights; the preflight
runs as its own process, as a user would start it.
"""

from dataclasses import replace
import io
import os
import re
import subprocess
import sys
import time

import pytest
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from vpg_bringup.graph import sim_graph
from vpg_bringup.pick_all_client import PickAllClient
from vpg_bringup.runner import GraphRunner
from vpg_common.client_node import ClientNode

pytestmark = pytest.mark.slow

WEIGHTS = os.path.join(os.path.dirname(__file__), '..', '..', '..', 'weights',
                       'vpg.safetensors')
# The MuJoCo cell renders at most 2 frames per wall second (vpg_sim camera_max_wall_rate_hz).
SIM_ARGS = ['--camera-rate', '1.0', '--listen', '6']
ALL_CHECKS = {'camera colour', 'camera aligned depth', 'camera_info', 'depth/colour pairing',
              'calibration', 'joint states', 'executor kinematics', 'arm pose vs description',
              'controllers', 'policy weights', 'workspace in reach'}
GRIPPER_ACTION = '/robotiq_gripper_controller/gripper_cmd'


def cell_graph(gripper_action=GRIPPER_ACTION):
    specs = sim_graph(weights=os.path.abspath(WEIGHTS), real_time_factor=1.0)
    if gripper_action != GRIPPER_ACTION:  # the gripper's controller is not where it belongs
        specs = [replace(s, remappings=s.remappings + ((GRIPPER_ACTION, gripper_action),))
                 if s.name == 'sim' else s for s in specs]
    return specs


def start_cell(specs, log):
    runner = GraphRunner(specs, output=log)
    spun = ClientNode('preflight_test')
    runner.start()
    try:
        PickAllClient(spun.node, runner).wait_ready(180.0)
    except BaseException:
        spun.close()
        runner.stop()
        raise
    return runner, spun


def stop_cell(runner, spun, log):
    spun.close()
    codes = runner.stop()
    print(log.getvalue()[-20000:])
    assert not [name for name, code in codes.items() if code not in (0, -15, -2)], codes


@pytest.fixture(scope='module')
def cell():
    log = io.StringIO()
    runner, spun = start_cell(cell_graph(), log)
    try:
        yield runner, spun
    finally:
        stop_cell(runner, spun, log)


def preflight(*args):
    """Run the preflight; return (exit code, {check: 'PASS'|'FAIL'}, output)."""
    done = subprocess.run([sys.executable, '-m', 'vpg_bringup.preflight', *SIM_ARGS, *args],
                          capture_output=True, text=True, timeout=180)
    verdicts = {name: verdict for verdict, name in re.findall(
        r'^(PASS|FAIL) ([^:]+):', done.stdout, re.M)}
    return done.returncode, verdicts, done.stdout + done.stderr


def failed(verdicts):
    return {name for name, verdict in verdicts.items() if verdict == 'FAIL'}


def set_camera(spun, enabled):
    client = spun.node.create_client(SetParameters, '/sim/set_parameters')
    value = ParameterValue(type=ParameterType.PARAMETER_BOOL, bool_value=enabled)
    assert client.wait_for_service(timeout_sec=10.0)
    future = client.call_async(SetParameters.Request(
        parameters=[ParameterMsg(name='camera_enabled', value=value)]))
    deadline = time.monotonic() + 10.0
    while not future.done() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert future.done() and future.result().results[0].successful
    spun.node.destroy_client(client)


def test_missing_gripper_controller_is_named():
    """Its own cell (run before the shared one starts): the gripper's action is elsewhere."""
    log = io.StringIO()
    runner, spun = start_cell(cell_graph(gripper_action='/elsewhere/gripper_cmd'), log)
    try:
        code, verdicts, output = preflight()
    finally:
        stop_cell(runner, spun, log)
    assert failed(verdicts) == {'controllers'}, output
    assert code == 1 and f'gripper action ({GRIPPER_ACTION}) MISSING' in output


def test_healthy_cell_passes_every_check_including_the_gripper(cell):
    code, verdicts, output = preflight('--move', '--yes')
    assert set(verdicts) == ALL_CHECKS | {'gripper open/close'}, output
    assert failed(verdicts) == set(), output
    assert code == 0, output
    assert 'preflight: 12 of 12 checks passed' in output


def test_wrong_ur_type_is_named(cell):
    code, verdicts, output = preflight('--ur-type', 'ur5')
    assert failed(verdicts) == {'executor kinematics', 'arm pose vs description'}, output
    assert code == 1
    assert 'UR5 vs UR5e' in output


def test_missing_calibration_is_named(cell, tmp_path):
    code, verdicts, output = preflight('--calibration-file', str(tmp_path / 'none.yaml'))
    assert failed(verdicts) == {'calibration'}, output
    assert code == 1 and 'does not exist' in output and 'calibrate' in output


def test_camera_off_is_named(cell):
    _, spun = cell
    set_camera(spun, False)
    try:
        code, verdicts, output = preflight()
    finally:
        set_camera(spun, True)
    assert failed(verdicts) == {'camera colour', 'camera aligned depth', 'camera_info',
                                'depth/colour pairing'}, output
    assert code == 1 and 'nothing arrived' in output
