"""Step results and object tables drawn in a real napari canvas (Xvfb)."""

from __future__ import annotations

import sys

import dask.array as da
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from viewer_helpers import close_to, look_at, shot, to_screen

from voxelflow.errors import InvalidInputError, OptionalDependencyError
from voxelflow.viewer import add_objects, add_result, contrast_limits, result_layers

YELLOW = (1.0, 208 / 255, 0.0)


@pytest.mark.viewer
def test_planted_label_object_is_drawn_at_its_place_in_its_colour(viewer):
    lab = np.zeros((6, 100, 120), np.int32)
    lab[3, 20:30, 70:90] = 7
    lab[3, 60:80, 10:20] = 3  # a second object elsewhere, its own colour
    layer = add_result(viewer, da.from_array(lab, chunks=(2, 50, 60)), "os", is_label=True,
                       scale=(1.0, 2.0, 2.0), opacity=1.0)
    viewer.dims.set_point(0, 3)
    look_at(viewer, (100, 120), zoom=2.0)
    img = shot(viewer)

    inside7 = img[to_screen(viewer, img, (25 * 2, 80 * 2))]
    inside3 = img[to_screen(viewer, img, (70 * 2, 15 * 2))]
    outside = img[to_screen(viewer, img, (45 * 2, 50 * 2))]
    assert close_to(inside7, layer.get_color(7))
    assert close_to(inside3, layer.get_color(3))
    assert not close_to(inside7, layer.get_color(3))
    assert outside.max() < 10
    # The drawn footprint of label 7 is its planted box (in screen pixels, zoom 2, scale 2).
    mask = np.all(np.abs(img.astype(int) - (np.asarray(layer.get_color(7))[:3] * 255)) < 6, axis=-1)
    rows, cols = np.nonzero(mask)
    top, left = to_screen(viewer, img, (20 * 2 - 1, 70 * 2 - 1))
    bottom, right = to_screen(viewer, img, (30 * 2 - 1, 90 * 2 - 1))
    assert abs(rows.min() - top) <= 1 and abs(rows.max() + 1 - bottom) <= 1
    assert abs(cols.min() - left) <= 1 and abs(cols.max() + 1 - right) <= 1
    # Another plane has no objects.
    viewer.dims.set_point(0, 0)
    assert shot(viewer).max() < 10


@pytest.mark.viewer
def test_points_appear_where_the_objects_are(viewer):
    lc = pd.DataFrame({
        "id": np.arange(1, 4, dtype=np.int64),
        "z": [2.0, 2.0, 2.2],
        "y": [10.0, 40.0, 25.0],
        "x": [15.0, 60.0, 80.0],
        "voxels": np.array([100, 300, 50], dtype=np.int64),
        "intensity_mean": [1.0, 2.0, 3.0],
        "region_acronym": ["CTX", "TH", "CB"],
    })
    layer = add_objects(viewer, lc, scale=(4.0, 1.0, 1.0), text="region_acronym")
    assert list(layer.features.columns) == ["id", "voxels", "intensity_mean", "region_acronym"]
    assert list(layer.features["region_acronym"]) == ["CTX", "TH", "CB"]
    assert list(layer.text.values) == ["CTX", "TH", "CB"]
    viewer.dims.set_point(0, 2 * 4)
    look_at(viewer, (25, 50), zoom=6.0)
    img = shot(viewer)
    ys, xs = np.nonzero(np.all(np.abs(img.astype(int) - [255, 208, 0]) < 40, axis=-1))
    assert len(ys) > 0
    centres = np.array([to_screen(viewer, img, (y, x)) for y, x in zip(lc.y, lc.x)])
    radii = np.asarray(layer.size).max(axis=-1) if np.ndim(layer.size) > 1 else np.asarray(layer.size)
    # Outline radius on screen: half the diameter, plus the border drawn outside it, at zoom 6.
    outer = radii / 2 * (1 + layer.border_width) * 6 + 2
    dist = np.hypot(ys[:, None] - centres[:, 0], xs[:, None] - centres[:, 1])
    # Every yellow pixel belongs to the outline of some object ...
    assert np.all((dist <= outer).any(axis=1))
    # ... and every object has a ring around its centroid, empty in the middle.
    for k in range(len(lc)):
        ring = (dist[:, k] <= outer[k]) & (dist[:, k] >= radii[k] / 2 * 6 * 0.6)
        assert ring.sum() > 20, f"no outline drawn around object {lc.id[k]}"
        assert not (dist[:, k] < radii[k] / 2 * 6 * 0.5).any()


@pytest.mark.viewer
def test_image_contrast_comes_from_the_data_not_the_dtype(viewer):
    rng = np.random.default_rng(0)
    img = rng.normal(100, 5, size=(4, 64, 64)).astype(np.uint16)
    img[:, 20:30, 40:50] = 3000
    layer = add_result(viewer, da.from_array(img, chunks=16), "in")
    lo, hi = layer.contrast_limits
    assert 80 <= lo <= 100 and 2900 <= hi <= 3000  # dtype range would be 0..65535
    viewer.dims.set_point(0, 1)
    look_at(viewer, (32, 32), zoom=5.0)
    pic = shot(viewer)
    assert pic[to_screen(viewer, pic, (25, 45))].min() > 240
    assert pic[to_screen(viewer, pic, (10, 10))].max() < 40


def test_contrast_limits_read_a_sample_never_the_whole_array():
    calls = []

    def count(block):
        if block.shape == (256, 2048):  # not dask's tiny probes for the output type
            calls.append(block.shape)
        return block

    n = 4096 * 2048  # 8 M voxels in 16 chunks: twice the sampling budget
    ramp = da.arange(n, dtype=np.float32, chunks=n // 16).reshape(4096, 2048).map_blocks(count)
    lo, hi = contrast_limits(ramp)
    assert 0 < len(calls) <= 8  # half of the chunks at most
    # Chunks spread from first to last: the range of the whole ramp, within a few percent.
    assert lo == pytest.approx(0.0, abs=0.02 * n) and hi == pytest.approx(n, rel=0.02)
    # Small arrays: every voxel (or a stride of a numpy array) is used, so percentiles are exact.
    small = np.random.default_rng(1).normal(size=(64, 64))
    assert contrast_limits(da.from_array(small, chunks=16)) == pytest.approx(
        list(np.percentile(small, [0.1, 99.9])))
    assert contrast_limits(np.zeros((3, 3), bool)) == [0.0, 1.0]
    assert contrast_limits(np.full((3, 3), 7, np.uint8)) == [7.0, 8.0]
    with_nan = np.array([np.nan, 1.0, 2.0, np.inf])
    assert contrast_limits(with_nan)[0] >= 1.0 and np.isfinite(contrast_limits(with_nan)[1])
    per_channel = contrast_limits(np.stack([np.arange(10.0), 10 + np.arange(10.0)]), channel_axis=0)
    assert per_channel[0][1] < 10 <= per_channel[1][0]


@settings(max_examples=10)
@given(
    shape=st.tuples(st.integers(1, 3), st.integers(2049, 4500), st.integers(1, 3000)),
    seed=st.integers(0, 2**16),
)
def test_large_results_get_a_nearest_pyramid_that_never_invents_labels(shape, seed):
    rng = np.random.default_rng(seed)
    ids = rng.choice([0, 5, 17, 2**31 - 1], size=shape[1:]).astype(np.int32)
    arr = da.broadcast_to(da.from_array(ids, chunks=1024), shape)
    [(pyramid, kwargs, kind)] = result_layers(arr, "os", is_label=True, scale=(2.0, 1.0, 1.0))
    assert kind == "labels" and kwargs["multiscale"] and kwargs["scale"] == [2.0, 1.0, 1.0]
    assert max(pyramid[-1].shape[-2:]) <= 2048 < max(pyramid[-2].shape[-2:])
    for finer, coarser in zip(pyramid, pyramid[1:]):
        assert coarser.shape[0] == finer.shape[0]  # z kept: one plane stays one plane
        assert coarser.shape[1:] == tuple((n + 1) // 2 for n in finer.shape[1:])
    coarse = pyramid[-1][0].compute()
    f = 2 ** (len(pyramid) - 1)
    np.testing.assert_array_equal(coarse, ids[::f, ::f])


def test_results_with_nothing_to_draw_are_skipped_not_errors():
    # What pipeline steps return besides images and object tables: a threshold, a count,
    # region counts (no centroids), a JSON value.
    for value in (3.5, 7, pd.DataFrame({"id": [1], "count": [4]}), pd.Series([1, 2]), {"a": 1},
                  [[1, 2]], np.float32(2.0)):
        assert result_layers(value, "v") == []


def test_bad_results_get_clear_errors():
    with pytest.raises(InvalidInputError, match="integer or bool"):
        result_layers(np.zeros((4, 4), np.float32), "x", is_label=True)
    with pytest.raises(InvalidInputError, match="3 values"):
        result_layers(np.zeros((2, 4, 4)), "x", scale=(1, 1))
    with pytest.raises(InvalidInputError, match="centroid columns"):
        add_objects(None, pd.DataFrame({"a": [1]}))
    with pytest.raises(InvalidInputError, match="one value per axis"):
        add_objects(None, pd.DataFrame({"z": [1.0], "y": [1.0], "x": [1.0]}), scale=(1, 1))


def test_missing_napari_names_the_viewer_extra(monkeypatch):
    from voxelflow.viewer._deps import require_napari

    monkeypatch.setitem(sys.modules, "napari", None)  # what an absent package looks like to import
    with pytest.raises(OptionalDependencyError, match=r"voxelflow\[viewer\]"):
        require_napari()
    assert issubclass(OptionalDependencyError, ImportError)


@pytest.mark.viewer
@pytest.mark.parametrize("local", [None, False])
def test_with_a_live_client_layers_load_on_local_threads_not_the_client(viewer, local):
    from distributed import Client, LocalCluster, get_task_stream

    lab = np.zeros((2, 64, 64), np.uint16)
    lab[1, 10:20, 30:40] = 9
    arr = da.from_array(lab, chunks=(1, 32, 32))
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        with get_task_stream(client) as stream:
            layer = add_result(viewer, arr, "os", is_label=True, opacity=1.0, local_threads=local)
            viewer.dims.set_point(0, 1)
            look_at(viewer, (32, 32), zoom=4.0)
            img = shot(viewer)
        assert close_to(img[to_screen(viewer, img, (15, 35))], layer.get_color(9))
        assert img[to_screen(viewer, img, (40, 10))].max() < 10
    if local is None:  # the default while a client lives: chunks never go through it
        assert type(layer.data).__name__ == "LocalThreadsArray" and layer.data.dask is arr
        assert stream.data == []
    else:  # forced off: the seed's slow path, every chunk is a task on the client
        assert layer.data is arr
        assert len(stream.data) > 0
    # Without a client, napari gets the dask array itself (and its chunk cache).
    assert add_result(viewer, arr, "again", is_label=True).data is arr


@pytest.mark.viewer
def test_steps_show_their_result_through_viewer_args(viewer, tmp_path):
    from viewer_helpers import SCALE, _steps, planted_scan

    img, lab = planted_scan()
    bright, components, centroids, _ = _steps()
    args = {"viewer": viewer}
    bs = bright(da.from_array(img, chunks=(4, 32, 32)), 1000, viewer_args=args)
    os_arr = components(bs, cache_url=str(tmp_path / "os"), storage_options={"scale": SCALE},
                        viewer_args={**args, "opacity": 1.0})
    centroids(os_arr, viewer_args=args)
    kinds = [(ly.name, type(ly).__name__) for ly in viewer.layers]
    assert kinds == [("bright", "Image"), ("components", "Labels"), ("centroids", "Points")]
    # The table came without a scale: it is placed on the grid of the label image.
    assert list(viewer.layers["centroids"].scale) == list(SCALE)
    labels = viewer.layers["components"]
    assert list(labels.scale) == list(SCALE)
    np.testing.assert_array_equal(np.asarray(labels.data), lab)
    viewer.layers["bright"].visible = False
    viewer.layers["centroids"].visible = False
    viewer.dims.set_point(0, 3 * SCALE[0])
    look_at(viewer, (16, 16), zoom=10.0)
    pic = shot(viewer)
    assert close_to(pic[to_screen(viewer, pic, (12 * SCALE[1], 42 * SCALE[2]))], labels.get_color(1))


def test_importing_the_viewer_package_does_not_import_napari():
    import subprocess

    code = (
        "import sys, voxelflow.viewer, voxelflow.viewer.reader, voxelflow.cli.view_cmd\n"
        "print([m for m in ('napari', 'PyQt6', 'vispy') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_stored_result_shows_with_its_own_pyramid(tmp_path):
    from viewer_helpers import SCALE, planted_scan

    from voxelflow.io.ome_zarr import write_ome_zarr
    from voxelflow.paths import VPath

    img, lab = planted_scan()
    url = write_ome_zarr(lab, tmp_path / "os.ome.zarr", scale=SCALE, levels=2, factors=(1, 2, 2),
                         method="nearest")
    [(levels, kwargs, kind)] = result_layers(VPath(url), "os", is_label=True, opacity=0.5)
    assert kind == "labels" and kwargs["multiscale"] and kwargs["opacity"] == 0.5
    assert [lv.shape for lv in levels] == [(8, 64, 64), (8, 32, 32)] and kwargs["scale"] == list(SCALE)
    np.testing.assert_array_equal(np.asarray(levels[0]), lab)
    mask = write_ome_zarr(img > 1000, tmp_path / "bs.ome.zarr", scale=SCALE)
    [(data, _, kind)] = result_layers(VPath(mask), "bs", is_label=True)
    assert kind == "labels" and data.dtype == np.uint8
    np.testing.assert_array_equal(np.asarray(data), (img > 1000).astype(np.uint8))


@pytest.mark.viewer
def test_a_cached_step_is_shown_from_its_stored_pyramid(viewer, tmp_path):
    from viewer_helpers import SCALE, _steps, planted_scan

    img, lab = planted_scan()
    bright, components, _, _ = _steps()
    bs = bright(da.from_array(img, chunks=(4, 32, 32)), 1000)
    components(bs, cache_url=str(tmp_path / "os"), storage_options={"scale": SCALE, "levels": 2},
               viewer_args={"viewer": viewer})
    layer = viewer.layers["components"]
    assert type(layer).__name__ == "Labels"
    assert layer.multiscale and len(layer.data) == 2
    np.testing.assert_array_equal(np.asarray(layer.data[0]), lab)
