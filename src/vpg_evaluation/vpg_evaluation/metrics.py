"""
VPG's three evaluation metrics, computed as VPG's evaluate.py computes them, from run records.

A run is one /pick_all goal on a freshly reset scene (in VPG: the actions between two entries
of clearance.log). For run k, with N objects to clear (VPG's --num_obj_complete; here the
objects whose centre lay in the workspace when the run started):

* n_k: actions in the run;
* g_k: grasp attempts (primitive 1);
* s_k: grasp attempts with reward >= 0.5 (a successful grasp earns 1.0, a changing push 0.5);
* completed_k = s_k >= N.

A session is the runs on one scene source (VPG runs one session per test case):

* completion = 100 * mean over runs of completed_k;
* grasp success = 100 * mean over completed runs of s_k / g_k;
* action efficiency = 100 * mean over completed runs of N / n_k.

Runs that did not complete count against completion only. A run stops when the two
no-change counters together exceed 10 (the executor's max_consecutive_failures), so
"completed" means every object was grasped before that happened. Unlike VPG's unbounded runs,
ours also stop at max_actions; a run stopped there without s_k >= N is not completed.

The spread of a session is the sample standard deviation of the same per-run values (None
with fewer than two values). Several sessions (the challenging test cases) are combined as the
mean of the session values, with their standard deviation across sessions.

Records are plain dicts (vpg_bringup.pick_all_client.EpisodeLog.to_dict(), plus the
harness's keys), so runs saved as JSON lines can be recomputed at any time. No ROS imports.
"""

from dataclasses import asdict, dataclass
import math

from vpg_common.primitives import GRASP, PUSH

SUCCESS_REWARD = 0.5  # VPG counts a grasp whose reward reaches this as a success


@dataclass(frozen=True)
class RunStats:
    """The numbers VPG's evaluation reads from one run."""

    objects: int
    """N, the objects to clear."""
    actions: int
    """n_k."""
    grasp_attempts: int
    """g_k."""
    grasp_successes: int
    """s_k."""
    source: str
    """'steps' (per-action records, as VPG's logs) or 'result' (the goal's counters)."""

    @property
    def valid(self):
        """Tell whether the run had something to clear (else it says nothing; metrics skip it)."""
        return self.objects > 0

    @property
    def completed(self):
        return self.valid and self.grasp_successes >= self.objects

    @property
    def grasp_success(self):
        """s_k / g_k, or None without grasp attempts."""
        return self.grasp_successes / self.grasp_attempts if self.grasp_attempts else None

    @property
    def efficiency(self):
        """N / n_k, or None without actions."""
        return self.objects / self.actions if self.actions else None

    @property
    def grasp_fraction(self):
        """g_k / n_k (VPG's 'grasp to push ratio'), or None without actions."""
        return self.grasp_attempts / self.actions if self.actions else None


def run_stats(record, objects=None):
    """
    Read n_k, g_k, s_k and N from one run record.

    record: dict with `steps` (list of dicts with `primitive` and `reward`), `actions`,
    `grasp_attempts`, `grasp_successes` and `objects_in_workspace_before`. The per-action steps
    are used when they are complete (one per action, as VPG's logs); otherwise, when feedback
    was lost, the goal's own counters. objects: N, overriding the record's count.
    Raises ValueError when N is unknown.
    """
    if objects is None:
        objects = record.get('objects_in_workspace_before')
    if objects is None:
        raise ValueError('the run record has no objects_in_workspace_before; pass objects=N')
    steps = record.get('steps') or []
    actions = int(record.get('actions', len(steps)))
    if len(steps) == actions:
        grasps = [s for s in steps if int(s['primitive']) == GRASP]
        return RunStats(objects=int(objects), actions=actions, grasp_attempts=len(grasps),
                        grasp_successes=sum(float(s['reward']) >= SUCCESS_REWARD
                                            for s in grasps),
                        source='steps')
    return RunStats(objects=int(objects), actions=actions,
                    grasp_attempts=int(record['grasp_attempts']),
                    grasp_successes=int(record['grasp_successes']), source='result')


def push_attempts(record):
    """Pushes in one run: counted from its steps when complete, else the goal's counter."""
    steps = record.get('steps') or []
    if len(steps) == int(record.get('actions', len(steps))):
        return sum(int(s['primitive']) == PUSH for s in steps)
    return int(record.get('push_attempts', 0))


def mean(values):
    values = list(values)
    return sum(values) / len(values) if values else None


def sample_std(values):
    """Sample standard deviation (n - 1), or None with fewer than two values."""
    values = list(values)
    if len(values) < 2:
        return None
    centre = sum(values) / len(values)
    return math.sqrt(sum((v - centre) ** 2 for v in values) / (len(values) - 1))


def _percent(value):
    return None if value is None else 100.0 * value


@dataclass(frozen=True)
class SessionMetrics:
    """VPG's metrics over one session, in percent (None when undefined), and their spread."""

    completion: float
    grasp_success: float
    efficiency: float
    runs: int
    completed: int
    completion_std: float = None
    grasp_success_std: float = None
    efficiency_std: float = None
    grasp_fraction: float = None
    skipped_runs: int = 0
    """Runs with nothing to clear (N = 0), left out of every metric."""

    def to_dict(self):
        return asdict(self)


def session_metrics(stats):
    """
    Compute VPG's metrics over one session's runs.

    stats: RunStats sequence (or run records, read with run_stats). Returns SessionMetrics;
    with no valid run every metric is None.
    """
    stats = [s if isinstance(s, RunStats) else run_stats(s) for s in stats]
    valid = [s for s in stats if s.valid]
    done = [s for s in valid if s.completed]
    completion = [100.0 * s.completed for s in valid]
    grasp = [100.0 * s.grasp_success for s in done]
    efficiency = [100.0 * s.efficiency for s in done]
    return SessionMetrics(
        completion=mean(completion), grasp_success=mean(grasp), efficiency=mean(efficiency),
        runs=len(valid), completed=len(done), completion_std=sample_std(completion),
        grasp_success_std=sample_std(grasp), efficiency_std=sample_std(efficiency),
        grasp_fraction=_percent(mean(s.grasp_fraction for s in done)),
        skipped_runs=len(stats) - len(valid))


def combine_sessions(sessions):
    """
    Combine sessions (e.g. one per test case) as the mean of their values.

    Completion averages over every session with runs; grasp success and efficiency over the
    sessions where they are defined (at least one completed run). The *_std fields are the
    standard deviations across sessions; runs, completed and skipped_runs are totals.
    """
    every = list(sessions)
    sessions = [s for s in every if s.runs]
    values = {name: [getattr(s, name) for s in sessions if getattr(s, name) is not None]
              for name in ('completion', 'grasp_success', 'efficiency', 'grasp_fraction')}
    return SessionMetrics(
        completion=mean(values['completion']), grasp_success=mean(values['grasp_success']),
        efficiency=mean(values['efficiency']), runs=sum(s.runs for s in sessions),
        completed=sum(s.completed for s in sessions),
        completion_std=sample_std(values['completion']),
        grasp_success_std=sample_std(values['grasp_success']),
        efficiency_std=sample_std(values['efficiency']),
        grasp_fraction=mean(values['grasp_fraction']),
        skipped_runs=sum(s.skipped_runs for s in every))
