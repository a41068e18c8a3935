"""Bookkeeping files of a cache node: identity file, commit marker, keys.

A cache node is a folder holding three kinds of voxelflow files next to its
payload and child nodes:

``.voxelflow_node.json``
    Identity file, written when the folder becomes a node. Its presence is what
    lets :func:`voxelflow.cdir_init` tell a node it may clear from a user folder
    it must never touch.
``.voxelflow_commit.json``
    Commit marker, written last and atomically. A node is committed exactly when
    this file parses; a torn or foreign file means "not committed".
``.voxelflow_lock.json``
    Lock of a process computing the node (see :mod:`voxelflow.cache._lock`).

This module only reads and writes these files; it decides nothing about locks
or payloads.
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
import time
from datetime import UTC, datetime
from typing import Any

from voxelflow.errors import CacheKeyError, NewerFormatError
from voxelflow.paths import VPath

__all__ = [
    "BOOKKEEPING_PREFIX",
    "IDENTITY_NAME",
    "LOCK_NAME",
    "MARKER_NAME",
    "is_node",
    "library_versions",
    "marker_commit_time",
    "normalise_key",
    "read_marker",
    "write_identity",
    "write_marker",
]

log = logging.getLogger("voxelflow.cache")

BOOKKEEPING_PREFIX = ".voxelflow_"
IDENTITY_NAME = ".voxelflow_node.json"
MARKER_NAME = ".voxelflow_commit.json"
LOCK_NAME = ".voxelflow_lock.json"

_MARKER_FORMAT = "voxelflow-cache-commit"
_IDENTITY_FORMAT = "voxelflow-cache-node"
_FORMAT_VERSION = 1


def normalise_key(key: Any) -> tuple[Any, str | None]:
    """Canonical form and hash of a cache key.

    Parameters
    ----------
    key : JSON-serialisable value or None
        Parameters of the step (dicts, lists, strings, numbers, booleans, None).
        A string is used as given, so a precomputed hash works as a key.

    Returns
    -------
    value : JSON value or None
        ``key`` after a JSON round trip (tuples become lists).
    digest : str or None
        SHA-256 hex digest of the canonical JSON text; None when ``key`` is None.

    Raises
    ------
    CacheKeyError
        If ``key`` cannot be written as strict JSON (sets, arrays, NaN, objects, ...).
    """
    if key is None:
        return None, None
    try:
        text = json.dumps(key, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise CacheKeyError(
            f"cache key must be JSON-serialisable (dicts, lists, str, int, float, bool, None); "
            f"got {type(key).__name__} {key!r:.200}: {exc}"
        ) from exc
    return json.loads(text), hashlib.sha256(text.encode()).hexdigest()


_versions: dict[str, str] | None = None


def library_versions() -> dict[str, str]:
    """Versions of Python and the libraries that shape stored results."""
    global _versions
    if _versions is None:
        import dask
        import numpy
        import zarr

        import voxelflow

        _versions = {
            "python": platform.python_version(),
            "numpy": numpy.__version__,
            "dask": dask.__version__,
            "zarr": zarr.__version__,
            "voxelflow": voxelflow.__version__,
        }
    return dict(_versions)


def is_node(folder: VPath) -> bool:
    """True if ``folder`` carries a node identity file."""
    return (folder / IDENTITY_NAME).isfile()


def write_identity(folder: VPath) -> None:
    """Make ``folder`` a cache node (idempotent)."""
    ident = folder / IDENTITY_NAME
    if ident.exists():
        return
    try:
        ident.write_text(json.dumps({"format": _IDENTITY_FORMAT, "version": _FORMAT_VERSION, "created": _now_iso()}))
    except FileNotFoundError:
        # Another process made the folder a node at the same moment and, holding its
        # lock, cleared our temporary file: the folder is a node all the same.
        if not ident.exists():
            raise


def read_marker(folder: VPath, *, warn: bool = True) -> dict | None:
    """The commit marker of a node, or None if the node is not committed.

    A marker that is missing, unreadable, not JSON or not a voxelflow marker (a
    field missing or of the wrong type) counts as not committed; unless ``warn`` is
    False the last three cases are logged as warnings, because they mean something
    interrupted or tampered with the node.

    Raises
    ------
    NewerFormatError
        The marker has a format version newer than this voxelflow reads: the node
        must be neither read nor cleared.
    """
    path = folder / MARKER_NAME
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        if warn:
            log.warning("commit marker %s is unreadable (%s); treating the node as not committed", path, exc)
        return None
    try:
        marker = json.loads(raw)
        _check_marker(marker)
    except (ValueError, AttributeError, TypeError, KeyError) as exc:
        if warn:
            log.warning("commit marker %s is corrupt (%s); treating the node as not committed", path, exc)
        return None
    if marker["version"] > _FORMAT_VERSION:
        raise NewerFormatError(
            f"commit marker {path} has format version {marker['version']}, written by a newer voxelflow; this "
            f"one reads version {_FORMAT_VERSION}. Upgrade voxelflow to use the node (it is left untouched), "
            "or remove it with `voxelflow cache rm`",
            version=marker["version"],
        )
    return marker


def _check_marker(marker: Any) -> None:
    """Raise ValueError unless ``marker`` has the fields of a commit marker with their types."""
    if not isinstance(marker, dict) or marker.get("format") != _MARKER_FORMAT:
        raise ValueError(f"not a voxelflow commit marker (format {marker.get('format') if isinstance(marker, dict) else marker!r})")
    version = marker.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"version must be an integer >= 1, got {version!r}")
    if not isinstance(marker.get("committed"), str):
        raise ValueError(f"committed must be a time stamp, got {marker.get('committed')!r}")
    marker_commit_time(marker)
    if not isinstance(marker.get("key_hash"), (str, type(None))):
        raise ValueError(f"key_hash must be a string or null, got {marker.get('key_hash')!r}")
    payload = marker.get("payload")
    if payload is not None and not (isinstance(payload, dict) and isinstance(payload.get("kind"), str) and (
            isinstance(payload.get("name"), str) or payload.get("kind") == "children")):
        raise ValueError(f"payload must be null or an object with a kind and a name, got {payload!r:.200}")
    if not isinstance(marker.get("versions", {}), dict):
        raise ValueError(f"versions must be an object, got {marker.get('versions')!r}")


def write_marker(
    folder: VPath,
    *,
    key: Any,
    key_hash: str | None,
    wall_seconds: float | None,
    payload: dict | None,
) -> dict:
    """Atomically write the commit marker of ``folder`` and return its contents.

    Parameters
    ----------
    key, key_hash
        Output of :func:`normalise_key`.
    wall_seconds : float or None
        Seconds from ``cdir_init`` to commit, None if unknown.
    payload : dict or None
        Description of what :func:`voxelflow.save` stored (kind, file name, shape,
        ...), None for nodes filled by other writers.
    """
    marker = {
        "format": _MARKER_FORMAT,
        "version": _FORMAT_VERSION,
        "committed": _now_iso(),
        "key": key,
        "key_hash": key_hash,
        "wall_seconds": wall_seconds,
        "versions": library_versions(),
        "payload": payload,
    }
    (folder / MARKER_NAME).write_text(json.dumps(marker, indent=1))
    return marker


def marker_commit_time(marker: dict) -> datetime:
    """The commit time stored in ``marker`` (timezone-aware, UTC)."""
    return datetime.fromisoformat(marker["committed"])


def _now_iso() -> str:
    return datetime.fromtimestamp(time.time(), UTC).isoformat()
