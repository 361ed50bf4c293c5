"""Seeded per-run perturbation of a test case: bounded, repeatable, no blocks inside each other."""

import math

import numpy as np
from vpg_evaluation import perturbation
from vpg_sim import blocks

# Two cubes 2 mm apart: a perturbation that moved them into each other must be drawn again.
FLUSH = ('cube 1 0 0 -0.5 0.0 0.0255 0 0 0\n'
         'cube 0 1 0 -0.5 0.052 0.0255 0 0 0\n'
         'cube 0 0 1 -0.45 -0.1 0.0255 0 0 0.3\n')


def _yaw(quat):
    return blocks.quat_to_euler(quat)[2]


def test_perturbed_runs_are_bounded_repeatable_and_differ_by_seed(tmp_path):
    case = tmp_path / 'flush.txt'
    case.write_text(FLUSH)
    original = blocks.load_test_case(case)
    first = perturbation.perturbed_case(original, 0)
    assert first == perturbation.perturbed_case(original, 0)
    assert first != perturbation.perturbed_case(original, 1)
    for seed in range(5):
        moved = perturbation.perturbed_case(original, seed)
        for before, after in zip(original, moved):
            shift = np.subtract(after.position, before.position)
            assert np.all(np.abs(shift[:2]) <= perturbation.MAX_SHIFT + 1e-12)
            assert shift[2] == 0.0 and after.shape == before.shape
            turn = (_yaw(after.quat) - _yaw(before.quat) + math.pi) % (2 * math.pi) - math.pi
            assert abs(turn) <= perturbation.MAX_TURN + 1e-9
        assert perturbation.deepest_penetration(moved) <= perturbation.MAX_PENETRATION
    assert perturbation.deepest_penetration(original) <= perturbation.MAX_PENETRATION


def test_overlapping_draws_are_detected(tmp_path):
    overlapping = blocks.parse_test_case('cube 1 0 0 -0.5 0.0 0.0255 0 0 0\n'
                                         'cube 0 1 0 -0.5 0.045 0.0255 0 0 0\n')
    assert perturbation.deepest_penetration(overlapping) > 0.004


def test_written_file_loads_and_is_rewritten_only_when_it_differs(tmp_path):
    case = tmp_path / 'flush.txt'
    case.write_text(FLUSH)
    path = perturbation.write_perturbed_case(case, 3, tmp_path / 'runs')
    assert path.name == 'flush-run3.txt'
    loaded = blocks.load_test_case(path)
    expected = perturbation.perturbed_case(blocks.load_test_case(case), 3)
    assert len(loaded) == 3
    assert np.allclose([o.position for o in loaded], [o.position for o in expected], atol=1e-8)
    stamp = path.stat().st_mtime_ns
    assert perturbation.write_perturbed_case(case, 3, tmp_path / 'runs') == path
    assert path.stat().st_mtime_ns == stamp
