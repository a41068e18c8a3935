"""Walking and removing cache trees (used by ``voxelflow cache``)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from voxelflow.cache._lock import is_live, is_mine, read_lock
from voxelflow.cache._marker import is_node
from voxelflow.cache._node import CacheNode, cdir_query
from voxelflow.errors import CacheLockedError, InvalidPathError, NotACacheNodeError
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

    Payload folders such as ``result.zarr`` are not descended into.

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
    node = cdir_query(folder) if is_node(folder) else None
    if node is None and _ZARR_FILES & set(names):
        return []
    below: list[TreeEntry] = []
    for name in names:
        child = folder / name
        if child.isdir():
            below += _walk(child, depth + 1)
    if node is None and not below and not force:
        return []
    return [TreeEntry(depth, folder, node, folder.size()), *below]


def remove_node(url: str | VPath, *, storage_options: dict | None = None) -> None:
    """Delete a cache node and everything below it.

    Raises
    ------
    NotACacheNodeError
        ``url`` is missing, a file, or a folder that is not a cache node.
    CacheLockedError
        Another live process is computing the node.
    """
    path = as_vpath(url, storage_options)
    if not path.isdir() or not is_node(path):
        raise NotACacheNodeError(f"refusing to remove {path}: it is not a voxelflow cache node")
    lock = read_lock(path)
    if lock and is_live(lock) and not is_mine(lock):
        raise CacheLockedError(f"refusing to remove {path}: it is being computed by {lock.describe()}")
    path.rm()
