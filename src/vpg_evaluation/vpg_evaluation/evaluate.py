"""
`evaluate` (`make eval`): VPG's evaluation in the MuJoCo cell, through the real node graph.

For each policy the MuJoCo graph (sim, heightmap, policy serving that policy's weights,
executor) runs as separate processes through vpg_bringup's runner; for each run of the plan
this process resets the scene and sends one greedy /pick_all goal (no exploration, stop after
more than 10 actions without change), as another ROS system would. Every finished run is
appended to <out>/runs.jsonl (a stopped evaluation resumes), then <out>/summary.json,
<out>/table.md and <out>/metrics.png are written from the stored runs. With --jobs J, up to J
cells run at once, each in a DDS domain of its own.

    python -m vpg_evaluation.evaluate --runs 30
    python -m vpg_evaluation.evaluate --runs 5 --scenarios challenging --case-file my_case.txt
    python -m vpg_evaluation.evaluate --summary-only      # recompute from runs.jsonl
"""

import argparse
import dataclasses
import os
from pathlib import Path
import shlex
import signal
import sys
import threading
import time

from vpg_bringup.graph import sim_graph
from vpg_bringup.pick_all_client import PickAllClient, PickAllClientError
from vpg_bringup.progress import Progress
from vpg_bringup.ros_domain import claim_free_domain_id, isolate
from vpg_bringup.runner import GraphRunner, NodeDied, raise_keyboard_interrupt_on
from vpg_common.client_node import ClientNode
from vpg_common.parameters import named_values
from vpg_evaluation import harness
from vpg_interfaces.action import PickAll
from vpg_policy.weights import read_weights, WeightsError
from vpg_policy.weights_record import trained_policy_parameters, WeightsRecordError

_RESET_TIMEOUT = 180.0  # s: 30 blocks falling and settling on a loaded machine


_GRAPH_OWNED = frozenset({'weights_path', 'variant', 'device', 'publish_heatmaps'})


class EvaluationError(RuntimeError):
    """The evaluation cannot go on (bad arguments, missing weights, a graph that keeps dying)."""


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog='evaluate', description=__doc__.split('\n\n')[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--runs', type=int, default=30,
                        help='runs per scenario and policy (challenging: per test case)')
    parser.add_argument('--case-runs', type=int, default=None,
                        help='runs of each challenging test case (default: --runs); run k '
                             'moves every block by up to 2 mm and 2 degrees, seeded by k '
                             '(--exact-cases: exactly as the file places them)')
    parser.add_argument('--scenarios', nargs='+', default=list(harness.SCENARIOS),
                        choices=harness.SCENARIOS)
    parser.add_argument('--policies', nargs='+', default=list(harness.POLICIES),
                        choices=harness.POLICIES)
    parser.add_argument('--weights-dir', default='weights',
                        help='folder holding <policy>.safetensors for each policy')
    parser.add_argument('--weights', action='append', default=[], metavar='POLICY=PATH',
                        help='weights file of one policy (overrides --weights-dir)')
    parser.add_argument('--policy-param', action='append', default=[], metavar='NAME=VALUE',
                        help='policy node parameter for every policy (repeatable), over the '
                             "ones its weights' record (<policy>.json) says they were trained "
                             "with; part of each run's identity")
    parser.add_argument('--allow-untrained', action='store_true',
                        help='evaluate the randomly initialised network where a policy has no '
                             'weights file (tests only)')
    parser.add_argument('--objects', type=int, default=30,
                        help='blocks dropped in each random run')
    parser.add_argument('--first-seed', type=int, default=0, help='seed of the first random run')
    parser.add_argument('--cases', nargs='+', default=None, metavar='CASE',
                        help='challenging test cases to run: names of the bundled cases or '
                             'paths (default: all bundled cases)')
    parser.add_argument('--case-file', action='append', default=[], metavar='PATH',
                        help="another test case file in VPG's format, run besides --cases")
    parser.add_argument('--exact-cases', action='store_true',
                        help='place every run of a test case exactly as its file says (default: '
                             'run k moves each block up to +-2 mm and turns it up to +-2 deg, '
                             'seeded by k, the same for every policy; files in OUT/cases)')
    parser.add_argument('--max-actions', type=int, default=None,
                        help='actions per run (default: --max-actions-factor x blocks)')
    parser.add_argument('--max-actions-factor', type=float, default=2.5)
    parser.add_argument('--max-failures', type=int, default=10,
                        help='a run fails after more than this many actions without change')
    parser.add_argument('--run-timeout', type=float, default=None,
                        help='seconds per run (default: 120 + 20 per allowed action)')
    parser.add_argument('--device', default='auto', choices=('auto', 'cpu', 'cuda'),
                        help='where the policy runs its network')
    parser.add_argument('--jobs', type=int, default=1,
                        help='cells (graphs) running at once, each in a DDS domain of its own; '
                             'a policy gets jobs // policies of them')
    parser.add_argument('--max-restarts', type=int, default=2,
                        help='graph restarts per policy after a node died or a run hung')
    parser.add_argument('--out', default='results/eval')
    parser.add_argument('--summary-only', action='store_true',
                        help='run nothing; recompute the summary from the stored runs')
    args = parser.parse_args(argv)
    if min(args.runs, args.objects, args.max_failures, args.jobs) < 1:
        parser.error('--runs, --objects, --max-failures and --jobs must be >= 1')
    return args


def case_files(args):
    """List the challenging test case files: --cases (or all bundled) + --case-file."""
    bundled = {path.stem: path for path in harness.bundled_cases()}
    chosen = []
    for item in args.cases or list(bundled):
        if item in bundled:
            chosen.append(bundled[item])
        elif Path(item).is_file():
            chosen.append(Path(item))
        else:
            raise EvaluationError(f'unknown test case {item!r}: not a bundled case '
                                  f'({", ".join(bundled)}) nor a file')
    for item in args.case_file:
        if not Path(item).is_file():
            raise EvaluationError(f'test case file {item} does not exist')
        chosen.append(Path(item))
    return chosen


def _refuse_graph_owned(parameters, source):
    owned = sorted(set(parameters) & _GRAPH_OWNED)
    if owned:
        raise EvaluationError(f'{source} {", ".join(owned)}: the evaluation sets them from '
                              'the weights and --device')


def resolve_weights(args):
    """Find each policy's weights: --weights, else <weights-dir>/<policy>.safetensors."""
    explicit = {}
    for item in args.weights:
        policy, sep, path = item.partition('=')
        if not sep or policy not in harness.POLICIES:
            raise EvaluationError(f'--weights {item!r}: expected POLICY=PATH with POLICY one of '
                                  f'{", ".join(harness.POLICIES)}')
        explicit[policy] = Path(path)
    try:
        parameters = named_values(args.policy_param)
    except ValueError as error:
        raise EvaluationError(f'--policy-param: {error}') from None
    _refuse_graph_owned(parameters, '--policy-param cannot set')
    resolved = {}
    for policy in args.policies:
        path = explicit.get(policy, Path(args.weights_dir) / f'{policy}.safetensors')
        if not path.is_file():
            if not args.allow_untrained:
                raise EvaluationError(
                    f'no weights for policy {policy!r}: {path} does not exist. Train it first, '
                    f'give --weights {policy}=PATH, or pass --allow-untrained to evaluate the '
                    'untrained network (a test of the harness, not a result).')
            resolved[policy] = harness.WeightsInfo(
                policy_parameters=tuple(sorted(parameters.items())))
            continue
        try:
            loaded = read_weights(path)
            # The weights' own training parameters (their record), then --policy-param.
            trained = trained_policy_parameters(path)
        except (OSError, WeightsError, WeightsRecordError) as error:
            raise EvaluationError(f'weights of policy {policy!r} unusable: {error}') from None
        _refuse_graph_owned(trained, f'the record of {path} sets')
        served = {**trained, **parameters}
        resolved[policy] = harness.WeightsInfo(str(path.resolve()), loaded.sha256,
                                               loaded.metadata.version,
                                               loaded.metadata.variant,
                                               tuple(sorted(served.items())))
    return resolved


def policy_graph(weights, device):
    """Describe the MuJoCo graph serving `weights`: heatmaps off, variant from the file."""
    specs = sim_graph(seed=0, num_objects=0, weights=weights.path, device=device)
    return [dataclasses.replace(spec, parameters={**spec.parameters,
                                                  **dict(weights.policy_parameters),
                                                  'variant': weights.variant,
                                                  'publish_heatmaps': False})
            if spec.package == 'vpg_policy' else spec for spec in specs]


class CellSession:
    """One running graph and a PickAllClient on it; a context manager."""

    def __init__(self, weights, device, log_path, domain_id=None, ready_timeout=180.0):
        self.weights = weights
        self.device = device
        self.log_path = Path(log_path)
        self.domain_id = domain_id
        """ROS_DOMAIN_ID of the graph and the client; None: the environment's."""
        self.ready_timeout = ready_timeout
        self.runner = None
        self._stop_requested = False

    def stop(self):
        """Stop the graph from another thread (Ctrl-C): waits on it end with GraphStopped."""
        self._stop_requested = True
        runner = self.runner
        if runner is not None:
            runner.stop()

    def __enter__(self):

        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, 'a', encoding='utf-8')
        env = dict(os.environ)
        if self.domain_id is not None:
            env['ROS_DOMAIN_ID'] = str(self.domain_id)
        self.runner = GraphRunner(policy_graph(self.weights, self.device), env=env,
                                  output=self._log)
        self.client_node = ClientNode('evaluate', domain_id=self.domain_id, start=False)
        self.node = self.client_node.node
        try:
            if self._stop_requested:  # stop() came before the runner existed
                self.runner.stop()
            self.runner.start()
            self.client = PickAllClient(self.node, self.runner)  # before the node spins
            self.client_node.start()
            self.client.wait_ready(self.ready_timeout)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        self.client_node.close()
        self.runner.stop()
        self._log.close()
        return False

    def run(self, spec, policy, run_timeout=None):
        """Reset the scene for `spec`, run one greedy goal, return the run record."""
        self.client.reset_scene(num_objects=spec.num_objects, seed=spec.seed,
                                test_case_file=spec.test_case_file, timeout=_RESET_TIMEOUT)
        goal = PickAll.Goal(max_actions=spec.max_actions,
                            max_consecutive_failures=spec.max_consecutive_failures,
                            explore=False, epsilon=0.0, allowed=harness.ALLOWED[policy])
        timeout = run_timeout or 120.0 + 20.0 * spec.max_actions
        episode = self.client.run(goal, timeout=timeout)
        return harness.make_record(spec, policy, self.weights, episode.to_dict())


def describe_run(record):
    grasps = sum(s['primitive'] == 1 for s in record['steps'])
    return (f'{record["policy"]} {record["scenario"]}/{record["case"]} run '
            f'{record["run_index"]} (seed {record["seed"]}): {record["grasp_successes"]} of '
            f'{record["objects_in_workspace_before"]} grasped, {record["actions"]} actions '
            f'({grasps} grasps, {record["actions"] - grasps} pushes), {record["reason"]} '
            f'[{record["wall_s"]:.0f} s]')


def make_policy_runner(args, out, progress=None):
    """
    Build run_policy for harness.run_evaluation: one graph per call, restarted on failure.

    With --jobs > 1 every worker thread claims a DDS domain of its own, so the cells' /clock
    and driver topics never meet.
    """
    domains = threading.local()
    stopping = threading.Event()
    open_cells = set()
    lock = threading.Lock()

    def interrupt():
        """Stop every open cell's graph: the runs in progress end now (Ctrl-C)."""
        stopping.set()
        with lock:
            cells = list(open_cells)
        for cell in cells:
            cell.stop()

    def run_policy(policy, weights, specs, save):
        if args.jobs > 1 and not hasattr(domains, 'id'):
            domains.id = claim_free_domain_id()
        domain_id = getattr(domains, 'id', None)
        suffix = '' if domain_id is None else f'_domain{domain_id}'
        log_path = out / 'logs' / f'{policy}{suffix}.log'
        remaining = list(specs)
        restarts = 0
        while remaining:
            session = CellSession(weights, args.device, log_path, domain_id)
            with lock:
                open_cells.add(session)
            try:
                if stopping.is_set():
                    raise harness.Stopped('interrupted')
                with session as cell:
                    while remaining:
                        record = cell.run(remaining[0], policy, args.run_timeout)
                        save(record)
                        remaining.pop(0)
                        if progress is None:
                            print('  ' + describe_run(record), flush=True)
                        else:
                            progress.update(note=describe_run(record))
            except (NodeDied, TimeoutError, PickAllClientError) as error:
                if stopping.is_set():
                    raise harness.Stopped('interrupted') from None
                restarts += 1
                if restarts > args.max_restarts:
                    raise EvaluationError(
                        f'{policy}: {error}; gave up after {args.max_restarts} restarts '
                        f'(node logs: {out / "logs"}). Finished runs are kept: run the same '
                        'command again to resume.') from None
                print(f'evaluate: {policy}: {error}; restarting the graph '
                      f'({restarts}/{args.max_restarts})', flush=True)
            finally:
                with lock:
                    open_cells.discard(session)
    run_policy.interrupt = interrupt
    return run_policy


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    # SIGTERM ends the run like Ctrl-C: the cells' graphs are stopped, not orphaned.
    raise_keyboard_interrupt_on(signal.SIGTERM)
    out = Path(args.out)
    try:
        weights = resolve_weights(args)
        cases = case_files(args) if 'challenging' in args.scenarios else []
        plan = harness.plan_runs(args.scenarios, args.runs, args.objects, cases,
                                 args.max_actions, args.max_actions_factor, args.max_failures,
                                 args.first_seed, args.case_runs,
                                 None if args.exact_cases else Path(args.out) / 'cases')
    except (EvaluationError, ValueError) as error:
        print(f'evaluate: {error}', file=sys.stderr)
        return 2
    if 'ROS_DOMAIN_ID' not in os.environ and not args.summary_only:
        print(f'evaluate: ROS_DOMAIN_ID={isolate()} (a free one)')
    case_runs = args.runs if args.case_runs is None else args.case_runs
    print(f'evaluate: N = {args.runs} runs per scenario and policy'
          + (f'; challenging: {case_runs} per test case' if cases else ''))
    if 'random' in args.scenarios:
        print(f'evaluate: random: {args.objects} blocks, seeds {args.first_seed}..'
              f'{args.first_seed + args.runs - 1}')
    if cases:
        print(f'evaluate: challenging: {len(cases)} test cases: '
              + ', '.join(str(path) for path in cases))
    for policy, info in weights.items():
        print(f'evaluate: {policy}: weights {info.label}')
    if args.jobs > 1 and not args.summary_only:
        print(f'evaluate: up to {args.jobs} cells at once')
    store = harness.RunStore(out / 'runs.jsonl')
    start = time.monotonic()
    try:
        if args.summary_only:
            summary = harness.summarize(plan, weights, store.load())
        else:
            # done/total, rate and time left after each finished run (a bar on a terminal).
            total = len(plan) * len(weights)
            records = store.load()
            stored = sum(len(plan) - len(harness.pending_runs(plan, policy, info, records))
                         for policy, info in weights.items())
            with Progress(total=total, desc='evaluate', unit='runs', initial=stored) as progress:
                run_policy = make_policy_runner(args, out, progress)
                summary = harness.run_evaluation(plan, weights, store, run_policy, args.jobs,
                                                 interrupt=run_policy.interrupt)
    except EvaluationError as error:
        print(f'evaluate: {error}', file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print('evaluate: interrupted; finished runs are kept in '
              f'{store.path} (run the same command to resume)', file=sys.stderr)
        return 130
    command = 'python -m vpg_evaluation.evaluate ' + shlex.join(argv)
    paths = harness.write_outputs(summary, out, command.strip())
    print(harness.table_markdown(summary, command.strip()))
    print(f'evaluate: wrote {", ".join(str(p) for p in paths)} '
          f'({time.monotonic() - start:.0f} s)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
