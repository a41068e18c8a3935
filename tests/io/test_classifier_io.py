"""Classifier files: saved with features and versions, loaded back to identical predictions, bad files refused."""

import json
import pickle

import numpy as np
import pandas as pd
import pytest

from voxelflow.errors import InvalidInputError, InvalidPathError
from voxelflow.io.classifier import load_classifier, save_classifier
from voxelflow.ops import train_classifier


def trained():
    rng = np.random.default_rng(0)
    feats = pd.DataFrame({"id": np.arange(40), "size": rng.normal(0, 1, 40), "ratio": rng.normal(0, 1, 40)})
    y = feats["size"].to_numpy() + 0.3 * rng.normal(0, 1, 40) > 0
    return train_classifier(feats, y, n_estimators=50, cv=3), feats


def test_round_trip_keeps_predictions_features_and_versions(tmp_path):
    clf, feats = trained()
    path = tmp_path / "cells.classifier"
    save_classifier(clf, path)
    back = load_classifier(path)
    assert back.features == ["size", "ratio"] and back.cv_score == clf.cv_score and back.n_train == clf.n_train
    np.testing.assert_array_equal(back.p_cell(feats), clf.p_cell(feats))
    meta = json.loads((tmp_path / "cells.classifier.json").read_text())
    assert meta["features"] == ["size", "ratio"] and "scikit-learn" in meta["versions"]
    # saving again replaces the file whole
    save_classifier(back, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cells.classifier", "cells.classifier.json"]


def test_other_scikit_learn_version_is_refused_unless_asked(tmp_path):
    clf, feats = trained()
    path = tmp_path / "old.classifier"
    save_classifier(clf, path)
    payload = pickle.loads(path.read_bytes())
    payload["versions"]["scikit-learn"] = "0.1"
    path.write_bytes(pickle.dumps(payload))
    with pytest.raises(InvalidInputError, match="trained with scikit-learn 0.1"):
        load_classifier(path)
    np.testing.assert_array_equal(load_classifier(path, check_versions=False).p_cell(feats), clf.p_cell(feats))


def test_bad_files(tmp_path):
    with pytest.raises(InvalidPathError, match="missing.classifier"):
        load_classifier(tmp_path / "missing.classifier")
    (tmp_path / "junk").write_bytes(b"junk")
    with pytest.raises(InvalidInputError, match="not a voxelflow classifier"):
        load_classifier(tmp_path / "junk")
    (tmp_path / "dict").write_bytes(pickle.dumps({"format": "other"}))
    with pytest.raises(InvalidInputError, match="not a voxelflow classifier"):
        load_classifier(tmp_path / "dict")
    with pytest.raises(InvalidInputError, match="CellClassifier"):
        save_classifier("forest", tmp_path / "x")
