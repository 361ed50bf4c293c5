"""
ROS 2 node `trainer`: learns online from the executors' transitions.

Subscribes ``transitions`` (vpg_interfaces/Transition, reliable, deep queue) and stores each
one durably in the run folder's replay store; ``trainer_status`` (vpg_interfaces/TrainerStatus)
is published after every stored transition, and its `transitions_stored` count is the
acknowledgement. A training thread updates the network while transitions keep arriving;
every `checkpoint_every` updates it writes new weights atomically and announces them on
``model_updates`` (vpg_interfaces/ModelUpdate), which policy nodes swap in live.

The learning itself is vpg_trainer.online / learner (no ROS); this file converts messages and
runs threads.
"""

import math
import threading

from rclpy.node import Node
from vpg_common.node_runner import run_node
from vpg_common.parameters import declare, defaults, float_range, int_range, one_of
from vpg_common.qos import MODEL_UPDATES_QOS, TRANSITIONS_SUBSCRIPTION_QOS
from vpg_interfaces.msg import ModelUpdate, TrainerStatus, Transition
from vpg_perception.conversions import heightmap_from_msg
from vpg_policy.action_mask_parameters import action_mask_from, ACTION_MASK_PARAMETERS
from vpg_policy.weights import WeightsError

from vpg_trainer.learner import LearnerConfig
from vpg_trainer.online import OnlineTrainer, PUSH_REWARD_RULES, set_torch_threads, TrainerConfig
from vpg_trainer.replay import ReplayError, TransitionRecord

_L = LearnerConfig()
PARAMETERS = [
    # name, default, description[, constraints]
    ('run_dir', '', 'Run folder: replay.sqlite and checkpoints/ (an existing one is resumed)'),
    ('replay_capacity', 20000, 'Transitions kept on disk; beyond it the oldest are dropped',
     int_range(1, 10000000)),
    ('checkpoint_every', 20, 'Updates between new weights (each is announced as a ModelUpdate)',
     int_range(1, 1000000)),
    ('keep_checkpoints', 5, 'Weight files kept in checkpoints/', int_range(1, 1000)),
    ('max_updates_per_transition', 4.0,
     'Updates pause when updates >= this x transitions stored (0 = never pause)',
     float_range(0, 1000)),
    ('min_transitions', 2, 'Stored transitions before the first update', int_range(1, 1000000)),
    ('future_refresh', 100, "Updates after which a replayed transition's future max Q is "
     'recomputed', int_range(1, 10000000)),
    ('variant', 'vpg', 'Q-network variant of a fresh run'),
    ('seed', 0, 'Seed of the initial weights of a fresh run and of replay sampling',
     int_range(0, 2**62)),
    ('initial_weights', '', 'Weights a fresh run starts from; empty = random initialisation'),
    ('device', 'cpu', "'cpu' or 'cuda'", one_of('cpu', 'cuda')),
    ('torch_threads', 1, 'CPU threads for training; 0 = torch default', int_range(0, 256)),
    ('inline_weights', False, 'Send the weights bytes inside ModelUpdate (no shared disk)'),
    ('log_every', 20, 'Updates between progress log lines', int_range(1, 1000000)),
    ('status_period', 1.0, 'Seconds between trainer_status messages when nothing happens',
     float_range(0.01, 3600)),
    ('gamma', _L.gamma, 'Future discount (VPG 0.5; 0 = myopic)', float_range(0, 0.999)),
    ('push_reward', 'change', "Which pushes earn the executor's push reward: 'change' "
     "(VPG: every push that changed the scene) or 'next_grasp' (only a changing push followed "
     'by a successful grasp; against push loops, after the progress rewards of Good Robot / '
     'SPOT)', one_of(*PUSH_REWARD_RULES)),
    ('optimizer', _L.optimizer, "'adam' or 'sgd' (VPG: SGD, momentum 0.9)", one_of('adam', 'sgd')),
    ('learning_rate', _L.learning_rate, 'Optimiser learning rate', float_range(1e-9, 1)),
    ('momentum', _L.momentum, 'SGD momentum', float_range(0, 1)),
    ('weight_decay', _L.weight_decay, 'L2 weight decay', float_range(0, 1)),
    ('batch_size', _L.batch_size, 'Transitions per update (newest untrained first)',
     int_range(1, 1024)),
    ('huber_delta', _L.huber_delta, 'Huber loss transition point', float_range(1e-6, 100)),
    ('priority_alpha', _L.priority_alpha, 'Prioritised replay exponent (0 = uniform)',
     float_range(0, 1)),
    ('priority_beta', _L.priority_beta, 'Importance-weight exponent', float_range(0, 1)),
    ('priority_epsilon', _L.priority_epsilon, 'Added to |Q - label| for the priority',
     float_range(0, 1)),
    ('grad_clip', _L.grad_clip, 'Gradient norm clip (0 = none)', float_range(0, 1e6)),
    ('inverse_loss_weight', _L.inverse_loss_weight,
     'Weight of the push inverse-model loss added to the Q loss; used only by a variant with '
     'an inverse model (multitask), 0 = off', float_range(0, 1e6)),
    *ACTION_MASK_PARAMETERS,
]


def declare_parameters(node):
    """Declare every parameter on node; return (TrainerConfig, other values)."""
    values = declare(node, PARAMETERS, read_only=False)
    return build_config(values), values


def build_config(values):
    """Turn parameter values (defaults filled in) into a TrainerConfig; ValueError if invalid."""
    v = defaults(PARAMETERS)
    v.update(values)
    if not v['run_dir']:
        raise ValueError('parameter run_dir is required (the folder of the training run)')
    if v['device'] not in ('cpu', 'cuda'):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {v['device']!r}")
    mask = action_mask_from(v)
    learner = LearnerConfig(
        gamma=float(v['gamma']), optimizer=v['optimizer'],
        learning_rate=float(v['learning_rate']), momentum=float(v['momentum']),
        weight_decay=float(v['weight_decay']), batch_size=int(v['batch_size']),
        huber_delta=float(v['huber_delta']), priority_alpha=float(v['priority_alpha']),
        priority_beta=float(v['priority_beta']), priority_epsilon=float(v['priority_epsilon']),
        grad_clip=float(v['grad_clip']),
        mask=mask, inverse_loss_weight=float(v['inverse_loss_weight']))
    return TrainerConfig(
        run_dir=v['run_dir'], replay_capacity=int(v['replay_capacity']),
        checkpoint_every=int(v['checkpoint_every']),
        keep_checkpoints=int(v['keep_checkpoints']),
        max_updates_per_transition=float(v['max_updates_per_transition']),
        min_transitions=int(v['min_transitions']),
        future_refresh=int(v['future_refresh']), variant=v['variant'], seed=int(v['seed']),
        initial_weights=v['initial_weights'], device=v['device'], learner=learner,
        push_reward=v['push_reward'])


def record_from_msg(msg):
    """Convert a Transition message to a TransitionRecord; ValueError naming what is wrong."""
    try:
        color_before, height_before, grid = heightmap_from_msg(msg.heightmap_before)
    except ValueError as error:
        raise ValueError(f'heightmap_before: {error}') from error
    try:
        color_after, height_after, _ = heightmap_from_msg(msg.heightmap_after)
    except ValueError as error:
        raise ValueError(f'heightmap_after: {error}') from error
    action = msg.action
    if action.num_rotations == 0:
        raise ValueError('action.num_rotations is 0 (action missing?)')
    stamp = msg.header.stamp
    return TransitionRecord(
        color_before=color_before, height_before=height_before, color_after=color_after,
        height_after=height_after, primitive=int(action.primitive),
        rotation_index=int(action.rotation_index), num_rotations=int(action.num_rotations),
        row=int(action.row), col=int(action.col), reward=float(msg.reward),
        grasp_success=bool(msg.grasp_success), push_changed=bool(msg.push_changed),
        changed_pixels=int(msg.changed_pixels), scene_changed=bool(msg.scene_changed),
        episode_done=bool(msg.episode_done),
        exploratory=bool(action.exploratory), q_value=float(action.q_value),
        weights_version=int(msg.weights_version), cell_name=msg.cell_name,
        episode_id=int(msg.episode_id), step=int(msg.step),
        stamp_ns=int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec),
        grid={'x_min': grid.x_min, 'x_max': grid.x_max, 'y_min': grid.y_min,
              'y_max': grid.y_max, 'z_min': grid.z_min, 'z_max': grid.z_max,
              'resolution': grid.resolution})


class TrainerNode(Node):

    def __init__(self, **kwargs):
        super().__init__('trainer', **kwargs)
        config, self.values = declare_parameters(self)
        set_torch_threads(int(self.values['torch_threads']))
        self.core = OnlineTrainer(config)
        self._received = 0
        self._rejected = 0
        self._last_error = ''
        self._status_lock = threading.Lock()
        self._update_pub = self.create_publisher(ModelUpdate, 'model_updates', MODEL_UPDATES_QOS)
        self._status_pub = self.create_publisher(TrainerStatus, 'trainer_status', 10)
        self.create_subscription(Transition, 'transitions', self._on_transition,
                                 TRANSITIONS_SUBSCRIPTION_QOS)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._train_loop, name='trainer_learn',
                                        daemon=True)
        self._thread.start()
        self.create_timer(float(self.values['status_period']), self.publish_status)
        self.get_logger().info(
            f'trainer ready: run {config.run_dir}, {len(self.core.replay)} transitions, '
            f'weights version {self.core.version}, {self.core.updates} updates so far')

    # --- transitions ------------------------------------------------------------------------
    def _on_transition(self, msg):
        self._received += 1
        try:
            # None for a redelivered transition the store already holds: nothing to do.
            self.core.add(record_from_msg(msg))
        except (ValueError, ReplayError) as error:
            self._rejected += 1
            self._last_error = (f'rejected transition {msg.cell_name or "?"}/'
                                f'{msg.episode_id}/{msg.step}: {error}')
            self.get_logger().error(self._last_error, throttle_duration_sec=5.0)
        self.publish_status()

    def publish_status(self):
        with self._status_lock:
            msg = TrainerStatus(
                transitions_received=self._received,
                transitions_stored=self.core.stored_total(),
                transitions_rejected=self._rejected, replay_size=len(self.core.replay),
                updates=self.core.updates, loss=self.core.mean_loss(),
                weights_version=self.core.version, last_error=self._last_error)
            msg.header.stamp = self.get_clock().now().to_msg()
            self._status_pub.publish(msg)

    # --- learning ---------------------------------------------------------------------------
    def _train_loop(self):
        log_every = max(int(self.values['log_every']), 1)
        while not self._stop.is_set():
            try:
                result = self.core.train_step()
            except (FloatingPointError, RuntimeError, ValueError, KeyError) as error:
                self._last_error = f'update failed: {error}'
                self.get_logger().error(self._last_error, throttle_duration_sec=5.0)
                self._stop.wait(1.0)
                continue
            if result is None:
                self._stop.wait(0.05)
                continue
            if self.core.updates % log_every == 0:
                inverse = self.core.mean_inverse_loss()
                inverse = '' if math.isnan(inverse) else f', inverse-model loss {inverse:.4f}'
                self.get_logger().info(
                    f'update {self.core.updates}: loss {self.core.mean_loss():.4f}{inverse}, '
                    f'replay {len(self.core.replay)}, weights v{self.core.version}')
            if self.core.checkpoint_due():
                self.checkpoint()

    def checkpoint(self):
        """Write the next weights version and announce it (no-op without new updates)."""
        try:
            saved = self.core.save_checkpoint()
        except (OSError, WeightsError) as error:
            self._last_error = f'checkpoint failed: {error}'
            self.get_logger().error(self._last_error)
            return None
        if saved is None:
            return None
        msg = ModelUpdate(version=saved.version, sha256=saved.sha256, uri=saved.weights,
                          variant=self.core.model.variant)
        msg.header.stamp = self.get_clock().now().to_msg()
        if self.values['inline_weights']:
            with open(saved.weights, 'rb') as handle:
                msg.data = list(handle.read())
        self._update_pub.publish(msg)
        self.publish_status()
        self.get_logger().info(f'weights v{saved.version} after {saved.updates} updates '
                               f'(loss {self.core.mean_loss():.4f})')
        return saved

    def stop(self):
        """Stop learning, write a last checkpoint, close the store (at the node's end)."""
        self._stop.set()
        self._thread.join(timeout=60.0)
        self.checkpoint()
        self.core.close()


def main(args=None):
    return run_node(TrainerNode, 'trainer', threads=2, args=args,
                    startup_errors=(ValueError, ReplayError, WeightsError, OSError))


if __name__ == '__main__':
    raise SystemExit(main())
