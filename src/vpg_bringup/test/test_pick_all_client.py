"""PickAllClient: timeouts and dead nodes fail fast; one episode on the real MuJoCo graph."""

import io
import json
import threading
import time

import pytest
from vpg_bringup.graph import sim_graph
from vpg_bringup.pick_all_client import (EpisodeLog, PickAllClient, PickAllClientError,
                                         StepRecord)
from vpg_bringup.runner import GraphRunner, NodeDied
from vpg_common.client_node import ClientNode
from vpg_interfaces.action import PickAll


@pytest.fixture
def spun():
    spun = ClientNode('pick_all_client_test')
    yield spun
    spun.close()


class DeadRunner:
    """Stands in for a GraphRunner whose node has exited."""

    def __init__(self):
        self.checks = 0

    def check(self):
        self.checks += 1
        raise NodeDied('node exited unexpectedly: sim (exit code 1)')


def test_the_action_client_is_whole_when_a_spinning_node_first_sees_it(spun):
    """A node spinning in another thread may ask a new waitable for its entities at once."""
    registered = []
    add_waitable = spun.node.add_waitable

    def watch(waitable):
        registered.append(hasattr(waitable, '_lock'))
        add_waitable(waitable)

    spun.node.add_waitable = watch
    PickAllClient(spun.node, namespace='nobody_here')
    assert registered == [True]


def test_wait_ready_times_out_naming_what_is_missing(spun):
    client = PickAllClient(spun.node, namespace='nobody_here')
    start = time.monotonic()
    with pytest.raises(TimeoutError) as error:
        client.wait_ready(0.5)
    assert time.monotonic() - start < 5
    message = str(error.value)
    assert '/nobody_here/pick_all' in message
    assert '/nobody_here/sim/reset_scene' in message
    assert '/nobody_here/sim/count_objects' in message


def test_a_dead_node_fails_every_wait_at_once(spun):
    runner = DeadRunner()
    client = PickAllClient(spun.node, runner, namespace='nobody_here')
    start = time.monotonic()
    with pytest.raises(NodeDied):
        client.wait_ready(60.0)
    with pytest.raises(NodeDied):
        client.count_objects(timeout=60.0)
    assert time.monotonic() - start < 5
    assert runner.checks >= 2


def test_episode_log_round_trips_through_json():
    step = StepRecord(step=1, primitive=1, rotation_index=3, row=10, col=20, reward=1.0,
                      grasp_success=True, push_changed=False, objects_seen_remaining=1,
                      consecutive_failures=0, weights_version=7)
    log = EpisodeLog(steps=[step], objects_removed=1, actions=1, grasp_attempts=1,
                     grasp_successes=1, reason_code=1, reason='table clear after 1 actions',
                     objects_in_workspace_before=1, goal={'max_actions': 3})
    again = EpisodeLog.from_dict(json.loads(json.dumps(log.to_dict())))
    assert again == log
    assert again.steps[0].weights_version == 7


@pytest.fixture(scope='module')
def cell():
    log = io.StringIO()
    runner = GraphRunner(sim_graph(seed=0, num_objects=0, weights=''), output=log)
    spun = ClientNode('pick_all_client_e2e')
    runner.start()
    try:
        client = PickAllClient(spun.node, runner)
        client.wait_ready(180.0)
        yield client, runner
    finally:
        spun.close()
        codes = runner.stop()
        print(log.getvalue()[-20000:])
        assert not [name for name, code in codes.items() if code not in (0, -15, -2)], codes


@pytest.mark.slow
def test_one_episode_on_the_sim_graph_with_the_untrained_policy(cell):
    client, runner = cell
    reset = client.reset_scene(num_objects=2, seed=4, timeout=120.0)
    assert reset.num_objects == 2
    counts = client.count_objects()
    assert counts.in_workspace + counts.out_of_workspace == 2 and counts.removed == 0
    seen = []
    goal = PickAll.Goal(max_actions=2, max_consecutive_failures=10)
    log = client.run(goal, timeout=400.0, on_feedback=seen.append)

    assert log.status == 4, log.reason  # succeeded: stopped by a limit or a clear table
    assert log.reason_code in (PickAll.Result.MAX_ACTIONS, PickAll.Result.TABLE_CLEARED)
    assert 1 <= log.actions <= 2 and log.feedback_complete
    assert [s.step for s in log.steps] == list(range(1, log.actions + 1))
    assert seen == log.steps
    assert log.grasp_attempts + log.push_attempts == log.actions
    assert log.grasp_attempts == sum(s.primitive == 1 for s in log.steps)
    assert log.grasp_successes == sum(s.grasp_success for s in log.steps)
    assert all(s.weights_version == 0 for s in log.steps)  # untrained: version 0
    assert all(0 <= s.row < 224 and 0 <= s.col < 224 for s in log.steps)
    assert log.objects_in_workspace_before == counts.in_workspace
    after = log.objects_in_workspace_after + log.removed + log.out_of_workspace
    assert after == 2 and log.removed >= log.removed_before
    assert log.goal == {'max_actions': 2, 'max_consecutive_failures': 10, 'explore': False,
                        'epsilon': 0.0, 'allowed': 0}
    assert log.wall_s > 0
    assert EpisodeLog.from_dict(json.loads(json.dumps(log.to_dict()))) == log


@pytest.mark.slow
def test_cancel_and_refused_reset_on_the_sim_graph(cell):
    client, runner = cell
    with pytest.raises(PickAllClientError, match='reset_scene failed'):
        client.reset_scene(test_case_file='/nonexistent/case.txt')
    client.reset_scene(num_objects=3, seed=5, timeout=120.0)
    first = threading.Event()
    handle = client.send_goal(PickAll.Goal(max_actions=6, max_consecutive_failures=10),
                              on_feedback=lambda feedback: first.set())
    assert first.wait(timeout=300.0), 'no feedback from the first action'
    assert client.cancel(handle)
    deadline = time.monotonic() + 200.0
    future = handle.get_result_async()
    while not future.done() and time.monotonic() < deadline:
        runner.check()
        time.sleep(0.1)
    result = future.result().result
    assert result.reason_code == PickAll.Result.CANCELED and result.actions < 6
