"""
`make train`: the whole learning loop, headless, in the MuJoCo cell.

Starts the training graph (sim, heightmap, policy, executor with exploration, trainer: separate
ROS 2 processes; several cells with --cells), then, per cell, runs episodes as another ROS system
would: reset the scene (10 random objects, or with --packed-share that share of the episodes
packed clusters of blocks from vpg_evaluation.packed_clusters, never an evaluation case), send
/pick_all with the exploration schedule,
and start a new episode when the table is clear or the robot is stuck (more than 10 actions
without a change), until the run has taken --actions actions. Prints progress (actions, grasp
success over the last 200 grasps, push success, epsilon, loss, actions/s) and keeps the run
folder up to date: checkpoints/ and replay.sqlite (the trainer's), metrics.csv, curve.png and
run.json. Starting again on the same folder resumes the run, and so does a fresh graph after
a node dies (the sim stops when MuJoCo's physics goes unstable), up to --max-restarts times.

    python -m vpg_training.training_run --run-dir runs/vpg --actions 1500 [--seed 0] [--cells 1]
        [--packed-share 0.5]
"""

import argparse
import json
import math
import os
from pathlib import Path
import shlex
import signal
import sys
import threading
import time

from vpg_bringup.graph import training_graph, viewer_spec
from vpg_bringup.pick_all_client import PickAllClient, PickAllClientError
from vpg_bringup.ros_domain import isolate
from vpg_bringup.runner import (GraphRunner, GraphStopped, NodeDied,
                                raise_keyboard_interrupt_on)
from vpg_common.client_node import ClientNode
from vpg_common.parameters import named_values
from vpg_common.primitives import PRIMITIVE_NAMES
from vpg_evaluation.packed_clusters import packed_scene
from vpg_interfaces.action import PickAll
from vpg_interfaces.msg import TrainerStatus
from vpg_interfaces.srv import ChoosePrimitive
from vpg_policy.action_mask_parameters import ACTION_MASK_NAMES
from vpg_sim.blocks import format_test_case
from vpg_trainer.checkpoints import CheckpointStore
from vpg_trainer.online import initial_checkpoint, TrainerConfig
from vpg_trainer.progress import ActionRow, MetricsCsv, plot_curves, read_rows, TrainingProgress

# An episode that fails for a reason other than the robot's (perception, policy) is retried
# with a new scene; this many in a row end the run.
MAX_FAILED_EPISODES = 5


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--run-dir', required=True, help='run folder (resumed when it exists)')
    parser.add_argument('--actions', type=int, default=1500, help='total training actions')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--cells', type=int, default=1, help='MuJoCo cells feeding the trainer')
    parser.add_argument('--objects', type=int, default=10, help='random objects per episode')
    parser.add_argument('--packed-share', type=share, default=0.0,
                        help='share of the episodes (0-1, spread evenly) whose scene is packed '
                             'clusters of at most --objects blocks instead of a random drop')
    parser.add_argument('--max-failures', type=int, default=10,
                        help='actions without change that end an episode (VPG: 10)')
    parser.add_argument('--gamma', type=float, default=None, help='override (0 = myopic)')
    parser.add_argument('--grasp-only', action='store_true',
                        help="push disabled; with --gamma 0 this is VPG's grasping-only "
                             'baseline (greedy on immediate grasp success)')
    parser.add_argument('--variant', default=None, help='Q-network variant of a fresh run')
    parser.add_argument('--device', default='cpu', help='policy and trainer device')
    parser.add_argument('--trainer-param', action='append', default=[], metavar='NAME=VALUE',
                        help='extra trainer parameter (repeatable)')
    parser.add_argument('--policy-param', action='append', default=[], metavar='NAME=VALUE',
                        help='extra policy parameter (repeatable), e.g. '
                             'exploration_grasp_fraction=0.8')
    parser.add_argument('--episode-timeout', type=float, default=1800.0)
    parser.add_argument('--max-restarts', type=int, default=3,
                        help='fresh graphs after a node died or a goal hung (the run resumes '
                             'from its folder, as a rerun would); 0 = end the run')
    parser.add_argument('--view', action='store_true',
                        help='serve the (first) cell live to Foxglove/Lichtblick on --view-port '
                        '(vpg_bringup viewer); also makes the policy publish Q heatmaps')
    parser.add_argument('--view-port', type=int, default=8765)
    return parser.parse_args(argv)


def share(text):
    """Argparse type: a float in [0, 1]."""
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f'must be within 0 and 1, got {text}')
    return value


def packed_episode(episode, packed_share):
    """
    Whether episode (1, 2, ...) gets a packed-cluster scene: the share spread evenly.

    Episode k is packed when floor(k * share) steps up at k, so 0.5 packs every second
    episode and 0.25 every fourth, the same on a resumed run.
    """
    return math.floor(episode * packed_share) > math.floor((episode - 1) * packed_share)


def write_packed_scene(run_dir, seed, max_objects):
    """Write the packed-cluster scene of `seed` as a case file under run_dir/scenes/."""
    path = Path(run_dir) / 'scenes' / f'packed-{seed}.txt'
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(format_test_case(packed_scene(seed, max_objects)), encoding='utf-8')
    return path


class StatusWatcher:
    """Keeps the newest TrainerStatus (loss, updates, weights version) from the trainer."""

    def __init__(self, node):
        self.latest = TrainerStatus(loss=math.nan)
        node.create_subscription(TrainerStatus, '/trainer_status', self._on_status, 10)

    def _on_status(self, msg):
        self.latest = msg


class TrainingRun:
    """Drives the episodes of one run over a started graph and records its progress."""

    def __init__(self, args, node, run_dir):
        self.args = args
        self.run_dir = Path(run_dir)
        rows = read_rows(self.run_dir / 'metrics.csv')
        self.progress = TrainingProgress()
        self.progress.restore(rows)
        self.episode = max((int(r['episode']) for r in rows), default=0)
        self.wall_before = float(rows[-1]['wall_s']) if rows else 0.0
        self.csv = MetricsCsv(self.run_dir / 'metrics.csv')
        self.status = StatusWatcher(node)
        self.lock = threading.Lock()
        self.start = time.monotonic()
        self.start_actions = self.progress.actions
        self.stop = threading.Event()

    def wall_s(self):
        return self.wall_before + time.monotonic() - self.start

    def on_step(self, step):
        with self.lock:
            if self.progress.actions >= self.args.actions:
                return
            primitive = PRIMITIVE_NAMES.get(step.primitive, 'push')
            epsilon = float(step.epsilon)  # what the executor's schedule gave this decision
            self.progress.add(primitive, step.grasp_success, step.push_changed)
            elapsed = time.monotonic() - self.start
            rate = (self.progress.actions - self.start_actions) / max(elapsed, 1e-6)
            status = self.status.latest
            row = ActionRow(
                action=self.progress.actions, episode=self.episode, primitive=primitive,
                reward=round(float(step.reward), 3), grasp_success=bool(step.grasp_success),
                push_changed=bool(step.push_changed), epsilon=round(epsilon, 4),
                grasp_success_rate=self.progress.grasp_success_rate,
                push_success_rate=self.progress.push_success_rate,
                grasp_attempts=self.progress.grasp_attempts,
                push_attempts=self.progress.push_attempts, loss=float(status.loss),
                updates=int(status.updates), weights_version=int(step.weights_version),
                wall_s=round(self.wall_s(), 1), actions_per_s=round(rate, 3))
            self.csv.append(row)
            if row.action % 10 == 0 or row.action == self.args.actions:
                print(f'action {row.action:5d}/{self.args.actions}  episode {row.episode:4d}  '
                      f'grasp {_pct(row.grasp_success_rate)} ({row.grasp_attempts})  '
                      f'push {_pct(row.push_success_rate)} ({row.push_attempts})  '
                      f'eps {epsilon:.3f}  loss {row.loss:.4f}  updates {row.updates}  '
                      f'weights v{row.weights_version}  {rate:.2f} actions/s', flush=True)
                plot_curves(self.run_dir / 'metrics.csv', self.run_dir / 'curve.png',
                            title=f'Training in the MuJoCo cell ({self.run_dir.name})')

    def remaining(self):
        with self.lock:
            return self.args.actions - self.progress.actions

    def cell_loop(self, client, cell_index):
        """Run episodes on one cell until the run has its actions (or stop is set)."""
        failed = 0
        allowed = (ChoosePrimitive.Request.GRASP_ONLY if self.args.grasp_only
                   else ChoosePrimitive.Request.ALLOW_BOTH)
        while not self.stop.is_set() and self.remaining() > 0:
            with self.lock:
                self.episode += 1
                episode = self.episode
            seed = self.args.seed * 100000 + episode * 10 + cell_index
            if packed_episode(episode, self.args.packed_share):
                scene = 'packed clusters'
                case = write_packed_scene(self.run_dir, seed, self.args.objects)
                client.reset_scene(test_case_file=str(case))
            else:
                scene = 'random'
                client.reset_scene(num_objects=self.args.objects, seed=seed)
            goal = PickAll.Goal(max_actions=max(self.remaining(), 1),
                                max_consecutive_failures=self.args.max_failures, explore=True,
                                epsilon=-1.0, allowed=allowed)
            log = client.run(goal, self.args.episode_timeout, on_feedback=self.on_step,
                             count_objects=False)
            print(f'episode {episode} (cell {cell_index}, {scene} scene, seed {seed}): '
                  f'{log.reason} ({log.actions} actions, '
                  f'{log.grasp_successes}/{log.grasp_attempts} grasps)',
                  flush=True)
            # An episode without an action counts as failed: a table seen clear from the start
            # (all blocks fell off, or the camera sees none) must not loop for ever.
            ok = log.actions > 0 and log.reason_code in (
                PickAll.Result.TABLE_CLEARED, PickAll.Result.MAX_ACTIONS,
                PickAll.Result.TOO_MANY_FAILURES)
            failed = 0 if ok else failed + 1
            if failed >= MAX_FAILED_EPISODES:
                raise RuntimeError(f'{failed} episodes in a row failed; last: {log.reason}')

    def close(self):
        self.csv.close()


def _pct(value):
    return '  n/a' if value is None or math.isnan(value) else f'{100 * value:4.1f}%'


def _json_rate(value):
    return None if math.isnan(value) else value


def write_run_json(run_dir, args, argv, progress, wall_s):
    info = {
        'command': 'python -m vpg_training.training_run ' + shlex.join(argv),
        'seed': args.seed, 'cells': args.cells, 'actions': progress.actions,
        'packed_share': args.packed_share,
        # null (not NaN, which is not JSON) for a primitive never tried
        'grasp_success_last200': _json_rate(progress.grasp_success_rate),
        'push_success_last200': _json_rate(progress.push_success_rate),
        'grasp_attempts': progress.grasp_attempts, 'push_attempts': progress.push_attempts,
        'wall_minutes': round(wall_s / 60.0, 1),
        # served with the weights wherever they go (ship_weights, vpg_policy.weights_record)
        'policy_parameters': named_values(args.policy_param),
    }
    latest = CheckpointStore(Path(run_dir) / 'checkpoints').latest()
    if latest is not None:
        info.update(weights_version=latest.version, weights=latest.weights,
                    sha256=latest.sha256, updates=latest.updates)
    (Path(run_dir) / 'run.json').write_text(json.dumps(info, indent=2, allow_nan=False) + '\n')
    return info


def trainer_parameters(args):
    """
    Return the trainer's parameters: --gamma, --variant, --device, --trainer-param.

    A --policy-param of the action mask goes to the trainer too: its future maximum must run
    over the pixels the policy chooses from.
    """
    mask = {name: value for name, value in named_values(args.policy_param).items()
            if name in ACTION_MASK_NAMES}
    params = dict(mask)
    if args.gamma is not None:
        params['gamma'] = args.gamma
    if args.variant:
        params['variant'] = args.variant
    params['device'] = args.device
    params.update(named_values(args.trainer_param))
    return params


def policy_parameters(args):
    """Return the policy nodes' parameters: 1 torch thread, heatmaps if viewed, --policy-param."""
    return {'torch_threads': 1, 'publish_heatmaps': bool(args.view),
            **named_values(args.policy_param)}


def restartable(error):
    """
    Tell whether a failure of the graph ends the run or is worth a fresh graph.

    A node that exits (the sim's CellUnstable when MuJoCo's physics blows up, a crash) or a
    goal that hangs or is refused is a fault of that graph's life: a fresh graph resumes from
    the run folder as a rerun of the command would. Episodes that keep failing
    (MAX_FAILED_EPISODES) say something is wrong with the run itself and end it.
    """
    if isinstance(error, GraphStopped):
        return False
    return isinstance(error, (NodeDied, TimeoutError, PickAllClientError))


def train_once(args, argv, run_dir):
    """
    Start the graph, run episodes until the run has its actions, stop the graph.

    Returns (status, error, info): status 0 when done, 1 on a failure (error: its exception),
    130 when interrupted (error None); info is what run.json now says.
    """
    params = trainer_parameters(args)
    latest = initial_checkpoint(TrainerConfig(run_dir=run_dir, seed=args.seed,
                                              variant=params.get('variant', 'vpg')))
    done = len(read_rows(os.path.join(run_dir, 'metrics.csv')))
    if done >= args.actions:
        print(f'train: {run_dir} already has {done} actions (asked {args.actions})')
    print(f'train: run {run_dir}, resuming at action {done}, weights v{latest.version}')
    policy = policy_parameters(args)
    graph = training_graph(run_dir, cells=args.cells, seed=args.seed, num_objects=args.objects,
                           weights=latest.weights, device=args.device, start_step=done,
                           trainer_parameters=params, policy_parameters=policy)
    if args.view:
        viewer = viewer_spec('cell0' if args.cells > 1 else '', port=args.view_port,
                             parameters={'use_sim_time': True})
        graph.append(viewer)
        print(f'train: watch live: open ws://localhost:{args.view_port} in Foxglove or '
              'Lichtblick (Foxglove WebSocket; layout src/vpg_bringup/foxglove/vpg.json)')
    log = open(os.path.join(run_dir, 'nodes.log'), 'a')
    runner = GraphRunner(graph, output=log, stop_timeout=60.0)
    client_node = ClientNode('training_run', threads=2, start=False)
    node = client_node.node
    status, failure = 1, None
    run = TrainingRun(args, node, run_dir)
    try:
        runner.start()
        client_node.start()
        namespaces = [f'cell{k}' if args.cells > 1 else '' for k in range(args.cells)]
        clients = [PickAllClient(node, runner, ns) for ns in namespaces]
        for client in clients:
            client.wait_ready(180.0)
        threads = []
        errors = []

        def work(client, k):
            try:
                run.cell_loop(client, k)
            except (NodeDied, TimeoutError, PickAllClientError, RuntimeError) as error:
                errors.append(error)
                run.stop.set()

        for k, client in enumerate(clients):
            thread = threading.Thread(target=work, args=(client, k), daemon=True)
            thread.start()
            threads.append(thread)
        for thread in threads:
            while thread.is_alive():
                thread.join(timeout=1.0)
                runner.check()
        if errors:
            raise errors[0]
        status = 0
    except (NodeDied, TimeoutError, PickAllClientError, RuntimeError) as error:
        print(f'train: failed: {error}', file=sys.stderr)
        failure = error
    except KeyboardInterrupt:
        print('train: interrupted; run again with the same --run-dir to resume',
              file=sys.stderr)
        run.stop.set()
        status = 130
    finally:
        runner.stop()  # the trainer writes its last checkpoint on SIGTERM
        info = write_run_json(run_dir, args, argv, run.progress, run.wall_s())
        if run.progress.actions:
            plot_curves(Path(run_dir) / 'metrics.csv', Path(run_dir) / 'curve.png',
                        title=f'Training in the MuJoCo cell ({Path(run_dir).name})')
        run.close()
        log.close()
        client_node.close()
    return status, failure, info


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    # Ctrl-C and SIGTERM both end the run cleanly (nodes stopped, run.json written), also
    # when started in the background, where SIGINT arrives ignored.
    raise_keyboard_interrupt_on(signal.SIGINT, signal.SIGTERM)
    if 'ROS_DOMAIN_ID' not in os.environ:
        print(f'train: ROS_DOMAIN_ID={isolate()}')
    run_dir = os.path.abspath(args.run_dir)
    os.makedirs(run_dir, exist_ok=True)
    restarts = 0
    while True:
        status, failure, info = train_once(args, argv, run_dir)
        if failure is None or not restartable(failure) or restarts >= args.max_restarts:
            break
        restarts += 1
        print(f'train: restarting the graph ({restarts} of {args.max_restarts}) after: '
              f'{failure}', flush=True)
    print(f'train: {info["actions"]} actions, grasp success (last 200) '
          f'{_pct(info["grasp_success_last200"])}, {info["wall_minutes"]} min; '
          f'see {run_dir}/curve.png')
    return 1 if status == 130 else status


if __name__ == '__main__':
    sys.exit(main())
