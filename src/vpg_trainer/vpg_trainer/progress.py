"""
Training progress as VPG reports it: success rates over the last attempts, a CSV and a plot.

Grasp success is successful grasps / grasp attempts over the last 200 grasp attempts (VPG's
training plots); push success is pushes that changed the scene over the last 200 pushes. One
CSV row per executed action, so a resumed run continues the same file and the curve can be
redrawn at any time. No ROS here.
"""

from collections import deque
import csv
from dataclasses import asdict, dataclass, fields
import math
import os


@dataclass
class ActionRow:
    """One executed action and the run's state right after it."""

    action: int
    episode: int
    primitive: str
    reward: float
    grasp_success: bool
    push_changed: bool
    epsilon: float
    grasp_success_rate: float
    """Over the last `window` grasp attempts; nan before the first."""
    push_success_rate: float
    grasp_attempts: int
    push_attempts: int
    loss: float
    updates: int
    weights_version: int
    wall_s: float
    actions_per_s: float


COLUMNS = [f.name for f in fields(ActionRow)]


class TrainingProgress:
    """Rolling success rates and counters of a run; `restore` continues from its CSV rows."""

    def __init__(self, window=200):
        self.window = int(window)
        self.grasps = deque(maxlen=self.window)
        self.pushes = deque(maxlen=self.window)
        self.actions = 0
        self.grasp_attempts = 0
        self.push_attempts = 0

    def add(self, primitive, grasp_success, push_changed):
        """Count one action ('push' or 'grasp')."""
        self.actions += 1
        if primitive == 'grasp':
            self.grasp_attempts += 1
            self.grasps.append(bool(grasp_success))
        elif primitive == 'push':
            self.push_attempts += 1
            self.pushes.append(bool(push_changed))
        else:
            raise ValueError(f"primitive must be 'push' or 'grasp', got {primitive!r}")

    @staticmethod
    def _rate(values):
        return sum(values) / len(values) if values else math.nan

    @property
    def grasp_success_rate(self):
        return self._rate(self.grasps)

    @property
    def push_success_rate(self):
        return self._rate(self.pushes)

    def restore(self, rows):
        """Replay earlier CSV rows (dicts or ActionRows) into the counters."""
        for row in rows:
            values = asdict(row) if isinstance(row, ActionRow) else row
            self.add(values['primitive'], _bool(values['grasp_success']),
                     _bool(values['push_changed']))


def _bool(value):
    return value if isinstance(value, bool) else str(value).strip().lower() in ('true', '1')


class MetricsCsv:
    """Append-only metrics.csv of a run (header written once; rows flushed at once)."""

    def __init__(self, path):
        self.path = str(path)
        new = not os.path.exists(self.path) or os.path.getsize(self.path) == 0
        self._handle = open(self.path, 'a', newline='')
        self._writer = csv.DictWriter(self._handle, fieldnames=COLUMNS)
        if new:
            self._writer.writeheader()
            self._handle.flush()

    def append(self, row):
        self._writer.writerow(asdict(row))
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self):
        self._handle.close()


def read_rows(path):
    """Return the rows of a metrics CSV as dicts of strings ([] when it does not exist)."""
    if not os.path.exists(path):
        return []
    with open(path, newline='') as handle:
        return list(csv.DictReader(handle))


def plot_curves(csv_path, png_path, title='Training'):
    """Draw grasp and push success (last-200 rates) against actions, as VPG's plots."""
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot

    rows = read_rows(csv_path)
    actions = [int(r['action']) for r in rows]
    grasp = [float(r['grasp_success_rate']) * 100 for r in rows]
    push = [float(r['push_success_rate']) * 100 for r in rows]
    figure, axis = pyplot.subplots(figsize=(7, 4), dpi=110)
    axis.plot(actions, grasp, label='grasp success (last 200 grasps)', color='tab:blue')
    axis.plot(actions, push, label='push success (last 200 pushes)', color='tab:orange')
    return finish_success_plot(figure, axis, png_path, title)


def finish_success_plot(figure, axis, png_path, title, goal=0.80):
    """Draw the goal line, label a success-rate-vs-actions plot, save it and close it."""
    from matplotlib import pyplot

    axis.axhline(goal * 100, color='grey', linestyle=':', linewidth=1,
                 label=f'{goal * 100:.0f} % goal')
    axis.set_xlabel('training actions')
    axis.set_ylabel('%')
    axis.set_ylim(0, 100)
    axis.set_title(title)
    axis.grid(alpha=0.3)
    axis.legend(loc='lower right', fontsize=8)
    figure.tight_layout()
    figure.savefig(png_path)
    pyplot.close(figure)
    return png_path
