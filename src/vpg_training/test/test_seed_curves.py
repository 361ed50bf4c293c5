"""Seed curves: checkpoints, the median over seeds and the goal rule, on hand-made rows."""

import json
import math

import pytest

from vpg_training import seed_curves


def rows(rates, wall_s_per_action=2.0, grasp_every=1):
    """metrics.csv rows whose grasp_success_rate is rates[i] after action i + 1."""
    out = []
    for i, rate in enumerate(rates):
        action = i + 1
        out.append({'action': str(action), 'grasp_success_rate': str(rate),
                    'grasp_attempts': str(action // grasp_every),
                    'push_attempts': str(action - action // grasp_every),
                    'updates': str(3 * action), 'wall_s': str(action * wall_s_per_action)})
    return out


def test_run_summary_reads_checkpoints_reached_only():
    summary = seed_curves.run_summary(rows([0.5] * 99 + [0.6] + [0.7] * 150),
                                      checkpoints=(100, 200, 500))
    assert summary['grasp_success_at'] == {100: 0.6, 200: 0.7}
    assert summary['actions'] == 250
    assert summary['wall_minutes'] == pytest.approx(250 * 2.0 / 60, abs=0.05)
    assert summary['updates'] == 750


def test_median_is_over_runs_that_reached_the_checkpoint():
    a = seed_curves.run_summary(rows([0.9] * 200), checkpoints=(100, 200))
    b = seed_curves.run_summary(rows([0.5] * 200), checkpoints=(100, 200))
    c = seed_curves.run_summary(rows([0.7] * 100), checkpoints=(100, 200))
    medians = seed_curves.median_summary([a, b, c], checkpoints=(100, 200))
    assert medians[100] == {'median': 0.7, 'runs': 3}
    assert medians[200] == {'median': pytest.approx(0.7), 'runs': 2}


def test_nan_rates_do_not_enter_the_median():
    a = seed_curves.run_summary(rows([math.nan] * 100), checkpoints=(100,))
    b = seed_curves.run_summary(rows([0.4] * 100), checkpoints=(100,))
    assert seed_curves.median_summary([a, b], checkpoints=(100,))[100] == \
        {'median': 0.4, 'runs': 1}


def test_goal_needs_the_median_seed_at_the_goal_within_the_time():
    fast_good = seed_curves.run_summary(rows([0.85] * 1500, wall_s_per_action=2.0))
    fast_bad = seed_curves.run_summary(rows([0.70] * 1500, wall_s_per_action=2.0))
    slow_good = seed_curves.run_summary(rows([0.90] * 1500, wall_s_per_action=2.5))
    assert seed_curves.goal_met([fast_good, fast_good, fast_bad]) is True
    assert seed_curves.goal_met([fast_good, fast_bad, fast_bad]) is False
    # 1500 actions at 2.5 s = 62.5 min: over the limit, so it cannot carry the median.
    assert seed_curves.goal_met([fast_good, slow_good, fast_bad]) is False
    short = seed_curves.run_summary(rows([0.9] * 1000))
    assert seed_curves.goal_met([fast_good, short, fast_good]) is None


def test_main_writes_strict_json_and_png(tmp_path, capsys):
    runs = []
    for k, rate in enumerate((0.8, 0.6, 0.9)):
        run = tmp_path / f'seed{k}'
        run.mkdir()
        data = rows([rate] * 120)
        header = list(data[0])
        lines = [','.join(header)] + [','.join(r[h] for h in header) for r in data]
        (run / 'metrics.csv').write_text('\n'.join(lines) + '\n')
        runs.append(str(run))
    out_json, out_png = tmp_path / 'seeds.json', tmp_path / 'seeds.png'
    assert seed_curves.main(runs + ['--json', str(out_json), '--png', str(out_png)]) == 0
    printed = capsys.readouterr().out
    assert 'median' in printed and '80.0%' in printed
    figures = json.loads(out_json.read_text(), parse_constant=lambda c: pytest.fail(c))
    assert figures['median']['100'] == {'median': 0.8, 'runs': 3}
    assert figures['median']['200']['median'] is None
    assert figures['goal_met'] is None
    assert out_png.stat().st_size > 0


def test_main_refuses_a_run_without_metrics(tmp_path):
    with pytest.raises(SystemExit):
        seed_curves.main([str(tmp_path)])
