"""voxelflow train-classifier on files: OME-Zarr channels and labels, an object table, napari-style point CSVs."""

import numpy as np
import pandas as pd
import pytest

from cells_helpers import cell_candidates
from voxelflow.cli import main
from voxelflow.errors import InvalidInputError
from voxelflow.io.classifier import load_classifier
from voxelflow.io.ome_zarr import write_ome_zarr
from voxelflow.ops import classify_objects, object_features


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    c = cell_candidates(seed=0)
    folder = tmp_path_factory.mktemp("cells")
    spacing = tuple(c.crop.spacing)
    write_ome_zarr(np.stack([c.crop.image, c.crop.background]), str(folder / "scan.ome.zarr"),
                   scale=(1.0, *spacing), chunks=(1, 20, 128, 128), overwrite=True)
    write_ome_zarr(c.labels, str(folder / "labels.ome.zarr"), scale=spacing, chunks=(20, 128, 128),
                   method="nearest", overwrite=True)
    c.table.to_parquet(folder / "objects.parquet")
    rng = np.random.default_rng(5)
    rows = rng.choice(len(c.table), 200, replace=False)
    um = c.table.loc[rows, ["z", "y", "x"]].to_numpy() * np.asarray(spacing) + rng.uniform(-1, 1, (200, 3))
    # napari Points CSV: index, axis-0..2 in world (um) coordinates; one file per class
    for name, keep in (("cells.csv", c.is_cell[rows]), ("other.csv", ~c.is_cell[rows])):
        pts = um[keep]
        pd.DataFrame({"index": range(len(pts)), "axis-0": pts[:, 0], "axis-1": pts[:, 1],
                      "axis-2": pts[:, 2]}).to_csv(folder / name, index=False)
    return c, folder, rows


def test_train_command_prints_the_score_and_writes_a_classifier_that_generalises(files, capsys):
    c, folder, rows = files
    out = folder / "cells.classifier"
    code = main(["train-classifier", "--objects", str(folder / "objects.parquet"),
                 "--labels", str(folder / "labels.ome.zarr"),
                 "--signal", f"{folder / 'scan.ome.zarr'}?slices=[0]",
                 "--background", f"{folder / 'scan.ome.zarr'}?slices=[1]",
                 "--cells", str(folder / "cells.csv"), "--not-cells", str(folder / "other.csv"),
                 "--radius-um", "12", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "cross-validated balanced accuracy 0." in printed
    score = float(printed.split("accuracy ")[1].split()[0])
    clf = load_classifier(out)
    assert score == pytest.approx(clf.cv_score, abs=1e-3) and score > 0.8
    assert sum(clf.n_train.values()) <= 200
    feats = object_features(c.table, c.labels, c.signal, c.background, voxel_size=c.crop.spacing, radius_um=12)
    result = classify_objects(c.table, feats, clf)
    held_out = np.ones(len(c.table), bool)
    held_out[rows] = False
    pred, true = result["is_cell"].to_numpy()[held_out], c.is_cell[held_out]
    precision, recall = (pred & true).sum() / pred.sum(), (pred & true).sum() / true.sum()
    assert precision >= 0.95 and recall >= 0.95, (precision, recall)


def test_missing_annotations_and_bad_points(files, tmp_path, capsys):
    _, folder, _ = files
    base = ["train-classifier", "--objects", str(folder / "objects.parquet"),
            "--labels", str(folder / "labels.ome.zarr"), "--signal", f"{folder / 'scan.ome.zarr'}?slices=[0]",
            "--out", str(tmp_path / "x.classifier")]
    assert main(base) == 2
    assert "no annotations" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    assert main(base + ["--points", str(bad)]) == 2
    assert "coordinate columns" in capsys.readouterr().err
    unlabeled = tmp_path / "unlabeled.csv"
    unlabeled.write_text("z,y,x,label\n1,2,3,maybe\n")
    assert main(base + ["--points", str(unlabeled)]) == 2
    assert "unknown values ['maybe']" in capsys.readouterr().err
    with pytest.raises(InvalidInputError):
        from voxelflow.io.annotations import read_points

        read_points(unlabeled)
