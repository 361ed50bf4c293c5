"""Colour/depth pairing by stamp."""

import pytest
from vpg_perception.frame_sync import FramePairer, Stream

MS = 1_000_000


def test_equal_stamps_pair_in_either_order():
    pairer = FramePairer(10 * MS)
    assert pairer.add(Stream.COLOR, 100 * MS, 'c1') == (None, [])
    assert pairer.add(Stream.DEPTH, 100 * MS, 'd1') == (('c1', 'd1', 100 * MS), [])
    assert pairer.add(Stream.DEPTH, 200 * MS, 'd2') == (None, [])
    assert pairer.add(Stream.COLOR, 205 * MS, 'c2') == (('c2', 'd2', 205 * MS), [])


def test_newest_pair_wins_and_older_frames_go_silently():
    pairer = FramePairer(10 * MS)
    for i in range(3):
        pairer.add(Stream.COLOR, i * 100 * MS, f'c{i}')
    pair, unmatched = pairer.add(Stream.DEPTH, 200 * MS, 'd2')
    assert pair == ('c2', 'd2', 200 * MS) and unmatched == []
    # c0 and c1 went with the pair: a late depth frame for them finds nothing.
    assert pairer.add(Stream.DEPTH, 300 * MS, 'd3')[0] is None


def test_frames_too_far_apart_are_reported():
    pairer = FramePairer(20 * MS)
    pairer.add(Stream.COLOR, 1000 * MS, 'c')
    # The depth stream starts later: the colour frame before it is dropped unreported.
    assert pairer.add(Stream.DEPTH, 1500 * MS, 'd') == (None, [])
    pair, unmatched = pairer.add(Stream.COLOR, 2000 * MS, 'c2')
    assert pair is None
    assert len(unmatched) == 1
    assert unmatched[0].stream is Stream.DEPTH and unmatched[0].stamp_ns == 1500 * MS
    assert unmatched[0].nearest_ns == 500 * MS
    assert pairer.add(Stream.DEPTH, 2010 * MS, 'd2')[0] == ('c2', 'd2', 2000 * MS)


def test_clock_jump_back_clears_queues():
    pairer = FramePairer(10 * MS)
    pairer.add(Stream.COLOR, 5000 * MS, 'old')
    pairer.add(Stream.COLOR, 100 * MS, 'c')
    assert pairer.add(Stream.DEPTH, 5000 * MS, 'd')[0] is None
    assert pairer.add(Stream.DEPTH, 6000 * MS, 'd2')[0] is None


def test_negative_tolerance_rejected():
    with pytest.raises(ValueError):
        FramePairer(-1)
