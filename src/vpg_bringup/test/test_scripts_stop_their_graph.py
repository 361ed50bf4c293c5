"""
A signal to a script that starts a graph stops every node it started: no orphans.

The nodes run in sessions of their own (GraphRunner), so a signal to the script does not reach
them; each script turns SIGTERM into KeyboardInterrupt and stops its graph on the way out. A
script killed while its graph runs used to leave the nodes running (parent 1).
"""

import os
from pathlib import Path
import re
import signal
import subprocess
import sys
import time

import pytest

ROOT = Path(__file__).resolve().parents[3]


def _children(pid):
    found = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open(f'/proc/{entry}/stat') as stream:
                parent = int(stream.read().rsplit(')', 1)[1].split()[1])
            with open(f'/proc/{entry}/cmdline', 'rb') as stream:
                command = stream.read().decode(errors='replace')
        except (OSError, IndexError, ValueError):
            continue
        if parent == pid:
            found.append((int(entry), command))
    return found


def _graph_nodes(pid):
    """Node processes (ROS '__node:=' in their command line) below pid, at any depth."""
    nodes, queue = [], [pid]
    while queue:
        for child, command in _children(queue.pop()):
            queue.append(child)
            if re.search(r'__node:=', command):
                nodes.append(child)
    return nodes


def _command(pid):
    try:
        with open(f'/proc/{pid}/cmdline', 'rb') as stream:
            return stream.read().replace(b'\0', b' ').decode(errors='replace').strip()
    except OSError:
        return '?'


def _alive(pid):
    try:
        with open(f'/proc/{pid}/stat') as stream:
            return stream.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except OSError:
        return False


SCRIPTS = {
    'demo': lambda tmp: [sys.executable, str(ROOT / 'tools' / 'demo.py'), '--out',
                         str(tmp / 'demo'), '--no-record'],
    'soak': lambda tmp: [sys.executable, '-m', 'vpg_training.soak', '--primitives', '500',
                         '--out', str(tmp / 'soak' / 'soak.json')],
    'train': lambda tmp: [sys.executable, '-m', 'vpg_training.training_run', '--run-dir',
                          str(tmp / 'run'), '--actions', '1000'],
    'bench_actions': lambda tmp: [sys.executable, str(ROOT / 'bench' / 'actions.py'),
                                  '--keep', str(tmp / 'bench')],
}


@pytest.mark.slow
@pytest.mark.parametrize('script,signum', [(script, signal.SIGTERM) for script in sorted(SCRIPTS)]
                         + [('soak', signal.SIGKILL)])
def test_a_signal_to_the_script_leaves_no_node_running(script, signum, tmp_path):
    """
    SIGTERM: the script stops its graph. SIGKILL: it cannot, and each node stops on its own.

    Every node's runner (vpg_common.node_runner) watches the process that started it.
    """
    process = subprocess.Popen(SCRIPTS[script](tmp_path), cwd=ROOT, env=dict(os.environ),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    nodes = []
    try:
        deadline = time.monotonic() + 120
        while len(nodes) < 4 and time.monotonic() < deadline and process.poll() is None:
            time.sleep(1.0)
            nodes = _graph_nodes(process.pid)
        assert len(nodes) >= 4, f'{script} did not start its graph (nodes: {nodes})'
        time.sleep(2.0)  # the node processes exist (some may still be starting)
        process.send_signal(signum)
        process.wait(timeout=90)
        # A node still starting (imports, model, physics: tens of seconds when the machine is
        # busy) sees its parent's end only once it spins; so the bound is generous.
        deadline = time.monotonic() + 60
        while any(_alive(pid) for pid in nodes) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = [(pid, _command(pid)) for pid in nodes if _alive(pid)]
        assert not left, f'{script}: nodes {left} still running 60 s after the script ended'
    finally:
        if process.poll() is None:
            process.kill()
        for pid in nodes:
            if _alive(pid):
                os.killpg(pid, signal.SIGKILL)
