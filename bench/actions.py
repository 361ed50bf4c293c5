"""
Actions per second of the real graphs, and where one action's time goes.

1. Training: `make train`'s driver (vpg_training.training_run: sim, heightmap, policy, executor
   exploring, trainer learning; separate processes) for --actions actions from --seed, in a
   fresh run folder.
2. Evaluation: the same graph without the trainer, greedy (vpg_training.soak with epsilon 0 and
   the shipped weights) for --eval-actions actions.

For each it reads the executor's step lines (every step logs its phase durations, wall and
simulated: decision, motion, home, perception; vpg_executor.pick_all.format_timing) and samples
the CPU time of every node's process group from /proc. The rate is steady state: steps after
the first divided by the time from the first step's log line to the last. The time budget of
one action (mean seconds per action) splits the wall time into the executor's phases plus
"other" (what lies between two actions: scene resets, transition publishing, the client), and
gives the simulated seconds of the motion phases, the physics real-time factor while the arm
moves, and each node's CPU seconds per action (on 2 cores, up to 2 s of CPU fit in 1 s).

    python bench/actions.py [--actions 100] [--eval-actions 60] [--seed 0] [--keep DIR]

The last line printed is one JSON object:
{"bench": "actions", "actions_per_s": x, "eval_actions_per_s": y, "budget_s": {...},
 "eval_budget_s": {...}}.
"""

import argparse
import json
import os
from pathlib import Path
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

from vpg_bringup.runner import raise_keyboard_interrupt_on
from vpg_executor.pick_all import parse_timing, TIMING_PHASES

ROOT = Path(__file__).resolve().parents[1]
STEP_LINE = re.compile(r'^\[(?:\w+/)?executor\] .*\[(\d+\.\d+)\] \[[\w./]*executor\]: step \d+:')
_TICKS = os.sysconf('SC_CLK_TCK')


def _stat(pid):
    with open(f'/proc/{pid}/stat') as stream:
        fields = stream.read().rsplit(')', 1)[1].split()
    return fields  # state, ppid, pgrp, ..., utime at 11, stime at 12


def _cmdline(pid):
    with open(f'/proc/{pid}/cmdline', 'rb') as stream:
        return stream.read().replace(b'\0', b' ').decode(errors='replace')


class CpuSampler:
    """CPU seconds of each node's process group under a driver process, sampled from /proc."""

    def __init__(self, driver_pid, period=1.0):
        self.driver_pid = driver_pid
        self.period = period
        self.cpu = {}  # node name -> {pid: cpu s}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _node_name(pid):
        match = re.search(r'__node:=([\w]+)', _cmdline(pid))
        return match.group(1) if match else None

    def sample(self):
        leaders = {}
        processes = []
        for entry in os.listdir('/proc'):
            if not entry.isdigit():
                continue
            try:
                fields = _stat(entry)
                processes.append((int(entry), int(fields[1]), int(fields[2]),
                                  (int(fields[11]) + int(fields[12])) / _TICKS))
                if int(fields[1]) == self.driver_pid:
                    name = self._node_name(entry)
                    if name:
                        leaders[int(entry)] = name
            except (OSError, IndexError, ValueError):
                continue
        for pid, _, group, seconds in processes:
            name = leaders.get(group)
            if name:
                self.cpu.setdefault(name, {})[pid] = seconds

    def _run(self):
        while not self._stop.wait(self.period):
            self.sample()

    def start(self):
        self._thread.start()

    def stop(self):
        self._stop.set()
        self._thread.join()

    def totals(self):
        return {name: sum(per_pid.values()) for name, per_pid in self.cpu.items()}


def read_steps(log_path):
    """(stamp s, wall phases, sim phases) of every executor step line in a nodes log."""
    steps = []
    for line in Path(log_path).read_text(errors='replace').splitlines():
        match = STEP_LINE.search(line)
        if match:
            wall, sim = parse_timing(line)
            steps.append((float(match.group(1)), wall, sim))
    return steps


def budget(steps, cpu_totals, cells=1):
    """
    Steady-state rate and the mean time budget of one action from the step lines.

    With several cells the rate counts every cell's steps, and one action's wall time is
    cells / rate (each cell runs its own actions side by side).
    """
    if len(steps) < 3:
        raise RuntimeError(f'only {len(steps)} executor steps logged: too few to measure')
    steps = sorted(steps, key=lambda step: step[0])
    span = steps[-1][0] - steps[0][0]
    counted = steps[1:]  # the first step's stamp starts the clock
    rate = len(counted) / span
    result = {}
    for phase in TIMING_PHASES:
        result[phase] = sum(s[1].get(phase, 0.0) for s in counted) / len(counted)
    result['other'] = cells / rate - sum(result[p] for p in TIMING_PHASES)
    for phase in ('motion', 'home'):
        result[f'{phase}_simulated'] = sum(s[2].get(phase, 0.0) for s in counted) / len(counted)
    moving_wall = result['motion'] + result['home']
    moving_sim = result['motion_simulated'] + result['home_simulated']
    result['physics_real_time_factor_moving'] = moving_sim / moving_wall if moving_wall else None
    result['cpu_s_per_action'] = {name: round(seconds / len(steps), 3)
                                  for name, seconds in sorted(cpu_totals.items())}
    return rate, {k: (round(v, 4) if isinstance(v, float) else v) for k, v in result.items()}


def measure(command, log_path, env):
    """Run a driver command, sampling its nodes' CPU; return (steps, CPU totals)."""
    print('$ ' + ' '.join(command), flush=True)
    process = subprocess.Popen(command, cwd=ROOT, env=env)
    sampler = CpuSampler(process.pid)
    sampler.start()
    try:
        code = process.wait()
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the driver stops its graph, then we end
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=120)
        raise
    finally:
        sampler.stop()
    if code != 0:
        raise RuntimeError(f'{command[2]} exited {code}')
    return read_steps(log_path), sampler.totals()


def _round(value):
    return None if value is None else round(value, 4)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--actions', type=int, default=100, help='0: skip the training graph')
    parser.add_argument('--eval-actions', type=int, default=60,
                        help='0: skip the greedy graph')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--cells', type=int, default=1,
                        help='MuJoCo cells of the training graph (rates count every cell)')
    parser.add_argument('--weights', default=str(ROOT / 'weights' / 'vpg.safetensors'))
    parser.add_argument('--keep', default=None, help='keep the run folders here')
    args = parser.parse_args(argv)
    raise_keyboard_interrupt_on(signal.SIGTERM)
    work = Path(args.keep or tempfile.mkdtemp(prefix='vpg-bench-actions-'))
    shutil.rmtree(work / 'train', ignore_errors=True)
    env = dict(os.environ)
    rate = eval_rate = None
    train_budget = eval_budget = None
    try:
        if args.actions > 0:
            steps, cpu = measure([sys.executable, '-m', 'vpg_training.training_run',
                                  '--run-dir', str(work / 'train'), '--actions',
                                  str(args.actions), '--seed', str(args.seed),
                                  '--cells', str(args.cells)],
                                 work / 'train' / 'nodes.log', env)
            rate, train_budget = budget(steps, cpu, args.cells)
        if args.eval_actions > 0:
            steps, cpu = measure([sys.executable, '-m', 'vpg_training.soak', '--primitives',
                                  str(args.eval_actions), '--epsilon', '0', '--seed',
                                  str(args.seed), '--weights', args.weights, '--out',
                                  str(work / 'eval' / 'soak.json')],
                                 work / 'eval' / 'soak_nodes.log', env)
            eval_rate, eval_budget = budget(steps, cpu)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    for title, value, table in (('training', rate, train_budget),
                                ('evaluation', eval_rate, eval_budget)):
        if value is None:
            continue
        print(f'{title}: {value:.3f} actions/s; one action: '
              + ', '.join(f'{k} {v:.3f} s' for k, v in table.items()
                          if isinstance(v, float) and not k.startswith('physics'))
              + f"; physics x{table['physics_real_time_factor_moving'] or 0:.2f} real time "
              'while moving; CPU s per action: '
              + ', '.join(f'{k} {v:.2f}' for k, v in table['cpu_s_per_action'].items()))
    print(json.dumps({'bench': 'actions', 'actions_per_s': _round(rate),
                      'eval_actions_per_s': _round(eval_rate), 'budget_s': train_budget,
                      'eval_budget_s': eval_budget, 'actions': args.actions,
                      'eval_actions': args.eval_actions, 'seed': args.seed,
                      'cells': args.cells,
                      'time': time.strftime('%Y-%m-%dT%H:%M:%S')}))
    return 0


if __name__ == '__main__':
    sys.exit(main())
