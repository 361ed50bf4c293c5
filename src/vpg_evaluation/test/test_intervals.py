"""Intervals and tests on hand-made figures with known answers."""

import pytest
from vpg_evaluation.intervals import bootstrap_interval, fisher_exact, sign_test, wilson_interval


def test_wilson_interval_matches_published_values():
    # Wilson (1927) 95 % intervals: 8/10 -> 0.490..0.943, 0/10 -> 0..0.278, 10/10 -> 0.722..1.
    assert wilson_interval(8, 10) == pytest.approx((49.02, 94.33), abs=0.01)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 27.75), abs=0.01)
    assert wilson_interval(10, 10) == pytest.approx((72.25, 100.0), abs=0.01)
    assert wilson_interval(0, 0) == (None, None)
    with pytest.raises(ValueError):
        wilson_interval(11, 10)


def test_fisher_exact_lady_tasting_tea_and_symmetry():
    # Fisher's tea: 4 of 4 right against 0 of 4, two-sided p = 2/70.
    assert fisher_exact(4, 4, 0, 4) == pytest.approx(2 / 70)
    assert fisher_exact(3, 10, 3, 10) == pytest.approx(1.0)
    assert fisher_exact(8, 10, 1, 10) == pytest.approx(fisher_exact(1, 10, 8, 10))
    assert fisher_exact(8, 10, 1, 10) < 0.01


def test_sign_test():
    assert sign_test([1] * 8 + [-1] * 2) == pytest.approx(2 * (1 + 10 + 45) / 1024)
    assert sign_test([0, 0]) == 1.0
    assert sign_test([5] * 10) == pytest.approx(2 / 1024)


def test_bootstrap_interval_brackets_the_mean_and_keeps_each_group_weight():
    low, high = bootstrap_interval([[60, 70, 80, 90, 100] * 4])
    assert low < 80 < high and 70 < low and high < 90
    assert bootstrap_interval([[50.0] * 5]) == (50.0, 50.0)
    # Two cases weigh the same however many runs each has: the mean of means is 50.
    low, high = bootstrap_interval([[0.0] * 30, [100.0] * 3])
    assert low == high == 50.0
    assert bootstrap_interval([[], []]) == (None, None)
    assert bootstrap_interval([[1, 2, 3]], seed=4) == bootstrap_interval([[1, 2, 3]], seed=4)
