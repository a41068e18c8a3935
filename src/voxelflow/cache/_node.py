"""Cache nodes: open, query, commit, save and load (the logic behind :mod:`voxelflow.cache`)."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from voxelflow.cache._folder import clear_partial, prepare_folder, require_node, wipe
from voxelflow.cache._lock import (
    is_live,
    is_mine,
    owned_lock,
    read_lock,
    release,
    try_acquire,
)
from voxelflow.cache._marker import (
    IDENTITY_NAME,
    LOCK_NAME,
    is_node,
    marker_commit_time,
    normalise_key,
    read_marker,
    write_marker,
)
from voxelflow.cache._parts import PARTS_NAME
from voxelflow.cache._store import PAYLOAD_NAMES, plain_entry, prepare_payload, read_payload, write_payload
from voxelflow.errors import (
    CacheError,
    CacheLockedError,
    InvalidInputError,
    InvalidPathError,
    NoResultError,
    NotACacheNodeError,
    NotCommittedError,
    VoxelflowError,
)
from voxelflow.paths import VPath, as_vpath

__all__ = ["CacheNode", "cdir_commit", "cdir_init", "cdir_query", "load", "save"]

log = logging.getLogger("voxelflow.cache")

_POLL_FIRST, _POLL_MAX, _WAIT_LOG_EVERY = 0.05, 1.0, 30.0


@dataclass(frozen=True)
class CacheNode:
    """State of a cache node.

    Attributes
    ----------
    url : str
        The node's URL (absolute path for local folders).
    path : VPath
        The node folder; write payloads of other formats into ``path / "name"``.
    commit : datetime or None
        Commit time (UTC) if the result is stored, None if it must be computed.
    key : JSON value or None
        The committed key, or the key the computing process asked for.
    status : str
        ``committed``; ``computing`` (this process holds the lock); ``locked``
        (another live process computes it); ``partial`` (not committed, nobody
        computing); ``missing`` (no node at this path); ``newer`` (committed in a
        format version newer than this voxelflow reads; only listed by
        :func:`voxelflow.cache.iter_tree`, never read).
    marker : dict or None
        Contents of the commit marker (time, key, library versions, wall time,
        payload description).
    """

    url: str
    path: VPath
    commit: datetime | None
    key: Any = None
    status: str = "missing"
    marker: dict | None = None


def cdir_init(
    url: str | VPath,
    key: Any = None,
    *,
    storage_options: dict | None = None,
    timeout: float | None = None,
) -> CacheNode:
    """Open a cache node, making it ready to compute unless its result is stored.

    Parameters
    ----------
    url : str or os.PathLike or VPath
        Local folder or fsspec URL of the node; missing parent folders are created.
    key : JSON-serialisable value, optional
        Parameters the result depends on (or a hash string). If the node was
        committed with a different key it is wiped and must be recomputed. With
        no key only the path decides.
    storage_options : dict, optional
        fsspec options (credentials, endpoint) for ``url``.
    timeout : float, optional
        Seconds to wait for another process computing this node; None waits
        as long as it runs.

    Returns
    -------
    CacheNode
        ``.commit`` is the commit time if the stored result can be loaded, else
        None; then this process holds the node's lock until it commits.

    Raises
    ------
    NotACacheNodeError
        ``url`` is a file, or a non-empty folder that is not a cache node.
    CacheKeyError
        ``key`` is not JSON-serialisable.
    CacheLockedError
        Another live process still computes the node after ``timeout`` seconds.
    InvalidPathError
        ``url`` cannot be parsed or reached.
    """
    path = _as_path(url, storage_options)
    key_value, key_hash = normalise_key(key)
    timeout = _check_timeout(timeout)
    with _path_errors(path):
        return _init(path, key_value, key_hash, timeout, replace=False)


def cdir_query(url: str | VPath, *, storage_options: dict | None = None) -> CacheNode:
    """The state of a node without changing anything.

    Returns
    -------
    CacheNode
        ``.status`` tells committed / computing / locked / partial / missing.

    Raises
    ------
    NotACacheNodeError
        ``url`` is a file.
    """
    path = _as_path(url, storage_options)
    with _path_errors(path):
        if path.isfile():
            raise NotACacheNodeError(f"{path} is a file, not a cache node folder")
        if not path.isdir() or not is_node(path):
            return CacheNode(path.url, path, None)
        marker = read_marker(path)
        if marker is not None:
            return _committed(path, marker)
        lock = read_lock(path)
        if lock and is_mine(lock):
            return CacheNode(path.url, path, None, lock.key, "computing")
        if lock and is_live(lock):
            return CacheNode(path.url, path, None, lock.key, "locked")
        return CacheNode(path.url, path, None, None, "partial")


def cdir_commit(url: str | VPath, key: Any = None, *, storage_options: dict | None = None) -> CacheNode:
    """Mark a node whose files were written by other means as complete.

    Parameters
    ----------
    url : str or VPath
        A node opened with :func:`cdir_init` by this process.
    key : JSON-serialisable value, optional
        Stored key; defaults to the key given to :func:`cdir_init`.

    Returns
    -------
    CacheNode
        The committed node. Committing a node that is already committed and
        not being recomputed by this process changes nothing.

    Raises
    ------
    NotACacheNodeError
        ``url`` does not exist or is not a cache node.
    CacheLockedError
        Another live process is computing the node.
    """
    path = _as_path(url, storage_options)
    key_value, key_hash = normalise_key(key)
    with _path_errors(path):
        require_node(path)
        if owned_lock(path) is None:
            marker = read_marker(path, warn=False)
            if marker is not None:
                return _committed(path, marker)
        return _commit(path, key_value, key_hash, key is not None, payload=None)


def save(
    url: str | VPath,
    obj: Any,
    *,
    key: Any = None,
    storage_options: dict | None = None,
    timeout: float | None = None,
) -> CacheNode:
    """Store ``obj`` as the result of a node and commit it.

    Parameters
    ----------
    url : str or VPath
        The node; usually opened with :func:`cdir_init` just before. A node that
        does not exist yet is created; a committed node is replaced.
    obj : numpy.ndarray, dask.array.Array, pandas.DataFrame, pandas.Series, JSON value, Image or ChildNodes
        Dask arrays are computed once, block by block, straight into zarr 3.
        See :mod:`voxelflow.cache._store` for the file of each type.
    key : JSON-serialisable value, optional
        Stored key; defaults to the key given to :func:`cdir_init`.
    timeout : float, optional
        As in :func:`cdir_init`, when ``url`` must be opened first.

    Returns
    -------
    CacheNode
        The committed node.

    Raises
    ------
    UnsupportedObjectError
        ``obj`` has a type or dtype that cannot be stored (nothing is written).
    """
    path = _as_path(url, storage_options)
    key_value, key_hash = normalise_key(key)
    timeout = _check_timeout(timeout)
    kind, data = prepare_payload(obj)
    with _path_errors(path):
        # A lock we hold means cdir_init found the node uncommitted and cleared it for us.
        if not path.isdir() or owned_lock(path) is None:
            _init(path, key_value, key_hash, timeout, replace=True)
        try:
            payload = write_payload(path, kind, data)
        except BaseException:
            release(path)  # the node stays uncommitted; let waiting processes take it over
            raise
        return _commit(path, key_value, key_hash, key is not None, payload=payload)


def load(url: str | VPath, *, storage_options: dict | None = None) -> Any:
    """Load the result :func:`save` stored in a committed node.

    Returns
    -------
    numpy.ndarray, dask.array.Array, pandas.DataFrame, pandas.Series, JSON value or tuple
        Dask arrays come back lazy, with the chunks they were saved with;
        OME-Zarr images as their full-resolution level; a node of
        :class:`ChildNodes` as its children's results.

    Raises
    ------
    NotCommittedError
        The node does not exist, is not committed, or its marker is corrupt.
    NotACacheNodeError
        ``url`` is a file or a folder that is not a cache node.
    NoResultError
        The node was committed by :func:`cdir_commit` without a ``save`` payload.
    CacheError
        Its payload files are damaged.
    """
    path = _as_path(url, storage_options)
    with _path_errors(path):
        if not path.exists():
            raise NotCommittedError(f"cannot load {path}: it does not exist")
        require_node(path)
        marker = read_marker(path)
        if marker is None:
            raise NotCommittedError(
                f"cannot load {path}: not committed (never computed, interrupted, or its commit marker is corrupt)"
            )
        payload = marker.get("payload") or _undescribed_payload(path)
        if not payload:
            raise NoResultError(f"{path} was committed without a save() result; read the files in that folder directly")
        if payload.get("kind") == "children":
            names = payload.get("children")
            if not isinstance(names, list) or not names or not all(plain_entry(n) for n in names):
                raise CacheError(f"{path}: the commit marker's child payload names {names!r:.200} are not "
                                 "entries of the node")
            results = [load(path / name) for name in names]
            return tuple(results) if payload.get("tuple") else results[0]
        token = hashlib.sha256(f"{path.url}|{marker['committed']}".encode()).hexdigest()[:16]
        try:
            return read_payload(path, payload, token)
        except VoxelflowError:
            raise
        except Exception as exc:
            raise CacheError(f"committed node {path} has a damaged payload {payload.get('name')!r}: {exc}") from exc


def _undescribed_payload(path: VPath) -> dict | None:
    """The payload of a node committed without a description (OME-Zarr images written by voxelflow 0.1 steps)."""
    name = PAYLOAD_NAMES["ome-zarr"]
    return {"kind": "ome-zarr", "name": name} if (path / name).isdir() else None


# --- internals ------------------------------------------------------------------


def _init(path: VPath, key_value: Any, key_hash: str | None, timeout: float | None, *, replace: bool) -> CacheNode:
    prepare_folder(path)
    start = time.monotonic()
    poll, next_log, warn = _POLL_FIRST, start, True
    while True:
        marker = read_marker(path, warn=warn)
        warn = False
        if marker is not None and not replace and _key_matches(marker, key_hash):
            return _committed(path, marker)
        acquired, holder = try_acquire(path, key_value, key_hash)
        if acquired:
            return _start_computing(path, key_value, key_hash, replace)
        now = time.monotonic()
        if timeout is not None and now - start >= timeout:
            who = holder.describe() if holder else "another process"
            raise CacheLockedError(f"{path} is being computed by {who}; gave up after {timeout:g} s")
        if now >= next_log:
            log.info("waiting for %s: it is being computed by %s", path, holder.describe() if holder else "?")
            next_log = now + _WAIT_LOG_EVERY
        time.sleep(poll if timeout is None else min(poll, max(timeout - (now - start), 0.0)))
        poll = min(poll * 2, _POLL_MAX)


def _start_computing(path: VPath, key_value: Any, key_hash: str | None, replace: bool) -> CacheNode:
    # The process we may have waited for can have committed just before we got the lock.
    marker = read_marker(path, warn=False)
    if marker is not None and not replace and _key_matches(marker, key_hash):
        release(path)
        return _committed(path, marker)
    if marker is not None:
        if replace:
            log.info("replacing the committed result of %s", path)
        else:
            log.info(
                "invalidating %s: its key changed (committed key %.200s, requested %.200s); recomputing",
                path,
                _short_key(marker.get("key")),
                _short_key(key_value),
            )
        wipe(path)
    else:
        # finished parts of a long computation survive the restart (see _parts)
        clear_partial(path, keep=(IDENTITY_NAME, PARTS_NAME), keep_prefix=LOCK_NAME)
    return CacheNode(path.url, path, None, key_value, "computing")


def _commit(path: VPath, key_value: Any, key_hash: str | None, key_given: bool, payload: dict | None) -> CacheNode:
    lock = read_lock(path)
    if lock and not is_mine(lock) and is_live(lock):
        raise CacheLockedError(f"cannot commit {path}: it is being computed by {lock.describe()}")
    mine = lock if lock and is_mine(lock) else None
    if not key_given and mine is not None:
        key_value, key_hash = mine.key, mine.key_hash
    wall = time.time() - mine.started if mine is not None else None
    (path / PARTS_NAME).rm()  # a committed node holds only its result
    marker = write_marker(path, key=key_value, key_hash=key_hash, wall_seconds=wall, payload=payload)
    if mine is not None:
        release(path)
    elif lock is not None:
        (path / LOCK_NAME).rm()  # stale lock of a dead process; the node is committed now
    log.debug("committed %s", path)
    return _committed(path, marker)


def _committed(path: VPath, marker: dict) -> CacheNode:
    return CacheNode(path.url, path, marker_commit_time(marker), marker.get("key"), "committed", marker)


def _key_matches(marker: dict, key_hash: str | None) -> bool:
    return key_hash is None or marker.get("key_hash") == key_hash


def _short_key(key: Any) -> str:
    return "none" if key is None else repr(key)


def _as_path(url: Any, storage_options: dict | None) -> VPath:
    if storage_options is not None and not isinstance(storage_options, dict):
        raise InvalidInputError(f"storage_options must be a dict, got {type(storage_options).__name__}")
    return as_vpath(url, storage_options)


def _check_timeout(timeout: Any) -> float | None:
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout >= 0:
        raise InvalidInputError(f"timeout must be a number of seconds >= 0 or None, got {timeout!r}")
    return float(timeout)


@contextlib.contextmanager
def _path_errors(path: VPath):
    """Report file-system failures as InvalidPathError naming the node."""
    try:
        yield
    except VoxelflowError:
        raise
    except OSError as exc:
        raise InvalidPathError(f"cannot use cache node {path}: {exc}") from exc
