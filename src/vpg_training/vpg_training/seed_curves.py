"""
Training curves of several seeds side by side, and their median.

The training goal is stated for the median of three seeds (grasp success over the last 200
grasps within 1500 actions and 60 minutes), so one seed's curve says little on its own.

    python -m vpg_training.seed_curves RUN_DIR [RUN_DIR ...] [--png PATH] [--json PATH]

Each RUN_DIR holds a run's metrics.csv (results/runs/<name> or docs/training/<name>). Prints
one row per run (grasp success at the checkpoints, grasps and pushes, wall minutes) and the
median row; a run that has not reached a checkpoint has no value there and the median is
taken over the runs that have. No ROS here.
"""

import argparse
import json
import math
import os
import statistics
import sys

from vpg_trainer.progress import finish_success_plot, read_rows

CHECKPOINTS = (100, 200, 500, 1000, 1250, 1500)


def _float(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def run_summary(rows, checkpoints=CHECKPOINTS):
    """
    Return grasp success (last 200) at each checkpoint reached and the run's counts at its end.

    rows are metrics.csv rows (dicts of strings, one per action, in order).
    """
    if not rows:
        return {'actions': 0, 'grasp_success_at': {}, 'grasp_attempts': 0, 'push_attempts': 0,
                'updates': 0, 'wall_minutes': math.nan}
    by_action = {int(row['action']): row for row in rows}
    at = {c: _float(by_action[c]['grasp_success_rate']) for c in checkpoints if c in by_action}
    last = rows[-1]
    return {
        'actions': int(last['action']),
        'grasp_success_at': at,
        'grasp_attempts': int(last['grasp_attempts']),
        'push_attempts': int(last['push_attempts']),
        'updates': int(last['updates']),
        'wall_minutes': round(_float(last['wall_s']) / 60.0, 1),
    }


def median_summary(summaries, checkpoints=CHECKPOINTS):
    """Per checkpoint: median over the runs that reached it and how many did."""
    out = {}
    for checkpoint in checkpoints:
        values = [s['grasp_success_at'][checkpoint] for s in summaries
                  if checkpoint in s['grasp_success_at']
                  and not math.isnan(s['grasp_success_at'][checkpoint])]
        out[checkpoint] = {'median': statistics.median(values) if values else math.nan,
                           'runs': len(values)}
    return out


def goal_met(summaries, goal=0.80, actions=1500, minutes=60.0):
    """
    Tell whether a set of seeds meets the training goal: median rate at `actions` >= goal.

    A run that took longer than `minutes` counts as having missed (rate 0), so the median cannot
    be carried by a run over the time limit. None when some run has not reached `actions`.
    """
    rates = []
    for summary in summaries:
        if actions not in summary['grasp_success_at']:
            return None
        rate = summary['grasp_success_at'][actions]
        rates.append(rate if summary['wall_minutes'] <= minutes else 0.0)
    return bool(rates) and statistics.median(rates) >= goal


def _pct(value):
    return '   -  ' if value is None or math.isnan(value) else f'{value * 100:5.1f}%'


def format_table(names, summaries, medians, checkpoints=CHECKPOINTS):
    """Format a plain-text table: one row per run, then the median."""
    head = f'{"run":34s}' + ''.join(f'{c:>8d}' for c in checkpoints) + \
        '  grasps  pushes  updates   min'
    lines = [head]
    for name, summary in zip(names, summaries):
        cells = ''.join(f'{_pct(summary["grasp_success_at"].get(c)):>8s}' for c in checkpoints)
        lines.append(f'{name[-34:]:34s}{cells}  {summary["grasp_attempts"]:6d}  '
                     f'{summary["push_attempts"]:6d}  {summary["updates"]:7d}  '
                     f'{summary["wall_minutes"]:5.1f}')
    cells = ''.join(f'{_pct(medians[c]["median"]):>8s}' for c in checkpoints)
    lines.append(f'{"median":34s}{cells}')
    return '\n'.join(lines)


def plot(names, rows_per_run, png_path, goal=0.80, title='Grasp success, last 200 grasps'):
    """Draw each run's curve and their median where every run has a rate (all reached it)."""
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot

    figure, axis = pyplot.subplots(figsize=(7, 4), dpi=110)
    series = {}
    for name, rows in zip(names, rows_per_run):
        xs = [int(r['action']) for r in rows]
        ys = [_float(r['grasp_success_rate']) * 100 for r in rows]
        axis.plot(xs, ys, linewidth=1, alpha=0.7, label=os.path.basename(name.rstrip('/')))
        series[name] = dict(zip(xs, ys))
    longest = max((max(s) for s in series.values() if s), default=0)
    median_x, median_y = [], []
    for x in range(1, longest + 1):
        values = [s[x] for s in series.values() if x in s and not math.isnan(s[x])]
        if len(values) == len(series):
            median_x.append(x)
            median_y.append(statistics.median(values))
    axis.plot(median_x, median_y, color='black', linewidth=2, label='median')
    return finish_success_plot(figure, axis, png_path, title, goal)


def _finite(value):
    """Return the same structure with nan as None, so the file is strict JSON."""
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('runs', nargs='+', help='run directories holding metrics.csv')
    parser.add_argument('--png', default=None, help='write the curves and their median here')
    parser.add_argument('--json', default=None, help='write the figures here')
    parser.add_argument('--title', default='Grasp success, last 200 grasps')
    args = parser.parse_args(argv)

    rows_per_run = []
    for run in args.runs:
        rows = read_rows(os.path.join(run, 'metrics.csv'))
        if not rows:
            parser.error(f'{run}: no metrics.csv rows')
        rows_per_run.append(rows)
    summaries = [run_summary(rows) for rows in rows_per_run]
    medians = median_summary(summaries)
    print(format_table(args.runs, summaries, medians))
    met = goal_met(summaries)
    print('goal (median >= 80 % at 1500 actions within 60 min): '
          + {None: 'not all runs have 1500 actions', True: 'met', False: 'not met'}[met])
    if args.png:
        plot(args.runs, rows_per_run, args.png, title=args.title)
    if args.json:
        with open(args.json, 'w') as handle:
            json.dump(_finite({'runs': dict(zip(args.runs, summaries)),
                               'median': medians, 'goal_met': met}), handle, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
