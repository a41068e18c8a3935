"""Write gates that stop a failed ``dask.array.store`` from writing after it has raised.

The threaded scheduler re-raises the first task error while other tasks are
still running; their chunk writes would land in a target that the caller is
already removing or retrying. :class:`GuardedTargets` wraps the targets so that,
once closed, no new write starts and the close waits for those in flight.
"""

from __future__ import annotations

import threading

__all__ = ["GuardedTargets", "in_process_scheduler"]


def in_process_scheduler(collections) -> bool:
    """True if ``collections`` compute on a scheduler of this process (threads or sync)."""
    import dask.base
    import dask.local
    import dask.threaded

    return dask.base.get_scheduler(collections=collections) in (dask.threaded.get, dask.local.get_sync)


class GuardedTargets:
    """Write gates for ``da.store`` targets that can be closed after a failure.

    Parameters
    ----------
    arrays : sequence of array-likes supporting ``__setitem__``
        The real targets (zarr arrays).

    Attributes
    ----------
    targets : list
        One gate per array: pass these to ``da.store`` instead of the arrays.
        Gates hold a lock, so they only work with in-process schedulers.
    """

    def __init__(self, arrays):
        self._cond = threading.Condition()
        self._busy = 0
        self._closed = False
        self.targets = [_Gate(self, a) for a in arrays]

    def close_and_wait(self) -> None:
        """Refuse further writes and return once no write is in progress."""
        with self._cond:
            self._closed = True
            self._cond.wait_for(lambda: self._busy == 0)


class _Gate:
    def __init__(self, owner: GuardedTargets, array):
        self._owner, self._array = owner, array
        self.shape, self.dtype, self.ndim = array.shape, array.dtype, array.ndim

    def __setitem__(self, key, value) -> None:
        owner = self._owner
        with owner._cond:
            if owner._closed:
                return
            owner._busy += 1
        try:
            self._array[key] = value
        finally:
            with owner._cond:
                owner._busy -= 1
                owner._cond.notify_all()
