"""Walking and removing cache trees (used by ``voxelflow cache``)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

from voxelflow.cache._lock import is_live, is_mine, read_lock
from voxelflow.cache._marker import is_node
from voxelflow.cache._node import CacheNode, cdir_query
from voxelflow.errors import CacheLockedError, InvalidPathError, NewerFormatError, NotACacheNodeError
from voxelflow.paths import VPath, as_vpath

__all__ = ["TreeEntry", "iter_tree", "remove_node"]

_ZARR_FILES = {"zarr.json", ".zgroup", ".zarray"}


@dataclass(frozen=True)
class TreeEntry:
    """One line of a cache listing.

    Attributes
    ----------
    depth : int
        0 for the listed root, +1 per folder level.
    path : VPath
    node : CacheNode or None
        None for a plain folder that only holds nodes.
    size : int
        Bytes of every file below ``path`` (child nodes included).
    """

    depth: int
    path: VPath
    node: CacheNode | None
    size: int


def iter_tree(url: str | VPath, *, storage_options: dict | None = None) -> Iterator[TreeEntry]:
    """Yield the nodes below ``url`` (and the plain folders leading to them), depth first.

    Payload folders such as ``result.zarr`` are not descended into. A node committed
    in a newer format is listed with status ``newer`` and ``marker={"version": N}``
    (its marker version) instead of stopping the walk.

    Raises
    ------
    InvalidPathError
        ``url`` does not exist.
    NotACacheNodeError
        ``url`` is a file.
    """
    root = as_vpath(url, storage_options)
    if root.isfile():
        raise NotACacheNodeError(f"{root} is a file, not a cache folder")
    if not root.isdir():
        raise InvalidPathError(f"{root} does not exist")
    yield from _walk(root, 0, force=True)


def _walk(folder: VPath, depth: int, force: bool = False) -> list[TreeEntry]:
    names = folder.ls()
    node = _query(folder) if is_node(folder) else None
    if node is None and _ZARR_FILES & set(names):
        return []
    below: list[TreeEntry] = []
    for name in names:
        child = folder / name
        # links are not followed: nodes are real folders, and a link may loop back up the tree
        if not _is_link(child) and child.isdir():
            below += _walk(child, depth + 1)
    if node is None and not below and not force:
        return []
    return [TreeEntry(depth, folder, node, _size(folder)), *below]


def _query(folder: VPath) -> CacheNode:
    """The node's state; a node of a newer format is listed as ``newer`` with its marker version."""
    try:
        return cdir_query(folder)
    except NewerFormatError as exc:
        return CacheNode(folder.url, folder, None, None, "newer", {"version": exc.version})


def _is_link(path: VPath) -> bool:
    return path.is_local and os.path.islink(path.path)


def _size(folder: VPath) -> int:
    """Bytes of the files below ``folder``, not following links."""
    if not folder.is_local:
        return folder.size()
    total = 0
    for dirpath, _, files in os.walk(folder.path):
        for name in files:
            full = os.path.join(dirpath, name)
            if not os.path.islink(full):
                total += os.path.getsize(full)
    return total


def remove_node(url: str | VPath, *, storage_options: dict | None = None) -> str:
    """Delete a cache node and everything below it; a link to a node loses only the link.

    Links inside the node are removed, never followed.

    Returns
    -------
    str
        What was removed, e.g. ``"node /data/cache/a"`` or ``"link /x/a (the node it points to,
        /data/cache/a, is kept)"``.

    Raises
    ------
    NotACacheNodeError
        ``url`` is missing, a file, or a folder that is not a cache node (also through a link).
    CacheLockedError
        Another live process is computing the node.
    """
    path = as_vpath(url, storage_options)
    if not path.isdir() or not is_node(path):
        raise NotACacheNodeError(f"refusing to remove {path}: it is not a voxelflow cache node")
    if _is_link(path):
        target = os.path.realpath(path.path)
        os.unlink(path.path)
        return f"link {path} (the node it points to, {target}, is kept)"
    lock = read_lock(path)
    if lock and is_live(lock) and not is_mine(lock):
        raise CacheLockedError(f"refusing to remove {path}: it is being computed by {lock.describe()}")
    path.rm()
    return f"node {path}"
