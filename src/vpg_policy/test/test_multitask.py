"""The multitask variant: shared trunk, vpg-shaped Q maps, push inverse model, weights."""

import math

import numpy as np
import pytest
from synthetic_scenes import scene
import torch
from vpg_perception.grid import HeightmapGrid
from vpg_policy.decision import Policy
from vpg_policy.multitask_q_network import (inverse_model_loss, InversePrediction,
                                            MultitaskQNetwork, MultitaskQNetworkConfig,
                                            normalised_pixel, spatial_soft_argmax)
from vpg_policy.q_network import build_q_network, parameter_count
from vpg_policy.q_network_base import preprocess, QNetworkConfig
from vpg_policy.rotating_q_network import VpgQNetwork
from vpg_policy.weights import (build_from_weights, check_compatible, IncompatibleWeightsError,
                                load_into, load_model, read_weights, save_weights,
                                serialize_weights)

TINY = QNetworkConfig(num_rotations=8, stem_channels=4, trunk_channels=6,
                      trunk_dilations=(1, 2), feature_channels=4, head_channels=6,
                      head_dilations=(1,))
TINY_MULTITASK = MultitaskQNetworkConfig(**TINY.to_dict(), inverse_channels=6,
                                         inverse_dilations=(1, 2))
# Wide enough for the inverse model to learn the synthetic pushes in a few hundred steps.
LEARNING = MultitaskQNetworkConfig(num_rotations=8, stem_channels=8, trunk_channels=12,
                                   trunk_dilations=(1, 2), feature_channels=8, head_channels=8,
                                   head_dilations=(1,), inverse_channels=16,
                                   inverse_dilations=(1, 2, 4))
SIZE = 64


def draw_block(color, height, centre, half, rgb):
    r, c = (int(round(v)) for v in centre)
    color[r - half:r + half, c - half:c + half] = rgb
    height[r - half:r + half, c - half:c + half] = 0.04


def synthetic_push(rng, size=SIZE, rotations=8, half=4, length=14):
    """
    Draw a push with a known action: a block in front of the start moves `length` px along it.

    The push starts at pixel (row, col) and runs along rotation k (d = (dcol, drow) =
    (cos, sin), rotations.py); the block sits just ahead of the start and ends up where the
    gripper stops. A second block elsewhere does not move. Returns (color_before,
    height_before, color_after, height_after, row, col, angle).
    """
    lo, hi = half + 1, size - half - 1
    while True:
        angle = 2 * math.pi * int(rng.integers(rotations)) / rotations
        step = np.array([math.sin(angle), math.cos(angle)])  # (drow, dcol)
        start = rng.uniform(0, size, 2)
        block = start + step * (half + 1)
        moved = block + step * (length - half - 1)
        if all(lo <= v <= hi for v in np.concatenate([block, moved])):
            break
    color = np.full((size, size, 3), 120, np.uint8)
    height = np.zeros((size, size), np.float32)
    color_after, height_after = color.copy(), height.copy()
    for _ in range(50):  # a still block clear of the moving one
        still = rng.integers(lo, hi, 2)
        if all(np.abs(still - p).max() > 2 * half + 2 for p in (block, moved)):
            rgb = rng.integers(0, 255, 3)
            draw_block(color, height, still, half, rgb)
            draw_block(color_after, height_after, still, half, rgb)
            break
    rgb = rng.integers(0, 255, 3)
    draw_block(color, height, block, half, rgb)
    draw_block(color_after, height_after, moved, half, rgb)
    return color, height, color_after, height_after, int(start[0]), int(start[1]), angle


def push_batch(pushes, config):
    before = preprocess(np.stack([p[0] for p in pushes]), np.stack([p[1] for p in pushes]),
                        config)
    after = preprocess(np.stack([p[2] for p in pushes]), np.stack([p[3] for p in pushes]),
                       config)
    start = normalised_pixel([p[4] for p in pushes], [p[5] for p in pushes], SIZE, SIZE)
    angle = torch.tensor([p[6] for p in pushes], dtype=torch.float32)
    return before, after, start, angle


def test_inverse_model_loss_on_a_known_push_set_drops():
    rng = np.random.default_rng(0)
    before, after, start, angle = push_batch([synthetic_push(rng) for _ in range(32)],
                                             LEARNING)
    model = build_q_network('multitask', LEARNING, seed=0).train()

    def dataset_loss():
        with torch.no_grad():
            prediction = model.inverse(before, after)
            return (float(inverse_model_loss(prediction, start, angle)),
                    float(torch.nn.functional.mse_loss(prediction.start, start)), prediction)

    initial, initial_start, _ = dataset_loss()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    order = torch.Generator().manual_seed(0)
    for _ in range(150):
        pick = torch.randperm(len(angle), generator=order)[:8]
        loss = inverse_model_loss(model.inverse(before[pick], after[pick]), start[pick],
                                  angle[pick])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    final, final_start, prediction = dataset_loss()
    print(f'inverse-model loss {initial:.4f} -> {final:.4f} '
          f'(start term {initial_start:.4f} -> {final_start:.4f})')
    assert final < 0.5 * initial, (initial, final)
    assert final_start < initial_start, (initial_start, final_start)
    # The predicted end lies along the push from the predicted start in heightmap terms:
    # (drow, dcol) = (sin, cos) of the rotation angle (rotations.py).
    drow, dcol = (prediction.end - prediction.start).unbind(1)
    error = torch.atan2(drow, dcol) - angle
    assert float(torch.cos(error).mean()) > 0.9


def test_inverse_model_loss_is_mse_of_start_and_direction():
    prediction = InversePrediction(start=torch.tensor([[0.2, 0.3], [0.5, 0.5]]),
                                   direction=torch.tensor([[1.0, 0.0], [0.0, 1.0]]),
                                   end=torch.zeros(2, 2))
    start = torch.tensor([[0.25, 0.35], [0.5, 0.5]])
    angle = torch.tensor([math.pi / 2, math.pi / 2])
    start_mse = ((0.05 ** 2) * 2) / 4
    direction_mse = (1.0 + 1.0) / 4  # (1, 0) vs (0, 1) for the first sample, exact second
    loss = inverse_model_loss(prediction, start, angle)
    assert float(loss) == pytest.approx(start_mse + direction_mse, rel=1e-5)
    exact = InversePrediction(start, torch.stack([angle.cos(), angle.sin()], 1), start)
    assert float(inverse_model_loss(exact, start, angle)) == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(ValueError, match='targets'):
        inverse_model_loss(prediction, start[:1], angle)


def test_soft_argmax_and_pixel_coordinates_share_one_convention():
    logits = torch.full((1, 16, 16), -50.0)
    logits[0, 3, 5] = 50.0
    point, weights = spatial_soft_argmax(logits)
    # Cell (3, 5) of a 1/4-resolution map covers pixels 12..15 and 20..23 of a 64 px map.
    torch.testing.assert_close(point, normalised_pixel([13.5], [21.5], 64, 64))
    assert float(weights.sum()) == pytest.approx(1.0)
    corner = normalised_pixel([0, 63], [63, 0], 64, 64)
    torch.testing.assert_close(corner, torch.tensor([[0.5 / 64, 63.5 / 64],
                                                     [63.5 / 64, 0.5 / 64]]))


def test_inverse_prediction_shapes_and_units():
    model = build_q_network('multitask', TINY_MULTITASK, seed=0).eval()
    rng = np.random.default_rng(1)
    before, after, _, _ = push_batch([synthetic_push(rng) for _ in range(3)], TINY_MULTITASK)
    with torch.no_grad():
        prediction = model.inverse(before, after)
    assert prediction.start.shape == prediction.direction.shape == (3, 2)
    assert ((prediction.start > 0) & (prediction.start < 1)).all()
    torch.testing.assert_close(prediction.direction.norm(dim=1), torch.ones(3))
    with pytest.raises(ValueError, match='before and after'):
        model.inverse(before, after[:2])
    with pytest.raises(ValueError, match='multiple of 4'):
        model.inverse(before[..., :62], after[..., :62])


def test_multitask_q_maps_keep_the_vpg_shapes_and_conventions():
    vpg = build_q_network('vpg', TINY, seed=0).eval()
    multitask = build_q_network('multitask', TINY, seed=0).eval()
    assert isinstance(multitask, MultitaskQNetwork) and multitask.trunk.groups == 1
    assert multitask.input_multiple == vpg.input_multiple
    batch = [scene(seed=s) for s in range(2)]
    inputs = preprocess(np.stack([c for c, _ in batch]), np.stack([h for _, h in batch]), TINY)
    rotations = torch.tensor([[0, 5], [7, 3]])
    with torch.inference_mode():
        full_vpg, full = vpg(inputs), multitask(inputs)
        some_vpg, some = vpg(inputs, rotations), multitask(inputs, rotations)
    assert full.push.shape == full.grasp.shape == full_vpg.push.shape == (2, 8, 64, 64)
    assert some.push.shape == some.grasp.shape == some_vpg.push.shape == (2, 2, 64, 64)
    torch.testing.assert_close(full.grasp[:, :4], full.grasp[:, 4:])  # half-turn symmetric
    for b in range(2):
        for k in range(2):
            r = int(rotations[b, k])
            torch.testing.assert_close(some.push[b, k], full.push[b, r], atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(some.grasp[b, k], full.grasp[b, r], atol=1e-5,
                                       rtol=1e-4)
    push, grasp = multitask.q_maps(*scene(seed=3))
    assert push.shape == grasp.shape == (8, 64, 64) and push.dtype == np.float32
    # One shared trunk: fewer trunk parameters than vpg's two.
    assert parameter_count(multitask.trunk) < parameter_count(vpg.trunk)
    decision = Policy(multitask).decide(*scene(seed=4), HeightmapGrid(
        x_min=-0.6, x_max=-0.472, y_min=-0.064, y_max=0.064, resolution=0.002))
    assert decision.push_q.shape == (8, 64, 64)


def test_q_loss_skips_the_inverse_head_and_inverse_loss_reaches_the_trunk():
    model = build_q_network('multitask', TINY_MULTITASK, seed=2).train()
    inputs = model.preprocess(*scene(seed=5))
    maps = model(inputs, torch.tensor([[2]]))
    (maps.push[0, 0, 30, 30] + maps.grasp[0, 0, 20, 20]).backward()
    assert all(p.grad is None for p in model.inverse_head.parameters())
    assert all(p.grad is not None for p in model.trunk.parameters())
    model.zero_grad(set_to_none=True)
    rng = np.random.default_rng(3)
    before, after, start, angle = push_batch([synthetic_push(rng) for _ in range(2)],
                                             TINY_MULTITASK)
    inverse_model_loss(model.inverse(before, after), start, angle).backward()
    for name, parameter in model.named_parameters():
        in_q_heads = name.startswith(('push_head.', 'grasp_head.'))
        assert (parameter.grad is None) == in_q_heads, name
        if not in_q_heads:
            assert parameter.grad.abs().sum() > 0, name


@pytest.mark.parametrize('variant', ['vpg', 'multitask'])
def test_both_variants_save_load_and_swap(tmp_path, variant):
    model = build_q_network(variant, TINY, seed=0).eval()
    path = tmp_path / 'w.safetensors'
    digest = save_weights(path, model, version=4)
    loaded, meta = load_model(path, expected_sha256=digest)
    assert type(loaded) is type(model) and meta.variant == variant
    assert meta.config == model.config and meta.architecture_hash == model.architecture_hash()
    color, height = scene(seed=6)
    for a, b in zip(model.q_maps(color, height), loaded.q_maps(color, height)):
        np.testing.assert_array_equal(a, b)
    # A swap: newer weights of the same variant into the network being served.
    served = build_q_network(variant, TINY, seed=1).eval()
    assert not np.array_equal(served.q_maps(color, height)[0], model.q_maps(color, height)[0])
    load_into(served, read_weights(path))
    np.testing.assert_array_equal(served.q_maps(color, height)[0], model.q_maps(color, height)[0])
    if variant == 'multitask':
        rng = np.random.default_rng(4)
        before, after, _, _ = push_batch([synthetic_push(rng)], TINY)
        with torch.no_grad():
            torch.testing.assert_close(model.inverse(before, after),
                                       loaded.inverse(before, after), rtol=0, atol=0)


def test_variant_mismatch_is_rejected():
    vpg = build_q_network('vpg', TINY, seed=0)
    multitask = build_q_network('multitask', TINY, seed=0)
    multitask_weights = read_weights(serialize_weights(multitask, 1))
    vpg_weights = read_weights(serialize_weights(vpg, 1))
    with pytest.raises(IncompatibleWeightsError, match="variant 'multitask'.*is 'vpg'"):
        load_into(vpg, multitask_weights)
    with pytest.raises(IncompatibleWeightsError, match="variant 'vpg'.*is 'multitask'"):
        check_compatible(vpg_weights, multitask)
    # Each file still rebuilds its own variant.
    assert isinstance(build_from_weights(multitask_weights), MultitaskQNetwork)
    assert isinstance(build_from_weights(vpg_weights), VpgQNetwork)


def test_multitask_config_round_trips_and_validates():
    config = MultitaskQNetworkConfig.from_dict(TINY_MULTITASK.to_dict())
    assert config == TINY_MULTITASK and isinstance(config.inverse_dilations, tuple)
    upgraded = build_q_network('multitask', TINY).config
    assert upgraded == MultitaskQNetworkConfig(**TINY.to_dict())
    assert upgraded.inverse_channels == MultitaskQNetworkConfig().inverse_channels
    wider = MultitaskQNetworkConfig(**{**TINY_MULTITASK.to_dict(), 'inverse_channels': 8})
    assert build_q_network('multitask', wider).architecture_hash() != \
        build_q_network('multitask', TINY_MULTITASK).architecture_hash()
    with pytest.raises(ValueError, match='inverse_channels'):
        MultitaskQNetworkConfig(inverse_channels=0)
    with pytest.raises(ValueError, match='dilations'):
        MultitaskQNetworkConfig(inverse_dilations=(1, 0))
    with pytest.raises(ValueError, match='inverse_logit_scale'):
        MultitaskQNetworkConfig(inverse_logit_scale=0.0)
