"""
The evaluation without ROS: which runs to make, the run store, the summary, table and plot.

A plan is a list of RunSpec: for the `random` scenario one run per seed (VPG's random test,
30 blocks dropped at random), for `challenging` `runs` runs of every test-case file. Every
policy runs the same plan. Each finished run is one JSON line in runs.jsonl (the
EpisodeLog of vpg_bringup.pick_all_client plus the run's identity), so an evaluation that was
stopped resumes where it stopped, and the summary can be recomputed from the file alone. A
stored run is reused only for the same scenario, case file contents, seed, budget and weights
(sha256).

The metrics are VPG's (vpg_evaluation.metrics). `random` is one session; for `challenging`
every test case is a session, as VPG runs one session per case, and the scenario's values are
the mean over cases.
"""

from dataclasses import asdict, dataclass
import json
import math
import os
from pathlib import Path
import threading

from ament_index_python.packages import get_package_share_directory
from vpg_common.files import file_sha256
from vpg_evaluation import intervals, metrics, perturbation
from vpg_sim.blocks import load_test_case

SCENARIOS = ('random', 'challenging')
POLICIES = ('grasp_only', 'vpg', 'myopic')
GRASP_ONLY, ALLOW_BOTH = 2, 0  # vpg_interfaces/srv/ChoosePrimitive `allowed`
ALLOWED = {'grasp_only': GRASP_ONLY, 'vpg': ALLOW_BOTH, 'myopic': ALLOW_BOTH}
POLICY_LABELS = {'grasp_only': 'grasping only', 'vpg': 'VPG (push + grasp)',
                 'myopic': 'VPG, myopic (gamma = 0)'}
# Results of the original VPG in simulation (Zeng et al. 2018, 30 runs per test; see
# shared/notes/vpg.md): completion, grasp success, action efficiency (%). VPG published no
# myopic result for the random test.
VPG_PUBLISHED = {
    'random': {'grasp_only': (90.9, 55.8, 55.8), 'vpg': (100.0, 67.7, 60.9), 'myopic': None},
    'challenging': {'grasp_only': (40.6, 51.7, 51.7), 'vpg': (82.7, 77.2, 60.1),
                    'myopic': (79.1, 74.3, 53.7)},
}
METRICS = ('completion', 'grasp_success', 'efficiency')
METRIC_LABELS = {'completion': 'completion', 'grasp_success': 'grasp success',
                 'efficiency': 'action efficiency'}
# Reason codes (vpg_interfaces/action/PickAll) that end a run normally.
NORMAL_ENDS = {1, 2, 3}


def bundled_cases_dir():
    """
    Return the folder of the project's challenging test cases.

    The source tree's folder when the package runs from it (symlink install, tests), else the
    installed share folder.
    """
    source = Path(__file__).resolve().parents[1] / 'test_cases'
    if source.is_dir():
        return source
    return Path(get_package_share_directory('vpg_evaluation')) / 'test_cases'


def bundled_cases():
    return sorted(bundled_cases_dir().glob('*.txt'))


@dataclass(frozen=True)
class RunSpec:
    """One run of the plan (the same for every policy)."""

    scenario: str
    case: str
    """Test case name (file stem); 'random' for the random scenario."""
    run_index: int
    seed: int
    num_objects: int
    """Blocks dropped (random) or listed in the case file."""
    max_actions: int
    max_consecutive_failures: int
    test_case_file: str = ''
    case_sha256: str = ''


@dataclass(frozen=True)
class WeightsInfo:
    """Which network a policy runs: file, sha256 and version (untrained: no file)."""

    path: str = ''
    sha256: str = ''
    version: int = 0
    variant: str = 'vpg'
    policy_parameters: tuple = ()
    """(name, value) pairs, sorted: the policy node's parameters the weights were trained with
    (action mask, grasp centring); part of a run's identity."""

    @property
    def label(self):
        extra = ''.join(f', {name}={value}' for name, value in self.policy_parameters)
        if not self.path:
            return f'untrained (random initialisation{extra})'
        return f'{self.path} (version {self.version}, sha256 {self.sha256}{extra})'


def parameters_key(pairs):
    """Return a canonical string of (name, value) pairs, the same from tuples or JSON lists."""
    return json.dumps(sorted([str(name), value] for name, value in pairs))


def run_key(spec, policy, weights):
    """Identity of a run in the store: the same key means the stored run can be reused."""
    return (spec.scenario, spec.case, spec.case_sha256, spec.run_index, spec.seed,
            spec.num_objects, spec.max_actions, spec.max_consecutive_failures, policy,
            weights.sha256 or 'untrained', parameters_key(weights.policy_parameters))


def record_key(record):
    return (record['scenario'], record['case'], record.get('case_sha256', ''),
            record['run_index'], record['seed'], record['num_objects'], record['max_actions'],
            record['max_consecutive_failures'], record['policy'],
            record['weights'].get('sha256') or 'untrained',
            parameters_key(record['weights'].get('policy_parameters', ())))


def budget(num_objects, max_actions=None, factor=2.5):
    """max_actions of a run: given, or `factor` actions per object (at least 1)."""
    if max_actions:
        return int(max_actions)
    return max(1, math.ceil(factor * num_objects))


def plan_runs(scenarios, runs, objects=30, case_files=(), max_actions=None,
              max_actions_factor=2.5, max_consecutive_failures=10, first_seed=0,
              case_runs=None, perturbed_dir=None):
    """
    List the runs of an evaluation, the same for every policy.

    random: seeds first_seed .. first_seed + runs - 1, `objects` blocks each. challenging:
    `case_runs` (default `runs`) runs of each case file (seeds 0 .. case_runs - 1). With
    perturbed_dir, run k of a case loads the case perturbed for seed k (every block up to
    ±2 mm and ±2°, vpg_evaluation.perturbation), written there; without, every run places the
    blocks exactly and the runs differ only by timing. Raises ValueError for unknown
    scenarios, an empty case list, two case files with the same name or a case file the sim
    cannot read.
    """
    case_runs = runs if case_runs is None else case_runs
    if runs < 1 or case_runs < 1:
        raise ValueError(f'runs must be >= 1, got {runs} (per test case: {case_runs})')
    unknown = sorted(set(scenarios) - set(SCENARIOS))
    if unknown:
        raise ValueError(f'unknown scenarios {unknown} (known: {", ".join(SCENARIOS)})')
    plan = []
    for scenario in scenarios:
        if scenario == 'random':
            plan += [RunSpec('random', 'random', i, first_seed + i, objects,
                             budget(objects, max_actions, max_actions_factor),
                             max_consecutive_failures) for i in range(runs)]
            continue
        if not case_files:
            raise ValueError('the challenging scenario needs at least one test case file')
        names = [Path(path).stem for path in case_files]
        if len(set(names)) != len(names):
            raise ValueError(f'test case files must have different names: {names}')
        for path in case_files:
            path = Path(path).resolve()
            count = len(load_test_case(path))
            for i in range(case_runs):
                run_file = path
                if perturbed_dir is not None:
                    run_file = perturbation.write_perturbed_case(path, i, perturbed_dir)
                plan.append(RunSpec('challenging', path.stem, i, i, count,
                                    budget(count, max_actions, max_actions_factor),
                                    max_consecutive_failures, str(run_file),
                                    file_sha256(run_file)))
    return plan


def make_record(spec, policy, weights, episode):
    """One stored run: the spec, the policy and its weights, and the EpisodeLog dict."""
    record = asdict(spec)
    record.update(policy=policy, weights=asdict(weights))
    record.update(episode)
    return record


class RunStore:
    """runs.jsonl: one JSON object per finished run, appended and flushed at once."""

    def __init__(self, path):
        self.path = Path(path)
        self._lock = threading.Lock()

    def load(self):
        """All readable records; a line cut short (the process was killed) is skipped."""
        if not self.path.exists():
            return []
        records = []
        for line in self.path.read_text(encoding='utf-8').splitlines():
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return records

    def append(self, record):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, open(self.path, 'a+b') as handle:
            # After a kill mid-write the last line has no newline: end it, keep records apart.
            handle.seek(0, os.SEEK_END)
            if handle.tell():
                handle.seek(-1, os.SEEK_END)
                if handle.read(1) != b'\n':
                    handle.write(b'\n')
            handle.write((json.dumps(record, sort_keys=True) + '\n').encode('utf-8'))
            handle.flush()
            os.fsync(handle.fileno())


def pending_runs(plan, policy, weights, records):
    """List the specs of `plan` with no stored run for this policy and these weights yet."""
    done = {record_key(r) for r in records}
    return [spec for spec in plan if run_key(spec, policy, weights) not in done]


class Stopped(Exception):
    """The evaluation was asked to stop (Ctrl-C, or another cell failed)."""


def run_evaluation(plan, weights_by_policy, store, run_policy, jobs=1, log=print,
                   interrupt=None):
    """
    Make every planned run that is not stored yet, and summarise.

    run_policy(policy, weights, specs, save) makes the runs of `specs` in order on one cell
    and calls save(record) after each (make_record builds it); save stores it at once, so
    whatever stops the evaluation, the finished runs stay. With jobs > 1 up to `jobs` cells run
    at once, in threads: each policy's pending runs are dealt round-robin to
    max(1, jobs // policies) cells. When one cell fails the others stop after their current run
    (save raises Stopped in them) and the first error is raised. On Ctrl-C (KeyboardInterrupt
    in the main thread) interrupt(), when given, ends the runs in progress (it stops the
    cells' graphs); the cells' threads are then joined and KeyboardInterrupt re-raised.
    Returns summarize() over the stored runs.
    """
    records = store.load()
    work = []
    for policy, weights in weights_by_policy.items():
        pending = pending_runs(plan, policy, weights, records)
        log(f'evaluate: {policy}: {len(plan) - len(pending)} of {len(plan)} runs already '
            f'stored, {len(pending)} to run')
        work.append((policy, weights, pending))
    work = [w for w in work if w[2]]
    if work:
        cells = max(1, jobs // len(work))
        chunks = [(policy, weights, pending[i::cells]) for policy, weights, pending in work
                  for i in range(min(cells, len(pending)))]
        if jobs <= 1:
            for policy, weights, specs in chunks:
                run_policy(policy, weights, specs, store.append)
        else:
            _run_parallel(chunks, run_policy, store, jobs, interrupt)
    return summarize(plan, weights_by_policy, store.load())


def _run_parallel(chunks, run_policy, store, jobs, interrupt=None):
    stop = threading.Event()
    errors = []
    queue = list(chunks)
    lock = threading.Lock()

    def save(record):
        store.append(record)
        if stop.is_set():
            raise Stopped('stop requested')

    def worker():
        while not stop.is_set():
            with lock:
                if not queue:
                    return
                policy, weights, specs = queue.pop(0)
            try:
                run_policy(policy, weights, specs, save)
            except Stopped:
                return
            except BaseException as error:  # handed to the main thread below
                errors.append(error)
                stop.set()
                return

    threads = [threading.Thread(target=worker, daemon=True)
               for _ in range(min(jobs, len(chunks)))]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            while thread.is_alive():
                thread.join(timeout=0.5)
    except KeyboardInterrupt:
        stop.set()  # no cell starts another run
        if interrupt is not None:
            interrupt()  # and those in progress end now, not when their goal does
        for thread in threads:
            thread.join(timeout=60 if interrupt is not None else 600)
        raise
    if errors:
        raise errors[0]


def select_records(plan, policy, weights, records):
    """Pick the stored runs of this plan, policy and weights (the latest per key)."""
    wanted = {run_key(spec, policy, weights) for spec in plan}
    chosen = {}
    for record in records:
        key = record_key(record)
        if key in wanted:
            chosen[key] = record
    # In plan order: the file's order depends on which cell finished first.
    order = {run_key(spec, policy, weights): i for i, spec in enumerate(plan)}
    return sorted(chosen.values(), key=lambda r: order[record_key(r)])


def cleared_by_ground_truth(record):
    """
    Tell whether the sim's own count agrees that the run removed every block it had to clear.

    A cross-check of VPG's completion, which trusts the gripper: after the run no block is left
    in the workspace and the sim counted one removal per block that was in it.
    """
    before = record.get('objects_in_workspace_before')
    after = record.get('objects_in_workspace_after')
    if before is None or after is None or record.get('removed') is None:
        return False
    return after == 0 and record['removed'] - (record.get('removed_before') or 0) == before


def summarize(plan, weights_by_policy, records):
    """
    Compute {scenario: {policy: entry}} from the stored runs of this plan.

    An entry holds completion, grasp_success, efficiency (percent; None when no run
    completed), runs (runs counted), their *_std spreads and the details: completed runs,
    planned runs, runs that ended abnormally (perception, policy or motion failure), runs the
    sim's ground truth counts as cleared, seeds, weights, per-case values for challenging, and
    VPG's published numbers.
    """
    summary = {}
    scenarios = [s for s in SCENARIOS if any(spec.scenario == s for spec in plan)]
    for scenario in scenarios:
        specs = [spec for spec in plan if spec.scenario == scenario]
        summary[scenario] = {}
        for policy, weights in weights_by_policy.items():
            chosen = select_records(specs, policy, weights, records)
            cases = {}
            if scenario == 'random':
                combined = metrics.session_metrics(chosen)
            else:
                for case in dict.fromkeys(spec.case for spec in specs):
                    cases[case] = metrics.session_metrics(
                        [r for r in chosen if r['case'] == case]).to_dict()
                combined = metrics.combine_sessions(
                    [metrics.SessionMetrics(**values) for values in cases.values()])
            entry = combined.to_dict()
            entry.update(run_intervals(chosen))
            published = VPG_PUBLISHED.get(scenario, {}).get(policy)
            entry.update(
                planned_runs=len(specs),
                abnormal_ends=sum(r['reason_code'] not in NORMAL_ENDS for r in chosen),
                cleared_by_ground_truth=sum(map(cleared_by_ground_truth, chosen)),
                seeds=sorted({spec.seed for spec in specs}),
                max_actions=sorted({spec.max_actions for spec in specs}),
                max_consecutive_failures=sorted({spec.max_consecutive_failures
                                                 for spec in specs}),
                weights=asdict(weights),
                weights_versions_seen=sorted({s['weights_version'] for r in chosen
                                              for s in r.get('steps', ())}),
                vpg_published=None if published is None else dict(zip(METRICS, published)))
            if cases:
                entry['cases'] = cases
            summary[scenario][policy] = entry
        if scenario == 'challenging' and {'vpg', 'grasp_only'} <= set(weights_by_policy):
            summary[scenario]['vpg']['paired_vs_grasp_only'] = paired_comparison(
                select_records(specs, 'vpg', weights_by_policy['vpg'], records),
                select_records(specs, 'grasp_only', weights_by_policy['grasp_only'], records))
    return summary


def run_intervals(records):
    """
    Completion both ways with 95 % intervals, and pushes per run, from one policy's runs.

    completion_ci95: Wilson interval of VPG's completion (s >= N) over the runs;
    completion_cleared (+ _ci95): the share of runs the sim's ground truth counts as cleared
    (every block that started in the workspace removed by a grasp, none knocked out, within
    the run's limits); grasp_success_ci95, efficiency_ci95: bootstrap over completed runs,
    resampled within each test case; pushes_per_run: mean pushes per run; runs_with_push.
    """
    stats = [metrics.run_stats(r) for r in records]
    valid = [(r, s) for r, s in zip(records, stats) if s.valid]
    n = len(valid)
    completed = sum(s.completed for _, s in valid)
    cleared = sum(cleared_by_ground_truth(r) for r, _ in valid)
    by_case = {}
    for record, stat in valid:
        if stat.completed:
            by_case.setdefault(record.get('case', ''), []).append(stat)
    pushes = [metrics.push_attempts(r) for r, _ in valid]
    return {
        'completion_ci95': list(intervals.wilson_interval(completed, n)),
        'completion_cleared': 100.0 * cleared / n if n else None,
        'completion_cleared_ci95': list(intervals.wilson_interval(cleared, n)),
        'grasp_success_ci95': list(intervals.bootstrap_interval(
            [[100.0 * s.grasp_success for s in group] for group in by_case.values()])),
        'efficiency_ci95': list(intervals.bootstrap_interval(
            [[100.0 * s.efficiency for s in group] for group in by_case.values()])),
        'pushes_per_run': metrics.mean(pushes),
        'runs_with_push': sum(p > 0 for p in pushes),
    }


def paired_comparison(records_a, records_b):
    """
    Per test case, policy a's completion against policy b's on the same (perturbed) runs.

    Returns {'cases': {case: {'a': [completed, runs], 'b': [...], 'difference': points,
    'fisher_p': p}}, 'a_better': cases, 'b_better': cases, 'sign_test_p': p}.
    """
    def per_case(records):
        counts = {}
        for record in records:
            stat = metrics.run_stats(record)
            if stat.valid:
                done, runs = counts.get(record['case'], (0, 0))
                counts[record['case']] = (done + stat.completed, runs + 1)
        return counts

    a, b = per_case(records_a), per_case(records_b)
    cases, differences = {}, []
    for case in [c for c in a if c in b]:
        (ka, na), (kb, nb) = a[case], b[case]
        difference = 100.0 * (ka / na - kb / nb)
        differences.append(difference)
        cases[case] = {'a': [ka, na], 'b': [kb, nb], 'difference': difference,
                       'fisher_p': intervals.fisher_exact(ka, na, kb, nb)}
    return {'cases': cases, 'a_better': sum(d > 0 for d in differences),
            'b_better': sum(d < 0 for d in differences),
            'sign_test_p': intervals.sign_test(differences)}


def _cell(value, spread=None):
    if value is None:
        return 'n/a'
    return f'{value:.1f}' + ('' if spread is None else f' ± {spread:.1f}')


def _interval(value, interval):
    low, high = interval
    if value is None:
        return 'n/a'
    return f'{value:.1f}' + ('' if low is None else f' [{low:.1f}, {high:.1f}]')


def _span(values):
    """Write sorted integers briefly: 7, 0..29, or a list."""
    if len(values) == 1:
        return str(values[0])
    if values == list(range(values[0], values[-1] + 1)):
        return f'{values[0]}..{values[-1]}'
    return ', '.join(str(v) for v in values)


def table_markdown(summary, command=''):
    """Write our numbers next to VPG's published ones, with what they were measured on."""
    lines = ['# VPG evaluation in the MuJoCo cell', '',
             "Completion / grasp success / action efficiency in %, computed as VPG's "
             '`evaluate.py` does (grasp success and efficiency over completed runs). '
             'random: mean ± sample std over runs; challenging: mean ± std over test cases of '
             'the per-case values. VPG: the published simulation results (30 runs per test).',
             '']
    if command:
        lines += [f'Command: `{command}`', '']
    lines += ['| scenario | policy | runs | completion | grasp success | efficiency '
              '| VPG completion | VPG grasp success | VPG efficiency |',
              '|---|---|---|---|---|---|---|---|---|']
    for scenario, policies in summary.items():
        for policy, entry in policies.items():
            published = entry.get('vpg_published') or {}
            ours = [_cell(entry[m], entry.get(f'{m}_std')) for m in METRICS]
            theirs = [_cell(published.get(m)) for m in METRICS]
            runs = f"{entry['runs']}"
            if entry['runs'] != entry['planned_runs']:
                runs += f" of {entry['planned_runs']}"
            lines.append(f'| {scenario} | {POLICY_LABELS.get(policy, policy)} | {runs} | '
                         + ' | '.join(ours + theirs) + ' |')
    lines += ['', '## Completion two ways, intervals and pushes', '',
              "Completion by VPG's rule (successful grasps >= N) and by the sim's ground truth "
              '(every block that started in the workspace removed by a grasp, none knocked out), '
              'each with its 95 % Wilson interval over runs; grasp success and efficiency with '
              '95 % bootstrap intervals over completed runs (resampled within each case).', '',
              '| scenario | policy | runs | completion (VPG rule) | completion (ground truth) '
              '| grasp success | efficiency | pushes per run | runs with a push |',
              '|---|---|---|---|---|---|---|---|---|']
    for scenario, policies in summary.items():
        for policy, entry in policies.items():
            if 'completion_ci95' not in entry:
                continue
            pushes = entry['pushes_per_run']
            lines.append(
                f'| {scenario} | {POLICY_LABELS.get(policy, policy)} | {entry["runs"]} | '
                f'{_interval(entry["completion"], entry["completion_ci95"])} | '
                f'{_interval(entry["completion_cleared"], entry["completion_cleared_ci95"])} | '
                f'{_interval(entry["grasp_success"], entry["grasp_success_ci95"])} | '
                f'{_interval(entry["efficiency"], entry["efficiency_ci95"])} | '
                f'{"n/a" if pushes is None else f"{pushes:.2f}"} | '
                f'{entry["runs_with_push"]} of {entry["runs"]} |')
    paired = summary.get('challenging', {}).get('vpg', {}).get('paired_vs_grasp_only')
    if paired:
        lines += ['', '## VPG against grasping only, case by case', '',
                  'Completion (VPG rule) on the same perturbed runs; Fisher exact test per case, '
                  f'sign test over cases: VPG ahead in {paired["a_better"]}, grasping only in '
                  f'{paired["b_better"]}, p = {paired["sign_test_p"]:.3g}.', '',
                  '| case | VPG | grasping only | difference (points) | Fisher p |',
                  '|---|---|---|---|---|']
        for case, row in paired['cases'].items():
            lines.append(f'| {case} | {row["a"][0]}/{row["a"][1]} | {row["b"][0]}/{row["b"][1]} '
                         f'| {row["difference"]:+.1f} | {row["fisher_p"]:.3g} |')
    lines += ['', '## Runs', '']
    for scenario, policies in summary.items():
        entry = next(iter(policies.values()))
        cases = list(entry.get('cases', ()))
        count = (f'{entry["planned_runs"] // max(1, len(cases))} runs of each of {len(cases)} '
                 f'test cases ({", ".join(cases)})' if cases
                 else f'{entry["planned_runs"]} runs')
        lines.append(f'- {scenario}: {count} per policy, seeds {_span(entry["seeds"])}, '
                     f'max_actions {_span(entry["max_actions"])}, a run fails after more than '
                     f'{_span(entry["max_consecutive_failures"])} actions without change')
        for policy, values in policies.items():
            lines.append(f'  - {POLICY_LABELS.get(policy, policy)}: {values["completed"]} of '
                         f'{values["runs"]} runs completed (VPG\'s rule, s >= N); the sim\'s '
                         f'ground truth counts {values["cleared_by_ground_truth"]} runs as '
                         'every block removed by a grasp')
            if values['abnormal_ends']:
                lines.append(f'  - {POLICY_LABELS.get(policy, policy)}: '
                             f'{values["abnormal_ends"]} runs ended by a perception, policy or '
                             'motion failure (counted as not completed)')
    lines += ['', '## Weights', '']
    seen = {}
    for policies in summary.values():
        for policy, entry in policies.items():
            seen[policy] = WeightsInfo(**entry['weights']).label
    lines += [f'- {POLICY_LABELS.get(p, p)}: {label}' for p, label in seen.items()]
    challenging = summary.get('challenging')
    if challenging:
        lines += ['', '## Challenging test cases, per case', '',
                  '| case | policy | runs | completion | grasp success | efficiency |',
                  '|---|---|---|---|---|---|']
        for policy, entry in challenging.items():
            for case, values in entry.get('cases', {}).items():
                lines.append(f'| {case} | {POLICY_LABELS.get(policy, policy)} | '
                             f'{values["runs"]} | '
                             + ' | '.join(_cell(values[m]) for m in METRICS) + ' |')
    return '\n'.join(lines) + '\n'


def plot_summary(summary, path):
    """Plot grouped bars per scenario: a bar per policy and metric, VPG's published as marks."""
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot

    scenarios = list(summary)
    figure, axes = pyplot.subplots(1, len(scenarios), figsize=(6.5 * len(scenarios), 4.5),
                                   squeeze=False)
    colours = ('#9c755f', '#4e79a7', '#f28e2b', '#59a14f')
    for axis, scenario in zip(axes[0], scenarios):
        policies = list(summary[scenario])
        width = 0.8 / max(1, len(policies))
        labelled = False
        for p, policy in enumerate(policies):
            entry = summary[scenario][policy]
            xs = [m + (p - (len(policies) - 1) / 2) * width for m in range(len(METRICS))]
            values = [entry[m] if entry[m] is not None else 0.0 for m in METRICS]
            spreads = [entry.get(f'{m}_std') or 0.0 for m in METRICS]
            axis.bar(xs, values, width, yerr=spreads, capsize=3,
                     color=colours[p % len(colours)],
                     label=f'{POLICY_LABELS.get(policy, policy)} ({entry["runs"]} runs)')
            for x, metric in zip(xs, METRICS):
                if entry[metric] is None:
                    axis.text(x, 2, 'n/a', ha='center', va='bottom', fontsize=7, rotation=90)
            published = entry.get('vpg_published')
            if published:
                axis.scatter(xs, [published[m] for m in METRICS], marker='_', s=250,
                             color='black', zorder=3,
                             label=None if labelled else 'VPG published')
                labelled = True
        axis.set_xticks(range(len(METRICS)))
        axis.set_xticklabels([METRIC_LABELS[m] for m in METRICS])
        axis.set_ylim(0, 135)
        axis.set_yticks(range(0, 101, 20))
        axis.set_ylabel('%')
        axis.set_title(scenario)
        axis.legend(fontsize=7, loc='upper center', ncol=2)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    pyplot.close(figure)


def write_outputs(summary, out, command=''):
    """Write summary.json, table.md and metrics.png into out; returns their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = out / 'summary.json', out / 'table.md', out / 'metrics.png'
    paths[0].write_text(json.dumps(summary, indent=2, sort_keys=False) + '\n', encoding='utf-8')
    paths[1].write_text(table_markdown(summary, command), encoding='utf-8')
    plot_summary(summary, paths[2])
    return paths
