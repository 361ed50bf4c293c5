import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from synthetic_transitions import transition
from vpg_trainer.replay import ReplayError, ReplayStore


def test_round_trip_is_lossless(tmp_path):
    rng = np.random.default_rng(0)
    record = transition(rng, q_value=0.25, exploratory=True, weights_version=7, stamp_ns=5)
    record.height_before = record.height_before + rng.uniform(0, 1e-4, record.height_before.shape
                                                              ).astype(np.float32)
    store = ReplayStore(tmp_path / 'replay.sqlite')
    new_id = store.add(record)
    (back,) = store.get([new_id])
    for name in ('color_before', 'height_before', 'color_after', 'height_after'):
        np.testing.assert_array_equal(getattr(back, name), getattr(record, name))
        assert getattr(back, name).dtype == getattr(record, name).dtype
    for name in ('primitive', 'rotation_index', 'row', 'col', 'reward', 'grasp_success',
                 'exploratory', 'q_value', 'weights_version', 'cell_name', 'stamp_ns', 'grid',
                 'scene_changed', 'push_changed', 'changed_pixels'):
        assert getattr(back, name) == getattr(record, name), name


def test_store_is_compact(tmp_path):
    rng = np.random.default_rng(1)
    store = ReplayStore(tmp_path / 'replay.sqlite')
    records = [transition(rng, size=224) for _ in range(5)]
    for record in records:
        store.add(record)
    store.close()
    raw = sum(r.color_before.nbytes * 2 + r.height_before.nbytes * 2 for r in records)
    size = sum(os.path.getsize(p) for p in tmp_path.iterdir())
    assert size < raw / 5, (size, raw)


def test_bounded_store_drops_the_oldest(tmp_path):
    rng = np.random.default_rng(2)
    store = ReplayStore(tmp_path / 'replay.sqlite', capacity=3)
    ids = [store.add(transition(rng, step=k)) for k in range(5)]
    assert len(store) == 3
    kept, _ = store.ids_and_priorities()
    assert kept.tolist() == ids[2:]
    with pytest.raises(KeyError):
        store.get([ids[0]])
    assert store.last_id() == ids[-1]


def test_priorities_persist_and_new_ones_get_the_maximum(tmp_path):
    rng = np.random.default_rng(3)
    path = tmp_path / 'replay.sqlite'
    store = ReplayStore(path)
    a, b = store.add(transition(rng)), store.add(transition(rng))
    store.set_priorities([a, b], [0.2, 3.0])
    c = store.add(transition(rng))
    store.close()
    ids, priorities = ReplayStore(path).ids_and_priorities()
    assert ids.tolist() == [a, b, c]
    np.testing.assert_allclose(priorities, [0.2, 3.0, 3.0])


def test_a_redelivered_transition_is_stored_once(tmp_path):
    rng = np.random.default_rng(5)
    store = ReplayStore(tmp_path / 'replay.sqlite')
    record = transition(rng, step=3, stamp_ns=123)
    first = store.add(record)
    assert store.add(record) is None
    assert store.add(transition(rng, step=3, stamp_ns=124)) > first
    assert len(store) == 2 and store.stored_total() == 2


def test_invalid_records_are_refused_with_a_reason():
    rng = np.random.default_rng(4)
    cases = {
        'NaN': {'height_after': np.full((64, 64), np.nan, np.float32)},
        'outside': {'row': 64},
        'rotation index': {'rotation_index': 16},
        'unknown primitive': {'primitive': 3},
        'must be uint8': {'color_before': np.zeros((64, 64, 3), np.float32)},
        'not finite': {'reward': float('inf')},
        'zero size': {'color_before': np.zeros((0, 0, 3), np.uint8),
                      'color_after': np.zeros((0, 0, 3), np.uint8),
                      'height_before': np.zeros((0, 0), np.float32),
                      'height_after': np.zeros((0, 0), np.float32)},
    }
    for words, override in cases.items():
        with pytest.raises(ValueError, match=words):
            transition(rng, **override).validate(num_rotations=16)
    with pytest.raises(ValueError, match='rotations'):
        transition(rng, num_rotations=8, rotation_index=2).validate(num_rotations=16)
    with pytest.raises(ValueError, match='multiple'):
        transition(rng).validate(multiple=48)


def test_not_a_replay_file_is_a_clear_error(tmp_path):
    path = tmp_path / 'replay.sqlite'
    path.write_bytes(b'this is not sqlite' * 100)
    with pytest.raises(ReplayError, match='not a usable replay store'):
        ReplayStore(path)


WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    sys.path.insert(0, sys.argv[2])
    from synthetic_transitions import transition
    from vpg_trainer.replay import ReplayStore
    store = ReplayStore(sys.argv[1])
    rng = np.random.default_rng(0)
    while True:
        new_id = store.add(transition(rng))
        print(new_id, flush=True)  # acknowledged: committed before this line
""")


@pytest.mark.slow
def test_kill_9_loses_no_acknowledged_transition(tmp_path):
    path = tmp_path / 'replay.sqlite'
    here = os.path.dirname(os.path.abspath(__file__))
    process = subprocess.Popen([sys.executable, '-c', WRITER, str(path), here],
                               stdout=subprocess.PIPE, text=True, env=dict(os.environ))
    acknowledged = []
    try:
        while len(acknowledged) < 40:
            line = process.stdout.readline()
            assert line, 'writer died early'
            acknowledged.append(int(line))
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    # Whatever was acknowledged is there, readable, after the kill.
    store = ReplayStore(path)
    ids, _ = store.ids_and_priorities()
    assert set(acknowledged) <= set(ids.tolist())
    records = store.get(acknowledged)
    assert all(r.color_before.shape == (64, 64, 3) for r in records)
    assert store.add(records[0]) is None  # already there
    new_id = store.add(transition(np.random.default_rng(99)))
    assert new_id > max(ids)


def test_a_store_written_before_push_credit_existed_gains_the_column(tmp_path):
    import sqlite3
    path = tmp_path / 'replay.sqlite'
    store = ReplayStore(path)
    rng = np.random.default_rng(5)
    store.add(transition(rng, step=1))
    store.close()
    with sqlite3.connect(path) as db:
        db.execute('ALTER TABLE transitions DROP COLUMN push_credit')
    store = ReplayStore(path)
    assert len(store) == 1
    push = transition(rng, primitive=0, reward=0.0, push_changed=True, step=2)
    store.add(push, push_credit=0.5)
    assert store.credit_push(push.cell_name, push.episode_id, 2)
    assert not store.credit_push(push.cell_name, push.episode_id, 2)  # credited once
    ids, _ = store.ids_and_priorities()
    assert [r.reward for r in store.get(ids)][-1] == 0.5
    store.close()


def test_a_store_written_before_scene_changed_existed_gets_the_executors_old_verdict(tmp_path):
    import sqlite3
    path = tmp_path / 'replay.sqlite'
    store = ReplayStore(path)
    rng = np.random.default_rng(6)
    base = {'primitive': 1, 'grasp_success': False, 'push_changed': False}
    store.add(transition(rng, step=1, changed_pixels=301, scene_changed=True, **base))
    store.add(transition(rng, step=2, changed_pixels=300, scene_changed=False, **base))
    store.add(transition(rng, step=3, changed_pixels=0, scene_changed=False,
                         **{**base, 'grasp_success': True}))
    store.close()
    with sqlite3.connect(path) as db:
        db.execute('ALTER TABLE transitions DROP COLUMN scene_changed')
    store = ReplayStore(path)
    ids, _ = store.ids_and_priorities()
    # The executor's threshold then: more than 300 pixels, or a successful grasp.
    assert [r.scene_changed for r in store.get(ids)] == [True, False, True]
    store.add(transition(rng, step=4, changed_pixels=5000, scene_changed=False, **base))
    ids, _ = store.ids_and_priorities()
    assert store.get(ids)[-1].scene_changed is False
    store.close()
