"""Writing a stored full-resolution volume (e.g. the label image, ``output.full_res = "all"``) resumes.

A step's image output is written chunk by chunk in its pending node with a ledger
of finished level-0 chunks. Kills are simulated by raising from the ledger after k
recorded chunks (any k, any chunking, one or more pyramid levels), then the step
is called again: it must store exactly the chunks not recorded, and every level
must equal a clean run's (and the labels ``scipy.ndimage.label``'s up to
numbering). One test kills a real process with SIGKILL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pytest
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import ndimage as ndi

from steps_helpers import Killed, blobs
from voxelflow.cache import cdir_query
from voxelflow.io.chunk_ledger import ChunkLedger
from voxelflow.ops import label as op_label
from voxelflow.steps import Step, label


def _levels(node: Path) -> list[np.ndarray]:
    group = zarr.open_group(str(node / "out0" / "data.ome.zarr"), mode="r")
    return [group[str(k)][...] for k in range(len(list(group.array_keys())))]


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """True if two label images split the voxels into the same objects (ids may differ)."""
    if not np.array_equal(a > 0, b > 0):
        return False
    pairs = np.unique(np.stack([a[a > 0], b[b > 0]]), axis=1)
    return len(np.unique(pairs[0])) == len(np.unique(pairs[1])) == pairs.shape[1]


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    shape=st.tuples(st.integers(6, 18), st.integers(8, 26), st.integers(8, 26)),
    chunk=st.sampled_from([4, 6, 8]),
    levels=st.integers(1, 3),
    kill_frac=st.floats(0, 1),
    seed=st.integers(0, 1000),
)
def test_killed_label_write_resumes_to_the_clean_image(tmp_path_factory, shape, chunk, levels, kill_frac, seed):
    bs_np = blobs(shape, seed)
    bs = da.from_array(bs_np, chunks=chunk)
    n_chunks = int(np.prod(bs.numblocks))
    kill_after = int(kill_frac * n_chunks)
    root = tmp_path_factory.mktemp("write")
    storage = {"chunks": (chunk,) * 3, "levels": levels, "factors": 2}
    real_record = ChunkLedger.record
    recorded = []

    def dying_record(self, index):
        if len(recorded) >= kill_after:
            raise Killed
        real_record(self, index)
        recorded.append(index)

    with dask.config.set(scheduler="synchronous"):
        label(bs, connectivity=1, cache_url=str(root / "clean"), storage_options=storage)
        clean = _levels(root / "clean")
        node = root / "label"
        ChunkLedger.record = dying_record
        try:
            if kill_after < n_chunks:
                with pytest.raises(Killed):
                    label(bs, connectivity=1, cache_url=str(node), storage_options=storage)
                assert cdir_query(str(node)).commit is None
                assert len(recorded) == kill_after
            else:
                label(bs, connectivity=1, cache_url=str(node), storage_options=storage)
        finally:
            ChunkLedger.record = real_record
        stored_again = []

        def counting_record(self, index):
            stored_again.append(index)
            real_record(self, index)

        ChunkLedger.record = counting_record
        try:
            resumed, n = label(bs, connectivity=1, cache_url=str(node), storage_options=storage)
        finally:
            ChunkLedger.record = real_record
    if kill_after < n_chunks:
        # every chunk is stored exactly once over the two runs
        assert sorted(stored_again) == sorted(set(np.ndindex(*bs.numblocks)) - set(recorded))
    assert not (node / "parts").exists()  # committing drops the partial write
    got = _levels(node)
    assert len(got) == len(clean) == levels
    for a, b in zip(got, clean):
        np.testing.assert_array_equal(a, b)
    ref, n_ref = ndi.label(bs_np)
    assert n == n_ref and _same_partition(got[0], ref)
    np.testing.assert_array_equal(resumed.compute(), got[0])


def test_a_partial_write_of_other_work_is_not_reused(tmp_path):
    bs_np = blobs((12, 16, 16), 3)
    storage = {"chunks": (6, 8, 8), "levels": 2}
    node = tmp_path / "label"
    real_record = ChunkLedger.record

    def dying_record(self, index):
        real_record(self, index)
        raise Killed

    ChunkLedger.record = dying_record
    try:
        with dask.config.set(scheduler="synchronous"), pytest.raises(Killed):
            label(da.from_array(bs_np, chunks=6), cache_url=str(node), storage_options=storage)
    finally:
        ChunkLedger.record = real_record
    # same node, other input: the chunk it wrote must not leak into the result
    other = da.from_array(~bs_np, chunks=6)
    with dask.config.set(scheduler="synchronous"):
        got, _ = label(other, cache_url=str(node), storage_options=storage)
    expected, _ = op_label(other)
    np.testing.assert_array_equal(got.compute(), expected.compute())


_CHILD = textwrap.dedent(
    """
    import sys, time
    import dask, dask.array as da, numpy as np
    from scipy import ndimage as ndi
    from voxelflow.io.chunk_ledger import ChunkLedger
    from voxelflow.steps import label

    node, slow = sys.argv[1], float(sys.argv[2])
    rng = np.random.default_rng(7)
    img = ndi.gaussian_filter(rng.random((24, 48, 48)), 1.2)
    bs = da.from_array(img > np.quantile(img, 0.8), chunks=8)
    real = ChunkLedger.record
    def record(self, index):
        real(self, index)
        print("stored", *index, flush=True)
        time.sleep(slow)
    ChunkLedger.record = record
    with dask.config.set(scheduler="threads", num_workers=1):
        labels, n = label(bs, connectivity=1, cache_url=node, storage_options={"chunks": (8, 8, 8), "levels": 2})
    print("objects", n, flush=True)
    """
)


def test_sigkill_mid_write_then_rerun_stores_only_the_rest(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    node = tmp_path / "cache" / "label"
    child = subprocess.Popen([sys.executable, str(script), str(node), "0.2"], stdout=subprocess.PIPE, text=True,
                             env=env)
    before = set()
    deadline = time.monotonic() + 120
    while len(before) < 5 and time.monotonic() < deadline:
        line = child.stdout.readline()
        if line.startswith("stored"):
            before.add(tuple(int(v) for v in line.split()[1:]))
    child.send_signal(signal.SIGKILL)
    child.wait()
    # a chunk may have been stored and recorded after the last line was read
    ledger = next((node / "parts").glob("*-out0.ome.zarr")) / ".voxelflow-ledger.done"
    done = {tuple(int(v) for v in line.split()[1].split(",")) for line in ledger.read_text().splitlines()}
    assert before <= done and len(done) < 3 * 6 * 6
    rerun = subprocess.run([sys.executable, str(script), str(node), "0"], capture_output=True, text=True, env=env,
                           check=True)
    again = [tuple(int(v) for v in line.split()[1:]) for line in rerun.stdout.splitlines() if line.startswith("stored")]
    assert sorted(again) == sorted(set(np.ndindex(3, 6, 6)) - done)
    clean = tmp_path / "clean"
    subprocess.run([sys.executable, str(script), str(clean), "0"], capture_output=True, text=True, env=env,
                   check=True)
    for a, b in zip(_levels(node), _levels(clean)):
        np.testing.assert_array_equal(a, b)
    rng = np.random.default_rng(7)
    img = ndi.gaussian_filter(rng.random((24, 48, 48)), 1.2)
    assert int(rerun.stdout.split("objects")[1]) == ndi.label(img > np.quantile(img, 0.8))[1]


def _copy(bs):
    return bs


def test_an_unchanged_step_is_not_rewritten(tmp_path):
    # a committed node is read back: no chunk is stored again
    bs = da.from_array(blobs((8, 12, 12), 1), chunks=4)
    step = Step(_copy, kind="BS->BS", name="copy")
    with dask.config.set(scheduler="synchronous"):
        step(bs, cache_url=str(tmp_path / "copy"), storage_options={"chunks": (4, 4, 4), "levels": 2})
        real_record, seen = ChunkLedger.record, []
        ChunkLedger.record = lambda self, index: seen.append(index)
        try:
            step(bs, cache_url=str(tmp_path / "copy"), storage_options={"chunks": (4, 4, 4), "levels": 2})
        finally:
            ChunkLedger.record = real_record
    assert seen == []
