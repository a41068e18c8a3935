"""zarr 3 store wrappers that need no knowledge of images.

:class:`CompleteChunkStore` makes absent chunks errors. zarr returns the fill
value for a chunk that has no file, which is how it saves space for empty
chunks. voxelflow writes every chunk of its own arrays (``write_empty_chunks``),
so for them an absent chunk means a lost file, and reading it as zeros would be
a silently wrong result.

:class:`WriteGate` stops a failed write from writing on. zarr writes chunks and
metadata documents concurrently; when one fails, the call raises while its
siblings are still running, and so do the other tasks of a failed
``dask.array.store``. Their files would land in a folder that the caller is
already removing, retrying or restarting.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

from zarr.storage import WrapperStore

from voxelflow.errors import MissingChunkError

__all__ = ["METADATA_KEYS", "CompleteChunkStore", "WriteGate", "WriteGateClosedError"]

#: Names of zarr metadata documents (absent ones are normal: zarr probes for several formats).
METADATA_KEYS = ("zarr.json", ".zarray", ".zattrs", ".zgroup", ".zmetadata")


class CompleteChunkStore(WrapperStore):
    """Wrap a store so that reading a chunk that does not exist raises :class:`MissingChunkError`.

    Parameters
    ----------
    store : zarr.abc.store.Store
    url : str
        Where the store is, for the error message.

    Attributes
    ----------
    error : type
        The exception raised for an absent chunk (a subclass may name its own).
    """

    error: type[Exception] = MissingChunkError

    def __init__(self, store, url: str = ""):
        super().__init__(store)
        self._url = url

    def _with_store(self, store):
        return type(self)(store, self._url)

    def _check(self, key: str, value):
        if value is None and key.rsplit("/", 1)[-1] not in METADATA_KEYS:
            raise self.error(f"chunk {key!r} of {self._url} is missing (deleted or never written)")
        return value

    async def get(self, key, prototype, byte_range=None):
        return self._check(key, await self._store.get(key, prototype, byte_range))

    async def get_partial_values(self, prototype, key_ranges):
        key_ranges = list(key_ranges)
        values = await self._store.get_partial_values(prototype, key_ranges)
        return [self._check(key, v) for (key, _), v in zip(key_ranges, values)]


class WriteGateClosedError(RuntimeError):
    """A write reached a :class:`WriteGate` after the write it belongs to had failed."""


class _GateState:
    def __init__(self):
        self.cond = threading.Condition()
        self.busy = 0
        self.closed = False


class WriteGate(WrapperStore):
    """Wrap a store so that, after a failure, no write starts and none is left running.

    Every ``set`` and ``delete`` is counted while it runs. :meth:`close_and_wait`
    refuses every later write with :class:`WriteGateClosedError` and returns once
    the writes in flight have finished, so the caller can remove or reuse the
    folder. The count lives in this process: a gate sent to another process
    (distributed workers) arrives open and guards only that copy's writes.

    Parameters
    ----------
    store : zarr.abc.store.Store
    """

    def __init__(self, store, _state: _GateState | None = None):
        super().__init__(store)
        self._state = _state or _GateState()

    def _with_store(self, store):
        return type(self)(store, self._state)  # views of the store (read-only, ...) share the gate

    def __getstate__(self):
        return {"_store": self._store}

    def __setstate__(self, state):
        self.__init__(state["_store"])

    def close_and_wait(self) -> None:
        """Refuse further writes and return once no write is in progress."""
        state = self._state
        with state.cond:
            state.closed = True
            state.cond.wait_for(lambda: state.busy == 0)

    @contextlib.contextmanager
    def _writing(self, key: str):
        """Count one write of ``key`` while the block runs; refused once the gate is closed."""
        state = self._state
        with state.cond:
            if state.closed:
                raise WriteGateClosedError(f"not writing {key!r}: the write it belongs to has failed")
            state.busy += 1
        try:
            yield
        finally:
            with state.cond:
                state.busy -= 1
                state.cond.notify_all()

    async def set(self, key, value):
        with self._writing(key):
            await self._store.set(key, value)

    async def set_if_not_exists(self, key, value):
        with self._writing(key):
            await self._store.set_if_not_exists(key, value)

    async def _set_many(self, values):
        # the wrapped store's own _set_many would bypass the count
        await asyncio.gather(*(self.set(key, value) for key, value in values))

    async def delete(self, key):
        with self._writing(key):
            await self._store.delete(key)

    async def delete_dir(self, prefix):
        with self._writing(prefix):
            await self._store.delete_dir(prefix)
