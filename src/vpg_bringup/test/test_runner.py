"""The graph runner: ROS arguments as launch_ros builds them, log forwarding, failure handling."""

import io
import signal
import subprocess
import sys
import threading
import time

import pytest
from vpg_bringup.graph import format_parameter, NodeSpec, sim_graph
from vpg_bringup.runner import GraphRunner, GraphStopped, NodeDied

SLEEPER = (sys.executable, '-c', 'import sys, time; print("up", sys.argv[1:3], flush=True); '
           'time.sleep(60)')
DIES = (sys.executable, '-c', 'import time; time.sleep(0.5); print("bye", flush=True); '
        'raise SystemExit(3)')
# Ignores SIGTERM in a named function and, like every node, shows its stacks on SIGUSR1.
HANGS = (sys.executable, '-c', 'import faulthandler, signal, time\n'
         'faulthandler.register(signal.SIGUSR1, all_threads=True)\n'
         'signal.signal(signal.SIGTERM, signal.SIG_IGN)\n'
         'def stuck_in_shutdown():\n'
         '    print("up", flush=True)\n'
         '    time.sleep(60)\n'
         'stuck_in_shutdown()\n')


def test_ros_arguments_match_launch_conventions(tmp_path):
    spec = NodeSpec('vpg_sim', 'sim', 'sim', '/cell1', ('sim.yaml', '/abs/x.yaml'),
                    {'seed': 3, 'use_sim_time': True, 'name': 'a b', 'v': [1.0, 2.0]},
                    (('/joint_states', '/cell1/joint_states'),))
    args = spec.ros_arguments(str(tmp_path))
    assert args[:3] == ['--ros-args', '-r', '__node:=sim']
    assert ['-r', '__ns:=/cell1'] == args[3:5]
    assert ['--params-file', str(tmp_path / 'sim.yaml')] == args[5:7]
    assert ['--params-file', '/abs/x.yaml'] == args[7:9]
    assert 'seed:=3' in args and 'use_sim_time:=true' in args
    assert "name:='a b'" in args and 'v:=[1.0,2.0]' in args
    assert args[-2:] == ['-r', '/joint_states:=/cell1/joint_states']
    assert format_parameter('') == "''"


def test_a_node_that_dies_fails_the_run_and_stops_the_rest(tmp_path):
    out = io.StringIO()
    specs = [NodeSpec('x', 'x', 'stays', command=SLEEPER),
             NodeSpec('x', 'x', 'dies', command=DIES)]
    runner = GraphRunner(specs, config_dir=str(tmp_path), output=out, stop_timeout=5)
    start = time.monotonic()
    with pytest.raises(NodeDied, match=r'dies \(exit code 3\)'):
        with runner:
            runner.wait(timeout=20)
    assert time.monotonic() - start < 15
    assert all(p.poll() is not None for p in runner.processes.values())
    assert '[dies] bye' in out.getvalue() and "[stays] up ['--ros-args', '-r']" in out.getvalue()


def test_stop_ends_every_node(tmp_path):
    runner = GraphRunner([NodeSpec('x', 'x', 'a', command=SLEEPER),
                          NodeSpec('x', 'x', 'b', '/ns', command=SLEEPER)],
                         config_dir=str(tmp_path), output=io.StringIO(), stop_timeout=5)
    runner.start()
    runner.wait(timeout=1.0)
    codes = runner.stop()
    assert set(codes) == {'a', 'ns/b'} and all(code is not None for code in codes.values())


def test_a_node_hung_after_sigterm_shows_its_stack_and_is_killed(tmp_path):
    out = io.StringIO()
    runner = GraphRunner([NodeSpec('x', 'x', 'quick', command=SLEEPER),
                          NodeSpec('x', 'x', 'hung', command=HANGS)],
                         config_dir=str(tmp_path), output=out, stop_timeout=2)
    runner.start()
    deadline = time.monotonic() + 20
    while '[hung] up' not in out.getvalue() and time.monotonic() < deadline:
        time.sleep(0.05)
    codes = runner.stop()
    log = out.getvalue()
    assert codes == {'quick': -15, 'hung': -9}, codes
    assert '[runner] quick stopped in' in log
    assert '[runner] hung still running 2 s after SIGTERM' in log
    assert 'stuck_in_shutdown' in log  # the stack came through before the kill


def test_waits_on_a_stopped_graph_end_and_it_cannot_start_again(tmp_path):
    out = io.StringIO()
    runner = GraphRunner([NodeSpec('x', 'x', 'a', command=SLEEPER)],
                         config_dir=str(tmp_path), output=out, stop_timeout=5)
    runner.start()
    runner.check()
    stops = [threading.Thread(target=runner.stop) for _ in range(2)]
    for thread in stops:
        thread.start()
    for thread in stops:
        thread.join(timeout=20)
    assert runner.stop() == {'a': -15}
    assert out.getvalue().count('[runner] a stopped in') == 1  # stopped once, not three times
    with pytest.raises(GraphStopped):
        runner.check()  # a client waiting on the graph gives up at once
    with pytest.raises(GraphStopped):
        runner.start()
    assert len(runner.processes) == 1


def test_sigterm_can_be_made_a_keyboard_interrupt():
    code = ('import signal, sys, time\n'
            'from vpg_bringup.runner import raise_keyboard_interrupt_on\n'
            'raise_keyboard_interrupt_on(signal.SIGTERM)\n'
            'try:\n'  # "ready" inside the try: a SIGTERM right after it must land in it
            '    print("ready", flush=True)\n'
            '    time.sleep(30)\n'
            'except KeyboardInterrupt as interrupt:\n'
            '    print("interrupted:", interrupt, flush=True)\n')
    process = subprocess.Popen([sys.executable, '-c', code], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == 'ready'
    process.send_signal(signal.SIGTERM)
    output = process.communicate(timeout=20)[0]
    assert process.returncode == 0 and f'interrupted: signal {int(signal.SIGTERM)}' in output


def test_duplicate_node_names_are_refused(tmp_path):
    runner = GraphRunner([NodeSpec('x', 'x', 'a', command=SLEEPER)] * 2,
                         config_dir=str(tmp_path))
    with pytest.raises(ValueError, match='duplicate'):
        runner.start()


def test_sim_graph_keeps_driver_topics_inside_the_cell_namespace():
    specs = {spec.name: spec for spec in sim_graph(cell='cell2', seed=5, weights='w.safetensors')}
    assert set(specs) == {'sim', 'heightmap', 'policy', 'executor'}
    assert all(spec.namespace == '/cell2' for spec in specs.values())
    assert ('/joint_states', '/cell2/joint_states') in specs['executor'].remappings
    assert specs['policy'].parameters['weights_path'] == 'w.safetensors'
    assert specs['sim'].parameters['seed'] == 5
    assert sim_graph()[0].remappings == ()
