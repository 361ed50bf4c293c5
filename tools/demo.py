"""
`make demo`: the main job in the embedded MuJoCo cell.

Starts the MuJoCo graph (sim, heightmap, policy, executor) as separate ROS 2 processes through
vpg_bringup's runner, sends one `/pick_all` goal from this process as another ROS system would,
prints the feedback of every action and the result, and saves the Q heatmaps of each decision
as PNG files. Unless --no-record, a recorder node writes heightmaps, Q heatmaps, action markers
and transitions (with rewards), plus the /pick_all feedback and result, to <out>/demo.mcap
(Foxglove, `ros2 bag`), read back at the end. With --view a viewer node serves the cell live
over the Foxglove WebSocket protocol (ws://localhost:8765) and the goal waits for a keypress
(or --view-wait seconds) so that Foxglove or Lichtblick can connect first.

    python tools/demo.py [--seed 1] [--objects 10] [--max-actions 30] [--weights FILE]
                         [--no-record] [--view [--view-port 8765] [--view-wait 0]]
"""

import argparse
import os
from pathlib import Path
import signal
import sys
import threading
import time

import cv2
from mcap.exceptions import McapError
import rclpy
from rclpy.action import ActionClient
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import Image
from vpg_bringup.graph import recorder_spec, sim_graph, viewer_spec
from vpg_bringup.recorder_node import DEFAULT_TOPICS
from vpg_bringup.recording import summarize
from vpg_bringup.ros_domain import isolate
from vpg_bringup.runner import GraphRunner, NodeDied, raise_keyboard_interrupt_on
from vpg_bringup.viewer import LAYOUT_TOPICS
from vpg_interfaces.action import PickAll
from vpg_perception.conversions import image_to_numpy

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_WEIGHTS = ROOT / 'weights' / 'vpg.safetensors'
PRIMITIVES = {0: 'push', 1: 'grasp'}


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--seed', type=int, default=1)
    parser.add_argument('--objects', type=int, default=10)
    parser.add_argument('--max-actions', type=int, default=30)
    parser.add_argument('--weights', default=str(SHIPPED_WEIGHTS) if SHIPPED_WEIGHTS.exists()
                        else '', help='policy weights (default: the shipped '
                        f'{SHIPPED_WEIGHTS.relative_to(ROOT)}); empty = untrained')
    parser.add_argument('--out', default=str(ROOT / 'results' / 'demo'))
    parser.add_argument('--timeout', type=float, default=900.0, help='seconds for the goal')
    parser.add_argument('--record', action=argparse.BooleanOptionalAction, default=True,
                        help='write an MCAP recording to <out>/demo.mcap (default: on)')
    parser.add_argument('--view', action='store_true',
                        help='serve the cell live to Foxglove or Lichtblick (no authentication: '
                        'bound to localhost)')
    parser.add_argument('--view-port', type=int, default=8765)
    parser.add_argument('--view-wait', type=float, default=None,
                        help='with --view: seconds to wait before the goal (default: until '
                        'Enter is pressed on a terminal, else 0)')
    return parser.parse_args(argv)


class HeatmapSaver:
    """Writes every Q heatmap the policy publishes as <out>/<n>_<primitive>.png."""

    def __init__(self, node, out):
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        for old in self.out.glob('*.png'):
            old.unlink()
        self.count = {'push': 0, 'grasp': 0}
        for primitive in self.count:
            node.create_subscription(Image, f'q_heatmaps/{primitive}',
                                     lambda msg, p=primitive: self.save(p, msg), 10)

    def save(self, primitive, msg):
        self.count[primitive] += 1
        rgb = image_to_numpy(msg, 'rgb8')
        path = self.out / f'{self.count[primitive]:03d}_{primitive}.png'
        cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if 'ROS_DOMAIN_ID' not in os.environ:
        print(f'demo: ROS_DOMAIN_ID={isolate()} (a free one; set ROS_DOMAIN_ID to choose, e.g. '
              'to watch in RViz)')
    weights = args.weights
    if not weights:
        print('demo: no weights: the policy starts untrained (random network), so it will '
              'not clear the table; it shows the whole loop running.')
    else:
        print(f'demo: weights {weights}')
    os.makedirs(args.out, exist_ok=True)
    log = open(os.path.join(args.out, 'nodes.log'), 'w')
    recording = os.path.join(args.out, 'demo.mcap')
    # The layout's topics too (feedback, result, colour heightmap), so it opens the recording.
    extra = [recorder_spec(recording, topics=DEFAULT_TOPICS + LAYOUT_TOPICS)] if args.record \
        else []
    if args.view:
        extra.append(viewer_spec(port=args.view_port, parameters={'use_sim_time': True}))
    runner = GraphRunner(sim_graph(seed=args.seed, num_objects=args.objects, weights=weights,
                                   extra=extra), output=log)
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('demo_client', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    saver = HeatmapSaver(node, args.out)
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            executor.spin_once(timeout_sec=0.1)

    spinner = threading.Thread(target=spin, daemon=True)
    status = 1
    raise_keyboard_interrupt_on(signal.SIGTERM)  # SIGTERM, like Ctrl-C, stops the graph
    try:
        runner.start()
        spinner.start()
        client = ActionClient(node, PickAll, 'pick_all')
        deadline = time.monotonic() + 120
        while not client.server_is_ready():
            runner.check()
            if time.monotonic() > deadline:
                raise TimeoutError('pick_all server did not appear within 120 s')
            time.sleep(0.2)
        if args.record:
            wait_for_recorder(node, runner)
        if args.view:
            wait_for_viewer(args)
        print(f'demo: sending pick_all (max_actions={args.max_actions}) on a random '
              f'{args.objects}-object scene, seed {args.seed}')

        def on_feedback(msg):
            fb = msg.feedback
            print(f'  step {fb.step:3d}: {PRIMITIVES.get(fb.action.primitive, "?"):5s} '
                  f'at ({fb.action.position.x:+.3f}, {fb.action.position.y:+.3f}) '
                  f'rot {fb.action.rotation_index:2d}  reward {fb.reward:.1f}  '
                  f'{fb.objects_seen_remaining} objects seen  weights v{fb.weights_version}')

        goal = PickAll.Goal(max_actions=args.max_actions, max_consecutive_failures=10)
        sent = client.send_goal_async(goal, feedback_callback=on_feedback)
        handle = wait(sent, runner, 60)
        if not handle.accepted:
            raise RuntimeError('pick_all goal was rejected')
        outcome = wait(handle.get_result_async(), runner, args.timeout).result
        print(f'demo: {outcome.reason} (reason code {outcome.reason_code}); '
              f'{outcome.objects_removed} objects removed in {outcome.actions} actions, '
              f'{outcome.grasp_successes}/{outcome.grasp_attempts} grasps, '
              f'{outcome.push_attempts} pushes')
        print(f'demo: Q heatmaps in {saver.out} ({sum(saver.count.values())} images), '
              f'node logs in {saver.out / "nodes.log"}')
        status = 0
    except (NodeDied, TimeoutError, RuntimeError) as error:
        print(f'demo: failed: {error}', file=sys.stderr)
    except KeyboardInterrupt:
        print('demo: interrupted; stopping the graph', file=sys.stderr)
        status = 130
    finally:
        stop.set()
        if spinner.is_alive():
            spinner.join(timeout=5)
        runner.stop()
        log.close()
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)
    if status != 130 and args.record and not report_recording(recording):
        status = 1
    return status


def wait_for_recorder(node, runner, timeout=30.0, settle=1.0):
    """
    Wait until the graph shows the recorder subscribed to the policy's topics, plus `settle` s.

    Those publishers keep only their last message and the subscriptions are volatile: what
    the policy publishes before its publishers have matched the recorder is never recorded,
    and the first decision follows the goal within a second or two.
    """
    topics = ('q_heatmaps/push', 'q_heatmaps/grasp', 'action_markers', 'heightmap')
    deadline = time.monotonic() + timeout
    while not all(node.count_publishers(topic) > 0 and any(
            info.node_name == 'recorder' for info in node.get_subscriptions_info_by_topic(topic))
            for topic in topics):
        runner.check()
        if time.monotonic() > deadline:
            print(f'demo: the recorder is not yet subscribed after {timeout:.0f} s; the first '
                  'decision may be missing from the recording', file=sys.stderr)
            return
        time.sleep(0.1)
    time.sleep(settle)


def wait_for_viewer(args):
    """Print where to watch, then give the user time to connect before the goal starts."""
    print(f'demo: watch live: open ws://localhost:{args.view_port} in Foxglove or Lichtblick '
          '(Open connection > Foxglove WebSocket), layout src/vpg_bringup/foxglove/vpg.json. '
          'No authentication: served on localhost only.')
    wait = args.view_wait
    if wait is None and sys.stdin.isatty():
        input('demo: press Enter to send the goal ')
    elif wait:
        print(f'demo: sending the goal in {wait:.0f} s')
        time.sleep(wait)


def report_recording(path):
    """Print what the recording holds, read back and decoded; False if it is not whole."""
    try:
        summary = summarize(path, decode=True)
    except (OSError, ValueError, McapError) as error:
        print(f'demo: recording {path} cannot be read: {error}', file=sys.stderr)
        return False
    state = 'complete' if summary.complete else 'INCOMPLETE: the recorder did not finish it'
    print(f'demo: recording {path} ({state}; profile {summary.profile!r}), messages per topic:')
    for topic in sorted(summary.counts):
        print(f'  {topic:20s} {summary.counts[topic]:5d}  {summary.types[topic]}')
    return summary.complete


def wait(future, runner, timeout):
    deadline = time.monotonic() + timeout
    while not future.done():
        runner.check()
        if time.monotonic() > deadline:
            raise TimeoutError(f'no answer within {timeout:.0f} s')
        time.sleep(0.1)
    return future.result()


if __name__ == '__main__':
    sys.exit(main())
