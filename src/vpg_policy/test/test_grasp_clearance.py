"""Room for the open pads: the single-grasp test, the per-rotation masks, the decision."""

import math

import numpy as np
import pytest
from vpg_perception.grid import HeightmapGrid
from vpg_policy.decision import ActionMask, choose_action, GRASP, GRASP_ONLY, PUSH
from vpg_policy.grasp_clearance import blocked, clearance_masks

RES = 0.002
GRID = HeightmapGrid(x_min=-0.724, x_max=-0.276, y_min=-0.224, y_max=0.224, resolution=RES)
CLEARANCE = ActionMask(grasp_clearance=True)


def _pair():
    """Table at 0; a 40 mm cube at pixel (100, 100); a neighbour 36 mm away along +x."""
    height = np.zeros((224, 224), np.float32)
    height[90:111, 90:111] = 0.04
    height[90:111, 118:139] = 0.04
    return height


def test_a_neighbour_under_a_pad_blocks_only_the_jaw_axis_that_reaches_it():
    height = _pair()
    assert blocked(height, 100, 100, 0.0, RES)                  # jaws along x
    assert blocked(height, 100, 100, math.pi, RES)              # the same line
    assert not blocked(height, 100, 100, math.pi / 2, RES)      # along y: room
    # The pinch point goes 30 mm below the 40 mm top, but no lower than 20 mm above the
    # table, so the pads' lowest point is 20 - 4.4 = 15.6 mm: a lower neighbour leaves room.
    height[90:111, 118:139] = 0.015
    assert not blocked(height, 100, 100, 0.0, RES)
    height[90:111, 118:139] = 0.025
    assert blocked(height, 100, 100, 0.0, RES)
    # On a 60 mm block the pinch point goes to 30 mm, the pads to 25.6 mm.
    height[90:111, 90:111] = 0.06
    height[90:111, 118:139] = 0.025
    assert not blocked(height, 100, 100, 0.0, RES)
    height[90:111, 118:139] = 0.035
    assert blocked(height, 100, 100, 0.0, RES)


def test_a_low_lone_block_has_room_the_table_is_not_in_the_way():
    # A 25 mm block: 30 mm below its top would be under the table; the executor raises the
    # pinch point to 20 mm, and the pads (15.6 mm) stay above the table and its depth noise.
    height = np.zeros((224, 224), np.float32)
    height[90:111, 90:111] = 0.025
    assert not blocked(height, 100, 100, 0.0, RES)
    masks = clearance_masks(height, RES, 16)
    assert masks[:, 100, 100].all()
    assert masks[0, 100, 100] == (not blocked(height, 100, 100, 0.0, RES))
    # With the pinch point sent 30 mm below the top regardless (no floor), the table blocks.
    assert blocked(height, 100, 100, 0.0, RES, grasp_floor=-1.0)
    assert not clearance_masks(height, RES, 16, grasp_floor=-1.0)[:, 100, 100].any()


def test_a_cell_whose_square_reaches_under_a_pad_blocks():
    # A neighbour beside the jaw axis from 12 mm across it (the cells centred there span 11-13
    # mm) and 42-80 mm along it: the pads reach 11 mm across, so its edge may lie under a
    # pad's corner though no cell centre does (the stops tools/grasp_room_probe.py found).
    height = np.zeros((224, 224), np.float32)
    height[90:111, 90:111] = 0.04
    height[106:127, 121:140] = 0.04
    assert blocked(height, 100, 100, 0.0, RES)
    assert not clearance_masks(height, RES, 16)[0, 100, 100]
    # From 16 mm across (edge between 15 and 17 mm) it is clear of the pads.
    height[106:127, 121:140] = 0.0
    height[108:127, 121:140] = 0.04
    assert not blocked(height, 100, 100, 0.0, RES)
    assert clearance_masks(height, RES, 16)[0, 100, 100]


def test_beyond_the_maps_edge_the_edges_heights_continue():
    height = np.zeros((224, 224), np.float32)
    height[100:121, 212:224] = 0.04  # a block the map's edge cuts at x
    assert blocked(height, 110, 216, 0.0, RES)          # a pad reaches past the edge onto it
    assert not clearance_masks(height, RES, 16)[0, 110, 216]
    assert not blocked(height, 110, 216, math.pi / 2, RES)  # jaws along y: room
    assert clearance_masks(height, RES, 16)[4, 110, 216]
    # Bare table at the edge stays bare: a grasp near it with jaws along x has room.
    height[:] = 0.0
    height[40:61, 200:212] = 0.04
    assert not blocked(height, 50, 206, 0.0, RES)


def test_masks_agree_with_the_single_grasp_test():
    rng = np.random.default_rng(0)
    height = np.zeros((224, 224), np.float32)
    for _ in range(12):
        r, c = rng.integers(20, 200, size=2)
        height[r - 10:r + 10, c - 10:c + 10] = rng.uniform(0.02, 0.05)
    masks = clearance_masks(height, RES, 16)
    assert masks.shape == (16, 224, 224)
    assert np.array_equal(masks[3], masks[11])  # i and i + 8: the same pads
    for _ in range(300):
        i, r, c = int(rng.integers(16)), int(rng.integers(224)), int(rng.integers(224))
        assert masks[i, r, c] == (not blocked(height, r, c, i * 2 * math.pi / 16, RES)), (i, r, c)


def _q(best_grasp_rotation=0):
    """Q maps that prefer grasping at the cube's centre with jaws along x (blocked)."""
    push = np.full((16, 224, 224), 0.1, np.float32)
    grasp = np.full((16, 224, 224), 0.2, np.float32)
    grasp[best_grasp_rotation, 100, 100] = 0.9
    grasp[4, 100, 100] = 0.5  # jaws along y: room
    return push, grasp


def test_greedy_grasp_goes_where_the_pads_have_room():
    push, grasp = _q()
    plain = choose_action(push, grasp, _pair(), GRID, mask=ActionMask())
    assert (plain.primitive, plain.rotation_index) == (GRASP, 0)
    cleared = choose_action(push, grasp, _pair(), GRID, mask=CLEARANCE)
    assert (cleared.primitive, cleared.rotation_index, cleared.row, cleared.col) == (
        GRASP, 4, 100, 100)


def _packed():
    """Return a 360 mm disc of 40 mm high clutter: no grasp on it has room for both pads."""
    rows, cols = np.mgrid[0:224, 0:224]
    height = np.zeros((224, 224), np.float32)
    height[(rows - 112) ** 2 + (cols - 112) ** 2 <= 90 ** 2] = 0.04
    return height


def test_the_corner_of_a_square_cluster_leaves_room_for_a_diagonal_grasp():
    height = np.zeros((224, 224), np.float32)
    height[70:130, 70:130] = 0.04
    masks = clearance_masks(height, RES, 16)
    assert not masks[:, 85:115, 85:115].any()  # the middle: pads on the cluster everywhere
    assert masks[1, 70, 116]  # the corner region, jaws at 22.5 deg: both pads beside it


def test_no_room_for_any_grasp_means_push_or_the_plain_mask_when_grasping_only():
    push, grasp = _q()
    from vpg_policy.decision import action_masks
    assert not action_masks(_packed(), RES, CLEARANCE, 16)[1].any()
    decision = choose_action(push, grasp, _packed(), GRID, mask=CLEARANCE)
    assert decision.primitive == PUSH
    # Exploration cannot send a grasp there either.
    explored = [choose_action(push, grasp, _packed(), GRID, epsilon=1.0, mask=CLEARANCE,
                              rng=np.random.default_rng(k)).primitive for k in range(20)]
    assert set(explored) == {PUSH}
    only = choose_action(push, grasp, _packed(), GRID, allowed=GRASP_ONLY, mask=CLEARANCE)
    assert (only.primitive, only.row, only.col) == (GRASP, 100, 100)


def test_the_clearance_mask_needs_the_rotation_count():
    from vpg_policy.decision import action_masks
    with pytest.raises(ValueError, match='num_rotations'):
        action_masks(_pair(), RES, CLEARANCE)


def test_random_actions_go_where_the_masks_allow():
    from vpg_policy.decision import action_masks
    push, grasp = _q()
    height = _pair()
    push_mask, grasp_mask = action_masks(height, RES, CLEARANCE, 16)
    rng = np.random.default_rng(3)
    chosen = [choose_action(push, grasp, height, GRID, 1.0, rng=rng, mask=CLEARANCE,
                            exploration='random_action') for _ in range(300)]
    grasps = [d for d in chosen if d.primitive == GRASP]
    pushes = [d for d in chosen if d.primitive == PUSH]
    assert len(grasps) > 100 and len(pushes) > 100
    assert all(grasp_mask[d.rotation_index, d.row, d.col] for d in grasps)
    assert all(push_mask[d.row, d.col] for d in pushes)
    # Spread over the allowed grasps, not the greedy one: many rotations and pixels.
    assert len({d.rotation_index for d in grasps}) > 8
    assert len({(d.row, d.col) for d in grasps}) > 50
    # Jaws along x at the cube's middle are never drawn (a pad would land on the neighbour).
    assert not any(d.rotation_index in (0, 8) and 90 <= d.row <= 110 and 97 <= d.col <= 103
                   for d in grasps)


def test_an_inset_keeps_grasps_off_the_edges_and_thin_objects_their_middle_line():
    from vpg_policy.decision import action_masks
    height = np.zeros((224, 224), np.float32)
    height[90:110, 90:110] = 0.03    # a 40 mm block
    height[150:180, 40:44] = 0.03    # an 8 mm wide bar, 60 mm long
    inset = ActionMask(grasp_inset=0.006)
    grasp = action_masks(height, RES, inset)[1]
    # Row 93's centre is 7 mm inside the edge (between rows 89 and 90), row 92's 5 mm.
    assert grasp[100, 100] and grasp[93, 100] and grasp[100, 106]
    assert not grasp[90, 100] and not grasp[92, 100] and not grasp[100, 107]
    assert not grasp[89, 100]                               # the margin is not added
    # The bar is never 6 mm deep: its middle line stays, its sides and ends do not.
    bar = grasp[150:180, 38:46]
    assert bar.any() and not bar[:, [0, 1, 2, 7]].any()
    assert set(np.nonzero(bar.any(axis=0))[0]) <= {3, 4}
    assert grasp[165, 41] or grasp[165, 42]
    # Off (0): the object cells and the 4 mm margin, as before.
    plain = action_masks(height, RES, ActionMask())[1]
    assert plain[89, 100] and plain[90, 100] and not plain[87, 100]
    # With the clearance mask the inset applies per rotation too.
    both = action_masks(height, RES, ActionMask(grasp_inset=0.006, grasp_clearance=True), 16)[1]
    assert not both[:, 90, 100].any() and both[:, 100, 100].all()


def test_depth_dropouts_in_a_block_top_are_not_edges_for_the_inset():
    from vpg_policy.decision import action_masks
    height = np.zeros((224, 224), np.float32)
    height[90:120, 90:120] = 0.03    # a 60 mm block
    whole = action_masks(height, RES, ActionMask(grasp_inset=0.006))[1]
    # Single cells and a pair with no depth point (height 0) scattered over its top.
    holes = [(95, 97), (100, 104), (104, 110), (111, 100), (112, 100), (106, 95)]
    for row, col in holes:
        height[row, col] = 0.0
    grasp = action_masks(height, RES, ActionMask(grasp_inset=0.006))[1]
    assert np.array_equal(grasp, whole)
    # Filling is needed: without it every hole is an edge with its own ridge around it.
    from vpg_policy.decision import _inset
    raw = _inset(height > 0.01, 3.0)
    assert not np.array_equal(raw, whole) and not raw[100, 104]
    # A table patch enclosed by blocks but larger than a dropout stays an edge.
    ring = np.zeros((224, 224), np.float32)
    ring[60:100, 60:100] = 0.03
    ring[76:84, 76:84] = 0.0         # 16 x 16 mm of table inside
    grasp = action_masks(ring, RES, ActionMask(grasp_inset=0.006))[1]
    assert not grasp[76:84, 76:84].any() and not grasp[80, 86] and grasp[80, 90]


def test_centring_moves_an_edge_grasp_inside_its_own_region_only():
    from vpg_policy.decision import centre_in_allowed
    allowed = np.zeros((224, 224), bool)
    allowed[90:110, 90:110] = True           # a 40 mm block, 20 px
    allowed[90:110, 113:133] = True          # a neighbour 3 px away along +col
    # From the top edge, 8 px reach: straight in, to the deepest pixel within reach.
    assert centre_in_allowed(allowed, 90, 100, 8) == (98, 100)
    # From the right edge facing the neighbour: inward, never onto the neighbour.
    row, col = centre_in_allowed(allowed, 100, 109, 8)
    assert 90 <= col < 110 and col < 109 and (row, col) != (100, 109)
    assert centre_in_allowed(allowed, 100, 109, 12) == (100, 100)   # of the two middles
    # Already the deepest pixel within reach: stays (ties go to the nearest).
    assert centre_in_allowed(allowed, 99, 99, 4) == (99, 99)
    # Not allowed, or less than a pixel of reach: unchanged.
    assert centre_in_allowed(allowed, 10, 10, 8) == (10, 10)
    assert centre_in_allowed(allowed, 90, 100, 0.5) == (90, 100)


def test_greedy_grasps_are_centred_random_action_draws_are_not():
    height = np.zeros((224, 224), np.float32)
    height[90:110, 90:110] = 0.04
    push = np.zeros((16, 224, 224), np.float32)
    grasp = np.zeros((16, 224, 224), np.float32)
    # Q peaks on the top edge's middle.
    grasp[4, 90:110, 90:110] = np.linspace(1.0, 0.5, 20)[:, None] - \
        0.01 * np.abs(np.arange(90, 110) - 100)[None, :]
    mask = ActionMask(grasp_margin=0.0)
    plain = choose_action(push, grasp, height, GRID, mask=mask)
    assert (plain.primitive, plain.rotation_index, plain.row, plain.col) == (GRASP, 4, 90, 100)
    centred = choose_action(push, grasp, height, GRID, mask=mask, grasp_centring=0.016)
    assert (centred.rotation_index, centred.row, centred.col) == (4, 98, plain.col)
    assert centred.q_value == pytest.approx(float(grasp[4, 98, plain.col]))
    assert centred.max_grasp_q == pytest.approx(1.0)
    # With the clearance mask it centres inside that rotation's allowed region.
    both = choose_action(push, grasp, height, GRID, mask=ActionMask(grasp_clearance=True),
                         grasp_centring=0.016)
    assert both.rotation_index == 4 and both.row > 90
    # Off without the mask; random_action draws keep their pixel (uniform over the mask).
    off = choose_action(push, grasp, height, GRID, mask=ActionMask(enabled=False),
                        grasp_centring=0.016)
    assert (off.row, off.col) == (plain.row, plain.col)
    rng = np.random.default_rng(3)
    rows = [choose_action(push, grasp, height, GRID, epsilon=1.0, rng=rng, mask=mask,
                          exploration='random_action', explore_grasp_fraction=1.0,
                          grasp_centring=0.016).row for _ in range(200)]
    assert min(rows) == 90 and max(rows) == 109
