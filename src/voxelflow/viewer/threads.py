"""Give the process's threads back to napari before it loads image chunks.

napari computes the visible chunks of a dask-backed layer with Dask's default
scheduler. While a ``distributed.Client`` is alive it *is* the default
scheduler, so every chunk napari needs makes a round trip through the
distributed scheduler and its worker threads instead of the local thread pool;
the seed manual reports chunk loading as slow in that state whatever
``threads_per_worker`` is. Closing the client (and a cluster it started) restores
the local threaded scheduler (``benchmarks/bench_viewer_threads.py`` measures it).

Two remedies live here: :func:`release_dask_client` closes the client (what
``voxelflow view`` does before loading anything), and :class:`LocalThreadsArray`
makes one layer read on local threads while the client stays up for more work
(what the ``add_*`` helpers use by default when a client is alive).
"""

from __future__ import annotations

import sys


def client_is_alive() -> bool:
    """True when a ``distributed.Client`` is Dask's default scheduler in this process."""
    if "distributed" not in sys.modules:
        return False
    from distributed import default_client

    try:
        default_client()
    except ValueError:
        return False
    return True


def local_threads(data):
    """Wrap a dask array, or each level of a list of them, in :class:`LocalThreadsArray`."""
    import dask.array as da

    if isinstance(data, list):
        return [local_threads(level) for level in data]
    return LocalThreadsArray(data) if isinstance(data, da.Array) else data


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


class LocalThreadsArray:
    """Read-only array view of a dask array that always loads on local threads.

    napari computes a dask layer's visible chunks with Dask's *default*
    scheduler, which is the distributed client while one is alive. Indexing this
    view computes with ``scheduler="threads"`` instead, so a viewer stays fast
    while the client is kept for further pipeline work.

    Parameters
    ----------
    arr : dask.array.Array
        Any shape and dtype; it is not computed here.
    """

    __slots__ = ("dask",)

    def __init__(self, arr):
        self.dask = arr

    @property
    def shape(self) -> tuple[int, ...]:
        return self.dask.shape

    @property
    def dtype(self):
        return self.dask.dtype

    @property
    def ndim(self) -> int:
        return self.dask.ndim

    @property
    def size(self) -> int:
        return self.dask.size

    def __len__(self) -> int:
        return len(self.dask)

    def __getitem__(self, key):
        # Stay lazy: napari crops a slice to the visible tile before reading it.
        return LocalThreadsArray(self.dask[key])

    def __array__(self, dtype=None, copy=None):
        import numpy as np

        out = np.asarray(self.dask.compute(scheduler="threads"))
        return out.astype(dtype, copy=False) if dtype is not None else out

    def __repr__(self) -> str:
        return f"LocalThreadsArray({self.dask!r})"
