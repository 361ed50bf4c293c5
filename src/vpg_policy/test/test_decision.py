"""Choosing the action from Q maps: VPG's rule, restrictions, epsilon-greedy, 3-D point."""

import math

import numpy as np
import pytest
from vpg_perception.grid import HeightmapGrid
from vpg_policy.decision import (ALLOW_BOTH, choose_action, Exploration, GRASP, GRASP_ONLY,
                                 InvalidHeightmapError, Policy, PUSH, PUSH_ONLY,
                                 validate_heightmap)
from vpg_policy.q_network import build_q_network
from vpg_policy.q_network_base import QNetworkConfig

GRID = HeightmapGrid(x_min=-0.6, x_max=-0.472, y_min=-0.064, y_max=0.064, resolution=0.004)


def maps(push_peak, grasp_peak, shape=(16, 32, 32), seed=0):
    """Low random Q maps with one peak each at (rotation, row, col, value)."""
    rng = np.random.default_rng(seed)
    push = (rng.random(shape) * 0.1).astype(np.float32)
    grasp = (rng.random(shape) * 0.1).astype(np.float32)
    for q, (r, row, col, value) in ((push, push_peak), (grasp, grasp_peak)):
        q[r, row, col] = value
    return push, grasp


def height_map():
    height = np.zeros((32, 32), np.float32)
    height[10:20, 5:15] = 0.04
    return height


def test_grasp_unless_push_is_strictly_better():
    push, grasp = maps((3, 12, 7, 0.9), (5, 15, 9, 0.8))
    d = choose_action(push, grasp, height_map(), GRID)
    assert (d.primitive, d.rotation_index, d.row, d.col) == (PUSH, 3, 12, 7)
    assert d.q_value == pytest.approx(0.9) and not d.exploratory
    assert d.max_push_q == pytest.approx(0.9) and d.max_grasp_q == pytest.approx(0.8)
    assert d.angle == pytest.approx(3 * 2 * math.pi / 16)

    push, grasp = maps((3, 12, 7, 0.8), (5, 15, 9, 0.8))  # a tie goes to the grasp
    d = choose_action(push, grasp, height_map(), GRID)
    assert (d.primitive, d.rotation_index, d.row, d.col) == (GRASP, 5, 15, 9)


def test_position_is_the_pixel_centre_at_the_local_height():
    push, grasp = maps((0, 0, 0, 0.0), (2, 12, 8, 1.0))
    d = choose_action(push, grasp, height_map(), GRID)
    x, y, z = d.position
    assert x == pytest.approx(GRID.x_min + 8.5 * 0.004)
    assert y == pytest.approx(GRID.y_min + 12.5 * 0.004)
    assert z == pytest.approx(GRID.z_min + 0.04)


def test_allowed_primitive_restricts_the_choice():
    push, grasp = maps((3, 12, 7, 0.9), (5, 15, 9, 0.2))
    d = choose_action(push, grasp, height_map(), GRID, allowed=GRASP_ONLY)
    assert d.primitive == GRASP and (d.row, d.col) == (15, 9)
    assert math.isnan(d.max_push_q) and d.max_grasp_q == pytest.approx(0.2)
    d = choose_action(push, grasp, height_map(), GRID, allowed=PUSH_ONLY, epsilon=1.0,
                      rng=np.random.default_rng(0))
    assert d.primitive == PUSH and math.isnan(d.max_grasp_q)
    with pytest.raises(ValueError, match='allowed'):
        choose_action(push, grasp, height_map(), GRID, allowed=3)


def test_epsilon_greedy_rates_and_seeding():
    push, grasp = maps((3, 12, 7, 0.2), (5, 15, 9, 0.9))
    rng = np.random.default_rng(1)
    never = [choose_action(push, grasp, height_map(), GRID, 0.0, rng=rng) for _ in range(200)]
    assert not any(d.exploratory for d in never)
    always = [choose_action(push, grasp, height_map(), GRID, 1.0, rng=rng) for _ in range(400)]
    assert all(d.exploratory for d in always)
    pushes = sum(d.primitive == PUSH for d in always)
    assert 150 < pushes < 250  # a fair coin between the two allowed primitives
    # VPG's exploration keeps each primitive's best pixel.
    assert {(d.row, d.col) for d in always} == {(12, 7), (15, 9)}
    some = [choose_action(push, grasp, height_map(), GRID, 0.3, rng=rng).exploratory
            for _ in range(1000)]
    assert 0.25 < np.mean(some) < 0.35

    def draws(seed):
        rng = np.random.default_rng(seed)
        return [choose_action(push, grasp, height_map(), GRID, 0.5, rng=rng,
                              exploration=Exploration.RANDOM_ACTION) for _ in range(20)]
    a, b = draws(7), draws(7)
    assert [(d.primitive, d.rotation_index, d.row, d.col) for d in a] == \
        [(d.primitive, d.rotation_index, d.row, d.col) for d in b]
    with pytest.raises(ValueError, match='epsilon'):
        choose_action(push, grasp, height_map(), GRID, 1.5)


def test_random_actions_land_on_objects():
    push, grasp = maps((3, 12, 7, 0.2), (5, 15, 9, 0.9))
    height = height_map()
    rng = np.random.default_rng(2)
    chosen = [choose_action(push, grasp, height, GRID, 1.0, rng=rng,
                            exploration='random_action') for _ in range(200)]
    assert all(height[d.row, d.col] > 0.01 for d in chosen)
    assert len({d.rotation_index for d in chosen}) > 10
    for d in chosen:
        q = push if d.primitive == PUSH else grasp
        assert d.q_value == pytest.approx(float(q[d.rotation_index, d.row, d.col]))
    empty = choose_action(push, grasp, np.zeros((32, 32), np.float32), GRID, 1.0, rng=rng,
                          exploration='random_action')
    assert empty.exploratory  # falls back to any pixel


def test_non_finite_q_is_an_error():
    push, grasp = maps((3, 12, 7, 0.2), (5, 15, 9, 0.9))
    grasp[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match='grasp Q maps'):
        choose_action(push, grasp, height_map(), GRID)
    assert choose_action(push, grasp, height_map(), GRID, allowed=PUSH_ONLY).primitive == PUSH


def test_invalid_heightmaps_are_reported():
    color = np.zeros((32, 32, 3), np.uint8)
    validate_heightmap(color, height_map(), GRID, 4)
    bad = height_map()
    bad[3, 3] = np.nan
    cases = [
        ((color, bad, GRID, 4), 'finite'),
        ((color[:16], height_map(), GRID, 4), 'differ'),
        ((color, height_map(), HeightmapGrid(), 4), 'bounds'),
        ((color, height_map(), GRID, 5), 'multiple'),
        ((color.astype(np.float32), height_map(), GRID, 4), 'uint8'),
    ]
    for args, match in cases:
        with pytest.raises(InvalidHeightmapError, match=match):
            validate_heightmap(*args)


def test_policy_runs_the_network_end_to_end():
    config = QNetworkConfig(num_rotations=8, stem_channels=4, trunk_channels=4,
                            feature_channels=4, head_channels=4)
    policy = Policy(build_q_network('vpg', config, seed=0))
    color = np.full((32, 32, 3), 100, np.uint8)
    d = policy.decide(color, height_map(), GRID, allowed=ALLOW_BOTH)
    assert d.num_rotations == 8 and d.push_q.shape == (8, 32, 32)
    best = max(d.max_push_q, d.max_grasp_q)
    assert d.q_value == pytest.approx(best)
    with pytest.raises(InvalidHeightmapError):
        policy.decide(color, height_map()[:, :30], GRID)


def test_exploration_picks_grasps_with_the_given_fraction():
    push, grasp = maps((3, 12, 7, 0.9), (5, 15, 9, 0.8))
    rng = np.random.default_rng(5)

    def grasp_share(fraction):
        picks = [choose_action(push, grasp, height_map(), GRID, epsilon=1.0, rng=rng,
                               explore_grasp_fraction=fraction).primitive for _ in range(2000)]
        return np.mean(np.asarray(picks) == GRASP)

    assert grasp_share(0.8) == pytest.approx(0.8, abs=0.03)
    assert grasp_share(0.5) == pytest.approx(0.5, abs=0.04)
    assert grasp_share(0.0) == 0.0
    only_push = choose_action(push, grasp, height_map(), GRID, epsilon=1.0, rng=rng,
                              allowed=PUSH_ONLY, explore_grasp_fraction=1.0)
    assert only_push.primitive == PUSH
    with pytest.raises(ValueError, match='explore_grasp_fraction'):
        choose_action(push, grasp, height_map(), GRID, explore_grasp_fraction=1.5)
