"""The pipeline on a real `dask scheduler` + two `dask worker` processes equals the local run."""

import io
import json
import os
import re
import socket
import subprocess
import sys
import time

import dask.array as da
import pandas as pd
import psutil
import pytest

from pipeline_helpers import small_overrides, write_small_scan
from voxelflow.cli import main
from voxelflow.pipelines.config import load_config, to_toml
from voxelflow.pipelines.progress import ClusterProgressBar
from voxelflow.runtime.compute import distributed_client


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dask(*args):
    return subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_" + args[0], *args[1:]],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ})


@pytest.fixture
def cluster():
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = [_dask("scheduler", "--host", "127.0.0.1", "--port", str(port), "--dashboard-address", ":0")]
    try:
        for _ in range(2):
            procs.append(_dask("worker", address, "--nthreads", "1", "--memory-limit", "1GB",
                               "--no-dashboard", "--host", "127.0.0.1"))
        from distributed import Client

        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=90)
        yield address
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def test_distributed_run_equals_local(tmp_path, cluster):
    brain, paths = write_small_scan(tmp_path)
    cfg = load_config(None, small_overrides(paths, tmp_path / "local"))
    path = tmp_path / "plaque.toml"
    path.write_text(to_toml(cfg))
    assert main(["run", str(path), "--quiet", "--no-report"]) == 0
    t0 = time.perf_counter()
    assert main(["run", str(path), "--quiet", "--no-report", "--out", str(tmp_path / "dist"),
                 "--scheduler", cluster]) == 0
    local = pd.read_parquet(tmp_path / "local" / "objects.parquet")
    dist = pd.read_parquet(tmp_path / "dist" / "objects.parquet")
    assert len(local) > 10
    pd.testing.assert_frame_equal(local, dist)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "local" / "regions.csv"),
                                  pd.read_csv(tmp_path / "dist" / "regions.csv"))
    assert time.perf_counter() - t0 < 120
    # run.json reports every worker's peak memory, not only this process's.
    local_run = json.loads((tmp_path / "local" / "run.json").read_text())
    dist_run = json.loads((tmp_path / "dist" / "run.json").read_text())
    assert local_run["peak_worker_memory_mb"] is None
    from distributed import Client

    with Client(cluster) as client:
        rss = client.run(lambda: psutil.Process().memory_info().rss / 2**20)
    peaks = dist_run["peak_worker_memory_mb"]
    assert sorted(peaks) == sorted(rss) and len(peaks) == 2
    for address, now in rss.items():
        # A peak is at least the memory in use now (a worker with numpy, dask and zarr loaded uses > 50 MiB)
        # and below twice the 1 GB memory limit the workers run under.
        assert now * 0.99 <= peaks[address] < 2048 and now > 50


def test_progress_bar_follows_a_computation_on_the_cluster(cluster):
    from distributed import Client

    slow = da.ones((60, 4), chunks=(1, 4)).map_blocks(lambda b: (time.sleep(0.05), b)[1], dtype=float)
    out = io.StringIO()
    with Client(cluster), ClusterProgressBar(distributed_client(), stream=out, minimum=0.2, interval=0.05):
        assert slow.sum().compute() == 240  # 60 tasks of 50 ms on two one-thread workers: about 1.5 s
    text = out.getvalue()
    percents = [int(p) for p in re.findall(r"\| (\d+)% Completed \|", text)]
    assert len(percents) >= 3, text
    assert percents == sorted(percents) and percents[-1] == 100
    assert any(0 < p < 100 for p in percents), text  # drawn while the work was under way
    assert text.endswith("\n") and text.count("\n") == 1
