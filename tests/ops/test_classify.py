"""Candidate classifier: planted cells vs vessels, fibres and autofluorescent debris.

Ground truth is planted (tests/cells_helpers.py): a candidate is a cell when most
of its voxels lie in a planted cell. Training uses at most 200 annotated points,
matched to candidates by distance; precision and recall are measured on the
candidates that were not annotated.
"""

import dask.array as da
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage as ndi

from cells_helpers import VOXEL, candidate_truth, make_cell_scan
from voxelflow.errors import InvalidInputError
from voxelflow.ops import classify_objects, label, match_points, object_features, object_table, train_classifier


def candidates(scan, chunks=(20, 100, 100)):
    os_arr, _ = label(da.from_array(scan.signal > 0.45, chunks=chunks))
    os_np = os_arr.compute()
    table = object_table(os_np, intensity=scan.signal)
    table = table[table.voxels >= 4].reset_index(drop=True)
    return os_np, table


@pytest.mark.parametrize("seed", [0, 1])
def test_classifier_separates_cells_from_vessels_fibres_and_debris(seed):
    scan = make_cell_scan(seed=seed)
    os_np, table = candidates(scan)
    truth = candidate_truth(os_np, table, scan)
    assert 0.25 < 1 - truth.mean() < 0.6  # planted false candidates are a large share

    # 200 annotated points: 100 on cells, 100 on other candidates, a voxel off the centroid
    rng = np.random.default_rng(seed + 10)
    rows = np.r_[rng.choice(np.flatnonzero(truth), 100, replace=False),
                 rng.choice(np.flatnonzero(~truth), 100, replace=False)]
    points = table.loc[rows, ["z", "y", "x"]].to_numpy() + rng.uniform(-1, 1, (200, 3))
    ids = match_points(table, points, voxel_size=VOXEL, max_distance_um=6)
    assert (ids == table["id"].to_numpy()[rows]).mean() > 0.95
    annotated = ids != 0

    features = object_features(table, da.from_array(os_np, chunks=(20, 100, 100)), scan.signal, scan.background,
                               voxel_size=VOXEL, radius_um=10)
    by_id = features.set_index("id")
    clf = train_classifier(by_id.loc[ids[annotated]].reset_index(), truth[rows][annotated])
    assert 0.9 < clf.cv_score <= 1 and clf.n_train["cell"] + clf.n_train["not_cell"] <= 200

    out = classify_objects(table, features, clf)
    assert list(out.columns[-2:]) == ["p_cell", "is_cell"] and out["is_cell"].dtype == bool
    held_out = ~np.isin(table["id"].to_numpy(), ids)
    pred, true = out["is_cell"].to_numpy()[held_out], truth[held_out]
    precision = (pred & true).sum() / pred.sum()
    recall = (pred & true).sum() / true.sum()
    assert precision >= 0.95 and recall >= 0.95, (precision, recall)
    # the same without the background channel is worse on debris: the channel matters
    plain = object_features(table, os_np, scan.signal, voxel_size=VOXEL, radius_um=10)
    clf_plain = train_classifier(plain.set_index("id").loc[ids[annotated]].reset_index(), truth[rows][annotated])
    debris = np.array([scan.kind.get(int(np.bincount(scan.truth[os_np == i]).argmax()), "") == "debris"
                       for i in table["id"].to_numpy()])
    p_plain = classify_objects(table, plain, clf_plain)["is_cell"].to_numpy()
    assert p_plain[debris & held_out].mean() > pred[debris[held_out]].mean()


def test_features_match_direct_computation():
    # two objects: a ball and a rod, features against numpy on the whole array
    os_np = np.zeros((10, 30, 30), np.int32)
    zz, yy, xx = np.indices(os_np.shape)
    os_np[((zz - 5) * 5) ** 2 + ((yy - 10) * 2) ** 2 + ((xx - 10) * 2) ** 2 <= 36] = 1
    os_np[5, 20, 3:27] = 2
    signal = np.where(os_np == 1, 3.0, np.where(os_np == 2, 2.0, 1.0)) + 0.01 * xx
    background = np.full(os_np.shape, 0.5)
    table = object_table(os_np)
    feats = object_features(table, da.from_array(os_np, chunks=(5, 7, 9)), signal, background,
                            voxel_size=(5, 2, 2), radius_um=100, cube=3)
    ball, rod = feats.iloc[0], feats.iloc[1]
    np.testing.assert_allclose(ball["signal_mean"], signal[os_np == 1].mean())
    np.testing.assert_allclose(ball["signal_ring"], signal[os_np == 0].mean())
    np.testing.assert_allclose(ball["contrast"], signal[os_np == 1].mean() / signal[os_np == 0].mean())
    np.testing.assert_allclose(rod["background_ratio"], 0.5 / signal[os_np == 2].mean())
    assert ball["elongation"] < 1.5 < 10 < rod["elongation"]
    assert ball["volume_um3"] == (os_np == 1).sum() * 20 and rod["extent_x_um"] == 48
    centre = tuple(np.rint(ndi.center_of_mass(os_np == 1)).astype(int))
    cube = signal[tuple(slice(c - 1, c + 2) for c in centre)].ravel() / ball["signal_ring"]
    np.testing.assert_allclose(ball[[f"cube_{i}" for i in range(27)]].to_numpy(float), cube)


def test_bad_inputs():
    os_np = np.zeros((4, 4, 4), np.int32)
    os_np[1:3, 1:3, 1:3] = 1
    table = object_table(os_np)
    with pytest.raises(InvalidInputError, match="lacks the columns"):
        object_features(table.drop(columns=["voxels"]), os_np, os_np * 1.0)
    with pytest.raises(InvalidInputError, match="signal has shape"):
        object_features(table, os_np, np.zeros((4, 4, 5)))
    with pytest.raises(InvalidInputError, match="cube"):
        object_features(table, os_np, os_np * 1.0, cube=2)
    feats = pd.DataFrame({"id": [1, 2, 3], "a": [1.0, 2.0, 3.0]})
    with pytest.raises(InvalidInputError, match="at least 2 annotated objects of each class"):
        train_classifier(feats, [True, False, False])
    clf = train_classifier(pd.DataFrame({"id": range(6), "a": [0, 0, 0, 1, 1, 1.0]}), [0, 0, 0, 1, 1, 1], cv=3)
    with pytest.raises(InvalidInputError, match="missing"):
        clf.p_cell(pd.DataFrame({"b": [1.0]}))
    with pytest.raises(InvalidInputError, match="shape"):
        match_points(table, np.zeros((2, 2)))
