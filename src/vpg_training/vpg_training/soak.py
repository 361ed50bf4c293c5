"""
Soak run: many primitives on the MuJoCo graph, the memory of every node and the action rate.

Runs the sim graph (sim, heightmap, policy, executor: separate processes) through /pick_all
episodes until `--primitives` actions have run, resetting the scene whenever an episode ends.
Every `--sample-every` actions it reads each node's resident memory (all processes of its
process group, from /proc) and the action rate of the last window. Prints one JSON object
and writes it to `--out`: crashed nodes, memory per node (after warm-up, at the end, the
growth), the action rate of the first and last windows, why episodes ended.

Usage: python -m vpg_training.soak [--primitives 500] [--weights PATH] [--out FILE]
"""

import argparse
from collections import Counter
import json
import os
import re
import signal
import sys
import time

from vpg_bringup.graph import sim_graph
from vpg_bringup.pick_all_client import PickAllClient, PickAllClientError
from vpg_bringup.progress import Progress
from vpg_bringup.ros_domain import isolate
from vpg_bringup.runner import GraphRunner, NodeDied, raise_keyboard_interrupt_on
from vpg_common.client_node import ClientNode
from vpg_interfaces.action import PickAll


def group_rss_mb(pgid):
    """Resident memory (MB) of every process in process group pgid (0 if none left)."""
    total_kb = 0
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open(f'/proc/{entry}/stat') as stream:
                fields = stream.read().rsplit(')', 1)[1].split()
            if int(fields[2]) != pgid:  # fields after the name: state, ppid, pgrp, ...
                continue
            with open(f'/proc/{entry}/status') as stream:
                for line in stream:
                    if line.startswith('VmRSS:'):
                        total_kb += int(line.split()[1])
        except (OSError, IndexError, ValueError):
            continue  # the process ended while being read
    return total_kb / 1024.0


class Sampler:
    """Memory of each node and the action count over time."""

    def __init__(self, runner):
        self.runner = runner
        self.samples = []  # (wall s, actions, {node: MB})

    def sample(self, actions):
        memory = {name: round(group_rss_mb(process.pid), 1)
                  for name, process in self.runner.processes.items()}
        self.samples.append((time.monotonic(), actions, memory))


def summarise(sampler, actions, wall_s, reasons, crashed, warmup_index=1):
    """Memory growth per node after warm-up and the action rate of first/last windows."""
    samples = sampler.samples
    base = samples[min(warmup_index, len(samples) - 1)]
    last = samples[-1]
    memory = {}
    for name in last[2]:
        series = [s[2].get(name, 0.0) for s in samples]
        memory[name] = {'after_warmup_mb': base[2].get(name, 0.0), 'end_mb': last[2][name],
                        'max_mb': max(series),
                        'growth_mb': round(last[2][name] - base[2].get(name, 0.0), 1)}
    rates = []
    for (t0, a0, _), (t1, a1, _) in zip(samples, samples[1:]):
        if t1 > t0 and a1 > a0:
            rates.append(round((a1 - a0) / (t1 - t0), 3))
    return {'primitives': actions, 'wall_s': round(wall_s, 1), 'crashed': crashed,
            'memory': memory, 'rate_windows': rates,
            'rate_first_window': rates[0] if rates else None,
            'rate_last_window': rates[-1] if rates else None,
            'episode_end_reasons': dict(reasons),
            'samples': [{'wall_s': round(t - samples[0][0], 1), 'actions': a, 'memory_mb': m}
                        for t, a, m in samples]}


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--primitives', type=int, default=500)
    parser.add_argument('--objects', type=int, default=10)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--weights', default='', help='policy weights (default: untrained)')
    parser.add_argument('--epsilon', type=float, default=0.3,
                        help='exploration during the soak, so the actions vary')
    parser.add_argument('--sample-every', type=int, default=25)
    parser.add_argument('--out', default='results/soak/soak.json')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if 'ROS_DOMAIN_ID' not in os.environ:
        isolate()
    log_path = os.path.splitext(args.out)[0] + '_nodes.log'
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    log = open(log_path, 'w')
    runner = GraphRunner(sim_graph(seed=args.seed, num_objects=0, weights=args.weights),
                         output=log, stop_timeout=30.0)
    sampler = Sampler(runner)
    reasons = Counter()
    actions = 0
    error = spun = None
    start = time.monotonic()
    raise_keyboard_interrupt_on(signal.SIGTERM)  # SIGTERM, like Ctrl-C, stops the graph
    try:
        runner.start()
        # Spun with a stop flag and joined before shutdown: an executor.spin() thread still
        # running at exit aborted the process ("terminate called without an active exception").
        spun = ClientNode('soak')
        client = PickAllClient(spun.node, runner)
        client.wait_ready(180.0)
        sampler.sample(0)
        episode = idle = 0
        next_sample = args.sample_every
        progress = Progress(total=args.primitives, desc='soak', unit='primitives')
        while actions < args.primitives:
            client.reset_scene(num_objects=args.objects, seed=args.seed * 1000 + episode,
                               timeout=120.0)
            goal = PickAll.Goal(max_actions=min(args.primitives - actions, 60),
                                max_consecutive_failures=10, explore=True,
                                epsilon=args.epsilon)
            episode_log = client.run(goal, timeout=1800.0)
            actions += episode_log.actions
            progress.update(episode_log.actions,
                            note=f'episode {episode}: {episode_log.reason}')
            reasons[re.sub(r'\d+', 'N', episode_log.reason.split(':')[0])] += 1
            episode += 1
            if actions >= next_sample or actions >= args.primitives:
                sampler.sample(actions)
                next_sample = actions + args.sample_every
            idle = idle + 1 if episode_log.actions == 0 else 0
            if idle >= 3:  # a table seen clear from the start, or a failing node
                raise RuntimeError(f'{idle} episodes in a row ran no action; last: '
                                   f'{episode_log.reason}')
        progress.close()
    except (NodeDied, TimeoutError, PickAllClientError, RuntimeError) as failure:
        error = str(failure)
    except KeyboardInterrupt:
        error = 'interrupted'
    finally:
        crashed = dict(runner.dead())
        runner.stop()
        if spun is not None:
            spun.close()
        log.close()
    result = summarise(sampler, actions, time.monotonic() - start, reasons, crashed)
    result['error'] = error
    result['nodes_log'] = log_path
    with open(args.out, 'w') as stream:
        json.dump(result, stream, indent=1)
    print(json.dumps(result))
    return 0 if error is None and not crashed else 1


if __name__ == '__main__':
    sys.exit(main())
