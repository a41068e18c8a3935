"""Node folders: making a folder a node, and clearing what a recomputation must not keep.

A folder may become a node only if it is new, empty, or holds nothing but
voxelflow files and nodes; clearing keeps committed child nodes and nodes a
live other process computes, so a crashed parent resumes from its children.
"""

from __future__ import annotations

from voxelflow.cache._lock import is_live, is_mine, read_lock
from voxelflow.cache._marker import (
    BOOKKEEPING_PREFIX,
    IDENTITY_NAME,
    LOCK_NAME,
    MARKER_NAME,
    is_node,
    read_marker,
    write_identity,
)
from voxelflow.errors import NotACacheNodeError
from voxelflow.paths import VPath

__all__ = ["clear_partial", "entries", "prepare_folder", "require_node", "wipe"]


def prepare_folder(path: VPath) -> None:
    """Make ``path`` a node folder, refusing files and foreign folders."""
    if path.isfile():
        raise NotACacheNodeError(f"{path} is a file, not a cache node folder")
    if path.isdir():
        if is_node(path):
            return
        foreign = _foreign_entries(path)
        if foreign:
            raise NotACacheNodeError(
                f"refusing to use {path} as a cache node: it is a non-empty folder that was never a "
                f"voxelflow cache node (it holds {', '.join(foreign)}); use a new or empty folder"
            )
    else:
        path.mkdirs()
    write_identity(path)


def _foreign_entries(folder: VPath, limit: int = 3) -> list[str]:
    """Up to ``limit`` entries below ``folder`` that voxelflow did not create."""
    found: list[str] = []
    for name, is_dir in entries(folder):
        child = folder / name
        if is_dir:
            if not is_node(child):
                found += _foreign_entries(child, limit - len(found))
        elif not name.startswith(BOOKKEEPING_PREFIX):
            found.append(child.url)
        if len(found) >= limit:
            break
    return found


def entries(folder: VPath) -> list[tuple[str, bool]]:
    """(name, is_folder) of each entry of ``folder``."""
    out = []
    for entry in folder.fs.ls(folder.path, detail=True):
        name = entry["name"].rstrip("/").rsplit("/", 1)[-1]
        if name:
            out.append((name, entry["type"] == "directory"))
    return out


def clear_partial(folder: VPath, keep: tuple[str, ...], keep_prefix: str | None = None) -> bool:
    """Delete everything in ``folder`` except nodes worth keeping; True if something was kept.

    Worth keeping: committed nodes, nodes a live other process is computing, and
    folders leading to them. Uncommitted child nodes are cleared recursively.
    """
    kept = False
    for name, is_dir in entries(folder):
        if name in keep or (keep_prefix and name.startswith(keep_prefix)):
            continue
        child = folder / name
        if is_dir and _keep_subtree(child):
            kept = True
        else:
            child.rm()
    return kept


def _keep_subtree(folder: VPath) -> bool:
    names = folder.ls()
    if IDENTITY_NAME in names:
        if read_marker(folder, warn=False) is not None:
            return True
        lock = read_lock(folder)
        if lock and is_live(lock) and not is_mine(lock):
            return True
        return clear_partial(folder, keep=(IDENTITY_NAME,))
    if {"zarr.json", ".zgroup", ".zarray"} & set(names):
        return False  # a zarr payload: delete it whole rather than chunk by chunk
    return clear_partial(folder, keep=())


def wipe(path: VPath) -> None:
    """Uncommit ``path`` and delete its payload and children (lock and identity stay)."""
    (path / MARKER_NAME).rm()  # first, so an interruption leaves the node uncommitted
    for name, _ in entries(path):
        if name != IDENTITY_NAME and not name.startswith(LOCK_NAME):
            (path / name).rm()


def require_node(path: VPath) -> None:
    if path.isfile():
        raise NotACacheNodeError(f"{path} is a file, not a cache node folder")
    if not path.isdir():
        raise NotACacheNodeError(f"{path} does not exist; open it with cdir_init first")
    if not is_node(path):
        raise NotACacheNodeError(f"{path} is not a voxelflow cache node (no {IDENTITY_NAME})")
