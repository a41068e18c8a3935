"""The plaque pipeline on a small synthetic scan: accuracy, exactness, caching, resume, bad input."""

import json
import shutil
import sys

import numpy as np
import pandas as pd
import pytest
import scipy.ndimage as ndi

from pipeline_helpers import small_overrides, write_small_scan
from steps_helpers import count_tasks
from voxelflow import steps
from voxelflow.errors import EmptyResultError, InvalidInputError, InvalidPathError
from voxelflow.io.ome_zarr import open_ome_zarr, write_ome_zarr
from voxelflow.pipelines.config import load_config
from voxelflow.pipelines.plaque import run_plaque_pipeline
from voxelflow.synth import score_detections


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scan")
    return write_small_scan(folder)


@pytest.fixture(scope="module")
def base(scan, tmp_path_factory):
    """One full run (bias correction on); tests copy its folder before changing anything."""
    brain, paths = scan
    out = tmp_path_factory.mktemp("base") / "run"
    result = run_plaque_pipeline(_config(paths, out), progress=False)
    return brain, paths, out, result


def _config(paths, out, *extra, channel_in_url=True):
    return load_config(None, small_overrides(paths, out, channel_in_url) + list(extra))


def _copy(out, tmp_path):
    dst = tmp_path / "run"
    shutil.copytree(out, dst)
    return dst


def _stored(out, node):
    return open_ome_zarr(str(out / "cache" / node / "out0" / "data.ome.zarr"))[0].compute()


def _states(result):
    return {r.node.rsplit("/", 1)[-1]: r.cached for r in result.records}


def test_outputs_and_accuracy(base):
    brain, paths, out, result = base
    score = score_detections(result.objects, brain.truth, brain.regions)
    assert score["precision"] >= 0.95 and score["recall"] >= 0.95
    per = score["regions"].dropna()
    assert (per.error < 0.05).all(), per
    objects = pd.read_csv(out / "objects.csv")
    for col in ("id", "z", "y", "x", "z_um", "y_um", "x_um", "voxels", "intensity_mean", "region_id", "region_acronym"):
        assert col in objects.columns
    np.testing.assert_allclose(objects.z_um, objects.z * brain.scale[0])
    assert pd.read_parquet(out / "objects.parquet").id.tolist() == objects.id.tolist()
    regions = pd.read_csv(out / "regions.csv")
    assert {"id", "acronym", "name", "parent", "count", "volume_mm3", "density_per_mm3"} <= set(regions.columns)
    root = regions.loc[regions.parent == -1, "count"].item()
    assert root == len(objects)
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "ok" and run["objects"] == len(objects) and run["bias_corrected"] is True
    assert [s["name"] for s in run["steps"]][:2] == ["downsample", "auto_negative_mask"]
    assert run["peak_memory_mb"] > 0 and "dask" in run["versions"]
    density, meta = open_ome_zarr(str(out / "density.ome.zarr"))
    assert density.shape == tuple(-(-s // f) for s, f in zip(brain.image.shape, (8, 16, 16)))
    assert float(density.sum().compute()) == len(objects)
    # every intermediate is an OME-Zarr in the cache
    for node in ("coarse", "negative_mask", "bias_field", "foreground", "label", "density"):
        open_ome_zarr(str(out / "cache" / node / "out0" / "data.ome.zarr"))


def test_labels_and_objects_equal_scipy_on_the_stored_foreground(base):
    brain, paths, out, result = base
    fg = _stored(out, "foreground").astype(bool)
    lab, n = ndi.label(fg)
    raw = pd.read_parquet(next((out / "cache" / "objects_raw" / "out0").glob("*.parquet")))
    assert len(raw) == n
    ids = np.arange(1, n + 1)
    sizes = ndi.sum(fg, lab, ids)
    com = np.array(ndi.center_of_mass(fg, lab, ids))
    ref = pd.DataFrame({"z": com[:, 0], "y": com[:, 1], "x": com[:, 2], "voxels": sizes}).sort_values(["z", "y", "x"])
    got = raw.sort_values(["z", "y", "x"])
    np.testing.assert_allclose(got[["z", "y", "x"]].to_numpy(), ref[["z", "y", "x"]].to_numpy(), atol=1e-9)
    np.testing.assert_array_equal(got.voxels.to_numpy(), ref.voxels.to_numpy())
    kept = (raw.voxels >= 8).sum()
    assert len(result.objects) == kept


def test_rerun_is_cached_and_does_no_voxel_work(base, tmp_path):
    brain, paths, out, first = base
    run = _copy(out, tmp_path)
    with count_tasks() as tasks:
        again = run_plaque_pipeline(_config(paths, run), progress=False)
    assert tasks.count == 0
    assert all(_states(again).values())
    pd.testing.assert_frame_equal(again.objects, first.objects)


def test_threshold_change_recomputes_downstream_only(base, tmp_path):
    brain, paths, out, first = base
    run = _copy(out, tmp_path)
    value = json.loads((out / "run.json").read_text())["threshold"]
    again = run_plaque_pipeline(_config(paths, run, f"pipeline.threshold={value * 1.3}"), progress=False)
    states = _states(again)
    assert states["coarse"] and states["negative_mask"] and states["bias_field"]
    assert not any(states[n] for n in ("foreground", "label", "objects_raw", "objects", "density"))
    assert (again.objects.voxels.sum() < first.objects.voxels.sum())


def test_interrupted_run_resumes_from_its_cache(base, tmp_path, monkeypatch):
    brain, paths, out, first = base
    run = _copy(out, tmp_path)
    config = _config(paths, run, "pipeline.min_voxels=20")

    def crash(*args, **kwargs):
        raise RuntimeError("worker lost")

    with monkeypatch.context() as m:
        m.setattr(steps.count_by_region, "_fn", crash)
        with pytest.raises(RuntimeError, match="worker lost"):
            run_plaque_pipeline(config, progress=False)
    failed = json.loads((run / "run-failed.json").read_text())  # the earlier run stays whole
    assert failed["status"] == "failed" and "worker lost" in failed["error"]
    assert [s["name"] for s in failed["steps"]][-2:] == ["physical_coordinates", "add_regions"]
    resumed = run_plaque_pipeline(config, progress=False)
    states = _states(resumed)
    # finished before the crash: not recomputed
    assert states["objects"] is True and states["objects_regions"] is True
    assert states["region_counts"] is False
    assert (resumed.objects.voxels >= 20).all()
    assert len(resumed.objects) == (first.objects.voxels >= 20).sum()


def test_without_simpleitk_bias_is_skipped_and_foreground_matches_numpy(scan, tmp_path, monkeypatch):
    brain, paths = scan
    monkeypatch.setitem(sys.modules, "SimpleITK", None)  # import SimpleITK now raises ImportError
    out = tmp_path / "run"
    result = run_plaque_pipeline(_config(paths, out, "pipeline.threshold=1000"), progress=False)
    run = json.loads((out / "run.json").read_text())
    assert run["bias_corrected"] is False and "bias_field" not in _states(result)
    # the small scan fits the coarse voxel budget: the coarse grid is the scan itself
    assert run["coarse"]["level"] == 0 and run["coarse"]["factors"] == [1, 1, 1]
    neg = _stored(out, "negative_mask").astype(bool)
    expected = (brain.image > 1000) & ~neg
    np.testing.assert_array_equal(_stored(out, "foreground").astype(bool), expected)
    score = score_detections(result.objects, brain.truth, brain.regions)
    assert score["precision"] >= 0.95 and score["recall"] >= 0.95


def test_user_mask_image_and_function(scan, tmp_path):
    brain, paths = scan
    half = np.zeros((16, 32, 32), np.uint8)  # any resolution covering the scan
    half[:, :, :16] = 1
    write_ome_zarr(half, str(tmp_path / "mask.ome.zarr"), scale=(8.0, 4.0, 4.0), overwrite=True)
    a = run_plaque_pipeline(_config(paths, tmp_path / "a", "pipeline.bias=false",
                                    f'pipeline.mask="{tmp_path / "mask.ome.zarr"}"'), progress=False)
    assert len(a.objects) > 0 and (a.objects.x0 >= 64).all()

    def left_only(coarse, scale):
        m = np.zeros(coarse.shape, bool)
        m[:, :, coarse.shape[2] // 2 :] = True
        return m

    b = run_plaque_pipeline(_config(paths, tmp_path / "b", "pipeline.bias=false"), mask=left_only, progress=False)
    assert len(b.objects) > 0 and (b.objects.x1 <= 64).all()


def test_bad_inputs_have_clear_messages(base, tmp_path):
    brain, paths, out, first = base
    with pytest.raises(InvalidPathError, match="does not exist"):
        run_plaque_pipeline(load_config(None, [f'input.url="{tmp_path}/nope.ome.zarr"',
                                               f'output.folder="{tmp_path}/o"']), progress=False)
    with pytest.raises(InvalidInputError, match="2 channels"):
        run_plaque_pipeline(_config(paths, tmp_path / "o", channel_in_url=False), progress=False)
    with pytest.raises(InvalidInputError, match="out of range"):
        run_plaque_pipeline(_config(paths, tmp_path / "o", "input.channel=5", channel_in_url=False), progress=False)
    wrong = tmp_path / "atlas_wrong.ome.zarr"
    write_ome_zarr(brain.atlas, str(wrong), scale=tuple(2 * s for s in brain.atlas_scale), overwrite=True)
    with pytest.raises(InvalidInputError, match="covers"):
        run_plaque_pipeline(_config(paths, tmp_path / "o", f'atlas.url="{wrong}"'), progress=False)
    run = _copy(out, tmp_path)
    with pytest.raises(EmptyResultError, match="min_voxels"):
        run_plaque_pipeline(_config(paths, run, "pipeline.min_voxels=100000"), progress=False)


def test_watershed_split_counts_touching_plaques_separately(base, tmp_path):
    brain, paths, out, first = base
    run = _copy(out, tmp_path)
    split = run_plaque_pipeline(_config(paths, run, "pipeline.split=watershed", "pipeline.split_min_distance=3"),
                                progress=False)
    states = _states(split)
    assert states["foreground"] and not states["watershed"] and "label" not in states
    assert (brain.truth.cluster_size > 1).any()
    plaques = score_detections(split.objects, brain.truth, brain.regions, level="plaques")
    objects = score_detections(first.objects, brain.truth, brain.regions, level="plaques")
    # tightly overlapping small plaques are not all separable; splitting must still find
    # clearly more of them than labelling, without inventing objects
    assert plaques["precision"] >= 0.95 and plaques["recall"] >= 0.85
    assert plaques["matched"] > objects["matched"]
