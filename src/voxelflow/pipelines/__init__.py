"""Whole workflows built from :mod:`voxelflow.steps`, and where their Dask work runs.

* :mod:`voxelflow.pipelines.plaque`: the plaque-counting pipeline.
* :func:`compute_context`: run a block on a Dask scheduler address, a local
  cluster of worker processes, or the in-process threaded scheduler.
"""

from __future__ import annotations

import contextlib

import dask

__all__ = ["compute_context"]


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
        from distributed import Client, LocalCluster

        with LocalCluster(n_workers=workers, threads_per_worker=threads_per_worker, memory_limit=memory_limit,
                          processes=True, dashboard_address=None) as cluster, Client(cluster) as client:
            yield client
    else:
        with dask.config.set(scheduler="threads"):
            yield None
