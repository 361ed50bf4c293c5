"""The preflight's checks without ROS: observations in, PASS/FAIL with a hint out."""

import math
import os

import numpy as np
import pytest
from vpg_bringup import preflight_checks as checks
from vpg_executor.safety import SafetyEnvelope
from vpg_executor.ur_kinematics import forward_kinematics, UR5, UR5E

HOME = np.array([0.0, -1.9, 1.9, -1.57, -1.57, 0.0])
WORKSPACE = (-0.724, -0.276, -0.224, 0.224)


def stream(topic, rate, seconds=3.0, encoding='rgb8'):
    observation = checks.TopicObservation(topic)
    count = int(rate * seconds)
    observation.receive_times = [i / rate for i in range(count)]
    observation.stamps = [100.0 + i / rate for i in range(count)]
    if count:
        observation.encodings, observation.sizes = {encoding}, {(640, 480)}
        observation.frame_ids = {'camera_color_optical_frame'}
    return observation


def test_image_stream_passes_at_rate_and_names_what_is_wrong():
    ok = checks.check_image_stream('camera colour', stream('/c', 30), 30,
                                   checks.COLOR_ENCODINGS)
    assert ok.ok and '30.0 Hz' in ok.detail and ok.lines() == [ok.lines()[0]]
    silent = checks.check_image_stream('camera colour', stream('/c', 0), 30,
                                       checks.COLOR_ENCODINGS)
    assert not silent.ok and 'nothing arrived' in silent.detail and 'realsense' in silent.hint
    slow = checks.check_image_stream('camera colour', stream('/c', 10), 30,
                                     checks.COLOR_ENCODINGS)
    assert not slow.ok and 'expected 30 Hz' in slow.detail
    wrong = checks.check_image_stream('camera aligned depth', stream('/d', 30, encoding='mono8'),
                                      30, checks.DEPTH_ENCODINGS)
    assert not wrong.ok and '16UC1' in wrong.hint
    assert wrong.lines()[0].startswith('FAIL camera aligned depth') and 'hint:' in wrong.lines()[1]


def test_stamp_pairing_tolerates_lost_frames_but_not_offset_streams():
    colour = [i / 30 for i in range(90)]
    assert checks.check_stamp_pairing(colour, colour, 0.02).ok
    lost = [t for i, t in enumerate(colour) if i % 3]  # a third of the depth frames lost
    assert checks.check_stamp_pairing(colour, lost, 0.02).ok
    assert '60 of 90' in checks.check_stamp_pairing(colour, lost, 0.02).detail
    slow = colour[::6]  # 5 Hz
    offset = [t + 0.05 for t in slow]  # depth stamped 50 ms late
    result = checks.check_stamp_pairing(slow, offset, 0.02)
    assert not result.ok and 'median offset 50.0 ms' in result.detail
    assert 'enable_sync' in result.hint
    other_clock = [t + 1000.0 for t in slow]
    result = checks.check_stamp_pairing(slow, other_clock, 0.02)
    assert not result.ok and 'no colour frame' in result.detail
    assert not checks.check_stamp_pairing(colour, [], 0.02).ok


def write_calibration(path, extra=''):
    path.write_text(extra + 'frame_id: base\ncamera_frame_id: camera_color_optical_frame\n'
                    'translation: [-0.72, 0.04, 0.85]\nrotation_xyzw: [0, 0, 0, 1]\n'
                    'depth_scale: 1.0\n')
    return path


def test_calibration_missing_unreadable_stale_or_for_another_camera_fails(tmp_path):
    info = (640, 480, 615.0, 615.0, 319.5, 239.5, 'camera_color_optical_frame')
    assert not checks.check_calibration('', info).ok
    missing = checks.check_calibration(tmp_path / 'none.yaml', info)
    assert not missing.ok and 'does not exist' in missing.detail and 'calibrate' in missing.hint
    broken = tmp_path / 'broken.yaml'
    broken.write_text('frame_id: base\n')
    assert not checks.check_calibration(broken, info).ok
    good = write_calibration(tmp_path / 'cal.yaml')
    result = checks.check_calibration(good, info)
    assert result.ok and 'not recorded' in result.detail and '0.0 days old' in result.detail
    stale = checks.check_calibration(good, info, now=os.path.getmtime(good) + 40 * 86400)
    assert not stale.ok and '40.0 days old' in stale.detail
    other_frame = checks.check_calibration(good, info[:-1] + ('other_frame',))
    assert not other_frame.ok and 'other_frame' in other_frame.detail
    from vpg_perception.calibration import intrinsics_comment
    line = '# ' + intrinsics_comment(640, 480, 615.0, 615.0, 319.5, 239.5) + '\n'
    recorded = write_calibration(tmp_path / 'recorded.yaml', line)
    assert checks.check_calibration(recorded, info).detail.endswith('intrinsics match the camera')
    other_camera = (1280, 720, 910.0, 910.0, 640.0, 360.0, 'camera_color_optical_frame')
    assert not checks.check_calibration(recorded, other_camera).ok


def test_joint_states_need_the_arm_and_the_knuckle():
    joints = stream('/joint_states', 50)
    names = set(checks.UR_JOINTS) | {'robotiq_85_left_knuckle_joint'}
    assert checks.check_joint_states(joints, names, 'robotiq_85_left_knuckle_joint').ok
    result = checks.check_joint_states(joints, set(checks.UR_JOINTS),
                                       'robotiq_85_left_knuckle_joint')
    assert not result.ok and 'robotiq_85_left_knuckle_joint' in result.detail
    assert not checks.check_joint_states(stream('/joint_states', 0), names, 'x').ok


def test_arm_pose_tells_a_ur5_from_a_ur5e():
    measured = forward_kinematics(HOME, UR5E)[:3, 3]
    assert checks.check_arm_pose(HOME, measured, 'ur5e').ok
    wrong = checks.check_arm_pose(HOME, measured, 'ur5')
    assert not wrong.ok and 'UR5 vs UR5e' in wrong.hint
    error_mm = 1000 * np.linalg.norm(forward_kinematics(HOME, UR5)[:3, 3] - measured)
    assert f'{error_mm:.1f} mm' in wrong.detail and error_mm > 30
    assert not checks.check_arm_pose(HOME, None, 'ur5e').ok
    assert not checks.check_arm_pose(None, measured, 'ur5e').ok


def test_executor_kinematics_must_be_the_arms():
    assert checks.check_executor_model('ur5e', 'ur5e').ok
    assert checks.check_executor_model('ur5e_menagerie', 'ur5e').ok
    assert not checks.check_executor_model('ur5', 'ur5e').ok
    assert not checks.check_executor_model('ur5e', 'ur5e', running=False).ok


def test_controllers_active_or_their_interfaces_present():
    required = ('scaled_joint_trajectory_controller', 'robotiq_gripper_controller')
    states = {'scaled_joint_trajectory_controller': 'active',
              'robotiq_gripper_controller': 'active'}
    assert checks.check_controllers(states, required).ok
    stopped = checks.check_controllers({**states, 'robotiq_gripper_controller': 'inactive'},
                                       required)
    assert not stopped.ok and 'robotiq_gripper_controller inactive' in stopped.detail
    missing = checks.check_controllers({'scaled_joint_trajectory_controller': 'active'},
                                       required)
    assert not missing.ok and 'robotiq_gripper_controller not loaded' in missing.detail
    assert checks.check_controllers(None, required, {'trajectory topic': True,
                                                     'gripper action': True}).ok
    fallback = checks.check_controllers(None, required, {'trajectory topic': True,
                                                         'gripper action': False})
    assert not fallback.ok and 'gripper action MISSING' in fallback.detail


def test_gripper_motion_compares_each_knuckle_position():
    assert checks.check_gripper_motion([0.0, 0.78, 0.01], [0.0, 0.79, 0.0]).ok
    assert not checks.check_gripper_motion([0.0, 0.3, 0.0], [0.0, 0.79, 0.0]).ok
    assert not checks.check_gripper_motion([0.0, None, 0.0], [0.0, 0.79, 0.0]).ok


def test_policy_must_serve_loaded_weights():
    assert checks.check_policy('/w.safetensors', 217, 217, 'ab' * 32).ok
    random = checks.check_policy('', 0)
    assert not random.ok and 'RANDOM' in random.detail
    assert not checks.check_policy('/w.safetensors', None).ok
    assert not checks.check_policy('/w.safetensors', 0, 217, 'ab' * 32).ok


def test_workspace_reach_uses_the_arms_kinematics():
    envelope = SafetyEnvelope()
    args = (0.1558, -math.pi / 2, envelope.joint_lower, envelope.joint_upper)
    assert checks.check_workspace_reach(WORKSPACE, (0.02, 0.17), 'ur5e', *args).ok
    far = checks.check_workspace_reach((-1.2, -0.8, -0.2, 0.2), (0.02,), 'ur5e', *args)
    assert not far.ok and 'not' in far.detail and 'workspace' in far.hint


def test_report_and_exit_code_name_every_failure():
    results = [checks.CheckResult('a', True, 'fine'),
               checks.CheckResult('b', False, 'broken', 'fix b')]
    text = checks.report(results)
    assert text.splitlines() == ['PASS a: fine', 'FAIL b: broken', '     hint: fix b',
                                 'preflight: 1 of 2 checks passed; FAILED: b']
    assert checks.exit_code(results) == 1
    assert checks.exit_code(results[:1]) == 0
    assert checks.exit_code([]) == 1


@pytest.mark.parametrize('argv, expected', [
    ([], {'ur_type': 'ur5e', 'move': False, 'camera_rate': 30.0}),
    (['--ur-type', 'ur5', '--move', '--yes'], {'ur_type': 'ur5', 'move': True, 'yes': True}),
])
def test_command_line(argv, expected):
    from vpg_bringup.preflight import parse_args
    args, ros_args = parse_args(argv + ['--ros-args', '-r', 'a:=b'])
    assert {key: getattr(args, key) for key in expected} == expected
    assert ros_args == ['--ros-args', '-r', 'a:=b']


def test_move_asks_first_and_moves_nothing_when_declined():
    import rclpy
    from vpg_bringup.preflight import parse_args, Preflight
    args, _ = parse_args(['--move', '--timeout', '0.5'])
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('preflight_probe', context=context)
    questions = []
    try:
        preflight = Preflight(node, args, ask=lambda q: questions.append(q) or 'n')
        result = preflight.gripper_motion({'gripper.closed_position': 0.7929,
                                           'gripper.interface': 'parallel_gripper_command',
                                           'gripper.action': '/no_gripper/gripper_cmd',
                                           'gripper.joint': 'robotiq_85_left_knuckle_joint',
                                           'gripper.max_effort': 50.0})
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)
    assert len(questions) == 1 and 'open, close and open' in questions[0]
    assert not result.ok and result.detail == 'not run (declined)'
