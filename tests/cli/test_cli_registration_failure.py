"""``voxelflow run`` (a real process) on pairs that cannot register: RegistrationError, a clear message naming
where the failed run's QC pictures are (beside run-failed.json), a non-zero exit code, and the previous run --
its tables, run.json, registration/ pictures byte for byte, its cache nodes -- kept."""

import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
import tifffile
from matplotlib.image import imread

from voxelflow.cache import iter_tree
from voxelflow.cli import main
from voxelflow.synth_atlas import write_synthetic_experiment

pytest.importorskip("SimpleITK")

FAST = "\n[atlas.registration]\ndeformable_iterations = 10\n"


def _committed(cache) -> dict:
    """Every committed cache node below ``cache`` and its key."""
    out = {}
    for entry in iter_tree(str(cache)):
        node = entry.node
        if node is not None and node.status == "committed":
            out[entry.path.url] = node.marker.get("key_hash")
    return out


@pytest.fixture(scope="module")
def previous(tmp_path_factory):
    """A finished run whose folder and cache the failing runs reuse."""
    root = tmp_path_factory.mktemp("failing")
    exp = write_synthetic_experiment(root, resolution=300.0, seed=4, n_objects=40, orientation="psl")
    exp["config"].write_text(exp["config"].read_text() + FAST)
    assert main(["run", str(exp["config"]), "--no-report", "--quiet"]) == 0
    run = root / "run"
    exp.update(run=run, run_json=(run / "run.json").read_bytes(), regions=(run / "regions.csv").read_bytes(),
               nodes=_committed(run / "cache"), registration=_files(run / "registration"))
    assert len(exp["nodes"]) >= 10
    assert {"qc_checker_axis0.png", "qc_edges_axis2.png", "registration.json", "affine.tfm"} <= set(
        exp["registration"])
    assert not (run / "run-failed-registration").exists()
    return exp


def _files(folder) -> dict:
    """Every file in ``folder``: name -> (bytes, inode, modification time in ns), so a rewrite with the same
    bytes shows too."""
    return {p.name: (p.read_bytes(), p.stat().st_ino, p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


def _voxelflow_run(config, *extra):
    started = time.time()
    proc = subprocess.run([sys.executable, "-m", "voxelflow", "run", str(config), "--no-report", "--quiet", *extra],
                          capture_output=True, text=True, env=dict(os.environ), timeout=600)
    return proc, started


def _check_failed_run(exp, proc, started, kinds):
    run = exp["run"]
    assert proc.returncode == 2, proc.stderr
    record = json.loads((run / "run-failed.json").read_text())
    assert record["status"] == "failed" and record["error"].startswith("RegistrationError: ")
    failed = run / "run-failed-registration"
    assert str(failed) in proc.stderr and str(failed) in record["error"]  # the message says where they are
    for kind in kinds:
        for axis in range(3):
            png = failed / f"qc_{kind}_axis{axis}.png"
            assert png.stat().st_mtime >= started - 1, png  # written by the failing run
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            picture = imread(png)
            assert picture.ndim == 3 and min(picture.shape[:2]) >= 16 and picture.std() > 0
    # the previous run is whole -- tables, record, registration folder byte for byte -- and no cache node it
    # committed was lost or changed
    assert (run / "run.json").read_bytes() == exp["run_json"]
    assert (run / "regions.csv").read_bytes() == exp["regions"]
    assert _files(run / "registration") == exp["registration"]
    now = _committed(run / "cache")
    assert {url: now.get(url) for url in exp["nodes"]} == exp["nodes"]
    return record


def test_a_transform_refused_by_qc_fails_the_run_with_pictures(previous):
    # the synthetic scan is rotated by about 13 degrees; a 1 degree limit makes the result unacceptable
    bad = previous["config"].parent / "strict.toml"
    bad.write_text(previous["config"].read_text().replace("[atlas.registration]\n",
                                                          "[atlas.registration]\nmax_rotation_deg = 1.0\n"))
    proc, started = _voxelflow_run(bad)
    assert "rotates the atlas by" in proc.stderr and "max_rotation_deg = 1" in proc.stderr
    assert "QC pictures of this run in" in proc.stderr and "Traceback" not in proc.stderr
    record = _check_failed_run(previous, proc, started, ("checker", "edges"))
    assert "max_rotation_deg" in record["error"]
    # the refused transform and its QC figures are beside the pictures, and they differ from the accepted ones
    qc = json.loads((previous["run"] / "run-failed-registration" / "registration.json").read_text())["qc"]
    assert qc["rotation_deg"] > 1.0
    assert (previous["run"] / "run-failed-registration" / "affine.tfm").read_bytes().startswith(b"#Insight")


def test_a_garbage_atlas_fails_the_run_with_pictures_of_the_scan(previous):
    garbage = previous["config"].parent / "garbage_atlas"
    shutil.copytree(previous["atlas"], garbage)
    reference = tifffile.imread(garbage / "reference.tiff")
    tifffile.imwrite(garbage / "reference.tiff", np.full_like(reference, 700), photometric="minisblack")
    proc, started = _voxelflow_run(previous["config"], "--set", f"atlas.brainglobe={garbage}")
    assert "no contrast" in proc.stderr and str(garbage) in proc.stderr and "reference.tiff" in proc.stderr
    assert "pictures of the channel in" in proc.stderr
    _check_failed_run(previous, proc, started, ("scan",))


def test_a_run_that_fails_after_registering_keeps_the_previous_registration_folder(previous, tmp_path):
    missing = tmp_path / "no_such_mask.ome.zarr"
    proc, started = _voxelflow_run(previous["config"], "--set", f"pipeline.mask={missing}")
    assert proc.returncode == 2 and str(missing) in proc.stderr and "Traceback" not in proc.stderr
    run = previous["run"]
    record = json.loads((run / "run-failed.json").read_text())
    assert record["status"] == "failed" and not record["error"].startswith("RegistrationError")
    # this run's registration (read from the cache) went beside its record, not over the previous run's
    failed = run / "run-failed-registration"
    assert json.loads((failed / "registration.json").read_text())["qc"]["folded_fraction"] <= 1e-3
    for axis in range(3):
        png = failed / f"qc_checker_axis{axis}.png"
        assert png.stat().st_mtime >= started - 1 and imread(png).std() > 0
    assert not (failed / "qc_scan_axis0.png").exists()  # the pictures of an earlier failed run were swapped out
    assert (run / "run.json").read_bytes() == previous["run_json"]
    assert _files(run / "registration") == previous["registration"]


def test_a_finished_run_removes_what_the_failed_runs_left(previous):
    run = previous["run"]
    assert (run / "run-failed-registration").is_dir() and (run / "run-failed.json").is_file()
    proc, _ = _voxelflow_run(previous["config"])
    assert proc.returncode == 0, proc.stderr
    assert not (run / "run-failed-registration").exists() and not (run / "run-failed.json").exists()
    now = _files(run / "registration")
    assert set(now) == set(previous["registration"])
    assert {name: data for name, (data, _, _) in now.items()} == {
        name: data for name, (data, _, _) in previous["registration"].items()}  # the same cached registration
