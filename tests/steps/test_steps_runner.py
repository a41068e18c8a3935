"""Runner, result hooks, and step nodes loading with ``voxelflow.load``."""

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import scipy.ndimage as ndi

import voxelflow
from voxelflow.steps import Runner, StepResult, label, object_table, step, subscribe, threshold, unsubscribe


def _image():
    rng = np.random.default_rng(3)
    return da.from_array(rng.random((12, 20, 16)), chunks=(5, 7, 6))


@step(kind="LC->LC")
def big_objects(table, min_voxels):
    return table[table["voxels"] >= min_voxels].reset_index(drop=True), int(len(table))


def test_step_nodes_load_with_voxelflow_load(tmp_path):
    img = _image()
    bs = threshold(img, 0.7, cache_url=str(tmp_path / "bs"))
    lab, n = label(bs, cache_url=str(tmp_path / "label"))
    want, want_n = ndi.label(img.compute() > 0.7)
    np.testing.assert_array_equal(voxelflow.load(tmp_path / "bs").compute(), img.compute() > 0.7)
    got_lab, got_n = voxelflow.load(tmp_path / "label")
    assert got_n == n == want_n
    np.testing.assert_array_equal(got_lab.compute(), lab.compute())
    table = object_table(lab, kind="os", cache_url=str(tmp_path / "objects"))
    kept, total = big_objects(table, 3, cache_url=str(tmp_path / "big"))
    loaded_kept, loaded_total = voxelflow.load(tmp_path / "big")
    pd.testing.assert_frame_equal(loaded_kept, kept)
    assert loaded_total == total == want_n
    assert sorted(loaded_kept["voxels"]) == sorted(v for v in np.bincount(want.ravel())[1:] if v >= 3)


def test_series_output_round_trips(tmp_path):
    @step
    def sizes(n):
        return pd.Series(np.arange(n), name="size")

    first = sizes(4, cache_url=str(tmp_path / "s"))
    again = sizes(4, cache_url=str(tmp_path / "s"))
    for got in (first, again, voxelflow.load(tmp_path / "s")):
        pd.testing.assert_series_equal(got, pd.Series(np.arange(4), name="size"))


def test_runner_caches_under_its_root_and_records(tmp_path):
    seen = []
    run = Runner(tmp_path / "cache", storage={"levels": 1}, on_result=seen.append)
    img = _image()
    bs = run.step(threshold, img, 0.5, name="foreground")
    assert (tmp_path / "cache" / "foreground").is_dir()
    np.testing.assert_array_equal(bs.compute(), img.compute() > 0.5)
    run.step(threshold, img, 0.5, name="foreground")
    assert [(r.name, r.cached) for r in run.records] == [("threshold", False), ("threshold", True)]
    assert [s.record.node for s in seen] == [str(tmp_path / "cache" / "foreground")] * 2
    assert all(isinstance(s, StepResult) and s.kind_out == "BS" for s in seen)


def test_runner_turns_plain_functions_into_steps(tmp_path):
    run = Runner(tmp_path)

    def double(x):
        return x * 2

    out = run.step(double, da.arange(6, chunks=3), name="double")
    np.testing.assert_array_equal(out.compute(), np.arange(6) * 2)
    assert run.records[0].name == "double" and not run.records[0].cached
    assert voxelflow.load(tmp_path / "double").compute().tolist() == [0, 2, 4, 6, 8, 10]


def test_subscribers_hear_every_step_and_can_leave():
    heard = []
    hook = subscribe(heard.append)
    try:
        threshold(da.arange(4, chunks=2), 1)
        assert len(heard) == 1 and heard[0].record.key is None and heard[0].viewer_args == {}
    finally:
        unsubscribe(hook)
    threshold(da.arange(4, chunks=2), 1)
    assert len(heard) == 1


def test_runner_without_cache_caches_nothing(tmp_path):
    run = Runner(None)
    out = run.step(threshold, da.arange(4, chunks=2), 1, name="t")
    assert out.sum().compute() == 2 and run.node("t") is None
    with pytest.raises(voxelflow.errors.InvalidInputError, match="storage_options"):
        Runner(None, storage={"compressor": "x"}).step(threshold, da.arange(4, chunks=2), 1)


def test_viewer_display_is_a_declared_result_hook():
    from importlib.metadata import entry_points

    import voxelflow.viewer

    hooks = {ep.value: ep for ep in entry_points(group="voxelflow.on_result")}
    assert hooks["voxelflow.viewer:show_step_result"].load() is voxelflow.viewer.show_step_result
