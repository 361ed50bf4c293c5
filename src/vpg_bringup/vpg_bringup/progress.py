"""
Progress of long commands: a bar on a terminal, plain lines in logs (CI).

One small helper for every long command (evaluation, experiments, soak, tools): done/total,
rate and time left. On a terminal it draws a tqdm bar; when the stream is not a terminal (CI
logs, `| tee`, a file) it prints one plain line per update instead, at most every
`min_interval` seconds (the last update always), which greps and diffs well:

    evaluate: 3/20 runs (15%), 0.52 runs/min, 32m41s left | vpg random seed 2: cleared ...

Use it as a context manager; update() is thread-safe:

    from vpg_bringup.progress import Progress
    with Progress(total=len(plan), desc='oracle', unit='case') as progress:
        for case in plan:
            progress.update(note=f'{case.name}: {run(case)}')
"""

import sys
import threading
import time

from tqdm import tqdm


def format_duration(seconds):
    """'1h02m', '4m05s', '12s' ('?' for an unknown time)."""
    if seconds is None or seconds != seconds or seconds < 0:
        return '?'
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f'{seconds // 3600}h{seconds % 3600 // 60:02d}m'
    if seconds >= 60:
        return f'{seconds // 60}m{seconds % 60:02d}s'
    return f'{seconds}s'


class Progress:
    """
    done/total with rate and time left; a tqdm bar on a terminal, plain lines otherwise.

    total: units of work in all (None: unknown, no time left shown). initial: units already
    done before this process (a resumed run); they do not count toward the rate.
    stream: where to write (stderr by default). bar: force the bar on (True) or off (False);
    None decides by stream.isatty(). min_interval: seconds between plain lines. clock: seconds
    (tests).
    """

    def __init__(self, total=None, desc='', unit='it', initial=0, stream=None, bar=None,
                 min_interval=0.0, clock=time.monotonic):
        self.total = total
        self.desc = desc
        self.unit = unit
        self.done = int(initial)
        self._initial = int(initial)
        self._stream = stream or sys.stderr
        self._clock = clock
        self._start = clock()
        self._min_interval = float(min_interval)
        self._last_line = None
        self._lock = threading.Lock()
        use_bar = self._stream.isatty() if bar is None else bar
        self._bar = tqdm(total=total, desc=desc, unit=unit, initial=initial, file=self._stream,
                         dynamic_ncols=True) if use_bar else None

    def rate(self):
        """Units per second done by this process so far (0 before the first)."""
        elapsed = self._clock() - self._start
        return (self.done - self._initial) / elapsed if elapsed > 0 else 0.0

    def time_left(self):
        """Seconds left at the current rate; None when unknown."""
        rate = self.rate()
        if self.total is None or rate <= 0:
            return None
        return max(self.total - self.done, 0) / rate

    def line(self, note=''):
        """Return the plain progress line for the current state."""
        if self.total:
            text = f'{self.done}/{self.total} {self.unit} ({100 * self.done / self.total:.0f}%)'
        else:
            text = f'{self.done} {self.unit}'
        rate = self.rate()
        per_min = rate * 60
        text += (f', {per_min:.2f} {self.unit}/min' if per_min < 60
                 else f', {rate:.2f} {self.unit}/s')
        if self.total is not None:
            text += f', {format_duration(self.time_left())} left'
        text = f'{self.desc}: {text}' if self.desc else text
        return f'{text} | {note}' if note else text

    def update(self, n=1, note=''):
        """Count `n` more units done; `note` (e.g. what just finished) goes with the line."""
        with self._lock:
            self.done += n
            if self._bar is not None:
                if note:
                    self._bar.write(note, file=self._stream)
                self._bar.update(n)
                return
            now = self._clock()
            last = self.total is not None and self.done >= self.total
            if (self._last_line is None or last or note
                    or now - self._last_line >= self._min_interval):
                self._last_line = now
                print(self.line(note), file=self._stream, flush=True)

    def write(self, text):
        """Print a line without breaking the bar."""
        with self._lock:
            if self._bar is not None:
                self._bar.write(text, file=self._stream)
            else:
                print(text, file=self._stream, flush=True)

    def close(self):
        if self._bar is not None:
            self._bar.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
