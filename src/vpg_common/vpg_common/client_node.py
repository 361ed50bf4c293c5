"""
A client node for scripts and tests: its own context, spun on a background thread.

Scripts that drive a graph (training, evaluation, soak, preflight) and the tests talk to it
through a node like this one. Its thread spins with a bounded wait rather than
`executor.spin()`, which can miss `executor.shutdown()` and never return (see node_runner).
"""

import threading

import rclpy
from vpg_common.node_runner import make_executor


class ClientNode:
    """
    A node with a context of its own, spun by a thread of its own once started.

    name: the node name; args: ROS command-line arguments (e.g. ['--ros-args', ...]);
    domain_id: None for ROS_DOMAIN_ID's; threads: executor threads; start: spin at once.
    Create action clients before start() where the rclpy version needs it (PickAllClient).
    """

    def __init__(self, name, args=None, domain_id=None, threads=1, start=True):
        self.context = rclpy.Context()
        rclpy.init(args=args, context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = make_executor(threads, self.context)
        self.executor.add_node(self.node)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, name=f'{name}_spin', daemon=True)
        self._closed = False
        if start:
            self.start()

    def start(self):
        """Start spinning (once)."""
        if not self._thread.is_alive() and not self._stop.is_set():
            self._thread.start()
        return self

    def _spin(self):
        while not self._stop.is_set() and self.context.ok():
            self.executor.spin_once(timeout_sec=0.05)

    def stop(self):
        """Stop spinning and shut the executor down (the node stays, e.g. to destroy clients)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self.executor.shutdown()

    def close(self):
        """Stop spinning, destroy the node, shut the context down; later calls do nothing."""
        if self._closed:
            return
        self._closed = True
        self.stop()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
