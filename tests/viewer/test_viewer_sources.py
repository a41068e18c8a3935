"""What ``voxelflow view`` and the napari reader find in images, run folders and caches."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from viewer_helpers import BOXES, SCALE, make_run_folder, planted_scan

from voxelflow.cache import cdir_init
from voxelflow.errors import InvalidInputError, InvalidPathError
from voxelflow.viewer.sources import classify_path, layers_for_path, list_cached_steps


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("viewer-run")
    return str(root), make_run_folder(root)


def _summary(layers):
    return [(kw["name"], t) for _, kw, t in layers]


def test_cache_listing_shows_committed_results_only(run_folder):
    root, _ = run_folder
    cdir_init(f"{root}/cache/unfinished")  # a node never committed
    steps = {s.name: s for s in list_cached_steps(f"{root}/cache")}
    assert sorted(steps) == ["a_coarse", "bright", "centroids", "components", "extra/ramp", "extra/settings"]
    assert (steps["components"].kind, steps["components"].outputs) == ("BS->OS", ("image",))
    assert steps["centroids"].outputs == ("table",) and steps["centroids"].from_step
    assert steps["extra/ramp"].outputs == ("numpy",) and not steps["extra/ramp"].from_step
    assert not steps["extra/settings"].viewable and steps["extra/ramp"].viewable


def test_each_kind_of_path_is_recognised(run_folder, tmp_path):
    root, run = run_folder
    assert classify_path(f"{root}/scan.ome.zarr") == "image"
    assert classify_path(f"{root}/scan.ome.zarr?slices=[3]") == "image"
    assert classify_path(run) == "run"
    assert classify_path(f"{root}/cache") == "cache"
    assert classify_path(f"{run}/objects.parquet") == "table"
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "notes.txt").write_text("hi")
    with pytest.raises(InvalidPathError, match="not an OME-Zarr image, a run folder"):
        classify_path(tmp_path / "plain")
    with pytest.raises(InvalidPathError, match="nothing exists"):
        classify_path(tmp_path / "missing")
    with pytest.raises(InvalidPathError, match="expected an OME-Zarr image"):
        classify_path(tmp_path / "plain" / "notes.txt")
    # A zarr array (what save() writes for dask arrays) is not an image to open.
    with pytest.raises(InvalidPathError, match="not an OME-Zarr image"):
        classify_path(f"{root}/cache/bright/out0/data.ome.zarr/0")


def test_cache_root_opens_each_step_with_the_right_layer_type(run_folder):
    root, _ = run_folder
    layers = layers_for_path(f"{root}/cache")
    assert _summary(layers) == [
        ("a_coarse", "image"), ("extra/ramp", "image"), ("bright", "labels"), ("components", "labels"),
        ("centroids", "points"),
    ]
    by_name = {kw["name"]: (data, kw) for data, kw, _ in layers}
    _, lab = planted_scan()
    data, kw = by_name["components"]
    np.testing.assert_array_equal(np.asarray(data[0]), lab)  # scipy labels = planted ids here
    assert kw["scale"] == list(SCALE)
    assert by_name["bright"][1]["visible"] is False  # BS under its OS: hidden
    pts, kw = by_name["centroids"]
    assert kw["scale"] == list(SCALE)  # on the full-resolution grid, not the coarse one
    expect = sorted((z, (y0 + y1 - 1) / 2, (x0 + x1 - 1) / 2) for _, z, y0, y1, x0, x1 in BOXES)
    np.testing.assert_allclose(sorted(map(tuple, pts)), expect)
    assert list(kw["features"].columns) == ["id", "voxels"]


def test_chosen_steps_only_and_unknown_steps_named(run_folder):
    root, _ = run_folder
    assert _summary(layers_for_path(f"{root}/cache", steps=["components", "ramp"])) == [
        ("extra/ramp", "image"), ("components", "labels"),
    ]
    with pytest.raises(InvalidInputError, match="no committed step 'nope'.*components"):
        layers_for_path(f"{root}/cache", steps=["nope"])
    with pytest.raises(InvalidInputError):
        layers_for_path(f"{root}/cache", steps=["unfinished"])


def test_run_folder_shows_scan_labels_and_objects_on_one_grid(run_folder):
    _, run = run_folder
    layers = layers_for_path(run)
    assert _summary(layers) == [
        ("scan", "image"), ("density", "image"), ("bright", "labels"), ("components", "labels"),
        ("objects", "points"),
    ]
    density = layers[1][1]
    assert density["scale"] == [s * 16 for s in SCALE] and density["visible"] is False
    pts, kw, _ = layers[-1]
    assert kw["scale"] == list(SCALE) and kw["translate"] == [0.0, 0.0, 0.0]
    assert len(pts) == len(BOXES)


def test_a_parquet_table_alone_is_a_points_layer(run_folder, tmp_path):
    _, run = run_folder
    [(pts, kw, kind)] = layers_for_path(f"{run}/objects.parquet")
    assert kind == "points" and kw["name"] == "objects" and pts.shape == (len(BOXES), 3)
    pd.DataFrame({"a": [1]}).to_parquet(tmp_path / "other.parquet")
    assert layers_for_path(tmp_path / "other.parquet") == []

