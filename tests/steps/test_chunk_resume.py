"""Chunk-level resume inside a cached step: a pass killed after k chunk groups resumes exactly.

Kills are simulated by raising from the part store after k stored groups (any
k, any chunking), then the step is called again; the reference is the same op
without a cache and ``scipy.ndimage`` on the whole array. One test kills a real
process with SIGKILL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import dask
import dask.array as da
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import ndimage as ndi

from steps_helpers import Killed, blobs
from voxelflow.cache import PartStore, cdir_query, parts_progress
from voxelflow.ops import _ccpass
from voxelflow.ops import object_table as op_object_table
from voxelflow.steps import Step


@pytest.fixture
def small_groups(monkeypatch):
    # one chunk per group, so a small array has many groups to kill between
    monkeypatch.setattr(_ccpass, "GROUP_BYTES", 1)


# the fixture only sets a constant, the same for every example
@settings(max_examples=8, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    shape=st.tuples(st.integers(8, 20), st.integers(8, 24), st.integers(8, 24)),
    chunk=st.integers(4, 9),
    kill_frac=st.floats(0, 1),
    seed=st.integers(0, 1000),
)
def test_killed_pass_resumes_to_the_clean_result(tmp_path_factory, small_groups, shape, chunk, kill_frac, seed):
    bs_np = blobs(shape, seed)
    bs = da.from_array(bs_np, chunks=chunk)
    n_groups = int(np.prod(bs.numblocks))
    kill_after = int(kill_frac * n_groups)
    node = tmp_path_factory.mktemp("resume") / "objects"
    step = Step(op_object_table, kind="BS->LC", name="objects")
    clean = op_object_table(bs, connectivity=1)

    real_save = PartStore.save
    saved = []

    def dying_save(self, part, value):
        if len(saved) >= kill_after:
            raise Killed
        real_save(self, part, value)
        saved.append(part)

    with dask.config.set(scheduler="synchronous"):
        PartStore.save = dying_save
        try:
            if kill_after < n_groups:
                with pytest.raises(Killed):
                    step(bs, connectivity=1, cache_url=str(node))
                assert cdir_query(str(node)).commit is None
                assert parts_progress(str(node)) == (kill_after, n_groups)
            else:  # never killed: the pass finishes in one go
                step(bs, connectivity=1, cache_url=str(node))
        finally:
            PartStore.save = real_save

        computed = []

        def counting_save(self, part, value):
            computed.append(part)
            real_save(self, part, value)

        PartStore.save = counting_save
        try:
            resumed = step(bs, connectivity=1, cache_url=str(node))
        finally:
            PartStore.save = real_save
    if kill_after < n_groups:
        assert sorted(computed) == sorted(set(range(n_groups)) - set(saved))
    assert not (node / "parts").exists()  # committing drops the parts
    assert resumed.equals(clean)
    lab, n = ndi.label(bs_np)
    assert len(resumed) == n
    assert sorted(resumed["voxels"]) == sorted(np.bincount(lab.ravel())[1:])


@pytest.mark.parametrize("kill_after", [0, 5, 17])
def test_killed_table_of_a_stored_label_image_resumes(tmp_path, kill_after):
    # the object table of a stored OS (output.full_res = "all") keeps its finished chunks too
    lab, n = ndi.label(blobs((12, 18, 18), 4))
    os_arr = da.from_array(lab.astype(np.int32), chunks=6)
    intensity = da.from_array(np.random.default_rng(1).random(lab.shape), chunks=6)
    n_chunks = int(np.prod(os_arr.numblocks))
    node = tmp_path / "objects"
    step = Step(op_object_table, kind="OS->LC", name="objects")
    real_save, saved = PartStore.save, []

    def dying_save(self, part, value):
        if len(saved) >= kill_after:
            raise Killed
        real_save(self, part, value)
        saved.append(part)

    computed = []

    def counting_save(self, part, value):
        computed.append(part)
        real_save(self, part, value)

    with dask.config.set(scheduler="synchronous"):
        PartStore.save = dying_save
        try:
            with pytest.raises(Killed):
                step(os_arr, intensity, kind="os", cache_url=str(node))
        finally:
            PartStore.save = real_save
        assert parts_progress(str(node)) == (kill_after, n_chunks)
        PartStore.save = counting_save
        try:
            resumed = step(os_arr, intensity, kind="os", cache_url=str(node))
        finally:
            PartStore.save = real_save
    assert sorted(computed) == sorted(set(range(n_chunks)) - set(saved))
    assert resumed.equals(op_object_table(os_arr, intensity, kind="os"))
    assert len(resumed) == n
    assert sorted(resumed["voxels"]) == sorted(np.bincount(lab.ravel())[1:])


def test_parts_of_other_work_are_not_reused(tmp_path, small_groups):
    bs_np = blobs((12, 16, 16), 3)
    bs = da.from_array(bs_np, chunks=6)
    node = tmp_path / "objects"
    step = Step(op_object_table, kind="BS->LC", name="objects")
    real_save = PartStore.save

    def dying_save(self, part, value):
        real_save(self, part, value)
        raise Killed

    PartStore.save = dying_save
    try:
        with dask.config.set(scheduler="synchronous"), pytest.raises(Killed):
            step(bs, connectivity=1, cache_url=str(node))
    finally:
        PartStore.save = real_save
    # same node, other input: its parts must not leak into the result
    other = da.from_array(~bs_np, chunks=6)
    with dask.config.set(scheduler="synchronous"):
        got = step(other, connectivity=1, cache_url=str(node))
    assert got.equals(op_object_table(other, connectivity=1))


_CHILD = textwrap.dedent(
    """
    import sys, time
    import dask, dask.array as da, numpy as np
    from scipy import ndimage as ndi
    from voxelflow.cache import PartStore
    from voxelflow.ops import _ccpass, object_table
    from voxelflow.steps import Step

    _ccpass.GROUP_BYTES = 1
    node, slow = sys.argv[1], float(sys.argv[2])
    rng = np.random.default_rng(7)
    img = ndi.gaussian_filter(rng.random((24, 48, 48)), 1.2)
    bs = da.from_array(img > np.quantile(img, 0.8), chunks=8)
    real = PartStore.save
    def save(self, part, value):
        real(self, part, value)
        print("saved", part, flush=True)
        time.sleep(slow)
    PartStore.save = save
    with dask.config.set(scheduler="threads", num_workers=1):
        table = Step(object_table, kind="BS->LC", name="objects")(bs, connectivity=1, cache_url=node)
    print("rows", len(table), flush=True)
    """
)


def test_sigkill_mid_pass_then_rerun_does_only_the_rest(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    node = str(tmp_path / "cache" / "objects")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen([sys.executable, str(script), node, "0.2"], stdout=subprocess.PIPE, text=True, env=env)
    seen = 0
    deadline = time.monotonic() + 120
    while seen < 5 and time.monotonic() < deadline:
        line = child.stdout.readline()
        seen += line.startswith("saved")
    child.send_signal(signal.SIGKILL)
    child.wait()
    done, total = parts_progress(node)
    assert total == 3 * 6 * 6 and 5 <= done < total
    rerun = subprocess.run([sys.executable, str(script), node, "0"], capture_output=True, text=True, env=env,
                           check=True)
    saved_again = [int(line.split()[1]) for line in rerun.stdout.splitlines() if line.startswith("saved")]
    assert len(saved_again) == total - done
    rows = int(rerun.stdout.split("rows")[1])
    rng = np.random.default_rng(7)
    img = ndi.gaussian_filter(rng.random((24, 48, 48)), 1.2)
    assert rows == ndi.label(img > np.quantile(img, 0.8))[1]
    assert json.loads((tmp_path / "cache" / "objects" / "step.json").read_text())["step"] == "objects"
