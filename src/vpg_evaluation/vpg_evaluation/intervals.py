"""
Intervals and tests for evaluation results, small enough to need no statistics library.

- wilson_interval: the Wilson score interval of a proportion (completion over runs); it keeps
  inside 0..100 % and behaves at 0 and n successes, where the normal approximation does not.
- bootstrap_interval: a percentile bootstrap of a mean over runs, resampled within each group
  (test case) so every case keeps its weight, as the combined metric gives it.
- fisher_exact: two-sided Fisher exact test of two proportions (one case, two policies).
- sign_test: two-sided sign test over paired differences (cases where one policy did better).
"""

import math
import random

Z95 = 1.959963984540054


def wilson_interval(successes, trials, z=Z95):
    """(low, high) in percent of the Wilson score interval; (None, None) without trials."""
    if trials <= 0:
        return None, None
    if not 0 <= successes <= trials:
        raise ValueError(f'successes must lie in 0..{trials}, got {successes}')
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return 100.0 * max(0.0, centre - half), 100.0 * min(1.0, centre + half)


def _mean_of_group_means(groups):
    means = [sum(g) / len(g) for g in groups if g]
    return sum(means) / len(means) if means else None


def bootstrap_interval(groups, resamples=2000, level=0.95, seed=0):
    """
    Percentile bootstrap interval of the mean of group means.

    groups: sequences of per-run values (one per test case; one group for random runs);
    empty groups are left out. Each resample draws every group's runs with replacement from
    that group. Returns (low, high), or (None, None) when no group has a value.
    """
    groups = [list(g) for g in groups if len(g)]
    if not groups:
        return None, None
    rng = random.Random(seed)
    estimates = sorted(
        _mean_of_group_means([rng.choices(g, k=len(g)) for g in groups])
        for _ in range(resamples))
    tail = (1 - level) / 2
    low = estimates[int(math.floor(tail * (resamples - 1)))]
    high = estimates[int(math.ceil((1 - tail) * (resamples - 1)))]
    return low, high


def fisher_exact(successes_a, trials_a, successes_b, trials_b):
    """Two-sided p-value of Fisher's exact test for the 2x2 table of two proportions."""
    total = trials_a + trials_b
    hits = successes_a + successes_b

    def probability(k):
        return (math.comb(trials_a, k) * math.comb(trials_b, hits - k)
                / math.comb(total, hits))

    observed = probability(successes_a)
    low, high = max(0, hits - trials_b), min(hits, trials_a)
    p = sum(probability(k) for k in range(low, high + 1)
            if probability(k) <= observed * (1 + 1e-9))
    return min(1.0, p)


def sign_test(differences):
    """Two-sided sign test p-value of paired differences (zeros are left out); 1.0 if none."""
    positive = sum(d > 0 for d in differences)
    negative = sum(d < 0 for d in differences)
    n = positive + negative
    if n == 0:
        return 1.0
    k = min(positive, negative)
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n)
