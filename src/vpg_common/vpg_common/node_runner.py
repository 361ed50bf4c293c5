"""
One way to run a node process: every vpg node's `main()` is `run_node(...)`.

What it does, and why each part is here:

* SIGUSR1 dumps every thread's stack (faulthandler): how GraphRunner.stop shows where a node
  that does not stop hangs.
* SIGINT and SIGTERM only set an Event (rclpy's own handler is off) and the main thread spins
  with a bounded wait, so a stop is seen within one wait. rclpy's handler shuts the context down
  from the signal, which can land while the executor builds its wait set: `spin()` then waits
  with no wake-up and no timeout (rclpy 9's Executor.shutdown destroys the guard it would be
  woken by), and the process is killed at the runner's limit. A second signal while the node
  stops changes nothing, so a summary being written is not cut short.
* The node's `stop()` (when it has one) runs before the executor shuts down: work in progress
  (a goal, an update, a recording) unwinds at once instead of at its timeouts; a string it
  returns is logged once the node is gone (the node's rosout publisher dies with it).
* Exit code: 1 when the node could not be built (one fatal line naming the problem, for the
  exception types the node declares), the node's `exit_code` afterwards (0 when it has none).
  A node that fails on its own shuts its context down, which also ends the spinning.
* With `VPG_PARENT_PID` in the environment (GraphRunner sets it), the node also stops when that
  process is gone: a script killed without a chance to stop its graph leaves no orphans.
"""

import faulthandler
import os
import signal
import threading

import rclpy
from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.logging import get_logger
from rclpy.signals import SignalHandlerOptions

PARENT_PID_ENV = 'VPG_PARENT_PID'
"""Environment variable naming the process whose end also stops the node."""

SPIN_WAIT = 0.25
"""Seconds one spin waits at most: the longest a stop goes unseen."""


def parent_gone(parent_pid):
    """Whether process parent_pid has ended (its pid no longer names a live process)."""
    try:
        os.kill(parent_pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def watched_parent(environ=None):
    """Return the parent pid to watch from the environment, or None (absent or not a pid)."""
    value = (os.environ if environ is None else environ).get(PARENT_PID_ENV, '')
    try:
        pid = int(value)
    except ValueError:
        return None
    return pid if pid > 1 else None


def make_executor(threads, context=None):
    """Return a single-threaded executor for 1 thread, a multi-threaded one for more."""
    if threads < 1:
        raise ValueError(f'threads must be >= 1, got {threads}')
    if threads == 1:
        return SingleThreadedExecutor(context=context)
    return MultiThreadedExecutor(num_threads=threads, context=context)


def run_node(make_node, name, threads=1, startup_errors=(ValueError, OSError), args=None):
    """
    Run the node make_node() builds until SIGINT, SIGTERM, its own failure or its parent's end.

    name: the logger name of the fatal line when the node cannot start. threads: executor
    threads (1 = SingleThreadedExecutor). startup_errors: exception types that mean "cannot
    start" (exit code 1); others propagate. Returns the process exit code.
    """
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    stop = threading.Event()
    parent = watched_parent()
    with rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO) as init:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        try:
            node = make_node()
        except startup_errors as error:
            get_logger(name).fatal(f'cannot start: {error}')
            return 1
        executor = make_executor(threads)
        executor.add_node(node)
        logger_name = node.get_logger().name
        message = None
        try:
            while not stop.is_set() and init.context.ok():
                if parent is not None and parent_gone(parent):
                    node.get_logger().warning(f'process {parent} that started this node is '
                                              'gone; stopping')
                    break
                executor.spin_once(timeout_sec=SPIN_WAIT)
        finally:
            node_stop = getattr(node, 'stop', None)
            if callable(node_stop):
                message = node_stop()
            executor.shutdown()
            node.destroy_node()
        if message:
            get_logger(logger_name).info(str(message))
        return int(getattr(node, 'exit_code', 0) or 0)


__all__ = ['PARENT_PID_ENV', 'make_executor', 'parent_gone', 'run_node', 'watched_parent']
