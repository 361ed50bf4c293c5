import copy

import numpy as np
import pytest
from synthetic_transitions import transition
import torch
from vpg_policy.decision import ActionMask
from vpg_policy.q_network import build_q_network
from vpg_policy.q_network_base import QNetworkConfig
from vpg_trainer.learner import (compute_labels, executed_q, future_values, inverse_loss, Learner,
                                 LearnerConfig, record_changed, sample_prioritized)

SMALL = QNetworkConfig(stem_channels=8, trunk_channels=12, feature_channels=8, head_channels=8)


def small_model(seed=0):
    return build_q_network('vpg', SMALL, seed=seed)


def test_labels_follow_vpg_rule():
    # reward + gamma * future; future dropped when nothing changed or the episode ended.
    labels = compute_labels(rewards=[1.0, 0.5, 0.0, 0.0, 1.0],
                            futures=[0.8, 0.6, 0.9, 0.9, 0.7],
                            changed=[True, True, False, True, True],
                            done=[False, False, False, False, True], gamma=0.5)
    np.testing.assert_allclose(labels, [1.4, 0.8, 0.0, 0.45, 1.0])


def test_myopic_labels_are_rewards():
    labels = compute_labels([1.0, 0.5, 0.0], [3.0, 3.0, 3.0], [True] * 3, [False] * 3, 0.0)
    np.testing.assert_allclose(labels, [1.0, 0.5, 0.0])


def test_changed_is_the_executors_verdict():
    rng = np.random.default_rng(0)
    base = {'grasp_success': False, 'push_changed': False, 'changed_pixels': 0,
            'scene_changed': False}
    assert not record_changed(transition(rng, **base))
    assert record_changed(transition(rng, **{**base, 'grasp_success': True}))
    assert record_changed(transition(rng, **{**base, 'push_changed': True}))
    # A failed grasp that moved blocks: the executor's threshold decided, not the trainer's.
    assert record_changed(transition(rng, **{**base, 'changed_pixels': 301,
                                             'scene_changed': True}))
    assert not record_changed(transition(rng, **{**base, 'changed_pixels': 5000}))


def test_labels_use_the_network_future_on_hand_made_transitions():
    rng = np.random.default_rng(1)
    model = small_model()
    learner = Learner(model, LearnerConfig(gamma=0.5))
    records = [transition(rng, reward=1.0, grasp_success=True, primitive=1),
               transition(rng, reward=0.0, grasp_success=False, push_changed=False,
                          changed_pixels=0, scene_changed=False, primitive=1),
               transition(rng, reward=0.5, push_changed=True, primitive=0, episode_done=True)]
    futures = future_values(model, records, ActionMask())
    labels = learner.labels(records)
    np.testing.assert_allclose(labels, [1.0 + 0.5 * futures[0], 0.0, 0.5], rtol=1e-5)


def test_future_is_zero_without_objects_and_masked_otherwise():
    rng = np.random.default_rng(2)
    model = small_model()
    empty = transition(rng)
    empty.height_after = np.zeros_like(empty.height_after)
    full = transition(rng)
    values = future_values(model, [empty, full], ActionMask())
    assert values[0] == 0.0
    unmasked = future_values(model, [full], ActionMask(enabled=False))
    assert values[1] <= unmasked[0] + 1e-6  # a max over fewer pixels


def test_loss_only_reaches_the_executed_pixel_and_rotation():
    rng = np.random.default_rng(3)
    model = small_model()
    record = transition(rng, primitive=1)
    q = executed_q(model, [record])
    with torch.no_grad():
        maps = model(model.preprocess(record.color_before, record.height_before))
    expected = maps.grasp[0, record.rotation_index, record.row, record.col]
    assert torch.allclose(q[0], expected, atol=1e-5)


def test_training_on_a_fixed_set_lowers_the_loss():
    rng = np.random.default_rng(4)
    records = [transition(rng) for _ in range(24)]
    torch.manual_seed(0)
    learner = Learner(small_model(seed=1), LearnerConfig(gamma=0.0, learning_rate=2e-3,
                                                         batch_size=8))

    def mean_loss():
        with torch.no_grad():
            predicted = executed_q(learner.model, records).numpy()
        labels = np.array([r.reward for r in records])
        return float(np.mean((predicted - labels) ** 2))

    before = mean_loss()
    for step in range(60):
        batch = [records[(step * 8 + k) % len(records)] for k in range(8)]
        result = learner.update(batch)
        assert np.isfinite(result.loss)
    after = mean_loss()
    assert after < 0.5 * before, (before, after)


def test_nan_loss_is_refused_and_weights_untouched():
    rng = np.random.default_rng(5)
    learner = Learner(small_model(), LearnerConfig())
    record = transition(rng, reward=float('nan'))
    before = [p.detach().clone() for p in learner.model.parameters()]
    with pytest.raises(FloatingPointError):
        learner.update([record])
    for old, new in zip(before, learner.model.parameters()):
        assert torch.equal(old, new)


def test_prioritized_sampling_prefers_surprise_and_excludes():
    rng = np.random.default_rng(6)
    priorities = np.array([0.01, 0.01, 10.0, 0.01])
    counts = np.zeros(4)
    for _ in range(300):
        picked, weights = sample_prioritized(priorities, 1, 1.0, 0.4, rng)
        counts[picked] += 1
        assert weights.max() == pytest.approx(1.0)
    assert counts[2] > 250
    picked, _ = sample_prioritized(priorities, 3, 1.0, 0.4, rng, exclude=[2])
    assert sorted(picked.tolist()) == [0, 1, 3]


def mixed_batch(rng):
    """Two grasps, two pushes that moved a block (the box shifts 6 px), one that moved nothing."""
    records = [transition(rng, primitive=1) for _ in range(2)]
    for _ in range(2):
        record = transition(rng, primitive=0, grasp_success=False, push_changed=True,
                            changed_pixels=400)
        record.height_after = np.roll(record.height_before, 6, axis=1)
        record.color_after = np.roll(record.color_before, 6, axis=1)
        records.append(record)
    records.append(transition(rng, primitive=0, grasp_success=False, push_changed=False,
                              changed_pixels=0, scene_changed=False))
    return records


def inverse_head_state(learner):
    return [p.detach().clone() for p in learner.model.inverse_head.parameters()]


def test_multitask_update_adds_the_inverse_loss_of_moving_pushes():
    rng = np.random.default_rng(7)
    records = mixed_batch(rng)
    learner = Learner(build_q_network('multitask', SMALL, seed=0),
                      LearnerConfig(learning_rate=1e-3))
    untrained = copy.deepcopy(learner.model)
    head_before = inverse_head_state(learner)
    result = learner.update(records)
    assert result.inverse_loss is not None and np.isfinite(result.inverse_loss)
    with torch.no_grad():  # the loss of the two pushes that moved something, nothing else
        expected = float(inverse_loss(untrained, records[2:4]))
    assert result.inverse_loss == pytest.approx(expected, rel=1e-5)
    assert any(not torch.equal(a, b) for a, b in zip(head_before, inverse_head_state(learner)))
    assert np.isfinite(result.loss) and result.predictions.shape == (5,)


def test_no_inverse_loss_without_a_moving_push_or_with_weight_zero():
    rng = np.random.default_rng(8)
    records = mixed_batch(rng)
    for batch, weight in ((records[:2] + records[4:], 1.0), (records, 0.0)):
        learner = Learner(build_q_network('multitask', SMALL, seed=0),
                          LearnerConfig(learning_rate=1e-3, inverse_loss_weight=weight))
        head_before = inverse_head_state(learner)
        result = learner.update(batch)
        assert result.inverse_loss is None and np.isfinite(result.loss)
        for a, b in zip(head_before, inverse_head_state(learner)):
            assert torch.equal(a, b)


def test_inverse_loss_weight_scales_the_inverse_gradient():
    # The Q loss does not reach the inverse head, so its gradient (kept after the update) is
    # weight x the inverse loss's gradient: doubling the weight doubles it.
    rng = np.random.default_rng(9)
    records = mixed_batch(rng)
    gradients = []
    for weight in (0.5, 1.0):
        learner = Learner(build_q_network('multitask', SMALL, seed=0),
                          LearnerConfig(grad_clip=0.0, inverse_loss_weight=weight))
        learner.update(records, futures=np.zeros(len(records)))
        gradients.append(torch.cat([p.grad.flatten()
                                    for p in learner.model.inverse_head.parameters()]))
    assert gradients[0].abs().max() > 0
    torch.testing.assert_close(gradients[1], 2 * gradients[0])


def test_vpg_update_has_no_inverse_loss():
    rng = np.random.default_rng(10)
    learner = Learner(small_model(), LearnerConfig(inverse_loss_weight=1.0))
    result = learner.update(mixed_batch(rng))
    assert result.inverse_loss is None and np.isfinite(result.loss)
    assert not hasattr(learner.model, 'inverse_head')


def test_inverse_loss_weight_is_validated():
    with pytest.raises(ValueError, match='inverse_loss_weight'):
        LearnerConfig(inverse_loss_weight=-1.0)
    with pytest.raises(ValueError, match='inverse_loss_weight'):
        LearnerConfig(inverse_loss_weight=float('nan'))


def test_future_over_the_clearance_mask_is_pushes_only_when_no_grasp_has_room():
    rng = np.random.default_rng(4)
    model = small_model()
    record = transition(rng, size=224)
    rows, cols = np.mgrid[0:224, 0:224]
    record.height_after = np.zeros_like(record.height_after)
    # A 360 mm disc of 40 mm clutter: no grasp on it has room for both pads.
    record.height_after[(rows - 112) ** 2 + (cols - 112) ** 2 <= 90 ** 2] = 0.04
    clearance = ActionMask(grasp_clearance=True)
    value = future_values(model, [record], clearance)[0]
    with torch.no_grad():
        maps = model(model.preprocess(record.color_after, record.height_after))
    from vpg_policy.decision import action_masks
    push_mask, grasp_mask = action_masks(record.height_after, record.grid['resolution'],
                                         clearance, maps.grasp.shape[1])
    assert not grasp_mask.any()
    assert value == pytest.approx(float(maps.push[0][:, torch.from_numpy(push_mask)].max()),
                                  abs=1e-6)
    assert value <= future_values(model, [record], ActionMask())[0] + 1e-6
