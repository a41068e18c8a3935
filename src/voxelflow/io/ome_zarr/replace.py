"""Replacing an OME-Zarr image: check that the target may be replaced, write beside it, swap at the end.

A target is refused unless it is an image that ``overwrite`` allows replacing and
that the array being written does not read from (:func:`check_target`).

A new image is written into a hidden sibling folder (``.<name>.tmp-<id>``) and
moved into place only once it is complete; an old image at the target is moved
aside first and deleted last. A failure at any point before the swap leaves the
old image exactly as it was, and removes the partial new one. A process killed
during the write or between the two renames leaves those hidden folders behind;
:func:`tidy_beside` resolves them (a caller that knows no other writer is at
work, e.g. one holding the run folder's lock, calls it before writing again).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
import zipfile
from collections.abc import Callable

import dask.array as da
import zarr

from voxelflow.errors import InvalidPathError, OmeZarrError, VoxelflowError
from voxelflow.io.ome_zarr.fastread import ChunkReader
from voxelflow.io.ome_zarr.stores import is_zip
from voxelflow.paths import VPath

__all__ = ["check_replaceable", "check_target", "swap_into_place", "tidy_beside", "write_beside"]

_GROUP_FILES = ("zarr.json", ".zattrs", ".zgroup")


def check_replaceable(path: VPath, overwrite: bool) -> bool:
    """Whether an image exists at ``path`` that ``overwrite`` allows replacing.

    Returns
    -------
    bool
        False if nothing is there, True if an OME-Zarr image (folder or zip) is.

    Raises
    ------
    OmeZarrError
        Something exists and ``overwrite`` is False, or it is not an OME-Zarr image
        (a file, a zip of other things, a non-empty folder that is not a zarr group):
        voxelflow never deletes what it cannot prove to be an image.
    """
    if not path.exists():
        return False
    if not overwrite:
        raise OmeZarrError(f"{path.url} already exists; pass overwrite=True to replace it")
    if path.isfile():
        if not is_zip(path):
            raise OmeZarrError(f"refusing to overwrite {path.url}: it is a file, not an OME-Zarr image")
        if not _is_image_zip(path):
            raise OmeZarrError(f"refusing to overwrite {path.url}: it is not an OME-Zarr zip archive "
                               "(no zarr group metadata at its root, or not a readable zip)")
        return True
    if path.ls() and not any((path / name).exists() for name in _GROUP_FILES):
        raise OmeZarrError(f"refusing to overwrite {path.url}: it is a non-empty folder that is not a zarr group")
    return True


def _store_root(store) -> str | None:
    store = getattr(store, "_store", store)  # unwrap StrictChunkStore
    if isinstance(store, zarr.storage.LocalStore):
        return str(store.root)
    if isinstance(store, zarr.storage.ZipStore):
        return str(store.path)
    if isinstance(store, zarr.storage.FsspecStore):
        return store.path
    return None


def _reads_from(arr: da.Array, path: VPath) -> bool:
    """True if the graph of ``arr`` reads a zarr array stored at or below ``path``."""
    prefix = path.path.rstrip("/")
    for node in dict(arr.__dask_graph__()).values():
        obj = getattr(node, "value", node)
        if isinstance(getattr(obj, "zarray", None), zarr.Array):  # reads checked by io or the cache
            obj = obj.zarray
        if isinstance(obj, (zarr.Array, ChunkReader)):
            root = obj.root if isinstance(obj, ChunkReader) else _store_root(obj.store)
            if root is not None and (root.rstrip("/") + "/").startswith(prefix + "/"):
                return True
    return False


def check_target(path: VPath, overwrite: bool, arr: da.Array) -> None:
    """Refuse a target that may not be replaced (see :func:`check_replaceable`) or that ``arr`` reads from."""
    if check_replaceable(path, overwrite) and _reads_from(arr, path):
        raise OmeZarrError(
            f"cannot overwrite {path.url}: the array being written is computed from it; write to a new path"
        )


def _is_image_zip(path: VPath) -> bool:
    try:
        with path.open("rb") as f, zipfile.ZipFile(f) as zf:
            names = set(zf.namelist())
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        return False
    return any(name in names for name in _GROUP_FILES)


def write_beside(target: VPath, write_into: Callable[[VPath], None]) -> None:
    """Run ``write_into(folder)`` on a sibling folder of ``target``, then swap it into place.

    Raises
    ------
    InvalidPathError
        The file system failed (full disk, no permission); the old image is whole.
    """
    work = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:12]}"
    try:
        write_into(work)
        swap_into_place(work, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            work.rm()
        if isinstance(exc, OSError) and not isinstance(exc, VoxelflowError):
            raise InvalidPathError(f"cannot write {target.url}: {exc}; an image that was there is unchanged") \
                from exc
        raise


def swap_into_place(work: VPath, target: VPath) -> None:
    """Move ``work`` to ``target``; an old ``target`` is moved aside first and removed only after."""
    old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:12]}" if target.exists() else None
    if target.is_local:
        if old is not None:
            os.replace(target.path, old.path)
        try:
            os.replace(work.path, target.path)
        except BaseException:
            if old is not None:
                os.replace(old.path, target.path)
            raise
        if old is not None:
            shutil.rmtree(old.path, ignore_errors=True)
        return
    fs = target.fs
    if old is not None:
        fs.mv(target.path, old.path, recursive=True)
    try:
        fs.mv(work.path, target.path, recursive=True)
    except BaseException:
        if old is not None:
            fs.mv(old.path, target.path, recursive=True)
        raise
    if old is not None:
        with contextlib.suppress(OSError):
            fs.rm(old.path, recursive=True)


def tidy_beside(target: VPath) -> list[str]:
    """Resolve what a killed :func:`write_beside` of ``target`` left in its folder; returns what was done.

    A partial new folder (``.<name>.tmp-<id>``) is removed. An old folder moved
    aside (``.<name>.old-<id>``) is renamed back when ``target`` is missing (the
    process died between the two renames; the newest one if there are several),
    else removed (the swap had finished). Only for local folders, and only while
    no other process writes ``target``.
    """
    if not target.is_local:
        return []
    parent, name = target.parent.path, target.name
    try:
        entries = sorted(os.listdir(parent))
    except FileNotFoundError:
        return []
    done = []
    for entry in entries:
        if entry.startswith(f".{name}.tmp-"):
            shutil.rmtree(os.path.join(parent, entry), ignore_errors=True)
            done.append(f"removed the unfinished {entry}")
    olds = sorted((e for e in entries if e.startswith(f".{name}.old-")),
                  key=lambda e: os.path.getmtime(os.path.join(parent, e)))
    if olds and not os.path.lexists(target.path):
        os.replace(os.path.join(parent, olds.pop()), target.path)
        done.append(f"renamed the {name} set aside by an interrupted swap back")
    for entry in olds:
        shutil.rmtree(os.path.join(parent, entry), ignore_errors=True)
        done.append(f"removed the replaced {entry}")
    return done
