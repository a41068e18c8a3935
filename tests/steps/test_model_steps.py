"""Model steps: cached predict, instance prediction stitched through a scratch store, cell classification."""

import dask.array as da
import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from models_helpers import assert_same_instances, conv_net
from voxelflow.io.classifier import save_classifier
from voxelflow.io.models import load_model
from voxelflow.ops import object_features, object_table, predict, train_classifier
from voxelflow.steps import Runner
from voxelflow.steps.models import classifier_stamp, classify_cells, predict_instances
from voxelflow.steps.models import predict as predict_step


def label_model(block):
    return ndi.label(block > 0)[0]


def test_predict_step_is_cached_and_keyed_by_the_model_file(tmp_path):
    net = conv_net(tmp_path / "net.onnx")
    x = np.random.default_rng(0).normal(0, 1, (16, 24, 24)).astype(np.float32)
    img = da.from_array(x, chunks=(8, 12, 12))
    run = Runner(tmp_path / "cache", storage={"axes": "czyx"})
    first = run.step(predict_step, img, load_model(net), halo=2, dtype="float32", name="probs")
    again = run.step(predict_step, img, load_model(net), halo=2, dtype="float32", name="probs")
    ref = predict(img, load_model(net), halo=2, dtype="float32").compute()
    np.testing.assert_array_equal(np.asarray(first), ref)
    np.testing.assert_array_equal(np.asarray(again), ref)
    assert [r.cached for r in run.records] == [False, True]
    other = conv_net(tmp_path / "other.onnx", seed=3)
    run.step(predict_step, img, load_model(other), halo=2, dtype="float32", name="probs")
    assert run.records[-1].cached is False


def test_predict_instances_step_equals_whole_array_labels(tmp_path):
    rng = np.random.default_rng(1)
    x = (ndi.gaussian_filter(rng.random((24, 40, 40)), 1.5) > 0.54).astype(np.uint8)
    ref, n_ref = ndi.label(x)
    halo = max(max(s.stop - s.start for s in b) for b in ndi.find_objects(ref))
    run = Runner(tmp_path / "cache")
    for chunks in [(8, 16, 16), (24, 13, 9)]:  # aligned and ragged chunks of the scratch store
        os_arr = run.step(predict_instances, da.from_array(x, chunks=chunks), label_model, halo=halo,
                          pad_mode="constant", name=f"instances-{chunks[1]}")
        ours = np.asarray(os_arr)
        assert_same_instances(ours, ref)
        assert ours.max() == n_ref


def test_classify_cells_step_adds_columns_and_follows_the_classifier_file(tmp_path):
    rng = np.random.default_rng(2)
    os_np = np.zeros((10, 40, 40), np.int32)
    signal = rng.normal(10, 1, os_np.shape).astype(np.float32)
    for k in range(12):  # 6 bright balls (cells) and 6 dim ones
        z, y, x = 5, 5 + (k // 4) * 12, 5 + (k % 4) * 10
        ball = (np.indices(os_np.shape) - np.array([z, y, x])[:, None, None, None]) ** 2
        inside = ball.sum(0) <= 4
        os_np[inside] = k + 1
        signal[inside] += 20 if k % 2 == 0 else 2
    table = object_table(os_np, intensity=signal)
    feats = object_features(table, os_np, signal, radius_um=4)
    clf = train_classifier(feats, np.arange(12) % 2 == 0, cv=3)
    path = tmp_path / "cells.classifier"
    save_classifier(clf, path)
    run = Runner(tmp_path / "cache")
    out = run.step(classify_cells, table, os_np, signal, classifier=str(path), stamp=classifier_stamp(path),
                   radius_um=4, name="cells")
    assert isinstance(out, pd.DataFrame)
    np.testing.assert_array_equal(out["is_cell"].to_numpy(), np.arange(12) % 2 == 0)
    run.step(classify_cells, table, os_np, signal, classifier=str(path), stamp=classifier_stamp(path),
             radius_um=4, name="cells")
    assert [r.cached for r in run.records] == [False, True]
    clf.threshold = 0.99
    save_classifier(clf, path)
    again = run.step(classify_cells, table, os_np, signal, classifier=str(path), stamp=classifier_stamp(path),
                     radius_um=4, name="cells")
    assert run.records[-1].cached is False and again["is_cell"].sum() <= out["is_cell"].sum()


def test_a_damaged_scratch_tile_is_an_error_not_wrong_labels(tmp_path, monkeypatch):
    import glob
    import os

    import dask
    import pytest

    from voxelflow import ops
    from voxelflow.errors import MissingChunkError

    x = np.zeros((8, 16, 16), np.uint8)
    x[2:5, 3:7, 3:7] = 1
    real_stitch = ops.stitch
    damage = {}

    def stitch_after_damage(labels, matches):
        # the tiles are in the scratch store now; damage one before it is read back
        files = sorted(glob.glob(os.path.join(str(tmp_path / damage["how"]), "voxelflow-tiles-*", "c", "**", "*"),
                              recursive=True))
        files = [f for f in files if os.path.isfile(f)]
        if damage["how"] == "flip":
            data = bytearray(open(files[0], "rb").read())
            data[len(data) // 2] ^= 0x40
            open(files[0], "wb").write(bytes(data))
        else:
            os.remove(files[0])
        return real_stitch(labels, matches)

    monkeypatch.setattr(ops, "stitch", stitch_after_damage)
    for how, error, message in (("flip", ValueError, "checksum"), ("remove", MissingChunkError, "missing")):
        damage["how"] = how
        with dask.config.set({"temporary-directory": str(tmp_path / how)}), pytest.raises(error, match=message):
            run = Runner(tmp_path / f"cache-{how}")
            np.asarray(run.step(predict_instances, da.from_array(x, chunks=(8, 8, 8)), label_model, halo=2,
                                pad_mode="constant", name="instances"))
