"""Where Dask work runs: clients, local clusters, peak memory.

* :func:`start_local_cluster`: a process-based ``LocalCluster`` and its client
  (used by :func:`compute_context` and by :class:`voxelflow.PLComponents`).
* :func:`compute_context`: run a block on a Dask scheduler address, a local
  cluster of worker processes, or the in-process threaded scheduler.
* :func:`process_peak_memory_mb` / :func:`worker_peak_memory_mb`: peak memory of this
  process and of every Dask worker process.
"""

from __future__ import annotations

import contextlib
import math
import re
import resource
import sys

import dask

from voxelflow.errors import InvalidInputError, SchedulerError

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "check_memory_limit",
    "check_scheduler_address",
    "compute_context",
    "distributed_client",
    "process_peak_memory_mb",
    "start_local_cluster",
    "worker_environ",
    "worker_peak_memory_mb",
]

#: Seconds to wait for a scheduler to answer before giving up (Dask's own default is 30).
DEFAULT_CONNECT_TIMEOUT = 5.0

_ADDRESS = re.compile(r"(?:(?P<scheme>[a-z]+)://)?(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(?P<port>[0-9]{1,5})")
_SCHEMES = ("tcp", "tls", "ucx", "ws", "wss")


def check_scheduler_address(address: str) -> str:
    """``address`` if it is a Dask scheduler address (``tcp://host:port``, ``tls://...``, ``host:port``).

    Raises
    ------
    InvalidInputError
        For anything else (no host, no or bad port, unknown scheme, a path after the port).
    """
    if not isinstance(address, str):
        raise InvalidInputError(f"a scheduler address must be a string, got {address!r}")
    if address.startswith("inproc://"):
        return address
    m = _ADDRESS.fullmatch(address)
    if m is None or (m["scheme"] is not None and m["scheme"] not in _SCHEMES) or not 1 <= int(m["port"]) <= 65535:
        raise InvalidInputError(
            f"{address!r} is not a scheduler address; expected SCHEME://HOST:PORT with SCHEME one of "
            f"{', '.join(_SCHEMES)} and PORT 1..65535, e.g. tcp://10.0.0.5:8786"
        )
    return address


def check_memory_limit(limit) -> str:
    """``limit`` if it is ``'auto'`` or a memory size > 0 that Dask understands (``'4GB'``, ``'512 MiB'``).

    Raises
    ------
    InvalidInputError
        For anything else.
    """
    from dask.utils import parse_bytes

    if isinstance(limit, str) and limit == "auto":
        return limit
    try:
        size = parse_bytes(limit) if isinstance(limit, str) and limit.strip() else None
    except (ValueError, TypeError):
        size = None
    if size is None or not math.isfinite(size) or size <= 0:
        raise InvalidInputError(f"expected a memory size > 0 such as '4GB' or '512 MiB' (or 'auto'), got {limit!r}")
    return limit


def start_local_cluster(n_workers: int, threads_per_worker: int, memory_limit: str | int | float,
                        dashboard_address: str | None = None):
    """Start a local cluster of worker processes and a client connected to it.

    Parameters
    ----------
    n_workers : int
        Worker processes.
    threads_per_worker : int
    memory_limit : str or number
        Memory limit of each worker (``"4GB"`` or bytes).
    dashboard_address : str, optional
        Where the dashboard listens (``":8787"``); None starts none.

    Returns
    -------
    client : distributed.Client
    cluster : distributed.LocalCluster
        Close the client, then the cluster.
    """
    from distributed import Client, LocalCluster

    with dask.config.set({"distributed.nanny.pre-spawn-environ": worker_environ()}):
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker, memory_limit=memory_limit,
                               processes=True, dashboard_address=dashboard_address)
    try:
        return Client(cluster), cluster
    except BaseException:
        cluster.close()
        raise


def worker_environ() -> dict:
    """Environment of local worker processes: Dask's, without ``MALLOC_TRIM_THRESHOLD_``.

    Dask sets that variable so glibc returns freed memory at once; setting it also
    turns off glibc's adaptive mmap threshold, so every large array (a decoded
    chunk, its mask, its labels) is a fresh mapping whose pages fault in again:
    measured 40 % of a worker's CPU time on the streaming pass, in system time.
    voxelflow's chunk tasks return freed memory themselves (``malloc_trim`` after
    each chunk group), so worker memory stays bounded without it.
    """
    env = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}) or {})
    env.pop("MALLOC_TRIM_THRESHOLD_", None)
    return env


@contextlib.contextmanager
def compute_context(scheduler: str = "", workers: int = 0, threads_per_worker: int = 1, memory_limit: str = "4GB",
                    *, connect_timeout: float = DEFAULT_CONNECT_TIMEOUT, security=None):
    """Make every Dask computation inside the block run where the configuration says.

    Only connect to schedulers you trust: a Dask scheduler sends the code its
    workers and clients run (pickled functions), so a hostile scheduler can run
    code in this process. Use ``tls://`` with ``security`` across networks you do
    not control.

    Parameters
    ----------
    scheduler : str
        Address of a running scheduler (``tcp://host:8786``); wins over ``workers``.
    workers : int
        Number of local worker processes to start (0: threads of this process).
    threads_per_worker : int
        Threads of each local worker.
    memory_limit : str
        Memory limit of each local worker, e.g. ``"4GB"``.
    connect_timeout : float
        Seconds to wait for ``scheduler`` to answer.
    security : distributed.security.Security, optional
        TLS certificates for ``tls://`` schedulers.

    Yields
    ------
    distributed.Client or None
        The client, or None for the in-process threaded scheduler.

    Raises
    ------
    SchedulerError
        ``scheduler`` did not answer within ``connect_timeout`` seconds.
    InvalidInputError
        ``scheduler`` is not an address or ``memory_limit`` not a size.
    """
    if scheduler:
        check_scheduler_address(scheduler)
        if isinstance(connect_timeout, bool) or not isinstance(connect_timeout, (int, float)) \
                or not math.isfinite(connect_timeout) or connect_timeout <= 0:
            raise InvalidInputError(f"connect_timeout must be a number of seconds > 0, got {connect_timeout!r}")
        from distributed import Client

        try:
            client = Client(scheduler, set_as_default=True, timeout=connect_timeout, security=security)
        except (OSError, TimeoutError) as exc:
            raise SchedulerError(
                f"cannot reach the Dask scheduler at {scheduler} within {connect_timeout:g} s "
                f"(is it running and reachable from here?): {type(exc).__name__}: {exc}"
            ) from exc
        with client:
            yield client
    elif workers > 0:
        check_memory_limit(memory_limit)
        client, cluster = start_local_cluster(workers, threads_per_worker, memory_limit)
        with cluster, client:
            yield client
    else:
        with dask.config.set(scheduler="threads"):
            yield None


def distributed_client():
    """The ``distributed.Client`` that dask computations go to now, or None."""
    if "distributed" not in sys.modules:
        return None
    from distributed import Client

    client = getattr(dask.base.get_scheduler(), "__self__", None)
    return client if isinstance(client, Client) else None


def process_peak_memory_mb() -> float:
    """Peak resident memory of this process so far, in MiB (``ru_maxrss``)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)  # KiB on Linux


def worker_peak_memory_mb() -> dict[str, float] | None:
    """Peak resident memory of every Dask worker process, in MiB.

    Read from each worker's ``ru_maxrss``, so it is exact (no sampling) but covers the
    worker's whole life: for workers that ran other work before this run it is an
    upper bound. Best effort: a cluster that cannot answer gives None.

    Returns
    -------
    dict of str to float, or None
        Worker address -> peak MiB; None on the threaded scheduler (no workers).
    """
    client = distributed_client()
    if client is None:
        return None
    try:
        peaks = client.run(process_peak_memory_mb)
    except Exception:  # a failing cluster must not hide the run's own result or error
        return None
    return dict(sorted(peaks.items()))
