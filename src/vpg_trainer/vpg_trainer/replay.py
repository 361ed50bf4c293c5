"""
Durable, bounded replay store of transitions: an SQLite file in WAL mode.

Why SQLite: one file, transactions, and `synchronous=FULL` makes every committed insert
survive a kill -9 of the process (and, with WAL + FULL, a power cut); `add` returns only
after the commit, so a transition counts as acknowledged once `add` returned. Colour maps
are stored as PNG and height maps as zlib-compressed float32 (both lossless), about 10x
smaller than raw arrays. The store is bounded: beyond `capacity` the oldest transitions are
deleted in the same transaction as the insert.

Priorities (VPG's surprise, |Q - label|) live in a column too; they are updated in batches
and need no durability (a lost update only changes which sample comes next).

No ROS here: the trainer node converts messages to `TransitionRecord`s.
"""

from dataclasses import dataclass, field
import json
import os
import sqlite3
import threading
import zlib

import cv2
import numpy as np

SCHEMA_VERSION = 1

_COLUMNS = ('cell_name', 'episode_id', 'step', 'primitive', 'rotation_index', 'num_rotations',
            'row', 'col', 'reward', 'grasp_success', 'push_changed', 'changed_pixels',
            'episode_done', 'exploratory', 'q_value', 'weights_version', 'stamp_ns',
            'scene_changed')
# The executor's change threshold when stores were written without scene_changed (its default
# then, and the only value any graph used): rows added before the column get their verdict
# from it once, when the store is opened.
_LEGACY_CHANGE_THRESHOLD = 300


class ReplayError(Exception):
    """The replay file cannot be used (wrong schema, corrupt); the message says why."""


@dataclass
class TransitionRecord:
    """One executed action with the heightmaps before and after it (see Transition.msg)."""

    color_before: np.ndarray
    """uint8 (H, W, 3)."""
    height_before: np.ndarray
    """float32 (H, W), metres above the table."""
    color_after: np.ndarray
    height_after: np.ndarray
    primitive: int
    """0 push, 1 grasp."""
    rotation_index: int
    num_rotations: int
    row: int
    col: int
    reward: float
    grasp_success: bool = False
    push_changed: bool = False
    changed_pixels: int = 0
    scene_changed: bool = False
    """The executor's verdict: the grasp succeeded or more than its threshold of pixels changed."""
    episode_done: bool = False
    exploratory: bool = False
    q_value: float = float('nan')
    weights_version: int = 0
    cell_name: str = ''
    episode_id: int = 0
    step: int = 0
    stamp_ns: int = 0
    grid: dict = field(default_factory=dict)
    """Heightmap bounds and resolution (HeightmapGrid fields), kept for checks and tools."""

    def validate(self, num_rotations=None, multiple=1):
        """
        Raise ValueError naming the first problem; None when the record is usable.

        num_rotations: the network's rotation count the indices must match; multiple: the
        network's required heightmap size multiple.
        """
        shape = None
        for name in ('color_before', 'color_after'):
            color = self.__dict__[name]
            if not isinstance(color, np.ndarray) or color.dtype != np.uint8 or \
                    color.ndim != 3 or color.shape[2] != 3:
                raise ValueError(f'{name} must be uint8 (H, W, 3), got '
                                 f'{getattr(color, "dtype", type(color))} '
                                 f'{getattr(color, "shape", "")}')
            shape = shape or color.shape[:2]
            if color.shape[:2] != shape:
                raise ValueError(f'{name} is {color.shape[:2]}, expected {shape}')
        for name in ('height_before', 'height_after'):
            height = self.__dict__[name]
            if not isinstance(height, np.ndarray) or height.shape != shape:
                raise ValueError(f'{name} must be float (H, W) = {shape}, got '
                                 f'{getattr(height, "shape", type(height))}')
            if not np.isfinite(height).all():
                raise ValueError(f'{name} holds NaN or infinite heights')
        if shape[0] == 0 or shape[1] == 0:
            raise ValueError('heightmaps are empty (zero size)')
        if shape[0] % multiple or shape[1] % multiple:
            raise ValueError(f'heightmap size {shape} is not a multiple of {multiple}')
        if self.primitive not in (0, 1):
            raise ValueError(f'unknown primitive {self.primitive}')
        if num_rotations is not None and self.num_rotations != num_rotations:
            raise ValueError(f'action has {self.num_rotations} rotations, the network '
                             f'{num_rotations}')
        if not 0 <= self.rotation_index < max(self.num_rotations, 1):
            raise ValueError(f'rotation index {self.rotation_index} outside '
                             f'[0, {self.num_rotations})')
        if not (0 <= self.row < shape[0] and 0 <= self.col < shape[1]):
            raise ValueError(f'pixel ({self.row}, {self.col}) outside the {shape} heightmap')
        if not np.isfinite(self.reward):
            raise ValueError(f'reward {self.reward} is not finite')
        return None


def _encode_color(color):
    ok, png = cv2.imencode('.png', np.ascontiguousarray(color[..., ::-1]))
    if not ok:
        raise ValueError('could not PNG-encode a colour map')
    return png.tobytes()


def _decode_color(blob):
    image = cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ReplayError('stored colour map is not a readable PNG')
    return np.ascontiguousarray(image[..., ::-1])


def _encode_height(height):
    height = np.ascontiguousarray(height, dtype='<f4')
    return zlib.compress(height.tobytes(), 6)


def _decode_height(blob, shape):
    return np.frombuffer(zlib.decompress(blob), dtype='<f4').reshape(shape).copy()


class ReplayStore:
    """
    Transitions on disk, addressed by a growing integer id (the insertion order).

    Thread-safe: one connection guarded by a lock (the node stores from its subscription
    callback while the learner samples from its own thread).
    """

    def __init__(self, path, capacity=20000):
        if int(capacity) < 1:
            raise ValueError(f'replay capacity must be >= 1, got {capacity}')
        self.path = str(path)
        self.capacity = int(capacity)
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False,
                                       isolation_level=None)
            self._db.execute('PRAGMA journal_mode=WAL')
            self._db.execute('PRAGMA synchronous=FULL')
            self._create()
        except sqlite3.DatabaseError as error:
            raise ReplayError(f'{self.path}: not a usable replay store ({error})') from error

    def _create(self):
        columns = ', '.join(f'{name}' for name in _COLUMNS)
        self._db.execute('CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)')
        self._db.execute(
            'CREATE TABLE IF NOT EXISTS transitions (id INTEGER PRIMARY KEY AUTOINCREMENT, '
            f'{columns}, height INTEGER, width INTEGER, grid TEXT, priority REAL, '
            'color_before BLOB, height_before BLOB, color_after BLOB, height_after BLOB)')
        # One executed action is stored once, however often it is delivered.
        self._db.execute('CREATE UNIQUE INDEX IF NOT EXISTS one_per_action ON transitions '
                         '(cell_name, episode_id, step, stamp_ns)')
        # Added after schema 1's first files: the reward a push earns once the next grasp
        # succeeds (OnlineTrainer, push_reward 'next_grasp'); NULL = nothing pending.
        columns = {row[1] for row in self._db.execute('PRAGMA table_info(transitions)')}
        if 'push_credit' not in columns:
            self._db.execute('ALTER TABLE transitions ADD COLUMN push_credit REAL')
        # Added later still: the executor's verdict that the scene changed (Transition.msg).
        if 'scene_changed' not in columns:
            self._db.execute('ALTER TABLE transitions ADD COLUMN scene_changed INTEGER')
            self._db.execute(
                'UPDATE transitions SET scene_changed = (grasp_success OR push_changed OR '
                'changed_pixels > ?)', (_LEGACY_CHANGE_THRESHOLD,))
        self._db.execute("INSERT OR IGNORE INTO meta SELECT 'stored_total', COUNT(*) "
                         'FROM transitions')
        row = self._db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        if row is None:
            self._db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        elif row[0] != str(SCHEMA_VERSION):
            raise ReplayError(f'{self.path}: replay schema {row[0]}, this code reads '
                              f'{SCHEMA_VERSION}')

    def close(self):
        with self._lock:
            self._db.close()

    def add(self, record, priority=None, push_credit=None):
        """
        Store one transition durably; return its id once committed (the acknowledgement).

        Returns None for a transition already stored (same cell, episode, step and stamp).

        priority: initial sampling priority; None = the current maximum (new transitions are
        seen soon, as prioritised replay does). push_credit: a reward the transition gets
        later through credit_push (None: none pending).
        """
        values = [getattr(record, name) for name in _COLUMNS]
        values = [int(v) if isinstance(v, (bool, np.bool_)) else v for v in values]
        h, w = record.height_before.shape
        blobs = (_encode_color(record.color_before), _encode_height(record.height_before),
                 _encode_color(record.color_after), _encode_height(record.height_after))
        with self._lock:
            if priority is None:
                priority = self._db.execute(
                    'SELECT COALESCE(MAX(priority), 1.0) FROM transitions').fetchone()[0]
            placeholders = ', '.join('?' * (len(_COLUMNS) + 9))
            self._db.execute('BEGIN IMMEDIATE')
            try:
                cursor = self._db.execute(
                    f'INSERT OR IGNORE INTO transitions ({", ".join(_COLUMNS)}, height, width, '
                    'grid, priority, color_before, height_before, color_after, height_after, '
                    f'push_credit) VALUES ({placeholders})',
                    (*values, h, w, json.dumps(record.grid), float(priority), *blobs,
                     None if push_credit is None else float(push_credit)))
                if cursor.rowcount == 0:
                    self._db.execute('COMMIT')
                    return None
                new_id = cursor.lastrowid
                self._db.execute("INSERT INTO meta VALUES ('stored_total', '1') ON CONFLICT(key) "
                                 'DO UPDATE SET value = CAST(value AS INTEGER) + 1')
                self._db.execute(
                    'DELETE FROM transitions WHERE id NOT IN (SELECT id FROM transitions '
                    'ORDER BY id DESC LIMIT ?)', (self.capacity,))
                self._db.execute('COMMIT')
            except BaseException:
                self._db.execute('ROLLBACK')
                raise
        return new_id

    def credit_push(self, cell_name, episode_id, step):
        """
        Give the push at (cell, episode, step) its pending reward; return whether one was.

        Durable once it returns (a restart keeps the credited reward).
        """
        with self._lock:
            cursor = self._db.execute(
                'UPDATE transitions SET reward = push_credit, push_credit = NULL WHERE '
                'cell_name = ? AND episode_id = ? AND step = ? AND primitive = 0 AND '
                'push_credit IS NOT NULL', (cell_name, int(episode_id), int(step)))
            return cursor.rowcount > 0

    def __len__(self):
        with self._lock:
            return self._db.execute('SELECT COUNT(*) FROM transitions').fetchone()[0]

    def ids_and_priorities(self):
        """All stored ids (ascending) and their priorities, as numpy arrays."""
        with self._lock:
            rows = self._db.execute('SELECT id, priority FROM transitions ORDER BY id').fetchall()
        if not rows:
            return np.zeros(0, np.int64), np.zeros(0, np.float64)
        ids, priorities = zip(*rows)
        return np.asarray(ids, np.int64), np.asarray(priorities, np.float64)

    def stored_total(self):
        """Transitions ever stored (dropped ones and redeliveries excluded), durable."""
        with self._lock:
            row = self._db.execute(
                "SELECT value FROM meta WHERE key='stored_total'").fetchone()
        return int(row[0]) if row else 0

    def last_id(self):
        """Id of the newest transition, 0 when empty."""
        with self._lock:
            return self._db.execute('SELECT COALESCE(MAX(id), 0) FROM transitions').fetchone()[0]

    def get(self, ids):
        """Return the records of `ids` (in that order); KeyError for an id no longer stored."""
        ids = [int(i) for i in ids]
        with self._lock:
            query = (f'SELECT id, {", ".join(_COLUMNS)}, height, width, grid, color_before, '
                     'height_before, color_after, height_after FROM transitions WHERE id IN '
                     f'({", ".join("?" * len(ids))})')
            rows = {row[0]: row for row in self._db.execute(query, ids).fetchall()}
        records = []
        for i in ids:
            if i not in rows:
                raise KeyError(f'transition {i} is not in the replay store')
            row = rows[i]
            fields = dict(zip(_COLUMNS, row[1:1 + len(_COLUMNS)]))
            h, w, grid, cb, hb, ca, ha = row[1 + len(_COLUMNS):]
            for flag in ('grasp_success', 'push_changed', 'scene_changed', 'episode_done',
                         'exploratory'):
                fields[flag] = bool(fields[flag])
            records.append(TransitionRecord(
                color_before=_decode_color(cb), height_before=_decode_height(hb, (h, w)),
                color_after=_decode_color(ca), height_after=_decode_height(ha, (h, w)),
                grid=json.loads(grid), **fields))
        return records

    def set_priorities(self, ids, priorities):
        """Update sampling priorities (ids no longer stored are ignored)."""
        pairs = [(float(p), int(i)) for i, p in zip(ids, priorities)]
        with self._lock:
            self._db.executemany('UPDATE transitions SET priority = ? WHERE id = ?', pairs)
