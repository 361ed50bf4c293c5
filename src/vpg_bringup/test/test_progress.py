"""The progress helper: plain lines off a terminal, a bar on one."""

import io

from vpg_bringup.progress import format_duration, Progress


class Clock:

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_plain_lines_give_done_total_rate_and_time_left():
    clock, out = Clock(), io.StringIO()
    progress = Progress(total=10, desc='evaluate', unit='runs', initial=2, stream=out,
                        clock=clock)
    clock.now = 120.0
    progress.update(note='vpg random seed 2: cleared')
    clock.now = 240.0
    progress.update()
    lines = out.getvalue().splitlines()
    # 1 run in 120 s after resuming at 2 -> 0.5 runs/min, 7 left -> 14 min.
    assert lines[0] == ('evaluate: 3/10 runs (30%), 0.50 runs/min, 14m00s left '
                        '| vpg random seed 2: cleared')
    assert lines[1] == 'evaluate: 4/10 runs (40%), 0.50 runs/min, 12m00s left'


def test_plain_lines_are_rate_limited_but_the_last_always_shows():
    clock, out = Clock(), io.StringIO()
    progress = Progress(total=100, unit='primitives', stream=out, min_interval=10.0,
                        clock=clock)
    for i in range(100):
        clock.now = i * 0.5
        progress.update()
    lines = out.getvalue().splitlines()
    assert len(lines) == 6  # t = 0, 10, 20, 30, 40 s and the last
    assert lines[-1].startswith('100/100 primitives (100%)')


def test_unknown_total_and_fast_rates():
    clock, out = Clock(), io.StringIO()
    progress = Progress(stream=out, unit='msgs', clock=clock)
    clock.now = 1.0
    progress.update(200)
    assert out.getvalue().strip() == '200 msgs, 200.00 msgs/s'
    assert progress.time_left() is None


def test_a_terminal_gets_a_bar_and_notes_above_it():
    class Terminal(io.StringIO):

        def isatty(self):
            return True

    out = Terminal()
    with Progress(total=4, desc='soak', unit='prim', stream=out) as progress:
        progress.update(2, note='step two')
    text = out.getvalue()
    assert 'step two' in text and '2/4' in text and '\r' in text


def test_format_duration():
    assert [format_duration(s) for s in (None, 5, 65, 3725)] == ['?', '5s', '1m05s', '1h02m']
