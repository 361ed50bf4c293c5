"""
What the live viewer costs the MuJoCo graph: without it, with it and no client, with a client.

Runs the camera + heightmap part of the sim graph (sim, heightmap) in each condition for
--seconds, the conditions interleaved in a shuffled order --rounds times, and measures:
simulated seconds per wall second (how fast the cell runs), heightmaps per second (what
perception delivers), CPU seconds per second of the sim and heightmap processes together, and
of the viewer. The client subscribes to every channel the viewer serves and reads everything.
Prints one JSON object last ([mean, sample sd] over the rounds).

    python bench/viewer.py [--seconds 30] [--rounds 3]
"""

import argparse
import io
import json
import random
import socket
import threading
import time

import numpy as np
import psutil
from vpg_bringup.graph import sim_graph, viewer_spec
from vpg_bringup.ros_domain import isolate
from vpg_bringup.runner import GraphRunner
from vpg_bringup.spun_node import SpunNode
from vpg_bringup.viewer_client import ViewerClient
from rosgraph_msgs.msg import Clock
from vpg_interfaces.msg import Heightmap


def free_port():
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


def cpu_seconds(pid):
    try:
        process = psutil.Process(pid)
        total = sum(p.cpu_times().user + p.cpu_times().system
                    for p in [process] + process.children(recursive=True))
        return total
    except psutil.NoSuchProcess:
        return 0.0


def measure(condition, seconds, warmup):
    port = free_port()
    graph = [s for s in sim_graph(num_objects=10, policy=False) if s.executable != 'executor']
    if condition != 'no viewer':
        graph.append(viewer_spec(port=port, parameters={'use_sim_time': True}))
    runner = GraphRunner(graph, output=io.StringIO())
    spun = SpunNode('viewer_bench')
    heightmaps, clock = [], []
    spun.node.create_subscription(Heightmap, 'heightmap',
                                  lambda m: heightmaps.append(time.monotonic()), 2)
    spun.node.create_subscription(
        Clock, '/clock', lambda m: clock.append(m.clock.sec + 1e-9 * m.clock.nanosec), 10)
    received = [0, 0]
    stop = threading.Event()
    runner.start()
    client = None
    try:
        time.sleep(warmup)
        if condition == 'viewer + client':
            client = ViewerClient(f'ws://127.0.0.1:{port}', open_timeout=30)
            client.wait_for_channels(['/heightmap'], 30)
            client.subscribe(sorted(client.channels))

            def read():
                while not stop.is_set():
                    try:
                        _, _, data = client.receive(timeout=1.0)
                        received[0] += 1
                        received[1] += len(data)
                    except TimeoutError:
                        pass
            reader = threading.Thread(target=read, daemon=True)
            reader.start()
            time.sleep(3.0)
        pids = {name: proc.pid for name, proc in runner.processes.items()}
        start_cpu = {name: cpu_seconds(pid) for name, pid in pids.items()}
        start, count0, received0 = time.monotonic(), len(heightmaps), received[0]
        bytes0, sim0 = received[1], clock[-1] if clock else 0.0
        time.sleep(seconds)
        elapsed = time.monotonic() - start
        sim_speed = ((clock[-1] if clock else 0.0) - sim0) / elapsed
        cpu = {name: (cpu_seconds(pid) - start_cpu[name]) / elapsed
               for name, pid in pids.items()}
        result = {
            'sim_s_per_s': round(sim_speed, 3),
            'heightmaps_per_s': round((len(heightmaps) - count0) / elapsed, 2),
            'graph_cpu_per_s': round(sum(v for k, v in cpu.items() if k != 'viewer'), 3),
            'viewer_cpu_per_s': round(cpu.get('viewer', 0.0), 3),
            'client_msgs_per_s': round((received[0] - received0) / elapsed, 1),
            'client_mbytes_per_s': round((received[1] - bytes0) / elapsed / 1e6, 2),
        }
    finally:
        stop.set()
        if client is not None:
            time.sleep(1.1)
            client.close()
        spun.close()
        runner.stop()
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--seconds', type=float, default=30.0)
    parser.add_argument('--warmup', type=float, default=15.0)
    parser.add_argument('--rounds', type=int, default=3,
                        help='the three conditions are interleaved, this many times')
    args = parser.parse_args()
    print(f'viewer bench: ROS_DOMAIN_ID={isolate()}')
    conditions = ('no viewer', 'viewer, no client', 'viewer + client')
    samples = {condition: [] for condition in conditions}
    order = random.Random(0)
    for round_ in range(args.rounds):
        # A fixed order would confound the conditions with the machine's drifting load.
        for condition in order.sample(conditions, len(conditions)):
            samples[condition].append(measure(condition, args.seconds, args.warmup))
            print(f'round {round_ + 1} {condition:18s} {samples[condition][-1]}', flush=True)
    results = {}
    for condition, runs in samples.items():
        results[condition] = {}
        for key in runs[0]:
            values = np.array([run[key] for run in runs], dtype=float)
            sd = float(values.std(ddof=1)) if len(values) > 1 else 0.0
            results[condition][key] = [round(float(values.mean()), 3), round(sd, 3)]
    print(json.dumps({'benchmark': 'viewer', 'seconds': args.seconds, 'rounds': args.rounds,
                      'format': '[mean, sample sd] over rounds', **results}))


if __name__ == '__main__':
    main()
