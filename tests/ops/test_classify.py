"""Candidate classifier: planted cells vs vessels, fibres and autofluorescent granules (voxelflow.synth_cells).

Ground truth is planted: a candidate is a cell when its centroid lies within a
planted cell (tests/cells_helpers.py). Training uses 200 annotated points on
candidates drawn at random, matched to candidates by distance; precision and
recall are measured on the candidates that were not annotated.
"""

import dask.array as da
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage as ndi

from cells_helpers import cell_candidates
from voxelflow.errors import InvalidInputError
from voxelflow.ops import classify_objects, match_points, object_features, object_table, train_classifier


@pytest.fixture(scope="module")
def candidates():
    return cell_candidates(seed=0)


@pytest.fixture(scope="module")
def features(candidates):
    c = candidates
    return object_features(c.table, da.from_array(c.labels, chunks=(20, 128, 128)), c.signal, c.background,
                           voxel_size=c.crop.spacing, radius_um=12)


def annotate(c, seed, n=200):
    """n points on random candidates, a voxel off their centroids, with their true labels."""
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(c.table), n, replace=False)
    points = c.table.loc[rows, ["z", "y", "x"]].to_numpy() + rng.uniform(-1, 1, (n, 3))
    return points, c.is_cell[rows]


@pytest.mark.parametrize("seed", [0, 1])
def test_classifier_separates_cells_from_vessels_fibres_and_granules(candidates, features, seed):
    c = candidates
    assert 0.15 < 1 - c.is_cell.mean() < 0.5  # planted false candidates are a real share
    points, labels = annotate(c, seed)
    ids = match_points(c.table, points, voxel_size=c.crop.spacing, max_distance_um=6)
    hit = ids != 0
    assert hit.mean() > 0.95
    by_id = features.set_index("id")
    clf = train_classifier(by_id.loc[ids[hit]].reset_index(), labels[hit])
    assert 0.8 < clf.cv_score <= 1 and sum(clf.n_train.values()) <= 200

    out = classify_objects(c.table, features, clf)
    assert list(out.columns[-2:]) == ["p_cell", "is_cell"] and out["is_cell"].dtype == bool
    held_out = ~np.isin(c.table["id"].to_numpy(), ids)
    pred, true = out["is_cell"].to_numpy()[held_out], c.is_cell[held_out]
    precision = (pred & true).sum() / pred.sum()
    recall = (pred & true).sum() / true.sum()
    assert precision >= 0.95 and recall >= 0.95, (precision, recall)
    # every candidate called a cell is not simply every candidate: the false ones are rejected
    assert (~pred & ~true).sum() >= 0.8 * (~true).sum()


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
    # a flat background channel: no excess over its surroundings
    assert rod["background_contrast"] == pytest.approx(1) and rod["excess_ratio"] == pytest.approx(0)
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
