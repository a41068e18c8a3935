"""Crash-safe hierarchical result cache.

A *cache node* is a folder (local path or fsspec URL). Its result lives in
payload files inside it, its sub-steps in child nodes (sub-folders), and three
bookkeeping files say what it is (see :mod:`voxelflow.cache._marker` and
:mod:`voxelflow.cache._lock`). The usual pattern, as in the original manual::

    node = cdir_init(url, key={"sigma": 2})
    if not node.commit:          # None: must compute; datetime: done
        save(url, compute())     # writes the payload, then commits the node
    result = load(url)

Guarantees
----------
* The commit marker is written last and atomically, so a node killed at any
  moment is either committed with its whole payload or not committed.
* Re-initialising an uncommitted node clears its partial contents but keeps
  committed child nodes (and nodes another live process is computing), so a
  crashed parent resumes from its finished children.
* A committed node whose key differs from the requested one is wiped (with its
  children) and recomputed; the reason is logged on the ``voxelflow.cache`` logger.
* A node being computed by another live process is never cleared: ``cdir_init``
  waits until that process commits (then returns the commit) or dies (then takes
  over), or raises :class:`~voxelflow.errors.CacheLockedError` after ``timeout``.
* A pending node may keep finished parts of a long computation in ``parts/``
  (:func:`part_store`); re-initialising it keeps them, committing deletes them.
* A file, or a non-empty folder that is neither a node nor a folder holding
  only nodes, is never wiped: :class:`~voxelflow.errors.NotACacheNodeError`.

Modules (private; import from ``voxelflow.cache``): ``_node`` (open, query,
commit, save, load), ``_cached`` (the ``cached`` decorator), ``_marker`` (identity file, commit marker,
keys), ``_lock`` (per-process locks), ``_store`` (payload formats), ``_tree``
(walking and removing trees, for ``voxelflow cache``).
"""

from voxelflow.cache._cached import cached
from voxelflow.cache._lock import LockInfo, read_lock
from voxelflow.cache._marker import is_node
from voxelflow.cache._node import CacheNode, cdir_commit, cdir_init, cdir_query, load, save
from voxelflow.cache._parts import PARTS_NAME, PartStore, part_store, parts_progress
from voxelflow.cache._store import PAYLOAD_NAMES, ChildNodes, Image
from voxelflow.cache._tree import TreeEntry, iter_tree, remove_node

__all__ = [
    "PARTS_NAME",
    "PAYLOAD_NAMES",
    "CacheNode",
    "ChildNodes",
    "Image",
    "LockInfo",
    "PartStore",
    "TreeEntry",
    "cached",
    "cdir_commit",
    "cdir_init",
    "cdir_query",
    "is_node",
    "iter_tree",
    "load",
    "part_store",
    "parts_progress",
    "read_lock",
    "remove_node",
    "save",
]
