"""A failed write leaves nothing running: no file lands after the failure has been raised.

zarr writes chunks and metadata concurrently and a failed ``dask.array.store``
re-raises while its other tasks still run. These tests hold some writes back on
events, fail another, and check that the held-back work never reaches the disk
after the caller has seen the error (and, for resumable writes, never marks a
chunk of a restarted folder as done).
"""

from __future__ import annotations

import asyncio
import os
import threading

import dask
import dask.array as da
import numpy as np
import pytest
import zarr
from zarr.storage import LocalStore, WrapperStore

import voxelflow
from voxelflow.io.chunk_ledger import ChunkLedger
from voxelflow.io.ome_zarr import write_ome_zarr
from voxelflow.zarr_stores import WriteGate, WriteGateClosedError


def _files(folder) -> set[str]:
    return {os.path.relpath(os.path.join(d, f), folder) for d, _, fs in os.walk(folder) for f in fs}


class _HeldStore(WrapperStore):
    """A local store whose write of ``held`` starts, then waits for ``release`` before it finishes."""

    def __init__(self, store, held: str, started: threading.Event, release: threading.Event):
        super().__init__(store)
        self.held, self.started, self.release = held, started, release

    def _with_store(self, store):
        return type(self)(store, self.held, self.started, self.release)

    async def set(self, key, value):
        if key == self.held:
            self.started.set()
            await asyncio.to_thread(self.release.wait, 30)
        await self._store.set(key, value)


def test_close_waits_for_writes_in_flight_and_refuses_later_ones(tmp_path):
    started, release = threading.Event(), threading.Event()
    gate = WriteGate(_HeldStore(LocalStore(str(tmp_path)), "a/c/0", started, release))
    arr = zarr.create_array(gate, name="a", shape=(4,), chunks=(4,), dtype="i2")
    writer = threading.Thread(target=arr.__setitem__, args=(slice(None), np.arange(4, dtype="i2")))
    writer.start()
    assert started.wait(30)
    closed = threading.Event()
    closer = threading.Thread(target=lambda: (gate.close_and_wait(), closed.set()))
    closer.start()
    # the close is still waiting: the held write has not finished
    assert not closed.wait(0.2)
    release.set()
    closer.join(30)
    writer.join(30)
    assert closed.is_set()
    np.testing.assert_array_equal(zarr.open_array(LocalStore(str(tmp_path)), path="a")[:], np.arange(4))
    with pytest.raises(WriteGateClosedError, match="has failed"):
        arr[:] = 0
    before = _files(tmp_path)
    with pytest.raises(WriteGateClosedError):
        zarr.create_array(gate, name="b", shape=(2,), chunks=(2,), dtype="i2")
    assert _files(tmp_path) == before


def test_a_gate_sent_to_another_process_arrives_open(tmp_path):
    import pickle

    gate = WriteGate(LocalStore(str(tmp_path)))
    gate.close_and_wait()
    copy = pickle.loads(pickle.dumps(gate))
    zarr.create_array(copy, name="a", shape=(2,), chunks=(2,), dtype="i2")[:] = 5
    assert "a/c/0" in _files(tmp_path)


def _held_blocks(release: threading.Event, finished: list, shape=(4, 8), chunks=(1, 8)):
    """A dask array whose first block fails at once and whose other blocks wait for ``release``."""

    def block(x, block_info=None):
        index = block_info[0]["chunk-location"][0]
        if index == 0:
            raise OSError("the first block failed")
        release.wait(30)
        finished.append(index)
        return x + 1

    return da.zeros(shape, chunks=chunks, dtype=np.int16).map_blocks(block, dtype=np.int16)


def test_a_failed_cache_save_writes_nothing_after_it_raised(tmp_path):
    release, finished = threading.Event(), []
    arr = _held_blocks(release, finished)
    node = tmp_path / "node"
    with dask.config.set(scheduler="threads", num_workers=4), pytest.raises(OSError, match="first block"):
        voxelflow.save(str(node), arr)
    after_error = _files(node)
    release.set()
    _wait_for(lambda: len(finished) == 3)
    # the three held blocks ran to their end, but none of them stored its chunk
    assert _files(node) == after_error
    assert not any("/c/" in f for f in after_error)
    voxelflow.save(str(node), da.ones((4, 8), chunks=(1, 8), dtype=np.int16))
    np.testing.assert_array_equal(voxelflow.load(str(node)).compute(), np.ones((4, 8)))


def test_a_failed_image_write_leaves_no_folder_behind(tmp_path):
    release, finished = threading.Event(), []
    arr = _held_blocks(release, finished, shape=(4, 8, 8), chunks=(1, 8, 8))
    out = tmp_path / "img.ome.zarr"
    with dask.config.set(scheduler="threads", num_workers=4), pytest.raises(OSError, match="first block"):
        write_ome_zarr(arr, str(out), axes="zyx", levels=2, chunks=(1, 8, 8))
    release.set()
    _wait_for(lambda: len(finished) == 3)
    assert not out.exists()


def test_a_late_record_of_an_abandoned_start_is_ignored(tmp_path):
    folder = str(tmp_path / "w")
    first = ChunkLedger.open(folder, {"job": 1})
    first.record((0, 0))
    second = ChunkLedger.open(folder, {"job": 2})  # another job restarts the folder
    assert second.fresh and not second.done
    first.record((1, 1))  # a task of the first start finishing late
    second.record((2, 2))
    resumed = ChunkLedger.open(folder, {"job": 2})
    assert not resumed.fresh and resumed.done == {(2, 2)}


def _wait_for(condition) -> None:
    done = threading.Event()
    for _ in range(3000):
        if condition():
            return
        done.wait(0.01)
    raise AssertionError("the held tasks did not finish")

