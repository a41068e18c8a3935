"""Give the process's threads back to napari before it loads image chunks.

napari computes the visible chunks of a dask-backed layer with Dask's default
scheduler. While a ``distributed.Client`` is alive it *is* the default
scheduler, so every chunk napari needs makes a round trip through the
distributed scheduler and its worker threads instead of the local thread pool;
the seed manual reports chunk loading as slow in that state whatever
``threads_per_worker`` is. Closing the client (and a cluster it started) restores
the local threaded scheduler (``benchmarks/bench_viewer_threads.py`` measures it).
"""

from __future__ import annotations

import sys


def release_dask_client() -> int:
    """Close every default ``distributed.Client`` of this process.

    A client that started its own ``LocalCluster`` closes that cluster too.
    Nothing happens when ``distributed`` was never imported or no client exists.

    Returns
    -------
    int
        The number of clients closed.
    """
    if "distributed" not in sys.modules:
        return 0
    from distributed import default_client

    closed = 0
    # Closing the default client may promote another live client to default.
    while True:
        try:
            client = default_client()
        except ValueError:
            return closed
        client.close()
        closed += 1
