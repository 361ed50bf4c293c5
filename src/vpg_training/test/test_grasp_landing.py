"""Where grasps put the open fingertips: the pad footprint, the log and the counts."""

import math

import numpy as np
import pytest
from vpg_policy.grasp_clearance import blocked as pad_blocked
from vpg_trainer.replay import TransitionRecord
from vpg_training import grasp_landing as gl

RES = 0.002


def _scene():
    """Table at 0; a 40 mm cube at pixel (100, 100); a neighbour 46 mm away along +x."""
    height = np.zeros((224, 224), np.float32)
    height[90:111, 90:111] = 0.04             # target, 42 mm square
    height[90:111, 118:139] = 0.04            # neighbour: its near face 36 mm from the centre
    return height


def test_a_neighbour_under_a_pad_blocks_only_the_jaw_axis_that_reaches_it():
    height = _scene()
    assert pad_blocked(height, 100, 100, 0.0, RES)                  # along x
    assert pad_blocked(height, 100, 100, math.pi, RES)              # same line
    assert not pad_blocked(height, 100, 100, math.pi / 2, RES)      # along y
    # A neighbour lower than the fingertips' lowest point is no obstacle: 40 mm top, pinch
    # 30 mm below it but no lower than 20 mm above the table, pads 4.4 mm lower -> 15.6 mm.
    height[90:111, 118:139] = 0.015
    assert not pad_blocked(height, 100, 100, 0.0, RES)
    height[90:111, 118:139] = 0.025
    assert pad_blocked(height, 100, 100, 0.0, RES)


def test_stop_lines_count_for_the_next_step_and_several_cells_are_refused():
    lines = [
        '[sim] [INFO] [5.0] [sim]: tool contact: arm stopped at 3.1 s, 25.0 N against the motion',
        '[executor] [INFO] [6.0] [executor]: step 1: grasp reward 0.0, 7 seen left; wall s ...',
        '[executor] [INFO] [7.0] [executor]: step 2: push reward 0.5, 7 seen left; wall s ...',
        '[executor] [INFO] [8.0] [executor]: step 3: grasp reward 1.0, 6 seen left; wall s ...',
    ]
    steps = gl.read_steps(lines)
    assert [(s.primitive, s.reward, s.stopped) for s in steps] == [
        ('grasp', 0.0, True), ('push', 0.5, False), ('grasp', 1.0, False)]
    with pytest.raises(ValueError, match='2 cells'):
        gl.read_steps(lines + ['[cell1/executor] [INFO] [9.0] [cell1.executor]: step 1: '
                               'push reward 0.0, 7 seen left'])


def _record(primitive, rotation_index, success):
    height = _scene()
    color = np.zeros(height.shape + (3,), np.uint8)
    return TransitionRecord(color, height, color, height, primitive=primitive,
                            rotation_index=rotation_index, num_rotations=16, row=100, col=100,
                            reward=float(success), grasp_success=success,
                            grid={'resolution': RES})


def test_grasps_are_counted_per_block_path_descent_and_outcome():
    records = [_record(1, 0, False), _record(0, 0, False), _record(1, 4, True),
               _record(1, 4, False)]
    steps = [gl.LoggedStep('grasp', 0.0, True), gl.LoggedStep('push', 0.5, False),
             gl.LoggedStep('grasp', 1.0, False), gl.LoggedStep('grasp', 0.0, False)]
    counts = gl.classify(records, steps, blocks=2)
    assert counts == {(0, 'blocked', 'stopped', False): 1, (1, 'free', 'reached', True): 1,
                      (1, 'free', 'reached', False): 1}
    rows = gl.table(counts, 2, len(records))
    assert rows[0] == {'actions': [1, 2], 'path': 'blocked', 'descent': 'stopped',
                       'grasps': 1, 'successes': 0}
    with pytest.raises(ValueError, match='action 1: stored push, logged grasp'):
        gl.classify(records, list(reversed(steps)), blocks=2)
