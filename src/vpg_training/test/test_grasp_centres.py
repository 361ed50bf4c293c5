"""Where grasps were centred on their objects: distances, bins, counts and the command."""

import dataclasses

import numpy as np
import pytest
from vpg_trainer.replay import ReplayStore, TransitionRecord
from vpg_training import grasp_centres as gc

RES = 0.002


def _height():
    height = np.zeros((64, 64), np.float32)
    height[10:30, 10:30] = 0.03  # a 40 mm block, rows and cols 10-29
    return height


def test_edge_distance_is_measured_from_the_cells_centre_to_the_edge():
    height = _height()
    assert gc.edge_distance(height, 10, 20, RES) == pytest.approx(0.001)   # edge cell
    assert gc.edge_distance(height, 13, 20, RES) == pytest.approx(0.007)
    assert gc.edge_distance(height, 19, 19, RES) == pytest.approx(0.019)
    assert gc.edge_distance(height, 9, 20, RES) is None                   # table beside it
    # A cell with no depth point in the block's top is not an edge, nor is its neighbour.
    height[19, 20] = 0.0
    assert gc.edge_distance(height, 19, 19, RES) == pytest.approx(0.019)
    assert gc.edge_distance(height, 19, 20, RES) == pytest.approx(0.019)
    assert [gc.distance_bin(d) for d in (None, 0.001, 0.0059, 0.006, 0.0119, 0.012)] == [
        'table', '<6 mm', '<6 mm', '6-12 mm', '6-12 mm', '>=12 mm']


def test_jaw_extent_counts_the_object_cells_the_jaw_line_crosses():
    height = np.zeros((64, 64), np.float32)
    height[10:30, 10:50] = 0.03  # 80 mm along the columns, 40 mm along the rows
    assert gc.jaw_extent(height, 20, 20, 0.0, RES) == pytest.approx(0.080)
    assert gc.jaw_extent(height, 20, 20, np.pi, RES) == pytest.approx(0.080)
    assert gc.jaw_extent(height, 20, 20, np.pi / 2, RES) == pytest.approx(0.040)
    assert gc.jaw_extent(height, 5, 20, 0.0, RES) is None
    height[20, 30] = 0.0                                        # a dropout does not cut it
    assert gc.jaw_extent(height, 20, 20, 0.0, RES) == pytest.approx(0.080)
    height[:, 40] = 0.0                                         # a gap across the block does
    assert gc.jaw_extent(height, 20, 20, 0.0, RES) == pytest.approx(0.060)
    assert [gc.jaw_bin(e) for e in (None, 0.029, 0.03, 0.05, 0.079, 0.08)] == [
        'table', '<30 mm', '30-50 mm', '50-80 mm', '50-80 mm', '>=80 mm']


def _record(primitive, row, col, success, exploratory=False):
    height = _height()
    color = np.zeros(height.shape + (3,), np.uint8)
    return TransitionRecord(color, height, color, height, primitive=primitive,
                            rotation_index=0, num_rotations=16, row=row, col=col,
                            reward=float(success), grasp_success=success,
                            exploratory=exploratory, grid={'resolution': RES})


def _records():
    return [_record(1, 9, 20, False), _record(0, 20, 20, False),
            _record(1, 10, 20, False, exploratory=True), _record(1, 19, 19, True),
            _record(1, 14, 20, True)]


def test_grasps_are_counted_per_block_choice_and_centre():
    counts = gc.classify(_records(), blocks=2)
    assert counts == {(0, 'greedy', 'table', False): 1, (0, 'exploratory', '<6 mm', False): 1,
                      (1, 'greedy', '>=12 mm', True): 1, (1, 'greedy', '6-12 mm', True): 1}
    rows = gc.table(counts, 2, 5)
    assert len(rows) == 2 * 2 * len(gc.BINS)
    assert rows[0] == {'actions': [1, 2], 'choice': 'greedy', 'centre': 'table', 'grasps': 1,
                       'successes': 0}
    assert rows[-1]['actions'] == [3, 5]


def test_the_command_reads_a_run_folder(tmp_path, capsys):
    store = ReplayStore(str(tmp_path / 'replay.sqlite'))
    for step, record in enumerate(_records()):
        store.add(dataclasses.replace(record, step=step))
    store.close()
    out = tmp_path / 'centres.json'
    assert gc.main([str(tmp_path), '--blocks', '1', '--json', str(out)]) == 0
    printed = capsys.readouterr().out
    assert 'greedy       centre >=12 mm      1 grasps     1 succeeded' in printed
    assert '"centre": "table"' in out.read_text()
    assert gc.main([str(tmp_path), '--blocks', '1', '--by', 'jaw']) == 0
    # The 40 mm block: rotation 0 puts the jaws along the columns, 40 mm of block.
    assert 'greedy       jaw 30-50 mm     2 grasps     2 succeeded' in capsys.readouterr().out
    assert gc.main([str(tmp_path / 'nowhere')]) == 1
    assert 'no replay store' in capsys.readouterr().err
