import numpy as np
import pytest
import rclpy
from synthetic_transitions import transition
from vpg_policy.q_network_base import QNetworkConfig
from vpg_policy.weights import read_weights, save_weights
from vpg_trainer.learner import LearnerConfig
from vpg_trainer.online import initial_checkpoint, OnlineTrainer, TrainerConfig

SMALL = QNetworkConfig(stem_channels=8, trunk_channels=12, feature_channels=8, head_channels=8)


def small_weights(path):
    from vpg_policy.q_network import build_q_network
    save_weights(path, build_q_network('vpg', SMALL, seed=0), 0)
    return str(path)


def config(run_dir, weights, **overrides):
    values = {'run_dir': str(run_dir), 'initial_weights': weights, 'checkpoint_every': 3,
              'learner': LearnerConfig(batch_size=2), 'max_updates_per_transition': 2.0}
    values.update(overrides)
    return TrainerConfig(**values)


def test_fresh_run_writes_version_0_and_trains(tmp_path):
    weights = small_weights(tmp_path / 'init.safetensors')
    trainer = OnlineTrainer(config(tmp_path / 'run', weights))
    assert trainer.version == 0 and trainer.updates == 0
    assert trainer.train_step() is None  # nothing stored yet
    rng = np.random.default_rng(0)
    for _ in range(3):
        trainer.add(transition(rng))
    results = []
    while (result := trainer.train_step()) is not None:
        results.append(result)
    assert len(results) == 6  # max_updates_per_transition x stored
    assert trainer.checkpoint_due()
    saved = trainer.save_checkpoint()
    assert saved.version == 1 and saved.updates == 6
    assert read_weights(saved.weights, expected_sha256=saved.sha256).metadata.version == 1


def test_restart_resumes_weights_optimizer_and_new_transitions(tmp_path):
    weights = small_weights(tmp_path / 'init.safetensors')
    run = tmp_path / 'run'
    trainer = OnlineTrainer(config(run, weights))
    rng = np.random.default_rng(1)
    for _ in range(2):
        trainer.add(transition(rng))
    for _ in range(4):
        trainer.train_step()
    saved = trainer.save_checkpoint()
    late = trainer.add(transition(rng))  # stored after the checkpoint, never trained on
    expected = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.close()

    again = OnlineTrainer(config(run, weights))
    assert again.version == saved.version and again.updates == 4
    for name, tensor in again.model.state_dict().items():
        assert np.allclose(tensor.numpy(), expected[name].numpy()), name
    assert again.learner.optimizer.state_dict()['state'], 'optimizer state not restored'
    batch, _ = again.next_batch()
    assert batch[0] == late
    assert len(again.replay) == 3


def test_initial_checkpoint_is_idempotent(tmp_path):
    weights = small_weights(tmp_path / 'init.safetensors')
    first = initial_checkpoint(config(tmp_path / 'run', weights))
    second = initial_checkpoint(config(tmp_path / 'run', weights))
    assert first == second


def test_tampered_checkpoint_is_refused(tmp_path):
    weights = small_weights(tmp_path / 'init.safetensors')
    run = tmp_path / 'run'
    OnlineTrainer(config(run, weights)).close()
    latest = initial_checkpoint(config(run, weights))
    with open(latest.weights, 'r+b') as handle:
        handle.seek(-4, 2)
        handle.write(b'\x00\x00\x80\x7f')
    with pytest.raises(ValueError, match='sha256'):
        OnlineTrainer(config(run, weights))


def test_multitask_run_trains_the_inverse_model_with_the_node_parameters(tmp_path):
    from vpg_policy.q_network import build_q_network
    from vpg_trainer.trainer_node import build_config, PARAMETERS

    defaults = {name: default for name, default, *_ in PARAMETERS}
    assert defaults['inverse_loss_weight'] == LearnerConfig().inverse_loss_weight
    weights = tmp_path / 'init.safetensors'
    save_weights(weights, build_q_network('multitask', SMALL, seed=0), 0)
    trainer_config = build_config({
        'run_dir': str(tmp_path / 'run'), 'initial_weights': str(weights),
        'inverse_loss_weight': 0.25, 'batch_size': 4, 'max_updates_per_transition': 2.0})
    assert trainer_config.learner.inverse_loss_weight == 0.25
    trainer = OnlineTrainer(trainer_config)
    assert trainer.model.variant == 'multitask'
    assert np.isnan(trainer.mean_inverse_loss())
    rng = np.random.default_rng(2)
    for step in range(4):
        push = step % 2 == 0
        record = transition(rng, primitive=0 if push else 1, grasp_success=False,
                            push_changed=push, changed_pixels=400 if push else 0, step=step)
        record.height_after = np.roll(record.height_before, 5, axis=0)
        trainer.add(record)
    results = []
    while (result := trainer.train_step()) is not None:
        results.append(result)
    assert len(results) == 8
    inverse = [r.inverse_loss for r in results if r.inverse_loss is not None]
    assert inverse and np.isfinite(trainer.mean_inverse_loss())
    assert trainer.mean_inverse_loss() == pytest.approx(np.mean(inverse))
    saved = trainer.save_checkpoint()
    assert read_weights(saved.weights).metadata.variant == 'multitask'
    trainer.close()


def _rewards(trainer):
    ids, _ = trainer.replay.ids_and_priorities()
    return {(r.episode_id, r.step): r.reward for r in trainer.replay.get(ids)}


def test_next_grasp_rule_credits_only_pushes_followed_by_a_successful_grasp(tmp_path):
    weights = small_weights(tmp_path / 'init.safetensors')
    run = tmp_path / 'run'
    trainer = OnlineTrainer(config(run, weights, push_reward='next_grasp'))
    rng = np.random.default_rng(1)

    def push(episode, step, changed=True):
        return transition(rng, primitive=0, reward=0.5 if changed else 0.0, grasp_success=False,
                          push_changed=changed, episode_id=episode, step=step)

    def grasp(episode, step, success):
        return transition(rng, primitive=1, reward=float(success), grasp_success=success,
                          push_changed=False, episode_id=episode, step=step)

    trainer.add(push(1, 1))            # followed by a successful grasp: earns 0.5
    trainer.add(grasp(1, 2, True))
    trainer.add(push(1, 3))            # followed by a failed grasp: 0
    trainer.add(grasp(1, 4, False))
    trainer.add(push(1, 5))            # followed by another push: 0
    trainer.add(push(1, 6, changed=False))
    trainer.add(grasp(1, 7, True))     # step 6 changed nothing: nothing to credit
    trainer.add(push(2, 1))            # the last action so far: pending, 0 until known
    assert _rewards(trainer) == {(1, 1): 0.5, (1, 2): 1.0, (1, 3): 0.0, (1, 4): 0.0,
                                 (1, 5): 0.0, (1, 6): 0.0, (1, 7): 1.0, (2, 1): 0.0}
    trainer.close()
    # The pending credit survives a restart.
    trainer = OnlineTrainer(config(run, weights, push_reward='next_grasp'))
    trainer.add(grasp(2, 2, True))
    assert _rewards(trainer)[(2, 1)] == 0.5
    trainer.close()


def test_change_rule_keeps_vpgs_push_reward_and_unknown_rules_are_refused(tmp_path):
    weights = small_weights(tmp_path / 'init.safetensors')
    trainer = OnlineTrainer(config(tmp_path / 'run', weights))
    rng = np.random.default_rng(2)
    trainer.add(transition(rng, primitive=0, reward=0.5, grasp_success=False,
                           push_changed=True, episode_id=1, step=1))
    trainer.add(transition(rng, primitive=1, reward=0.0, grasp_success=False,
                           push_changed=False, episode_id=1, step=2))
    assert _rewards(trainer) == {(1, 1): 0.5, (1, 2): 0.0}
    trainer.close()
    with pytest.raises(ValueError, match='push_reward'):
        config(tmp_path / 'other', weights, push_reward='always')


def test_every_number_declares_its_range_and_a_node_refuses_one_outside_it():
    from rclpy.exceptions import InvalidParameterValueException
    from rclpy.parameter import Parameter
    from vpg_common.parameters import unranged
    from vpg_trainer.trainer_node import declare_parameters, PARAMETERS

    assert unranged(PARAMETERS) == []
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = rclpy.create_node('trainer_params_probe', context=context,
                                 parameter_overrides=[Parameter('gamma', value=1.5)])
        with pytest.raises(InvalidParameterValueException, match='gamma'):
            declare_parameters(node)
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
