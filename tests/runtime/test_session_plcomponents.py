"""PLComponents: set-up, restoring every global, the viewer hand-off, bad input."""

import math
import os
import pathlib
import subprocess
import sys
import textwrap
import time

import dask
import dask.array as da
import distributed
import numpy as np
import psutil
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import voxelflow
from session_helpers import assert_restored, global_state, small_client
from voxelflow.errors import InvalidInputError, InvalidPathError, OptionalDependencyError
from voxelflow.runtime.session import PLComponents, default_cluster_shape


def _ran_on_a_worker(block):
    try:
        distributed.get_worker()
    except ValueError:
        return np.zeros_like(block)
    return np.ones_like(block)


def _fraction_on_workers():
    arr = da.zeros((4,), chunks=2, dtype=np.int8).map_blocks(_ran_on_a_worker, dtype=np.int8)
    return float(arr.mean().compute())


def test_seed_style_setup_exposes_paths_client_and_logs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tmp = tmp_path / "deep" / "tmp"
    before = global_state()
    plc = voxelflow.PLComponents(str(tmp), get_client=small_client)
    try:
        assert plc.tmp_path == str(tmp) and tmp.is_dir()
        assert plc.cache_root == str(tmp / "CacheDirectory")
        assert os.path.isdir(plc.cache_root)
        assert dask.config.get("temporary_directory") == str(tmp)
        assert isinstance(plc.dask_client, distributed.Client)
        assert plc.dask_client.status == "running"
        assert _fraction_on_workers() == 1.0
        print("hello from the script")
        # Default log folder: the working directory, as in the seed.
        assert plc.log_files.stdout_path.parent == tmp_path
    finally:
        plc.close()
    assert plc.dask_client.status == "closed"
    assert "hello from the script" in plc.log_files.stdout_path.read_text()
    assert "PLComponents ready" in plc.log_files.stderr_path.read_text()
    assert_restored(before)


def test_context_manager_restores_everything_when_the_body_raises(tmp_path):
    before = global_state()
    with pytest.raises(KeyError, match="step failed"):
        with PLComponents(pathlib.Path(tmp_path), "Cache", small_client, log_dir=tmp_path) as plc:
            assert sys.stdout is not before["stdout"]
            assert dask.config.get("temporary_directory") == str(tmp_path)
            raise KeyError("step failed")
    assert plc.dask_client.status == "closed"
    assert plc.cache_root == str(tmp_path / "Cache")
    assert_restored(before)


def test_close_is_idempotent_and_tee_can_be_off(tmp_path):
    before = global_state()
    plc = PLComponents(tmp_path, get_client=small_client, tee=False)
    assert plc.log_files is None
    assert sys.stdout is before["stdout"]
    plc.close()
    plc.close()
    with plc:
        pass
    assert_restored(before)


def test_hand_threads_to_viewer_closes_client_and_dask_still_computes(tmp_path):
    before = global_state()
    with PLComponents(tmp_path, get_client=small_client, log_dir=tmp_path) as plc:
        assert _fraction_on_workers() == 1.0
        plc.hand_threads_to_viewer()
        assert plc.dask_client.status == "closed"
        with pytest.raises(ValueError):
            distributed.default_client()
        # Now on the local threaded scheduler: correct results, no worker involved.
        assert _fraction_on_workers() == 0.0
        x = da.arange(1000, chunks=100)
        assert int((x * 2).sum().compute()) == 999 * 1000
        plc.hand_threads_to_viewer()
        assert plc.dask_client.status == "closed"
        # The temporary directory stays set until close().
        assert dask.config.get("temporary_directory") == str(tmp_path)
    assert_restored(before)


def test_default_client_is_a_machine_sized_process_cluster(tmp_path):
    """One real default cluster: shape, worker prints in the log, hand-off closes the cluster."""
    from dask.distributed import print as dprint

    def shout(block):
        dprint(f"default cluster worker pid {os.getpid()}")
        return block

    before = global_state()
    with PLComponents(tmp_path, log_dir=tmp_path) as plc:
        client = plc.dask_client
        info = client.scheduler_info()
        workers = info["workers"].values()
        n, threads, memory = default_cluster_shape(
            len(os.sched_getaffinity(0)), psutil.virtual_memory().total
        )
        assert len(workers) == n
        assert all(w["nthreads"] == threads and w["memory_limit"] == memory for w in workers)
        pids = client.run(os.getpid)
        assert os.getpid() not in pids.values()  # workers are processes
        da.zeros((2,), chunks=1).map_blocks(shout).compute()
        log = plc.log_files.stdout_path
        deadline = time.monotonic() + 20
        while "default cluster worker pid" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "default cluster worker pid" in log.read_text()
        cluster = client.cluster
        plc.hand_threads_to_viewer()
        assert client.status == "closed"
        assert cluster.status.name == "closed"
        gone = [not psutil.pid_exists(p) or psutil.Process(p).status() == psutil.STATUS_ZOMBIE
                for p in pids.values()]
        assert all(gone)
    assert_restored(before)


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 512), st.integers(2**20, 2**42))
def test_default_cluster_shape_uses_but_never_oversubscribes_the_machine(cpus, memory):
    n, threads, limit = default_cluster_shape(cpus, memory)
    assert n >= 1 and threads >= 1 and limit >= 1
    assert n * threads <= cpus
    assert n * threads > cpus - n  # at most n-1 cores idle from rounding
    assert n * limit <= memory
    assert n * limit >= 0.85 * memory
    assert n <= max(1, round(math.sqrt(cpus)))


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2"])
def test_default_cluster_shape_rejects_bad_counts(bad):
    with pytest.raises(InvalidInputError):
        default_cluster_shape(bad, 2**30)
    with pytest.raises(InvalidInputError):
        default_cluster_shape(2, bad)


def test_bad_arguments_raise_and_change_nothing(tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    (tmp_path / "t2").mkdir()
    (tmp_path / "t2" / "CacheDirectory").write_text("not a folder")
    before = global_state()
    for bad_path in (None, 3, b"/tmp/x", "", str(a_file), "memory://tmp", "s3://bucket/tmp"):
        with pytest.raises(InvalidPathError):
            PLComponents(bad_path, get_client=small_client)
    with pytest.raises(InvalidPathError, match="not a directory"):
        PLComponents(tmp_path / "t2", get_client=small_client)
    with pytest.raises(InvalidPathError):
        PLComponents(tmp_path / "t3", get_client=small_client, log_dir=a_file)
    for bad_name in ("", "a/b", "..", 5):
        with pytest.raises(InvalidInputError, match="cachedir_name"):
            PLComponents(tmp_path / "t4", cachedir_name=bad_name, get_client=small_client)
    with pytest.raises(InvalidInputError, match="get_client"):
        PLComponents(tmp_path / "t5", get_client="localhost:8786")
    with pytest.raises(InvalidInputError, match="tee"):
        PLComponents(tmp_path / "t6", get_client=small_client, tee="yes")
    assert_restored(before)
    assert not any((tmp_path / t).exists() for t in ("t3", "t4", "t5", "t6"))


def test_failing_or_wrong_client_factory_rolls_back(tmp_path):
    before = global_state()

    def broken():
        raise ConnectionError("scheduler unreachable")

    with pytest.raises(ConnectionError, match="unreachable"):
        PLComponents(tmp_path / "a", get_client=broken, log_dir=tmp_path / "logs")
    assert_restored(before)
    with pytest.raises(InvalidInputError, match="must return a distributed.Client"):
        PLComponents(tmp_path / "b", get_client=lambda: object(), log_dir=tmp_path / "logs")
    assert_restored(before)


def test_viewer_without_napari_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "napari", None)
    with PLComponents(tmp_path, get_client=small_client, tee=False) as plc:
        with pytest.raises(OptionalDependencyError, match=r"voxelflow\[viewer\]"):
            plc.viewer  # noqa: B018


@pytest.mark.viewer
def test_viewer_is_lazy_single_and_closed_with_the_session(tmp_path):
    import napari

    before = global_state()
    with PLComponents(tmp_path, get_client=small_client, log_dir=tmp_path) as plc:
        assert plc._viewer is None
        viewer = plc.viewer
        assert isinstance(viewer, napari.Viewer)
        assert plc.viewer is viewer
        assert viewer.dims.ndisplay == 2
        layer = viewer.add_image(da.ones((3, 32, 32), chunks=(1, 32, 32)))
        plc.hand_threads_to_viewer()
        assert np.asarray(layer.data[1]).sum() == 32 * 32
    assert viewer not in napari.Viewer._instances
    assert_restored(before)


def test_seed_usage_without_close_exits_cleanly(tmp_path):
    script = textwrap.dedent(
        f"""
        import os
        os.chdir({str(tmp_path)!r})
        if __name__ == '__main__':
            import voxelflow as qsetup
            from dask.distributed import Client
            plc = qsetup.PLComponents(
                {str(tmp_path / "tmp")!r},
                get_client=lambda: Client(processes=False, n_workers=1,
                                          threads_per_worker=1, dashboard_address=None))
            import dask.array as da
            print("sum is", int(da.ones(10, chunks=5).sum().compute()))
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    (log,) = tmp_path.glob("voxelflow_*_stdout.txt")
    assert log.read_text() == "sum is 10\n"
    assert proc.stdout == "sum is 10\n"
