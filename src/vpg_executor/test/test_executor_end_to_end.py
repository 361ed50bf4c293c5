"""
End to end on the MuJoCo cell, through /pick_all.

Sim, heightmap, a scripted policy and the executor run as separate processes; this test is the
other ROS system that calls the action.
"""

import io
import math
from pathlib import Path
import sys
import threading
import time

from action_msgs.msg import GoalStatus
import numpy as np
import pytest
import rclpy
from rclpy.action import ActionClient
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import JointState
from vpg_bringup.graph import NodeSpec
from vpg_bringup.runner import GraphRunner
from vpg_executor.primitives import PrimitiveConfig
from vpg_interfaces.action import PickAll
from vpg_interfaces.msg import PrimitiveAction
from vpg_interfaces.srv import CountObjects, ExecutePrimitive, ResetScene

pytestmark = pytest.mark.slow

SRC = Path(__file__).resolve().parents[2]
CALIBRATION = SRC / 'vpg_sim' / 'config' / 'camera_calibration.yaml'
SCRIPTED_POLICY = Path(__file__).resolve().parent / 'nodes' / 'scripted_policy.py'
THREE_BLOCKS = """# three isolated cubes (project format: shape r g b x y z alpha beta gamma)
cube 0.31 0.47 0.65 -0.62 -0.12 0.0255 0 0 0.3
cube 0.35 0.63 0.31 -0.45 0.10 0.0255 0 0 0
cube 1.00 0.34 0.35 -0.38 -0.13 0.0255 0 0 1.0
"""


def python_module(module):
    return (sys.executable, '-m', module)


@pytest.fixture(scope='module')
def cell(tmp_path_factory):
    case = tmp_path_factory.mktemp('cases') / 'three_blocks.txt'
    case.write_text(THREE_BLOCKS)
    sim_time = {'use_sim_time': True}
    specs = [
        NodeSpec('vpg_sim', 'sim', 'sim', parameters={'test_case_file': str(case),
                                                      'real_time_factor': 0.0},
                 command=python_module('vpg_sim.sim_node')),
        NodeSpec('vpg_perception', 'heightmap', 'heightmap',
                 parameters={**sim_time, 'calibration_file': str(CALIBRATION)},
                 command=python_module('vpg_perception.heightmap_node')),
        NodeSpec('test', 'scripted_policy', 'policy', parameters=sim_time,
                 command=(sys.executable, str(SCRIPTED_POLICY))),
        NodeSpec('vpg_executor', 'executor', 'executor',
                 parameters={**sim_time, 'robot.model': 'ur5e_menagerie'},
                 command=python_module('vpg_executor.executor_node')),
    ]
    log = io.StringIO()
    runner = GraphRunner(specs, config_dir=str(SRC), output=log)
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('pick_all_caller', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    joints = {}
    node.create_subscription(JointState, '/joint_states',
                             lambda m: joints.update(zip(m.name, m.position)), 10)
    spinning = threading.Event()

    def spin():
        while not spinning.is_set():
            executor.spin_once(timeout_sec=0.05)

    thread = threading.Thread(target=spin, daemon=True)
    runner.start()
    thread.start()
    try:
        yield runner, node, joints, log
    finally:
        spinning.set()
        thread.join(timeout=5)
        codes = runner.stop()
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)
        print(log.getvalue()[-20000:])
        assert not [name for name, code in codes.items() if code not in (0, -15, -2)], codes


def wait(future, runner, timeout):
    deadline = time.monotonic() + timeout
    while not future.done() and time.monotonic() < deadline:
        runner.check()
        time.sleep(0.05)
    assert future.done(), f'no answer within {timeout} s'
    return future.result()


def call(node, runner, srv_type, name, request, timeout=60):
    client = node.create_client(srv_type, name)
    assert client.wait_for_service(timeout_sec=60), f'{name} not available'
    return wait(client.call_async(request), runner, timeout)


def send_goal(node, runner, goal, feedback):
    client = ActionClient(node, PickAll, 'pick_all')
    assert client.wait_for_server(timeout_sec=60), 'pick_all not available'
    # Right after discovery a goal request can be lost (seen once in 30 s of waiting, not
    # reproduced since): ask once more before failing. Had the first been accepted with its
    # answer lost, the second is refused (one goal at a time) and the test fails on that.
    for attempt in range(2):
        future = client.send_goal_async(
            goal, feedback_callback=lambda fb: feedback.append(fb.feedback))
        try:
            return wait(future, runner, 15)
        except AssertionError:
            if attempt:
                raise


def test_pick_all_clears_three_isolated_blocks(cell):
    runner, node, joints, log = cell
    feedback = []
    handle = send_goal(node, runner, PickAll.Goal(max_actions=8, max_consecutive_failures=4),
                       feedback)
    assert handle.accepted
    outcome = wait(handle.get_result_async(), runner, 400)
    result = outcome.result
    assert result.reason_code == PickAll.Result.TABLE_CLEARED, result.reason
    assert outcome.status == GoalStatus.STATUS_SUCCEEDED
    assert result.table_cleared and result.objects_removed == 3
    assert result.grasp_successes == 3 and result.actions == len(feedback)
    assert [fb.step for fb in feedback] == list(range(1, len(feedback) + 1))
    truth = call(node, runner, CountObjects, '/sim/count_objects', CountObjects.Request())
    assert truth.removed == 3 and truth.in_workspace == 0


def test_cancel_stops_within_one_primitive_with_the_arm_at_home(cell):
    runner, node, joints, log = cell
    reset = call(node, runner, ResetScene, '/sim/reset_scene',
                 ResetScene.Request(num_objects=4, seed=11))
    assert reset.success, reset.message
    feedback = []
    handle = send_goal(node, runner, PickAll.Goal(max_actions=10, max_consecutive_failures=5),
                       feedback)
    deadline = time.monotonic() + 300
    while not feedback and time.monotonic() < deadline:
        runner.check()
        time.sleep(0.1)
    assert feedback, 'no feedback before the deadline'
    cancel = wait(handle.cancel_goal_async(), runner, 30)
    assert len(cancel.goals_canceling) == 1
    outcome = wait(handle.get_result_async(), runner, 200)
    assert outcome.status == GoalStatus.STATUS_CANCELED
    assert outcome.result.reason_code == PickAll.Result.CANCELED
    assert outcome.result.actions <= len(feedback) + 1
    home = np.array(PrimitiveConfig().home_joints)
    names = ['shoulder_pan_joint', 'shoulder_lift_joint', 'elbow_joint', 'wrist_1_joint',
             'wrist_2_joint', 'wrist_3_joint']
    time.sleep(1.0)
    q = np.array([joints[n] for n in names])
    assert np.max(np.abs(q - home)) < 0.05, q


def test_unreachable_or_outside_target_fails_the_action_not_the_node(cell):
    runner, node, joints, log = cell
    action = PrimitiveAction(primitive=PrimitiveAction.GRASP, angle=0.0)
    action.position.x, action.position.y, action.position.z = 0.6, 0.0, 0.0
    response = call(node, runner, ExecutePrimitive, 'execute_primitive',
                    ExecutePrimitive.Request(action=action), timeout=120)
    assert not response.success and 'TargetRejected' in response.message
    action.position.x, action.position.z = math.nan, 0.0
    response = call(node, runner, ExecutePrimitive, 'execute_primitive',
                    ExecutePrimitive.Request(action=action), timeout=120)
    assert not response.success
    runner.check()  # every node still alive
