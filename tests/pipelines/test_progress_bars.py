"""Progress bars: the cluster bar ends at 100 %, and neither bar fills a log file with redraw frames.

The cluster bar is driven by a stand-in client whose scheduler reports a scripted
number of unfinished tasks, so what it draws between two polls is known exactly.
"""

from __future__ import annotations

import io
import re
import threading
import time

import dask
import dask.array as da
import pytest
from dask.diagnostics import ProgressBar

from voxelflow.pipelines.progress import ClusterProgressBar, LineProgressBar, progress_bar, progress_printer

PERCENT = re.compile(r"\| (\d+)% Completed \|")


class Terminal(io.StringIO):
    """A text stream that says it is an interactive terminal."""

    def isatty(self) -> bool:
        return True


class ScriptedScheduler:
    """Stands in for ``distributed.Client``: ``run_on_scheduler`` returns ``unfinished`` and counts the calls."""

    def __init__(self, unfinished: int = 0):
        self.unfinished = unfinished
        self.polls = 0
        self.polled = threading.Event()

    def run_on_scheduler(self, fn):
        self.polls += 1
        self.polled.set()
        return self.unfinished


def _wait_for(condition, seconds: float = 30.0) -> None:
    end = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


class _Record:
    def __init__(self, name):
        self.name, self.node, self.seconds, self.cached, self.key = name, f"cache/{name}/", 0.5, False, "k"


class _Result:
    def __init__(self, name):
        self.record = _Record(name)


@pytest.mark.parametrize("stream_type", [Terminal, io.StringIO], ids=["terminal", "log"])
def test_cluster_bar_ends_at_100_when_the_computation_ends_between_two_polls(stream_type):
    scheduler = ScriptedScheduler(unfinished=6)
    out = stream_type()
    # one poll sees the computation (0 % done); it ends long before the next poll, and the step's line follows
    with ClusterProgressBar(scheduler, stream=out, minimum=0.0, interval=0.3) as bar:
        _wait_for(lambda: "% Completed" in out.getvalue())
        scheduler.unfinished = 0
        polls = scheduler.polls
        progress_printer(out, bar)(_Result("threshold"))
        assert scheduler.polls == polls + 1  # the step's end asked the scheduler, the watcher did not
        scheduler.unfinished = 3  # the next step's computation
        _wait_for(lambda: out.getvalue().count("% Completed") >= 3)
        scheduler.unfinished = 0
        progress_printer(out, bar)(_Result("label"))
    text = out.getvalue()
    blocks = [block for block in text.split("  threshold")]
    assert [int(p) for p in PERCENT.findall(blocks[0])][-1] == 100, text
    assert [int(p) for p in PERCENT.findall(blocks[1].split("  label")[0])][-1] == 100, text
    assert re.search(r"100% Completed \| [^\n]*\n  threshold +0\.50 s  computed\n", text), text
    assert text.endswith("  label                 0.50 s  computed\n"), text


def test_cluster_bar_writes_lines_at_intervals_into_a_log():
    scheduler = ScriptedScheduler(unfinished=200)
    log, terminal = io.StringIO(), Terminal()
    t0 = time.monotonic()
    with ClusterProgressBar(scheduler, stream=log, minimum=0.0, interval=0.005, line_every=0.25), \
            ClusterProgressBar(scheduler, stream=terminal, minimum=0.0, interval=0.005):
        for left in range(200, 0, -4):  # about 1 s of work
            scheduler.unfinished = left
            time.sleep(0.02)
        scheduler.unfinished = 0
        _wait_for(lambda: "100%" in log.getvalue() and "100%" in terminal.getvalue())
    seconds = time.monotonic() - t0
    lines = log.getvalue().splitlines(keepends=True)
    assert "\r" not in log.getvalue() and all(line.endswith("\n") for line in lines)
    assert all(PERCENT.search(line) for line in lines)
    assert 2 <= len(lines) <= seconds / 0.25 + 2, lines
    percents = [int(PERCENT.search(line).group(1)) for line in lines]
    assert percents == sorted(percents) and percents[-1] == 100 and percents.count(100) == 1
    # the same computation on a terminal is redrawn in place
    assert "\r" in terminal.getvalue() and "100% Completed" in terminal.getvalue()


def _slow_sum():
    slow = da.ones((40, 4), chunks=(1, 4)).map_blocks(lambda b: (time.sleep(0.025), b)[1], dtype=float)
    with dask.config.set(scheduler="threads", num_workers=2):
        return slow.sum().compute()


def test_local_bar_writes_lines_at_intervals_into_a_log():
    log, terminal = io.StringIO(), io.StringIO()
    t0 = time.monotonic()
    with LineProgressBar(minimum=0.0, dt=0.01, out=log, every=0.2):
        assert _slow_sum() == 160
    seconds = time.monotonic() - t0
    with ProgressBar(minimum=0.0, dt=0.01, out=terminal):
        _slow_sum()
    text = log.getvalue()
    lines = text.splitlines(keepends=True)
    assert "\r" not in text and all(line.endswith("\n") for line in lines)
    assert 1 <= len(lines) <= seconds / 0.2 + 2, lines
    percents = [int(PERCENT.search(line).group(1)) for line in lines]
    assert percents == sorted(percents) and percents[-1] == 100
    assert "\r" in terminal.getvalue()  # what dask's own bar writes


def test_progress_bar_redraws_only_on_a_terminal():
    assert isinstance(progress_bar(True, io.StringIO()), LineProgressBar)
    bar = progress_bar(True, Terminal())
    assert isinstance(bar, ProgressBar) and not isinstance(bar, LineProgressBar)
