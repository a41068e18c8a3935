"""One run at a time per run folder.

A run folder is swapped as a whole when a run finishes (:mod:`voxelflow.pipelines.publish`)
and every run starts by resolving what an interrupted swap left beside it. A second
run into the same folder would take the first run's staging folder for such a
leftover. :func:`run_folder_lock` therefore holds an exclusive ``flock`` on a small
file beside the run folder (``.<name>.lock``) for the whole run; the operating
system releases it when the process ends, however it ends, so a killed run never
leaves the folder locked. The file is removed at the end of the run while the lock
is still held; a run that opened it just before checks, once it holds the lock,
that the file it locked is still the one at that path, and starts over if not.
Run folders on other file systems (``memory://``, object stores) have no such lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os

from voxelflow.errors import RunFolderBusyError
from voxelflow.paths import VPath

__all__ = ["lock_path", "run_folder_lock"]


def lock_path(out_dir: VPath) -> str:
    """The lock file of the local run folder ``out_dir`` (beside the folder a link points to)."""
    real = os.path.realpath(out_dir.path)
    return os.path.join(os.path.dirname(real), f".{os.path.basename(real)}.lock")


@contextlib.contextmanager
def run_folder_lock(out_dir: VPath):
    """Hold the run folder ``out_dir`` for this process while the block runs.

    Raises
    ------
    RunFolderBusyError
        Another process holds it (its pid is named when it could be read).
    """
    if not out_dir.is_local:
        yield
        return
    path = lock_path(out_dir)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = _lock(path, out_dir)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # still holding the lock: a run that opened this file sees it is gone
        os.close(fd)


def _lock(path: str, out_dir: VPath) -> int:
    """An open descriptor of the lock file at ``path``, locked by this process."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            os.close(fd)
            who = f"process {holder}" if holder.isdigit() else "another process"
            raise RunFolderBusyError(f"{out_dir.url} is in use: {who} is running a pipeline into it; wait for it "
                                     "to finish or choose another output.folder") from None
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # the run that held it removed it meanwhile: lock the new file
