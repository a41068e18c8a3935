"""Cached steps: recompute exactly what changed, nothing on a cached re-run, resume after a crash."""

import json

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import scipy.ndimage as ndi
from hypothesis import given, settings
from hypothesis import strategies as st

from steps_helpers import count_tasks
from voxelflow.errors import InvalidInputError
from voxelflow.steps import STEP_FILE, record_steps, step

CALLS: dict[str, int] = {}


def _called(name):
    CALLS[name] = CALLS.get(name, 0) + 1


@step(kind="IN->IN")
def smooth(img, sigma=1.0):
    _called("smooth")
    return img.map_overlap(lambda b: ndi.gaussian_filter(b, sigma), depth=4, boundary="reflect",
                           dtype=np.float32)


@step(kind="IN->BS")
def above(img, value):
    _called("above")
    return img > value


@step(kind="BS->OS")
def components(bs):
    _called("components")
    lab, n = ndi.label(np.asarray(bs))
    return lab.astype(np.int32), int(n)


@step(kind="OS->LC")
def sizes(os_arr):
    _called("sizes")
    lab = np.asarray(os_arr)
    counts = np.bincount(lab.ravel())[1:]
    return pd.DataFrame({"id": np.arange(1, len(counts) + 1), "voxels": counts})


def _image():
    rng = np.random.default_rng(0)
    img = np.zeros((24, 32, 32), np.float32)
    for c in rng.integers(4, 20, size=(12, 3)):
        img[c[0] - 2 : c[0] + 2, c[1] - 2 : c[1] + 2, c[2] - 2 : c[2] + 2] = 10
    return da.from_array(img, chunks=(12, 16, 16))


def _run(root, value, sigma=1.0):
    img = _image()
    sm = smooth(img, sigma=sigma, cache_url=f"{root}/smooth", storage_options={"chunks": (12, 16, 16)})
    bs = above(sm, value, cache_url=f"{root}/above")
    lab, n = components(bs, cache_url=f"{root}/components", storage_options={"levels": 2})
    table = sizes(lab, cache_url=f"{root}/sizes")
    return sm, bs, lab, n, table


def _reference(value, sigma=1.0):
    sm = ndi.gaussian_filter(_image().compute(), sigma)
    lab, n = ndi.label(sm > value)
    return sm, lab, n


def test_cached_results_equal_direct_computation(tmp_path):
    sm, bs, lab, n, table = _run(tmp_path, 3.0)
    ref_sm, ref_lab, ref_n = _reference(3.0)
    assert isinstance(sm, da.Array) and isinstance(lab, da.Array)
    np.testing.assert_allclose(sm.compute(), ref_sm, rtol=1e-6)
    assert sm.chunks == ((12, 12), (16, 16), (16, 16))
    assert n == ref_n > 3
    assert np.array_equal(lab.compute(), ref_lab) and lab.dtype == np.int32
    assert table.voxels.tolist() == np.bincount(ref_lab.ravel())[1:].tolist()
    desc = json.loads((tmp_path / "components" / STEP_FILE).read_text())
    assert desc["outputs"] == ["image", "value"] and desc["tuple"] is True
    from voxelflow.io.ome_zarr import open_ome_zarr

    _, meta = open_ome_zarr(str(tmp_path / "components" / "out0" / "data.ome.zarr"))
    assert len(meta.levels) == 2


def test_change_recomputes_downstream_only_and_rerun_does_no_work(tmp_path):
    CALLS.clear()
    with count_tasks() as first_tasks:
        _run(tmp_path, 3.0)
    assert CALLS == {"smooth": 1, "above": 1, "components": 1, "sizes": 1}
    # the counter does see the voxel work of a run that computes
    assert first_tasks.count > 0

    CALLS.clear()
    with count_tasks() as tasks, record_steps() as records:
        *_, n, table = _run(tmp_path, 3.0)
    assert CALLS == {} and tasks.count == 0
    assert [r.cached for r in records] == [True] * 4
    assert n == _reference(3.0)[2]

    CALLS.clear()
    *_, n5, table5 = _run(tmp_path, 5.0)  # one threshold changed
    assert CALLS == {"above": 1, "components": 1, "sizes": 1}
    ref = _reference(5.0)
    assert n5 == ref[2] and table5.voxels.sum() == (ref[1] > 0).sum()

    CALLS.clear()
    _run(tmp_path, 5.0, sigma=1.5)  # the first step changed: everything recomputes
    assert CALLS == {"smooth": 1, "above": 1, "components": 1, "sizes": 1}


def test_interrupted_run_resumes_from_finished_steps(tmp_path):
    CALLS.clear()
    img = _image()
    sm = smooth(img, cache_url=f"{tmp_path}/smooth")
    bs = above(sm, 3.0, cache_url=f"{tmp_path}/above")

    @step
    def explode(bs):
        raise RuntimeError("killed mid-run")

    with pytest.raises(RuntimeError, match="killed"):
        explode(bs, cache_url=f"{tmp_path}/explode")
    CALLS.clear()
    sm = smooth(img, cache_url=f"{tmp_path}/smooth")
    bs = above(sm, 3.0, cache_url=f"{tmp_path}/above")
    lab, n = components(bs, cache_url=f"{tmp_path}/components")
    assert CALLS == {"components": 1}
    assert n == _reference(3.0)[2]


def test_no_cache_url_means_lazy_and_uncached(tmp_path):
    CALLS.clear()
    out = smooth(_image())
    assert isinstance(out, da.Array) and CALLS == {"smooth": 1}
    assert list(tmp_path.iterdir()) == []


def test_context_args_dict_and_storage_option_errors(tmp_path):
    bs = above(_image(), 3.0, context_args={"cache_url": str(tmp_path / "a"), "storage_options": {"levels": 1}})
    assert (tmp_path / "a" / STEP_FILE).exists() and bs.dtype == bool
    with pytest.raises(InvalidInputError, match="compressor"):
        above(_image(), 3.0, storage_options={"compressor": "zstd"})
    with pytest.raises(InvalidInputError, match="context_args"):
        above(_image(), 3.0, context_args={"cache": "x"})


def test_viewer_display_is_one_lazy_call(tmp_path, monkeypatch):
    import voxelflow.viewer as viewer_mod

    shown = []
    monkeypatch.setattr(viewer_mod, "add_result", lambda v, data, **kw: shown.append((v, data, kw)))
    fake = object()
    lab, n = components(above(_image(), 3.0), viewer_args={"viewer": fake, "opacity": 0.5},
                        storage_options={"scale": (2.0, 1.0, 1.0)})
    assert len(shown) == 1
    v, data, kw = shown[0]
    assert v is fake and data is lab and kw["is_label"] is True and kw["name"] == "components"
    assert kw["opacity"] == 0.5 and kw["scale"] == (2.0, 1.0, 1.0)
    above(_image(), 3.0)  # no viewer: no display
    assert len(shown) == 1


@pytest.mark.viewer
def test_results_shown_in_a_real_napari_viewer(tmp_path):
    napari = pytest.importorskip("napari")
    viewer = napari.Viewer(show=False)
    try:
        bs = above(_image(), 3.0, cache_url=str(tmp_path / "above"), viewer_args={"viewer": viewer})
        lab, n = components(bs, cache_url=str(tmp_path / "components"),
                            viewer_args={"viewer": viewer, "name": "objects"},
                            storage_options={"scale": (2.0, 1.0, 1.0)})
        kinds = {layer.name: type(layer).__name__ for layer in viewer.layers}
        assert kinds["objects"] == "Labels" and kinds["above"] in ("Image", "Labels")
        assert tuple(viewer.layers["objects"].scale) == (2.0, 1.0, 1.0)
        assert len(kinds) == 2
    finally:
        viewer.close()


@settings(max_examples=6, deadline=None)
@given(
    chunks=st.tuples(st.integers(4, 24), st.integers(8, 32), st.integers(8, 32)),
    values=st.lists(st.sampled_from([0.5, 2.0, 3.0, 7.5]), min_size=2, max_size=3),
)
def test_cached_step_equals_direct_for_any_chunking_and_params(tmp_path_factory, chunks, values):
    root = tmp_path_factory.mktemp("prop")
    img = _image().rechunk(chunks)
    seen = {}
    for v in values:
        CALLS.clear()
        out = above(img, v, cache_url=str(root / "above"))
        np.testing.assert_array_equal(out.compute(), img.compute() > v)
        assert out.chunks == img.chunks  # stored as computed, read back with the same chunks
        # recomputed exactly when the parameter differs from the cached call's
        assert CALLS.get("above", 0) == (0 if seen.get("last") == v else 1)
        seen["last"] = v
