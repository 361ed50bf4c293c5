"""Waiting on rclpy futures from a worker thread while the node's executor resolves them."""

import threading
import time


def wait_future(future, timeout, stop=None):
    """Block the calling (worker) thread until future is done; False on timeout or stop."""
    done = threading.Event()
    future.add_done_callback(lambda _: done.set())
    deadline = time.monotonic() + timeout
    while not done.wait(max(0.0, min(0.1, deadline - time.monotonic()))):
        if (stop is not None and stop.is_set()) or time.monotonic() >= deadline:
            return future.done()
    return True
