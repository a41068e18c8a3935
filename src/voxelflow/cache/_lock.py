"""Per-process locks on cache nodes.

A process that starts computing a node holds ``.voxelflow_lock.json`` in it until
it commits (or exits). The lock records the owner (host, pid, process start
time), a random token, when the step started (for the marker's wall time), the
requested key, and a heartbeat time.

Policy
------
* A lock is **live** if its owner is a running process on this host (pid alive,
  not a zombie, same start time, so a reused pid does not count), or, for an owner
  on another host, if its heartbeat is younger than :data:`LEASE_SECONDS`. A
  daemon thread refreshes the heartbeat of every lock this process holds every
  :data:`HEARTBEAT_SECONDS`, so long steps on shared or object stores keep their
  lease.
* Anything else (dead pid, expired lease, unparsable lock file) is **stale** and
  may be taken over.
* A process always owns its own locks again (re-initialising is fine).
* Locally the lock is created with a hard link from a complete temporary file, so
  creation is atomic and a reader never sees a half-written lock. Taking over a
  stale lock goes through a short-lived ``.break`` file created with ``O_EXCL``
  so two processes cannot both take over the same stale lock.
* Object stores have no exclusive create: the lock is written and read back, and
  the writer owns it if its token survived. This protects long-running steps
  from each other but not two processes starting within the same instant.
* Locks still held when the interpreter exits normally are released.
"""

from __future__ import annotations

import atexit
import json
import logging
import math
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import psutil

from voxelflow.cache._marker import LOCK_NAME
from voxelflow.paths import VPath

__all__ = ["HEARTBEAT_SECONDS", "LEASE_SECONDS", "LockInfo", "owned_lock", "read_lock", "refresh_held", "release", "try_acquire"]

log = logging.getLogger("voxelflow.cache")

LEASE_SECONDS = 120.0
HEARTBEAT_SECONDS = 20.0
_BREAK_STALE_SECONDS = 5.0


@dataclass(frozen=True)
class LockInfo:
    """Contents of a lock file.

    Attributes
    ----------
    host, pid, pid_created : str, int, float
        Owner process and its start time (seconds since the epoch).
    token : str
        Random id of this acquisition.
    started : float
        ``time.time()`` when the owner initialised the node.
    heartbeat : float
        Last ``time.time()`` the owner refreshed the lock.
    key, key_hash
        Key requested by the owner's ``cdir_init`` (see ``normalise_key``).
    """

    host: str
    pid: int
    pid_created: float
    token: str
    started: float
    heartbeat: float
    key: Any = None
    key_hash: str | None = None

    def to_json(self) -> str:
        return json.dumps(self.__dict__)

    def describe(self) -> str:
        since = time.strftime("%H:%M:%S", time.localtime(self.started))
        return f"pid {self.pid} on {self.host} since {since}"


def _me() -> tuple[str, int, float]:
    pid = os.getpid()
    return socket.gethostname(), pid, psutil.Process(pid).create_time()


def is_mine(info: LockInfo) -> bool:
    host, pid, created = _me()
    return info.host == host and info.pid == pid and abs(info.pid_created - created) < 1.0


def is_live(info: LockInfo) -> bool:
    """True if the owner of ``info`` is (probably) still computing."""
    if info.host != socket.gethostname():
        # a heartbeat from the future (clock skew, or an edited file) cannot hold a node for ever
        return -LEASE_SECONDS < time.time() - info.heartbeat < LEASE_SECONDS
    try:
        proc = psutil.Process(info.pid)
        return proc.status() != psutil.STATUS_ZOMBIE and abs(proc.create_time() - info.pid_created) < 1.0
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True  # cannot tell; waiting is safer than clearing a running step's work


def read_lock(node: VPath) -> LockInfo | None | bool:
    """The lock of ``node``: a LockInfo, None if unlocked, False if unparsable or of wrong field types."""
    try:
        data = json.loads((node / LOCK_NAME).read_bytes())
        info = LockInfo(**data)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError):
        return False
    return info if _well_typed(info) else False


def _well_typed(info: LockInfo) -> bool:
    def number(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    return (isinstance(info.host, str) and isinstance(info.pid, int) and not isinstance(info.pid, bool)
            and info.pid > 0 and isinstance(info.token, str) and all(
                number(v) for v in (info.pid_created, info.started, info.heartbeat))
            and isinstance(info.key_hash, (str, type(None))))


# --- locks held by this process ----------------------------------------------

_held: dict[VPath, str] = {}
_held_guard = threading.Lock()
_heartbeat_thread: threading.Thread | None = None


def _forget_all_after_fork() -> None:
    # The child is another process: the parent's locks are not its own, its heartbeat
    # thread does not exist there, and the guard may have been held at the fork.
    global _heartbeat_thread, _held_guard
    _held.clear()
    _heartbeat_thread = None
    _held_guard = threading.Lock()


os.register_at_fork(after_in_child=_forget_all_after_fork)


def _remember(node: VPath, token: str) -> None:
    global _heartbeat_thread
    with _held_guard:
        _held[node] = token
        if _heartbeat_thread is None:
            _heartbeat_thread = threading.Thread(target=_beat_forever, name="voxelflow-lock-heartbeat", daemon=True)
            _heartbeat_thread.start()


def _beat_forever() -> None:
    while True:
        time.sleep(HEARTBEAT_SECONDS)
        refresh_held()


def refresh_held() -> None:
    """Renew the heartbeat of every lock this process holds."""
    # Holding the guard while writing keeps a concurrent release() from being undone.
    with _held_guard:
        for node, token in _held.items():
            try:
                info = read_lock(node)
                if info and info.token == token:
                    info = LockInfo(**{**info.__dict__, "heartbeat": time.time()})
                    (node / LOCK_NAME).write_text(info.to_json())
            except OSError as exc:  # a flaky store must not kill the heartbeat
                log.warning("could not refresh lock of %s: %s", node, exc)


@atexit.register
def _release_all() -> None:
    with _held_guard:
        nodes = list(_held)
    for node in nodes:
        try:
            release(node)
        except Exception as exc:  # noqa: BLE001  exiting anyway: a left-over lock is stale and gets taken over
            log.debug("could not release the lock of %s at exit: %s", node, exc)


def owned_lock(node: VPath) -> LockInfo | None:
    """The lock of ``node`` if this process holds it, else None."""
    info = read_lock(node)
    return info if info and is_mine(info) else None


# --- acquire / release ---------------------------------------------------------


def try_acquire(node: VPath, key: Any, key_hash: str | None) -> tuple[bool, LockInfo | None]:
    """Try once to lock ``node`` for this process.

    Returns
    -------
    acquired : bool
    holder : LockInfo or None
        Our new lock if acquired, else the live lock that blocks us.
    """
    host, pid, created = _me()
    now = time.time()
    mine = LockInfo(host, pid, created, uuid.uuid4().hex, now, now, key, key_hash)
    existing = read_lock(node)
    if existing and is_mine(existing):
        (node / LOCK_NAME).write_text(mine.to_json())
        _remember(node, mine.token)
        return True, mine
    if existing and is_live(existing):
        return False, existing
    if existing is not None:
        log.info(
            "taking over stale lock of %s (%s)",
            node,
            existing.describe() if existing else "unreadable lock file",
        )
    acquired = _create_local(node, mine, existing) if node.is_local else _create_remote(node, mine, existing)
    if acquired:
        _remember(node, mine.token)
        return True, mine
    holder = read_lock(node)
    return False, holder if isinstance(holder, LockInfo) else None


def _create_local(node: VPath, mine: LockInfo, stale: LockInfo | None | bool) -> bool:
    lock_path = (node / LOCK_NAME).path
    if stale is not None and not _break_stale(lock_path, stale):
        return False
    tmp = f"{lock_path}.tmp-{mine.token}"
    # No fsync: after a power loss the owner is gone too, so a lost lock file is harmless.
    with open(tmp, "w") as f:
        f.write(mine.to_json())
    # FileNotFoundError: a process that got the lock first cleared the node, our temp file included.
    try:
        os.link(tmp, lock_path)
        return True
    except (FileExistsError, FileNotFoundError):
        return False
    finally:
        _unlink_quietly(tmp)


def _break_stale(lock_path: str, stale: LockInfo | bool) -> bool:
    """Remove a stale lock unless someone replaced it meanwhile; True if removed."""
    brk = f"{lock_path}.break"
    try:
        fd = os.open(brk, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        try:
            if time.time() - os.path.getmtime(brk) > _BREAK_STALE_SECONDS:
                os.unlink(brk)  # its creator died while breaking; the next attempt proceeds
        except FileNotFoundError:
            pass
        return False
    try:
        os.close(fd)
        current = read_lock(VPath(os.path.dirname(lock_path)))
        if current != stale:
            return current is None
        _unlink_quietly(lock_path)
        return True
    finally:
        _unlink_quietly(brk)


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _create_remote(node: VPath, mine: LockInfo, stale: LockInfo | None | bool) -> bool:
    path = node / LOCK_NAME
    if read_lock(node) != stale:
        return False
    path.write_text(mine.to_json())
    current = read_lock(node)
    return isinstance(current, LockInfo) and current.token == mine.token


def release(node: VPath) -> None:
    """Remove this process's lock on ``node`` (no-op if it is not ours)."""
    with _held_guard:
        token = _held.pop(node, None)
        info = read_lock(node)
        if info and (info.token == token or is_mine(info)):
            (node / LOCK_NAME).rm()
