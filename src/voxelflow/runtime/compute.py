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
import resource
import sys

import dask

__all__ = [
    "compute_context",
    "distributed_client",
    "process_peak_memory_mb",
    "start_local_cluster",
    "worker_peak_memory_mb",
]


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

    cluster = LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker, memory_limit=memory_limit,
                           processes=True, dashboard_address=dashboard_address)
    try:
        return Client(cluster), cluster
    except BaseException:
        cluster.close()
        raise


@contextlib.contextmanager
def compute_context(scheduler: str = "", workers: int = 0, threads_per_worker: int = 1, memory_limit: str = "4GB"):
    """Make every Dask computation inside the block run where the configuration says.

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

    Yields
    ------
    distributed.Client or None
        The client, or None for the in-process threaded scheduler.
    """
    if scheduler:
        from distributed import Client

        with Client(scheduler, set_as_default=True) as client:
            yield client
    elif workers > 0:
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
