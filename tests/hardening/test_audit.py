"""Claims no earlier test could catch breaking: each case here fails when the behaviour is broken.

The lock heartbeat thread, the command line's real stderr and exit code on SIGINT,
OME-Zarr written by voxelflow validated by ome-zarr-models, flat peak memory of a
pyramid write (measured, not timed), and a suite that leaves the repository and
``$TMPDIR`` as it found them.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import zarr
from hardening_helpers import digest
from hypothesis import given, settings
from hypothesis import strategies as st

import voxelflow
from voxelflow.cli import main

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), *sys.path])}


# --- the lock heartbeat thread ------------------------------------------------------------------

_HEARTBEAT = """
import sys, threading, time
import voxelflow
from voxelflow.cache import _lock
_lock.HEARTBEAT_SECONDS = 0.05
node = voxelflow.cdir_init(sys.argv[1])
first = _lock.read_lock(node.path).heartbeat
names = [t.name for t in threading.enumerate()]
deadline = time.monotonic() + 60  # a guard against hanging, not a speed requirement
while _lock.read_lock(node.path).heartbeat == first and time.monotonic() < deadline:
    time.sleep(0.02)
print("renewed" if _lock.read_lock(node.path).heartbeat > first else "stale", "voxelflow-lock-heartbeat" in names)
"""


def test_the_heartbeat_thread_renews_a_held_lock(tmp_path):
    done = subprocess.run([sys.executable, "-c", _HEARTBEAT, str(tmp_path / "node")], capture_output=True,
                          text=True, timeout=120, env=ENV)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["renewed", "True"]


# --- the command line's real output ---------------------------------------------------------------


def _scan_config(folder, extra=""):
    rng = np.random.default_rng(2)
    vol = rng.normal(100, 5, (16, 48, 48))
    vol[2:14, 4:44, 4:44] += 200
    for z, y, x in [(5, 12, 12), (8, 30, 20), (10, 20, 34)]:
        vol[z:z + 2, y:y + 3, x:x + 3] += 2000
    scan = str(folder / "scan.ome.zarr")
    voxelflow.write_ome_zarr(vol.astype(np.uint16), scan, chunks=(8, 24, 24), scale=(4.0, 2.0, 2.0))
    config = folder / "plaque.toml"
    config.write_text(
        f'[input]\nurl = "{scan}"\n[pipeline]\nbias = false\nedge_um = 0.0\nthreshold = 1000.0\nmin_voxels = 4\n'
        f'coarse_factors = [2, 4, 4]\ndensity_factors = [4, 8, 8]\n{extra}'
        f'[output]\nfolder = "{folder / "run"}"\nlevels = 1\nchunks = [8, 24, 24]\nreport = false\n')
    return config


_STEP_LINE = re.compile(r"^  (\S+)\s+(\d+\.\d\d) s  (cached|computed|lazy)$")
_SUMMARY = re.compile(r"^voxelflow run: (\d+) objects in (\d+) regions(?:, [0-9.]+ % of the volume masked)?, "
                      r"(\d+)/(\d+) steps cached, ")


def test_cli_run_prints_step_lines_a_bar_and_a_summary(tmp_path, capsys, monkeypatch):
    from voxelflow.pipelines import progress

    monkeypatch.setattr(progress, "BAR_AFTER_SECONDS", 0.0)  # draw the bar for every computation
    config = _scan_config(tmp_path)
    assert main(["run", str(config), "--no-report"]) == 0
    out, err = capsys.readouterr()
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    steps = [s["node"].rstrip("/").rsplit("/", 1)[-1] for s in run["steps"]]
    lines = [m.groups() for m in map(_STEP_LINE.match, err.splitlines()) if m]
    assert [name for name, _, _ in lines] == steps and {state for *_, state in lines} <= {"computed", "lazy"}
    assert any(state == "computed" for *_, state in lines)
    bars = re.findall(r"\[[# ]+\] \| *(\d+)% Completed", err)
    assert bars and "100" in bars
    assert "\r" not in err  # stderr is not a terminal here: whole lines, no redraw frames
    summary = _SUMMARY.match(out.strip().splitlines()[-1])
    n_objects = len(pd.read_csv(tmp_path / "run" / "objects.csv"))
    assert summary and summary.groups() == (str(n_objects), "0", "0", str(len(steps)))
    assert main(["run", str(config), "--no-report"]) == 0
    out, err = capsys.readouterr()
    lines = [m.groups() for m in map(_STEP_LINE.match, err.splitlines()) if m]
    assert [name for name, _, _ in lines] == steps and {state for *_, state in lines} == {"cached"}
    assert _SUMMARY.match(out.strip().splitlines()[-1]).groups()[2:] == (str(len(steps)), str(len(steps)))


_SLOW = """
import sys, time
import voxelflow.ops as ops
real = ops.object_table
def slow(*args, **kwargs):
    time.sleep(120)  # interrupted long before
    return real(*args, **kwargs)
ops.object_table = slow
from voxelflow.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_sigint_exits_with_130_and_keeps_finished_steps(tmp_path):
    config = _scan_config(tmp_path)
    proc = subprocess.Popen([sys.executable, "-c", _SLOW, "run", str(config), "--no-report"],
                            stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=ENV)
    try:
        seen = []
        for line in proc.stderr:
            seen.append(line)
            if _STEP_LINE.match(line.rstrip("\n")) and "label" in line:
                break
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, "".join(seen) + rest
    assert "interrupted" in rest and "Traceback" not in rest
    assert (tmp_path / "run" / "cache" / "label" / ".voxelflow_commit.json").exists()
    assert not (tmp_path / "run" / "run.json").exists()


# --- OME-Zarr written by voxelflow is valid NGFF ----------------------------------------------------


@settings(max_examples=12, deadline=None)
@given(
    version=st.sampled_from(["0.4", "0.5"]),
    axes=st.sampled_from([("z", "y", "x"), ("c", "z", "y", "x"), ("t", "c", "z", "y", "x"), ("y", "x")]),
    dtype=st.sampled_from([np.uint8, np.uint16, np.int32, np.float32]),
    levels=st.integers(1, 3),
    seed=st.integers(0, 100),
    labels=st.booleans(),
)
def test_random_images_round_trip_and_validate_with_ome_zarr_models(tmp_path_factory, version, axes, dtype,
                                                                      levels, seed, labels):
    rng = np.random.default_rng(seed)
    shape = tuple(int(rng.integers(1, 3)) if a in "tc" else int(rng.integers(4, 13)) for a in axes)
    data = (rng.random(shape) * 200).astype(dtype)
    url = str(tmp_path_factory.mktemp("ngff") / "img.ome.zarr")
    scale = {a: float(rng.choice([0.5, 1.0, 2.0, 5.0])) for a in axes if a in "zyx"}
    voxelflow.write_ome_zarr(data, url, axes=axes, version=version, levels=levels, scale=scale,
                             units="micrometer", chunks=tuple(max(1, s // 2) for s in shape))
    arr, meta = voxelflow.open_ome_zarr(url)
    np.testing.assert_array_equal(arr.compute(), data)
    assert meta.axes == axes and meta.version == version and len(meta.levels) == levels
    names = ()
    if labels:
        lab = (data > 100).astype(np.uint8)
        if "c" in axes:
            lab = lab.take([0], axis=axes.index("c"))
        voxelflow.write_labels(lab, url, "mask")
        names = ("mask",)
    group = zarr.open_group(url, mode="r")
    if version == "0.5":
        from ome_zarr_models.v05 import Image, ImageLabel, Labels
    else:
        from ome_zarr_models.v04 import Image, ImageLabel, Labels
    Image.from_zarr(group)
    for name in names:
        Labels.from_zarr(group["labels"])
        ImageLabel.from_zarr(group[f"labels/{name}"])


# --- peak memory of writing a pyramid stays flat (measured in a fresh process) -----------------------

_WRITE_PEAK = """
import resource, sys
import dask.array as da
import voxelflow
planes = int(sys.argv[2])
arr = da.random.default_rng(0).integers(0, 60000, (planes, 512, 512), chunks=(16, 256, 256), dtype="u2")
voxelflow.write_ome_zarr(arr, sys.argv[1], levels=3, factors=2)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def _write_peak(folder, planes) -> int:
    done = subprocess.run([sys.executable, "-c", _WRITE_PEAK, str(folder / f"out{planes}.ome.zarr"), str(planes)],
                          capture_output=True, text=True, timeout=600, env=ENV)
    assert done.returncode == 0, done.stderr
    return int(done.stdout.split()[-1])


def test_pyramid_write_peak_memory_does_not_grow_with_the_image(tmp_path):
    small, large = _write_peak(tmp_path, 64), _write_peak(tmp_path, 256)
    added = 192 * 512 * 512 * 2  # bytes the large image has in addition (96 MiB)
    assert large - small < added / 2, f"peak {small / 2**20:.0f} MiB -> {large / 2**20:.0f} MiB"


# --- the suite leaves the repository and $TMPDIR unchanged ---------------------------------------------

FAST_SUBSET = [
    "tests/test_lint.py",
    "tests/hardening/test_fuzz.py::test_mutated_chunk_bytes",
    "tests/hardening/test_corrupt_data.py::test_zero_byte_chunk_raises",
    "tests/hardening/test_faults.py::test_failed_overwrite_keeps_the_old_zip",
    "tests/ops/test_ops_label.py",
    "tests/io/test_blockmean.py",
    "tests/runtime/test_logs_tee.py",
]


def _tree(root: Path) -> dict:
    """Size and time of the repository's files, without git's own folder and Python's ``.pyc`` files."""
    found = {}
    for dirpath, dirnames, files in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        for name in files:
            if name.endswith(".pyc"):
                continue
            full = Path(dirpath, name)
            found[str(full.relative_to(root))] = full.stat().st_size, full.stat().st_mtime_ns
    return found


@pytest.mark.timeout(900)
def test_a_fast_subset_writes_nothing_outside_its_temp_folders(tmp_path):
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    before = _tree(ROOT)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", "--basetemp", str(tmp_path / "base"),
         *FAST_SUBSET],
        cwd=ROOT, capture_output=True, text=True, timeout=850, env={**ENV, "TMPDIR": str(tmpdir)},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    after = _tree(ROOT)
    assert {k for k in after if k not in before} == set(), "new files in the repository"
    assert {k for k in before if before[k] != after.get(k)} == set(), "changed files in the repository"
    assert digest(tmpdir) == {"./": "dir"}, f"left in $TMPDIR: {sorted(digest(tmpdir))[:10]}"
