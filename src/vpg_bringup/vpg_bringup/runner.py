"""
Run a node graph as separate processes where `ros2 launch` is not available.

Each node of a graph description (vpg_bringup.graph) becomes its own process, started with the
same ROS arguments launch_ros would give it. Output lines are forwarded with the node's name in
front. Everything stops on Ctrl-C / SIGTERM, or as soon as one node exits unexpectedly, and the
run then reports failure (non-zero exit).

    python -m vpg_bringup.runner sim [--seed 3] [--cell cell0] [--weights path]
"""

import argparse
import os
import signal
import subprocess
import sys
import threading
import time

from ament_index_python.packages import get_package_prefix, get_package_share_directory
from vpg_bringup import graph
from vpg_common.node_runner import PARENT_PID_ENV


class NodeDied(RuntimeError):
    """A node process exited while the graph was meant to be running."""


class GraphStopped(NodeDied):
    """stop() was called while something still waited on the graph (e.g. on Ctrl-C)."""


def package_executable(package, executable):
    path = os.path.join(get_package_prefix(package), 'lib', package, executable)
    if not os.access(path, os.X_OK):
        raise FileNotFoundError(f'no executable {executable!r} in package {package!r} ({path})')
    return path


def config_directory():
    return os.path.join(get_package_share_directory('vpg_bringup'), 'config')


class GraphRunner:
    """Start, watch and stop the processes of one graph; usable as a context manager."""

    def __init__(self, specs, config_dir=None, env=None, output=None, stop_timeout=10.0):
        self.specs = list(specs)
        self.config_dir = config_dir or config_directory()
        # The ROS wheels re-exec Python with their library path: pass the environment whole.
        # Each node also stops when this process is gone (vpg_common.node_runner), so a script
        # killed before it could stop its graph leaves no node behind.
        self.env = dict(os.environ if env is None else env, **{PARENT_PID_ENV: str(os.getpid())})
        self.output = output or sys.stdout
        self.stop_timeout = stop_timeout
        self.processes = {}
        self._threads = []
        self._stopping = False
        self._lock = threading.Lock()
        self._specs = {}
        self._killed = set()
        self._stop_lock = threading.Lock()

    def command(self, spec):
        base = list(spec.command) or [package_executable(spec.package, spec.executable)]
        return base + spec.ros_arguments(self.config_dir)

    def start(self):
        names = [spec.namespace + '/' + spec.name for spec in self.specs]
        if len(set(names)) != len(names):
            raise ValueError(f'duplicate node names in graph: {names}')
        with self._stop_lock:  # a stop() from another thread comes before or after, whole
            if self._stopping:
                raise GraphStopped('the graph was stopped before it started')
            for spec, name in zip(self.specs, names):
                self._spawn(spec, name.lstrip('/'))
        return self

    def _spawn(self, spec, name):
        process = subprocess.Popen(self.command(spec), env=self.env,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, text=True, bufsize=1,
                                   start_new_session=True)
        self.processes[name] = process
        self._specs[name] = spec
        thread = threading.Thread(target=self._forward, args=(name, process), daemon=True)
        thread.start()
        self._threads.append(thread)

    def kill(self, name, sig=signal.SIGKILL, timeout=10.0):
        """Kill one node (fault injection); check() ignores it until respawn(name)."""
        process = self.processes[name]
        self._killed.add(name)
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass
        return process.wait(timeout)

    def respawn(self, name):
        """Start a node killed with kill() again, with its original command."""
        if name not in self._killed:
            raise ValueError(f'{name} was not killed with kill()')
        self._spawn(self._specs[name], name)
        self._killed.discard(name)

    def _forward(self, name, process):
        for line in process.stdout:
            with self._lock:
                self.output.write(f'[{name}] {line}')
                self.output.flush()

    def dead(self):
        """Names and exit codes of processes that have exited."""
        return {name: p.returncode for name, p in self.processes.items()
                if p.poll() is not None and name not in self._killed}

    def check(self):
        """
        Raise NodeDied when any node has exited while the graph should be running.

        Once stop() was called, raise GraphStopped: whoever still waits on the graph (a
        goal's result in another thread) gives up at once instead of at its timeout.
        """
        if self._stopping:
            raise GraphStopped('the graph was stopped')
        dead = self.dead()
        if dead:
            raise NodeDied('node exited unexpectedly: ' + ', '.join(
                f'{name} (exit code {code})' for name, code in sorted(dead.items())))

    def wait(self, timeout=None, poll=0.2):
        """Block until a node dies (raises NodeDied) or timeout seconds pass."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while deadline is None or time.monotonic() < deadline:
            self.check()
            time.sleep(poll)

    def stop(self):
        """
        SIGTERM every node, SIGKILL what is still running after stop_timeout; return codes.

        Safe to call from several threads (the later calls wait for the first) and again.
        """
        with self._stop_lock:
            if not self._stopping:
                self._stop()
        return {name: p.returncode for name, p in self.processes.items()}

    def _stop(self):
        self._stopping = True
        for process in self.processes.values():
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        started = time.monotonic()
        deadline = started + self.stop_timeout
        for name, process in self.processes.items():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
                self._note(f'{name} stopped in {time.monotonic() - started:.1f} s '
                           f'(exit code {process.returncode})')
            except subprocess.TimeoutExpired:
                self._note(f'{name} still running {self.stop_timeout:g} s after SIGTERM: '
                           'the stacks of its threads follow, then SIGKILL')
                self._dump_stacks(process)
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                process.wait()
        for thread in self._threads:
            thread.join(timeout=2.0)

    def _note(self, message):
        with self._lock:
            self.output.write(f'[runner] {message}\n')
            self.output.flush()

    @staticmethod
    def _dump_stacks(process, wait=2.0):
        """Ask a hung node for its threads' Python stacks (nodes register SIGUSR1 for that)."""
        try:
            os.kill(process.pid, signal.SIGUSR1)
            process.wait(wait)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f'signal {signum}')


def raise_keyboard_interrupt_on(*signums):
    """
    Make these signals raise KeyboardInterrupt, so the graphs are stopped by `with`/`finally`.

    Only in the main thread (signal handlers can be set nowhere else); a no-op elsewhere.
    """
    if threading.current_thread() is threading.main_thread():
        for signum in signums:
            signal.signal(signum, _interrupt)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('graph', choices=['sim'], help='which graph to run')
    parser.add_argument('--cell', default='', help='namespace of the cell')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--num-objects', type=int, default=10)
    parser.add_argument('--weights', default='', help='policy weights (.safetensors)')
    parser.add_argument('--device', default='auto')
    parser.add_argument('--real-time-factor', type=float, default=0.0)
    args = parser.parse_args(argv)
    specs = graph.sim_graph(cell=args.cell, seed=args.seed, num_objects=args.num_objects,
                            weights=args.weights, device=args.device,
                            real_time_factor=args.real_time_factor)
    runner = GraphRunner(specs)
    # Also SIGINT: a shell starts background jobs with SIGINT ignored, and Python keeps that.
    raise_keyboard_interrupt_on(signal.SIGINT, signal.SIGTERM)
    try:
        with runner:
            runner.wait()
    except KeyboardInterrupt:
        print('runner: stopping on request', file=sys.stderr)
        return 0
    except NodeDied as error:
        print(f'runner: {error}; stopped the graph', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
