"""The Q-network: shapes, rotation equivariance, per-sample rotations, gradients, cost."""

from dataclasses import dataclass

import numpy as np
import pytest
from synthetic_scenes import scene
import torch
from vpg_policy.q_network import (build_q_network, forward_flops, parameter_count,
                                  register_variant, variants)
from vpg_policy.q_network_base import preprocess, QNetwork, QNetworkConfig
from vpg_policy.rotating_q_network import IsotropicConv2d, OrientedHead, RotatingQNetwork, Trunk
from vpg_policy.weights import IncompatibleWeightsError, load_model, save_weights

TINY = QNetworkConfig(num_rotations=8, stem_channels=4, trunk_channels=6,
                      trunk_dilations=(1, 2), feature_channels=4, head_channels=6,
                      head_dilations=(1,))


def test_full_forward_shapes_and_grasp_symmetry():
    model = build_q_network('vpg', TINY, seed=0).eval()
    color, height = scene()
    with torch.inference_mode():
        maps = model(model.preprocess(color, height))
    assert maps.push.shape == (1, 8, 64, 64) and maps.grasp.shape == (1, 8, 64, 64)
    assert torch.isfinite(maps.push).all() and torch.isfinite(maps.grasp).all()
    torch.testing.assert_close(maps.grasp[:, :4], maps.grasp[:, 4:])
    assert not torch.allclose(maps.push[:, :4], maps.push[:, 4:])
    assert maps.push[0, 0].std() > 0  # not a constant map


def test_default_network_on_a_224_heightmap():
    model = build_q_network('vpg', seed=0).eval()
    color, height = scene(224)
    push, grasp = model.q_maps(color, height)
    assert push.shape == grasp.shape == (16, 224, 224)
    assert push.dtype == np.float32


def test_isotropic_trunk_makes_q_rotation_equivariant():
    # Rotating the heightmap by 90 degrees (np.rot90 maps (x, y) -> (y, -x) in (col, row))
    # must turn the Q map of rotation i into the rotated Q map of rotation i - R/4.
    model = build_q_network('vpg', TINY, seed=1).eval()
    color, height = scene(64, seed=2)
    push, grasp = model.q_maps(color, height)
    push_r, grasp_r = model.q_maps(np.rot90(color).copy(), np.rot90(height).copy())
    tolerance = 1e-4 * max(np.abs(push).max(), np.abs(grasp).max())
    for i in range(8):
        np.testing.assert_allclose(push_r[(i - 2) % 8], np.rot90(push[i]), atol=tolerance)
        np.testing.assert_allclose(grasp_r[(i - 2) % 8], np.rot90(grasp[i]), atol=tolerance)


def test_grasp_head_scores_opposite_rotations_equally():
    # Only R/2 grasp rotations are computed; that is exact because the grasp head commutes
    # with half turns. Evaluate rotation i + R/2 for real and compare.
    model = build_q_network('vpg', TINY, seed=5).eval()
    inputs = model.preprocess(*scene(64, seed=6))
    with torch.inference_mode():
        push_features, grasp_features = model.trunk(inputs)
        for i in range(4):
            q_i = model._score(grasp_features, model.grasp_head, torch.tensor([[i]]), None)
            q_opposite = model._score(grasp_features, model.grasp_head,
                                      torch.tensor([[i + 4]]), None)
            torch.testing.assert_close(q_opposite, q_i, atol=1e-6, rtol=1e-4)
            push_i = model._score(push_features, model.push_head, torch.tensor([[i]]), None)
            push_opposite = model._score(push_features, model.push_head,
                                         torch.tensor([[i + 4]]), None)
            assert not torch.allclose(push_opposite, push_i, atol=1e-6, rtol=1e-4)


def test_ordinary_trunk_is_not_equivariant():
    # The check above can fail: with ordinary kernels in the trunk it does.
    config = QNetworkConfig(**{**TINY.to_dict(), 'isotropic_trunk': False})
    model = build_q_network('vpg', config, seed=1).eval()
    color, height = scene(64, seed=2)
    push, _ = model.q_maps(color, height)
    push_r, _ = model.q_maps(np.rot90(color).copy(), np.rot90(height).copy())
    error = np.abs(push_r[6] - np.rot90(push[0])).max()
    assert error > 0.05 * np.abs(push).max()


def test_per_sample_rotations_match_the_full_forward():
    model = build_q_network('vpg', TINY, seed=3).eval()
    batch = [scene(64, seed=s) for s in range(3)]
    inputs = preprocess(np.stack([c for c, _ in batch]), np.stack([h for _, h in batch]), TINY)
    with torch.inference_mode():
        full = model(inputs)
        rotations = torch.tensor([[0, 5], [7, 3], [2, 2]])
        some = model(inputs, rotations)
    assert some.push.shape == (3, 2, 64, 64)
    for b in range(3):
        for k in range(2):
            r = int(rotations[b, k])
            torch.testing.assert_close(some.push[b, k], full.push[b, r], atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(some.grasp[b, k], full.grasp[b, r], atol=1e-5, rtol=1e-4)


def test_gradient_reaches_every_parameter_from_one_pixel():
    # The trainer's loss touches one pixel and rotation per sample (VPG).
    model = build_q_network('vpg', TINY, seed=4).train()
    color, height = scene()
    inputs = model.preprocess(color, height)
    maps = model(inputs, torch.tensor([[3]]))
    loss = torch.nn.functional.smooth_l1_loss(maps.grasp[0, 0, 30, 30], torch.tensor(1.0))
    loss = loss + torch.nn.functional.smooth_l1_loss(maps.push[0, 0, 30, 30], torch.tensor(0.5))
    loss.backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_rotation_indices_are_validated():
    model = build_q_network('vpg', TINY, seed=0)
    inputs = model.preprocess(*scene())
    with pytest.raises(ValueError, match='rotation indices'):
        model(inputs, torch.tensor([[8]]))
    with pytest.raises(ValueError, match=r'\(B, K\)'):
        model(inputs, torch.tensor([1]))
    with pytest.raises(ValueError, match='multiple of 4'):
        model(torch.zeros(1, 4, 62, 64))


def test_preprocess_normalises_like_vpg_and_rejects_bad_maps():
    color = np.zeros((8, 8, 3), np.uint8)
    color[..., 0] = 255
    height = np.full((8, 8), 0.04, np.float32)
    height[0, 0] = 5.0  # clipped to max_height
    x = preprocess(color, height, QNetworkConfig())
    assert x.shape == (1, 4, 8, 8)
    assert x[0, 0, 1, 1].item() == pytest.approx((1 - 0.485) / 0.229, rel=1e-5)
    assert x[0, 1, 1, 1].item() == pytest.approx(-0.456 / 0.224, rel=1e-5)
    assert x[0, 3, 1, 1].item() == pytest.approx((0.04 - 0.01) / 0.03, rel=1e-5)
    assert x[0, 3, 0, 0].item() == pytest.approx((0.3 - 0.01) / 0.03, rel=1e-5)
    with pytest.raises(ValueError, match='NaN'):
        preprocess(color, np.full((8, 8), np.nan, np.float32), QNetworkConfig())
    with pytest.raises(ValueError, match='uint8'):
        preprocess(color.astype(np.float32), height, QNetworkConfig())
    with pytest.raises(ValueError, match='expected colour'):
        preprocess(color, height[:4], QNetworkConfig())


def test_isotropic_kernel_depends_on_radius_only():
    conv = IsotropicConv2d(2, 3, 3)
    kernel = conv.weight().detach()
    assert kernel.shape == (3, 2, 3, 3)
    torch.testing.assert_close(kernel, torch.rot90(kernel, 1, (2, 3)))
    torch.testing.assert_close(kernel, kernel.transpose(2, 3))
    assert parameter_count(conv) == 3 * 2 * 3 + 3
    patch = IsotropicConv2d(1, 1, 4, stride=4).weight().detach()[0, 0]
    assert len(torch.unique(patch)) == 3


def test_config_round_trip_seed_and_cost():
    config = QNetworkConfig.from_dict(QNetworkConfig().to_dict())
    assert config == QNetworkConfig()
    with pytest.raises(ValueError, match='unknown'):
        QNetworkConfig.from_dict({'num_rotations': 16, 'layers': 3})
    a, b = build_q_network(seed=7), build_q_network(seed=7)
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), name
    assert a.architecture_hash() == b.architecture_hash()
    assert a.architecture_hash() != build_q_network(config=TINY).architecture_hash()
    assert 10_000 < parameter_count(a) < 200_000
    flops = forward_flops(a, 224, 224)
    assert flops['conv'] > 0 and flops['resample'] > 0
    assert flops['total'] < 5e9


@dataclass(frozen=True)
class SharedConfig(QNetworkConfig):
    aux_channels: int = 3


class SharedTrunkNetwork(RotatingQNetwork):
    """What a multi-task variant looks like: one trunk, its own config fields."""

    variant = 'test_shared'
    config_class = SharedConfig

    def __init__(self, config):
        super().__init__(config, Trunk(config, groups=1), OrientedHead(config),
                         OrientedHead(config, point_symmetric=True), Trunk.stride,
                         OrientedHead.stride)
        self.aux = torch.nn.Conv2d(config.feature_channels, config.aux_channels, 1)


def test_a_shared_trunk_variant_slots_in(tmp_path):
    assert 'vpg' in variants()
    with pytest.raises(ValueError, match='unknown Q-network variant'):
        build_q_network('densenet')
    register_variant(SharedTrunkNetwork)
    try:
        config = SharedConfig(**{**TINY.to_dict(), 'aux_channels': 5})
        model = build_q_network('test_shared', config, seed=0).eval()
        assert isinstance(model, QNetwork) and model.architecture()['config']['aux_channels'] == 5
        inputs = preprocess(*[np.stack(a) for a in zip(scene(seed=1), scene(seed=2))], config)
        with torch.inference_mode():
            full = model(inputs)
            some = model(inputs, torch.tensor([[1, 6], [7, 0]]))
        torch.testing.assert_close(some.push[1, 0], full.push[1, 7], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(some.grasp[0, 1], full.grasp[0, 6], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(full.grasp[:, :4], full.grasp[:, 4:])
        # Weights record the variant and its extended config, and rebuild it.
        save_weights(tmp_path / 'w.safetensors', model, 1)
        loaded, meta = load_model(tmp_path / 'w.safetensors')
        assert isinstance(loaded, SharedTrunkNetwork) and meta.config == config
    finally:
        from vpg_policy import q_network
        q_network._VARIANTS.pop('test_shared')
    with pytest.raises(IncompatibleWeightsError, match='unknown Q-network variant'):
        load_model(tmp_path / 'w.safetensors')


@pytest.mark.skipif(not torch.cuda.is_available(), reason='CUDA not available')
def test_cuda_matches_cpu():
    from vpg_perception.grid import HeightmapGrid

    from vpg_policy.decision import Policy

    model = build_q_network('vpg', seed=0).eval()
    color, height = scene(224, seed=3)
    push, grasp = model.q_maps(color, height)
    model_gpu = build_q_network('vpg', seed=0).cuda().eval()
    push_gpu, grasp_gpu = model_gpu.q_maps(color, height)
    scale = max(np.abs(push).max(), np.abs(grasp).max())
    np.testing.assert_allclose(push_gpu, push, atol=1e-3 * scale)
    np.testing.assert_allclose(grasp_gpu, grasp, atol=1e-3 * scale)
    decision = Policy(model_gpu).decide(color, height, HeightmapGrid())
    assert decision.push_q.shape == (16, 224, 224)
