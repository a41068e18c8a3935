"""Run-time services: log tees, the pipeline session, where Dask work runs.

* :mod:`voxelflow.runtime.logs`: :class:`MultiOutputStream`, :func:`tee_logs`, per-run log files.
* :mod:`voxelflow.runtime.session`: :class:`PLComponents` (temp folder, cache root, logs, client, viewer).
* :mod:`voxelflow.runtime.compute`: :func:`compute_context`, local clusters, peak memory.

Every change of global state (``sys.stdout``, dask config) is made inside a
context manager that restores it.
"""
