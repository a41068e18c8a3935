"""Tee ``stdout``/``stderr`` into per-run log files.

:class:`MultiOutputStream` writes everything it gets to several text streams
(the terminal and a log file, say). :func:`tee_logs` installs two of them as
``sys.stdout``/``sys.stderr`` for the duration of a ``with`` block, so every
``print``, every ``dask.distributed.print`` received from the workers, and the
``voxelflow`` (and ``distributed``) log records end up in files that survive a
closed terminal or a killed process.

Examples
--------
>>> import tempfile
>>> from voxelflow.runtime.logs import tee_logs
>>> folder = tempfile.mkdtemp()
>>> with tee_logs(folder) as logs:
...     print("hello")
hello
>>> "hello" in logs.stdout_path.read_text()
True
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from voxelflow.errors import InvalidInputError, InvalidPathError

__all__ = ["MultiOutputStream", "LogFiles", "tee_logs", "LOG_FORMAT"]

#: Format of the ``voxelflow`` log records forwarded to stderr by :func:`tee_logs`.
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class MultiOutputStream:
    """A write-only text stream that copies every write to several streams.

    Drop-in for ``sys.stdout``/``sys.stderr``: besides ``write``/``flush`` it
    answers ``isatty``, ``fileno``, ``encoding`` and ``writable`` so libraries
    that probe their output stream (tqdm, faulthandler, logging) keep working.

    Parameters
    ----------
    *streams : text streams
        Objects with a ``write(str)`` method. The first one is the *primary*
        stream (normally the terminal): ``isatty``, ``encoding`` and
        ``errors`` describe it.

    Notes
    -----
    A stream that has been closed is skipped, so a log file closed at the end of
    a run cannot break later prints. If writing to one stream fails, the others
    still get the text and the first error is raised afterwards.

    ``fileno()`` returns the descriptor of the first stream that has one, so
    code writing to the descriptor directly (faulthandler, C extensions)
    reaches that stream only.

    Examples
    --------
    >>> import io
    >>> a, b = io.StringIO(), io.StringIO()
    >>> out = MultiOutputStream(a, b)
    >>> out.write("x\\n")
    2
    >>> a.getvalue() == b.getvalue() == "x\\n"
    True
    """

    def __init__(self, *streams: TextIO):
        if not streams:
            raise InvalidInputError("MultiOutputStream needs at least one stream")
        for s in streams:
            if not callable(getattr(s, "write", None)):
                raise InvalidInputError(
                    f"MultiOutputStream expects text streams with a write() method, "
                    f"got {type(s).__name__}: {s!r}"
                )
        self.streams: tuple[TextIO, ...] = streams
        # Distributed delivers worker prints from its event-loop thread while
        # the main thread prints too; one lock keeps the copies identical.
        self._lock = threading.RLock()

    def _each_open(self, action) -> None:
        first_error: BaseException | None = None
        for s in self.streams:
            if getattr(s, "closed", False):
                continue
            try:
                action(s)
            except (OSError, ValueError) as exc:
                if first_error is None:
                    first_error = exc
        if first_error is not None:
            raise first_error

    def write(self, text: str) -> int:
        """Write ``text`` to every open stream; returns ``len(text)``."""
        with self._lock:
            self._each_open(lambda s: s.write(text))
        return len(text)

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        """Flush every open stream that can be flushed."""
        with self._lock:
            self._each_open(lambda s: s.flush() if hasattr(s, "flush") else None)

    def isatty(self) -> bool:
        """True when the primary stream is a terminal."""
        isatty = getattr(self.streams[0], "isatty", None)
        try:
            return bool(isatty()) if isatty is not None else False
        except (OSError, ValueError):
            return False

    def fileno(self) -> int:
        """Descriptor of the first stream that has one.

        Raises
        ------
        io.UnsupportedOperation
            If no stream has a file descriptor (e.g. all are ``StringIO``).
        """
        for s in self.streams:
            try:
                return s.fileno()
            except (AttributeError, OSError, ValueError):
                continue
        raise io.UnsupportedOperation("none of the streams has a file descriptor")

    @property
    def encoding(self) -> str:
        """Encoding of the primary stream (``'utf-8'`` if it has none)."""
        return getattr(self.streams[0], "encoding", None) or "utf-8"

    @property
    def errors(self) -> str:
        return getattr(self.streams[0], "errors", None) or "strict"

    @property
    def closed(self) -> bool:
        """True once every stream is closed."""
        return all(getattr(s, "closed", False) for s in self.streams)

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"MultiOutputStream({', '.join(repr(s) for s in self.streams)})"


@dataclass(frozen=True)
class LogFiles:
    """The two files one :func:`tee_logs` run writes.

    Attributes
    ----------
    stdout_path, stderr_path : pathlib.Path
        ``<prefix>_<YYYYmmdd-HHMMSS>[_<n>]_stdout.txt`` and ``..._stderr.txt``.
    """

    stdout_path: Path
    stderr_path: Path


def _open_run_files(folder: Path, prefix: str) -> tuple[LogFiles, TextIO, TextIO]:
    """Create a fresh stdout/stderr file pair, never reusing an existing name."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(10_000):
        stem = f"{prefix}_{stamp}" if n == 0 else f"{prefix}_{stamp}_{n}"
        paths = LogFiles(folder / f"{stem}_stdout.txt", folder / f"{stem}_stderr.txt")
        opened: list[TextIO] = []
        try:
            for p in (paths.stdout_path, paths.stderr_path):
                # 'x' makes creation atomic: two runs started in the same second
                # (or in two processes) can never share a file.  Line buffering
                # hands each line to the OS at once, so SIGKILL or a closed
                # terminal loses nothing already printed.
                opened.append(
                    open(p, "x", buffering=1, encoding="utf-8", errors="backslashreplace")
                )
        except FileExistsError:
            for f in opened:
                f.close()
                os.unlink(f.name)
            continue
        return paths, opened[0], opened[1]
    raise InvalidPathError(f"could not find a free log file name for {prefix!r} in {folder}")


def _stream_handlers() -> Iterator[logging.StreamHandler]:
    loggers = [logging.getLogger()] + [
        lg for lg in list(logging.root.manager.loggerDict.values()) if isinstance(lg, logging.Logger)
    ]
    for lg in loggers:
        for h in list(lg.handlers):
            if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler):
                yield h


def _prints_to(logger: logging.Logger, streams: tuple[TextIO, ...]) -> bool:
    """True if a record of ``logger`` reaches a stream handler writing to ``streams``."""
    current: logging.Logger | None = logger
    while current is not None:
        for h in current.handlers:
            if isinstance(h, logging.StreamHandler) and any(h.stream is s for s in streams):
                return True
        if not current.propagate:
            return False
        current = current.parent
    return False


def _retarget_handlers(mapping: dict[int, TextIO]) -> None:
    """Point every stream handler writing to a key of ``mapping`` at its value."""
    for h in _stream_handlers():
        new = mapping.get(id(h.stream))
        if new is not None:
            h.setStream(new)


@contextlib.contextmanager
def tee_logs(
    folder: str | os.PathLike = ".",
    prefix: str = "voxelflow",
    *,
    log_level: int = logging.INFO,
) -> Iterator[LogFiles]:
    """Copy ``sys.stdout`` and ``sys.stderr`` into new per-run log files.

    Inside the block ``sys.stdout``/``sys.stderr`` are
    :class:`MultiOutputStream` objects writing to the original stream and to
    ``<folder>/<prefix>_<YYYYmmdd-HHMMSS>_stdout.txt`` (and ``_stderr.txt``).
    An existing file is never overwritten: a second run in the same second gets
    a ``_1``, ``_2``, ... suffix. The files are line-buffered, so every complete
    line (and every tqdm ``\\r`` update) is on disk even if the process is killed.

    While teeing, existing logging stream handlers bound to the original
    stdout/stderr (such as those of ``distributed``) write to the tee, and,
    unless such a handler already prints its records, the ``voxelflow``
    logger gets a handler writing to the new stderr with :data:`LOG_FORMAT`
    (and, if its level is unset, level ``log_level``). Text that
    ``dask.distributed.print`` sends from workers is printed by the client to
    ``sys.stdout`` and so lands in the log file too.

    Everything is restored on exit, also when the block raises.

    Parameters
    ----------
    folder : str or os.PathLike, default '.'
        Local folder for the log files; created if missing.
    prefix : str, default 'voxelflow'
        Start of the file names.
    log_level : int, default logging.INFO
        Level given to the ``voxelflow`` logger while teeing if it has none.

    Yields
    ------
    LogFiles
        The paths of the two files.

    Raises
    ------
    InvalidPathError
        If ``folder`` is not a path or is an existing file.
    InvalidInputError
        If ``prefix`` is not a non-empty file-name-safe string.
    """
    if not isinstance(folder, (str, os.PathLike)) or (isinstance(folder, str) and not folder):
        raise InvalidPathError(f"tee_logs folder must be a local path, got {folder!r}")
    if "://" in os.fspath(folder):
        raise InvalidPathError(f"tee_logs folder must be a local path, got URL {os.fspath(folder)!r}")
    if not isinstance(prefix, str) or not prefix or os.sep in prefix or "/" in prefix:
        raise InvalidInputError(
            f"tee_logs prefix must be a non-empty file name without '/', got {prefix!r}"
        )
    if not isinstance(log_level, int):
        raise InvalidInputError(f"log_level must be an int logging level, got {log_level!r}")
    folder = Path(folder).expanduser().absolute()
    if folder.exists() and not folder.is_dir():
        raise InvalidPathError(f"tee_logs folder {folder} exists and is not a directory")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        paths, out_file, err_file = _open_run_files(folder, prefix)
    except (PermissionError, FileNotFoundError, NotADirectoryError) as exc:
        raise InvalidPathError(f"cannot create log files in {folder}: {exc}") from exc

    orig_out, orig_err = sys.stdout, sys.stderr
    tee_out = MultiOutputStream(orig_out, out_file)
    tee_err = MultiOutputStream(orig_err, err_file)

    logger = logging.getLogger("voxelflow")
    # If the user's logging set-up already prints voxelflow records to the
    # terminal, the retargeted handler puts them in the file; a second handler
    # would only duplicate every line.
    handler = None
    if not _prints_to(logger, (orig_out, orig_err)):
        handler = logging.StreamHandler(tee_err)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
    old_level = logger.level

    sys.stdout, sys.stderr = tee_out, tee_err
    try:
        _retarget_handlers({id(orig_out): tee_out, id(orig_err): tee_err})
        if handler is not None:
            logger.addHandler(handler)
            if old_level == logging.NOTSET:
                logger.setLevel(log_level)
        yield paths
    finally:
        if handler is not None:
            logger.removeHandler(handler)
        logger.setLevel(old_level)
        _retarget_handlers({id(tee_out): orig_out, id(tee_err): orig_err})
        sys.stdout, sys.stderr = orig_out, orig_err
        for f in (out_file, err_file):
            with contextlib.suppress(OSError, ValueError):
                f.flush()
            f.close()
