"""run_node as a process: stops on signals and on its parent's end, exit codes, stop hooks."""

import os
from pathlib import Path
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from vpg_common.node_runner import parent_gone, PARENT_PID_ENV, watched_parent

# A node process: its behaviour is chosen by argv[1]; it prints 'ready' once spinning.
NODE = textwrap.dedent("""
    import sys
    from rclpy.node import Node
    from vpg_common.node_runner import run_node

    mode = sys.argv[1]

    class Probe(Node):
        def __init__(self):
            if mode == 'bad':
                raise ValueError('no such weights file')
            super().__init__('probe')
            self.exit_code = 3 if mode == 'failing' else 0
            self.create_timer(0.05, self.tick)
            self.ticks = 0

        def tick(self):
            self.ticks += 1
            if self.ticks == 1:
                print('ready', flush=True)
            if mode == 'failing' and self.ticks == 3:
                self.context.try_shutdown()  # a node failing on its own

        def stop(self):
            print('stop hook ran', flush=True)
            return 'summary after the node is gone'

    raise SystemExit(run_node(Probe, 'probe'))
""")

# A script that starts the node process and then waits: it is killed in the test.
PARENT = textwrap.dedent("""
    import os, subprocess, sys, time
    env = dict(os.environ, {env}=str(os.getpid()))
    child = subprocess.Popen([sys.executable, sys.argv[1], 'ok'], env=env,
                             stdout=subprocess.PIPE, text=True, start_new_session=True)
    print(child.pid, flush=True)
    print(child.stdout.readline().strip(), flush=True)
    time.sleep(600)
""").format(env=PARENT_PID_ENV)


@pytest.fixture
def node_script(tmp_path):
    path = tmp_path / 'probe_node.py'
    path.write_text(NODE)
    return path


def start(script, mode):
    env = {k: v for k, v in os.environ.items() if k != PARENT_PID_ENV}
    return subprocess.Popen([sys.executable, str(script), mode], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)


def wait_ready(process):
    line = process.stdout.readline()
    assert 'ready' in line, line


@pytest.mark.parametrize('signum', [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_the_node_through_its_stop_hook_with_exit_0(node_script, signum):
    process = start(node_script, 'ok')
    wait_ready(process)
    process.send_signal(signum)
    out, _ = process.communicate(timeout=10)
    assert process.returncode == 0, out
    assert 'stop hook ran' in out and 'summary after the node is gone' in out


def test_a_node_that_cannot_start_exits_1_with_one_fatal_line(node_script):
    process = start(node_script, 'bad')
    out, _ = process.communicate(timeout=30)
    assert process.returncode == 1
    assert 'cannot start: no such weights file' in out and 'Traceback' not in out


def test_a_node_failing_on_its_own_ends_with_its_exit_code(node_script):
    process = start(node_script, 'failing')
    out, _ = process.communicate(timeout=30)
    assert process.returncode == 3, out
    assert 'stop hook ran' in out


def test_the_node_stops_when_the_process_that_started_it_is_killed(node_script, tmp_path):
    parent_script = tmp_path / 'parent.py'
    parent_script.write_text(PARENT)
    parent = subprocess.Popen([sys.executable, str(parent_script), str(node_script)],
                              stdout=subprocess.PIPE, text=True)
    child_pid = int(parent.stdout.readline())
    try:
        assert parent.stdout.readline().strip() == 'ready'
        parent.kill()  # no chance to stop its child
        parent.wait(timeout=10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and Path(f'/proc/{child_pid}').exists():
            status = Path(f'/proc/{child_pid}/status').read_text()
            if 'zombie' in status:
                break
            time.sleep(0.1)
        alive = Path(f'/proc/{child_pid}').exists() and 'zombie' not in Path(
            f'/proc/{child_pid}/status').read_text()
        assert not alive, 'the node outlived the process that started it'
    finally:
        try:
            os.kill(child_pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_parent_pid_from_the_environment():
    assert watched_parent({PARENT_PID_ENV: '4242'}) == 4242
    assert watched_parent({PARENT_PID_ENV: 'x'}) is None
    assert watched_parent({PARENT_PID_ENV: '1'}) is None  # init: nothing to watch
    assert watched_parent({}) is None
    assert not parent_gone(os.getpid())
    finished = subprocess.Popen([sys.executable, '-c', 'pass'])
    finished.wait()
    assert parent_gone(finished.pid)
