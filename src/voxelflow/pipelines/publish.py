"""Publishing a run's outputs: the run folder is swapped as a whole, so it shows one complete run.

A finished run is written into a staging folder beside the run folder
(``.<name>.run-<id>``, same parent, so renames are atomic): its outputs and its
``run.json`` (which records ``run_id = <id>``). What the old folder holds besides
the previous run's outputs and what a failed run left (``run-failed.json`` and its
registration QC pictures) -- the cache, files of the user -- is then moved into the
staging folder entry by entry, and the two folders are
exchanged in one atomic ``renameat2(RENAME_EXCHANGE)``; the old run, now under the
staging name, is deleted last. Until the exchange the run folder holds the
complete previous run, after it the complete new one: never a folder without
``run.json``, never outputs of two runs. Where the exchange is unavailable, the old
folder is renamed aside (``.<name>.run-old-<id>``) and the new one renamed into
place, a gap that :func:`recover` closes.

A crash leaves leftover folders beside the run folder; :func:`recover` (run at the
start of every run) resolves them: a staging folder that was not swapped in gives
back what it took from the run folder and is deleted, a swapped-out old run is
deleted, and an old run renamed aside with no run folder in its place is renamed
back. Anything else is reported, never guessed at.

A run folder that is a symbolic link is swapped where it points to (the link stays).
Only local run folders are swapped this way; on other file systems (``memory://``,
object stores) directory renames are not atomic and the outputs are replaced file
by file, ``run.json`` last (:func:`publish_per_file`).
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import shutil
import uuid

from voxelflow.errors import InvalidPathError
from voxelflow.io.ome_zarr.replace import tidy_beside
from voxelflow.paths import VPath
from voxelflow.steps import node as layout

__all__ = ["FAILED_NAMES", "FAILED_REGISTRATION_FOLDER", "NEW_REGISTRATION_FOLDER", "OUTPUT_NAMES", "REGISTRATION_FOLDER",
           "new_run_id", "publish", "publish_per_file", "recover", "staging_folder", "tidy_run_folder",
           "write_files"]

#: Folder of a run that registered an atlas: transforms, ``registration.json`` and QC pictures.
REGISTRATION_FOLDER = "registration"
#: The same for the last failed run (beside ``run-failed.json``), so the previous run's folder stays whole.
FAILED_REGISTRATION_FOLDER = "run-failed-registration"
#: ``voxelflow register``'s files when the run folder holds a finished run, whose ``registration/`` stays
#: with its tables (removed by the next finished run, which publishes its own).
NEW_REGISTRATION_FOLDER = "registration-new"
#: Every file a run may write into its folder besides ``run.json``.
OUTPUT_NAMES = (layout.OBJECTS_TABLE, layout.OBJECTS_CSV, layout.REGIONS_CSV, layout.DENSITY_IMAGE,
                layout.ATLAS_DENSITY_IMAGE, REGISTRATION_FOLDER)
#: What a failed run leaves in the run folder (replaced by the next failed run, removed by the next finished one).
FAILED_NAMES = (layout.FAILED_RUN_FILE, FAILED_REGISTRATION_FOLDER)
#: Entries of a run folder that belong to one run and are never carried over to the next.
_RUN_ENTRIES = frozenset((*OUTPUT_NAMES, layout.RUN_FILE, *FAILED_NAMES, NEW_REGISTRATION_FOLDER))

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def new_run_id() -> str:
    """A fresh id for a run (names its staging folder and is recorded in its ``run.json``)."""
    return uuid.uuid4().hex[:16]


def _real(out_dir: VPath) -> VPath:
    """The folder a local run folder really is (a link is followed, so the swap happens where it points)."""
    return VPath(os.path.realpath(out_dir.path)) if out_dir.is_local else out_dir


def staging_folder(out_dir: VPath, run_id: str) -> VPath:
    """Where the run ``run_id`` is staged: a hidden sibling of ``out_dir`` (of the folder a link points to)."""
    real = _real(out_dir)
    return real.parent / f".{real.name}.run-{run_id}"


def _old_folder(out_dir: VPath, run_id: str) -> VPath:
    return out_dir.parent / f".{out_dir.name}.run-old-{run_id}"


# --- file-system primitives (one place, so faults can be injected at each) -----------------------


def _rename(src: str, dst: str) -> None:
    os.rename(src, dst)


def _remove(path: str) -> None:
    shutil.rmtree(path)


def _exchange(a: str, b: str) -> bool:
    """Swap the folders ``a`` and ``b`` atomically; False if the system cannot (not Linux, old kernel, file system)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(code, f"cannot swap {b} with the staged run {a}: {os.strerror(code)}")


def write_files(folder: VPath, files: dict[str, bytes]) -> None:
    """Write ``files`` (name -> bytes) into ``folder`` (created), e.g. a run's ``registration/``."""
    folder.mkdirs()
    for name, data in files.items():
        (folder / name).write_bytes(data)


# --- publishing ------------------------------------------------------------------------------------


def publish(staging: VPath, out_dir: VPath, run_id: str) -> None:
    """Make the staged run ``run_id`` the run folder ``out_dir`` (both local, same parent).

    ``staging`` holds the new outputs and ``run.json``. On an error the run folder
    is left with the previous run (or already with the new one) and the leftovers
    are resolved before the error is raised.
    """
    out_dir = _real(out_dir)
    try:
        for name in sorted(os.listdir(out_dir.path)):
            if name not in _RUN_ENTRIES:
                _rename(os.path.join(out_dir.path, name), os.path.join(staging.path, name))
        if _exchange(staging.path, out_dir.path):
            _remove(staging.path)
            return
        old = _old_folder(out_dir, run_id)
        _rename(out_dir.path, old.path)
        _rename(staging.path, out_dir.path)
        _remove(old.path)
    except Exception:
        recover(out_dir)
        raise


def recover(out_dir: VPath) -> list[str]:
    """Resolve what an interrupted :func:`publish` left beside ``out_dir``; returns what was done.

    Raises
    ------
    InvalidPathError
        A leftover folder whose state fits no interrupted swap (named in the message;
        nothing is changed then).
    """
    if not out_dir.is_local:
        return []
    out_dir = _real(out_dir)
    parent, name = out_dir.parent.path, out_dir.name
    try:
        entries = os.listdir(parent)
    except FileNotFoundError:
        return []
    done = []
    for entry in sorted(entries):  # old runs renamed aside first: they may be the missing run folder
        if entry.startswith(f".{name}.run-old-"):
            done.append(_resolve_old(out_dir, os.path.join(parent, entry), entry.rsplit("-", 1)[-1]))
    for entry in sorted(entries):
        prefix = f".{name}.run-"
        if entry.startswith(prefix) and not entry.startswith(f".{name}.run-old-"):
            done.append(_resolve_staged(out_dir, os.path.join(parent, entry), entry[len(prefix):]))
    return done


def tidy_run_folder(out_dir: VPath) -> list[str]:
    """:func:`recover`, then the leftovers of the folders replaced inside the run folder by a swap
    (:func:`voxelflow.io.ome_zarr.replace.tidy_beside`); call it while holding the run folder's lock."""
    done = recover(out_dir)
    for name in (REGISTRATION_FOLDER, FAILED_REGISTRATION_FOLDER, NEW_REGISTRATION_FOLDER):
        done += tidy_beside(out_dir / name)
    return done


def _run_id(folder: str) -> str | None:
    try:
        with open(os.path.join(folder, layout.RUN_FILE), "rb") as f:
            record = json.loads(f.read())
    except (OSError, ValueError):
        return None
    return record.get("run_id") if isinstance(record, dict) else None


def _resolve_old(out_dir: VPath, old: str, run_id: str) -> str:
    if not os.path.exists(out_dir.path):
        _rename(old, out_dir.path)
        return f"renamed the previous run {old} back to {out_dir.path}"
    if _run_id(out_dir.path) == run_id:
        _remove(old)
        return f"removed the previous run {old} (run {run_id} had replaced it)"
    raise InvalidPathError(f"{old} is a previous run set aside by an interrupted swap, but {out_dir.path} is not the "
                           "run that replaced it; move one of them away and run again")


def _resolve_staged(out_dir: VPath, staged: str, run_id: str) -> str:
    if _run_id(out_dir.path) == run_id:
        _remove(staged)
        return f"removed the previous run {staged} (run {run_id} had replaced it)"
    # not swapped in: give back what was moved over from the run folder, then drop the staged outputs
    for entry in sorted(os.listdir(staged)):
        if entry in _RUN_ENTRIES:
            continue
        back = os.path.join(out_dir.path, entry)
        if os.path.lexists(back):
            raise InvalidPathError(f"{staged} is a run staged by an interrupted swap; its {entry!r} exists in "
                                   f"{out_dir.path} too. Keep one of them and delete {staged}")
        os.makedirs(out_dir.path, exist_ok=True)
        _rename(os.path.join(staged, entry), back)
    _remove(staged)
    return f"removed the unpublished run {staged} (the run folder keeps the previous run)"


def publish_per_file(staging: VPath, out_dir: VPath, files: dict, record: dict) -> None:
    """Replace the previous run's outputs by the staged ones file by file; ``run.json`` goes first and comes back last.

    For run folders on file systems without atomic folder renames.
    """
    new = {name for key, name in files.items() if key != "image"}
    (out_dir / layout.RUN_FILE).rm()
    for name in OUTPUT_NAMES:
        if name not in new:
            (out_dir / name).rm()
    for name in sorted(new):
        src, dst = staging / name, out_dir / name
        dst.rm()
        dst.fs.mv(src.path, dst.path, recursive=True)
    layout.write_run(out_dir, record)
    for name in FAILED_NAMES:
        (out_dir / name).rm()
