"""Progress of a run: one line per step, and a bar for the Dask computations.

:func:`progress_printer` is an ``on_result`` hook printing each finished step;
:func:`progress_bar` picks dask's bar on local schedulers and
:class:`ClusterProgressBar` on a cluster; :class:`PartsProgress` prints the chunk
groups done, the rate and the time left of long chunk passes (any scheduler).

``dask.diagnostics.ProgressBar`` only sees the in-process schedulers. With a
``distributed.Client`` this bar asks the scheduler every ``interval`` seconds how
many tasks are still waiting, queued or running, and draws the share done since
the count last rose from zero. It counts every client's tasks on that scheduler.

On a terminal both bars redraw one line in place. Into a file or a pipe (a log)
they write whole lines instead, one every :data:`LINE_SECONDS` and one at 100 %,
so a log holds a few lines per computation rather than a redraw every few ms.
"""

from __future__ import annotations

import sys
import threading
import time

from dask.diagnostics import ProgressBar
from dask.utils import format_time

__all__ = ["BAR_AFTER_SECONDS", "LINE_SECONDS", "ClusterProgressBar", "LineProgressBar", "PartsProgress",
           "dask_bar", "is_terminal", "progress_bar", "progress_printer"]

#: A computation draws a bar once it has run this long (short ones stay quiet).
BAR_AFTER_SECONDS = 2.0
#: Seconds between two progress lines written to a stream that is not a terminal.
LINE_SECONDS = 10.0


def is_terminal(stream) -> bool:
    """True if ``stream`` is an interactive terminal (where a bar may redraw its line)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
        return False


def _bar_text(fraction: float, elapsed: float, width: int) -> str:
    return f"[{'#' * int(width * fraction):<{width}}] | {int(100 * fraction)}% Completed | {format_time(elapsed)}"


class LineProgressBar(ProgressBar):
    """dask's bar for a stream that is not a terminal: a whole line every ``every`` seconds and one at 100 %.

    Parameters
    ----------
    minimum, dt, out, width :
        As ``dask.diagnostics.ProgressBar``.
    every : float
        Seconds between two lines while a computation runs.
    """

    def __init__(self, minimum: float = 0.0, width: int = 40, dt: float = 0.1, out=None,
                 every: float = LINE_SECONDS):
        super().__init__(minimum=minimum, width=width, dt=dt, out=out)
        self._every = every
        self._last_line: float | None = None

    def _start(self, dsk):
        self._last_line = None
        super()._start(dsk)

    def _draw_bar(self, frac, elapsed):
        if self._file is None:
            return
        if not self._running:  # the final draw; dask ends the line after it
            self._file.write(_bar_text(frac, elapsed, self._width))
        elif self._last_line is None or elapsed - self._last_line >= self._every:
            self._last_line = elapsed
            self._file.write(_bar_text(frac, elapsed, self._width) + "\n")
        self._file.flush()


def dask_bar(stream, minimum: float, dt: float = 0.1):
    """dask's bar for the local schedulers: redrawn on a terminal, :class:`LineProgressBar` otherwise."""
    if is_terminal(stream):
        return ProgressBar(minimum=minimum, dt=dt, out=stream)
    return LineProgressBar(minimum=minimum, dt=dt, out=stream)


def progress_printer(stream, bar=None):
    """An ``on_result`` hook printing ``name  seconds  cached|computed|lazy`` for each step."""
    end_bar_line = getattr(bar, "end_line", None)  # the cluster bar ends its line only when it polls

    def show(result) -> None:
        record = result.record
        state = "cached" if record.cached else ("lazy" if record.key is None else "computed")
        name = record.node.rstrip("/").rsplit("/", 1)[-1] if record.node else record.name
        if end_bar_line is not None:
            end_bar_line()
        print(f"  {name:<18} {record.seconds:7.2f} s  {state}", file=stream, flush=True)

    return show


def progress_bar(progress: bool, stream):
    """A bar for the computations of the steps: dask's on local schedulers, voxelflow's on a cluster."""
    import contextlib

    from voxelflow.runtime.compute import distributed_client

    if not progress:
        return contextlib.nullcontext()
    client = distributed_client()
    if client is not None:
        return ClusterProgressBar(client, stream=stream, minimum=BAR_AFTER_SECONDS)
    # the bar thread is joined after every compute: a short dt keeps that wait small
    return dask_bar(stream, BAR_AFTER_SECONDS, dt=0.05)

class ClusterProgressBar:
    """Draw ``[####    ] | 45% Completed | 12.3s`` while the cluster has work.

    A computation that ends between two questions to the scheduler still ends its
    bar at 100 %: when a step finishes, :meth:`end_line` asks once more and draws the
    end if nothing is left to do. On a stream that is not a terminal the bar is a
    whole line every ``line_every`` seconds and one at 100 %.

    Parameters
    ----------
    client : distributed.Client
        Client of the scheduler to watch.
    stream : file, optional
        Where the bar goes (default ``sys.stderr``).
    minimum : float
        Seconds a computation must run before its bar appears.
    interval : float
        Seconds between two questions to the scheduler.
    width : int
        Characters of the bar.
    line_every : float
        Seconds between two lines on a stream that is not a terminal.

    Examples
    --------
    >>> with ClusterProgressBar(client):              # doctest: +SKIP
    ...     big.sum().compute()
    """

    def __init__(self, client, *, stream=None, minimum: float = 2.0, interval: float = 0.5, width: int = 40,
                 line_every: float = LINE_SECONDS):
        self._client = client
        self._stream = stream or sys.stderr
        self._minimum, self._interval, self._width, self._line_every = minimum, interval, width, line_every
        self._terminal = is_terminal(self._stream)
        self._stop = threading.Event()
        self._lock = threading.RLock()
        self._shown = False  # the current computation has a bar (a line drawn, or lines written) not yet ended
        self._last_line = 0.0  # when the last whole line was written (not a terminal)
        self._busy, self._peak, self._started = False, 0, 0.0  # the computation being watched
        self._thread = threading.Thread(target=self._watch, name="voxelflow-cluster-progress", daemon=True)

    def __enter__(self) -> ClusterProgressBar:
        self._thread.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._stop.set()
        self._thread.join()
        with self._lock:
            if exc_type is None and self._shown:
                self._draw(1.0, time.monotonic() - self._started)
            self._end()

    def end_line(self) -> None:
        """End the bar of the computation that just finished (at 100 % if the cluster has no work left)."""
        with self._lock:
            if not self._shown:
                return
            if self._unfinished() == 0:
                self._draw(1.0, time.monotonic() - self._started)
                self._busy, self._peak = False, 0
            self._end()

    def _end(self) -> None:
        if self._shown and self._terminal:
            self._stream.write("\n")
            self._stream.flush()
        self._shown = False

    def _draw(self, fraction: float, elapsed: float) -> None:
        text = _bar_text(fraction, elapsed, self._width)
        with self._lock:
            if self._terminal:
                self._stream.write(f"\r{text}")
            elif fraction >= 1.0 or not self._shown or time.monotonic() - self._last_line >= self._line_every:
                self._last_line = time.monotonic()
                self._stream.write(f"{text}\n")
            self._stream.flush()
            self._shown = fraction < 1.0 or self._terminal

    def _unfinished(self) -> int | None:
        # Defined here so that it travels by value: the scheduler need not have voxelflow installed.
        def unfinished_tasks(dask_scheduler) -> int:
            states = ("waiting", "queued", "processing", "no-worker")
            return sum(group.states.get(s, 0) for group in dask_scheduler.task_groups.values() for s in states)

        try:
            return self._client.run_on_scheduler(unfinished_tasks)
        except Exception:  # noqa: BLE001  the cluster went away: no bar rather than an error
            return None

    def _watch(self) -> None:
        while not self._stop.wait(self._interval):
            unfinished = self._unfinished()
            if unfinished is None:
                return
            now = time.monotonic()
            with self._lock:
                if unfinished == 0:
                    if self._busy and self._shown:
                        self._draw(1.0, now - self._started)
                        self._end()
                    self._busy, self._peak = False, 0
                    continue
                if not self._busy:
                    self._busy, self._started = True, now
                self._peak = max(self._peak, unfinished)
                if now - self._started >= self._minimum:
                    self._draw(1 - unfinished / self._peak, now - self._started)


class PartsProgress:
    """Chunk progress of long steps, read from the parts their pending nodes record.

    While active, a thread looks every ``interval`` seconds at the step nodes under
    ``cache`` that hold finished chunk groups (:func:`voxelflow.cache.parts_progress`)
    and prints ``name  done/total chunk groups (xx %), r groups/s, ETA t`` when the
    count moved. Workers write the parts themselves, so it works the same on the
    threaded scheduler, a local cluster and a remote one (with a shared cache).
    Groups found finished when a node is first seen (a resumed run) are shown but
    not counted in the rate.

    Parameters
    ----------
    cache : VPath
        Cache root of the run (its children are the step nodes).
    stream : file
    interval : float
        Seconds between two looks.
    """

    def __init__(self, cache, stream=None, interval: float = 2.0):
        self.cache = cache
        self.stream = stream or sys.stderr
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="voxelflow-parts-progress")
        self._seen: dict[str, tuple[float, int, int]] = {}

    def line(self, name: str, done: int, total: int, now: float) -> str | None:
        """The progress line of node ``name`` (None if nothing moved since the last one)."""
        if name not in self._seen:
            self._seen[name] = (now, done, done)
            resumed = f", {done} done before" if done else ""
            return f"  {name:<18} {done}/{total} chunk groups{resumed}"
        t0, first, last = self._seen[name]
        if done == last:
            return None
        self._seen[name] = (t0, first, done)
        rate = (done - first) / max(now - t0, 1e-9)
        eta = format_time((total - done) / rate) if rate > 0 else "?"
        return (f"  {name:<18} {done}/{total} chunk groups ({100 * done / total:.0f} %), "
                f"{rate:.2f} groups/s, ETA {eta}")

    def poll(self) -> None:
        """Look once and print what moved."""
        from voxelflow.cache import parts_progress

        for name in self.cache.ls() if self.cache.isdir() else []:
            try:
                done, total = parts_progress((self.cache / name).url)
            except (OSError, ValueError):  # a node committed (and its parts deleted) meanwhile
                continue
            if total:
                text = self.line(name, done, total, time.monotonic())
                if text:
                    print(text, file=self.stream, flush=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.poll()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
