"""The pipeline on a real `dask scheduler` + two `dask worker` processes equals the local run."""

import io
import json
import os
import re
import subprocess
import sys
import time

import dask.array as da
import numpy as np
import pandas as pd
import psutil
import pytest

from pipeline_helpers import small_overrides, write_small_scan
from voxelflow.cli import main
from voxelflow.io.ome_zarr import open_ome_zarr
from voxelflow.pipelines.config import load_config, to_toml
from voxelflow.pipelines.progress import ClusterProgressBar
from voxelflow.runtime.compute import distributed_client


def _dask(*args):
    return subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_" + args[0], *args[1:]],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ})


@pytest.fixture
def cluster(tmp_path):
    # the scheduler picks a free port itself and tells it through its file (no port handed over, no race)
    info = tmp_path / "scheduler.json"
    procs = [_dask("scheduler", "--host", "127.0.0.1", "--port", "0", "--dashboard-address", ":0",
                   "--scheduler-file", str(info))]
    try:
        deadline = time.monotonic() + 120  # a guard against a scheduler that never starts
        while not info.exists() or not info.read_text().strip():
            assert procs[0].poll() is None and time.monotonic() < deadline, "the scheduler did not start"
            time.sleep(0.1)
        address = json.loads(info.read_text())["address"]
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


def test_distributed_run_equals_local(tmp_path, cluster, capsys, monkeypatch):
    from voxelflow.pipelines import progress

    monkeypatch.setattr(progress, "BAR_AFTER_SECONDS", 0.0)
    brain, paths = write_small_scan(tmp_path)
    cfg = load_config(None, small_overrides(paths, tmp_path / "local"))
    path = tmp_path / "plaque.toml"
    path.write_text(to_toml(cfg))
    assert main(["run", str(path), "--quiet", "--no-report"]) == 0
    assert main(["run", str(path), "--no-report", "--out", str(tmp_path / "dist"), "--scheduler", cluster]) == 0
    err = capsys.readouterr().err
    steps = [s["node"].rstrip("/").rsplit("/", 1)[-1]
             for s in json.loads((tmp_path / "dist" / "run.json").read_text())["steps"]]
    lines = re.findall(r"^  (\S+)\s+\d+\.\d\d s  (cached|computed|lazy)$", err, flags=re.M)
    assert [name for name, _ in lines] == steps and any(state == "computed" for _, state in lines)
    assert "% Completed |" in err  # the cluster bar, drawn for every computation (BAR_AFTER_SECONDS = 0)
    local = pd.read_parquet(tmp_path / "local" / "objects.parquet")
    dist = pd.read_parquet(tmp_path / "dist" / "objects.parquet")
    assert len(local) > 10
    pd.testing.assert_frame_equal(local, dist)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "local" / "regions.csv"),
                                  pd.read_csv(tmp_path / "dist" / "regions.csv"))
    # the arrays too, not only the tables: the density map and the label image of every object
    for image in ("density.ome.zarr", "cache/label/out0/data.ome.zarr"):
        a, _ = open_ome_zarr(str(tmp_path / "local" / image))
        b, _ = open_ome_zarr(str(tmp_path / "dist" / image))
        np.testing.assert_array_equal(a.compute(), b.compute())
    assert int(open_ome_zarr(str(tmp_path / "dist" / "density.ome.zarr"))[0].sum().compute()) == len(dist)
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
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    out = Terminal()  # redrawn in place (into a log it writes lines, see test_progress_bars.py)
    with Client(cluster), ClusterProgressBar(distributed_client(), stream=out, minimum=0.2, interval=0.05):
        assert slow.sum().compute() == 240  # 60 tasks of 50 ms on two one-thread workers: about 1.5 s
    text = out.getvalue()
    percents = [int(p) for p in re.findall(r"\| (\d+)% Completed \|", text)]
    assert len(percents) >= 3, text
    assert percents == sorted(percents) and percents[-1] == 100
    assert any(0 < p < 100 for p in percents), text  # drawn while the work was under way
    assert text.endswith("\n") and text.count("\n") == 1
