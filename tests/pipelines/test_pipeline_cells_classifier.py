"""cells.classifier: `voxelflow run` keeps the candidates a trained classifier calls cells.

A cell run without the background channel keeps vessel and fibre pieces and
autofluorescent granules as cells. A classifier is trained with
`voxelflow train-classifier` from 200 points annotated on that run's foreground
components (the label of a component: one of its candidates lies within a
planted cell), and a second run with `cells.classifier` set must score a higher
precision against the planted cells at a similar recall. The classifier file's
hash keys the step: a new file recomputes it, the same file is cached.
"""

import hashlib
import json
import pickle

import numpy as np
import pandas as pd
import pytest
from scipy.spatial import cKDTree

from voxelflow.cli import main
from voxelflow.errors import InvalidInputError, InvalidPathError
from voxelflow.io.classifier import load_classifier, save_classifier
from voxelflow.io.ome_zarr import open_ome_zarr
from voxelflow.ops import object_table
from voxelflow.pipelines.cells import run_cell_pipeline
from voxelflow.pipelines.config import load_config
from voxelflow.synth_cells import make_synthetic_cells, score_cells, write_synthetic_cells

SHAPE = (32, 192, 192)


@pytest.fixture(scope="module")
def crop_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cells_classifier")
    crop = make_synthetic_cells(SHAPE, seed=21)
    return crop, write_synthetic_cells(crop, folder / "data"), folder


def _overrides(urls, out, *extra):
    return [f"input.url={urls['scan']}?slices=[0]", f"output.folder={out}", 'pipeline.kind="cells"',
            "cells.diameter_um=10", "output.report=false", *extra]


def _precision_recall(crop, objects):
    s = score_cells(crop, objects[["z_um", "y_um", "x_um"]].to_numpy())
    return s["precision"], s["recall"]


def _annotate(crop, run_dir, objects, n, seed, folder):
    """Points on ``n`` random components holding candidates, labelled from the planted truth; a CSV file."""
    components = str(run_dir / "cache" / "components" / "out0" / "data.ome.zarr")
    table = object_table(open_ome_zarr(components)[0], kind="os")
    truth = crop.truth
    tree = cKDTree(truth[["z_um", "y_um", "x_um"]].to_numpy())
    dist, nearest = tree.query(objects[["z_um", "y_um", "x_um"]].to_numpy())
    true_candidate = dist <= truth["diameter_um"].to_numpy()[nearest] / 2
    is_cell = pd.Series(true_candidate).groupby(objects["component"].to_numpy()).any()
    hosts = table[table["id"].isin(is_cell.index)].reset_index(drop=True)
    rows = np.random.default_rng(seed).choice(len(hosts), min(n, len(hosts)), replace=False)
    picked = hosts.iloc[rows]
    points = pd.DataFrame({"z": picked["z"], "y": picked["y"], "x": picked["x"],
                           "label": np.where(is_cell.loc[picked["id"]].to_numpy(), "cell", "not_cell")})
    path = folder / f"points-{seed}.csv"
    points.to_csv(path, index=False)
    return components, path


def _train(urls, components, points, out, *extra):
    return main(["train-classifier", "--labels", components, "--signal", f"{urls['scan']}?slices=[0]",
                 "--points", str(points), "--unit", "voxel", "--out", str(out), *extra])


@pytest.fixture(scope="module")
def trained(crop_files):
    crop, urls, folder = crop_files
    plain = run_cell_pipeline(load_config(None, _overrides(urls, folder / "plain")), progress=False)
    components, points = _annotate(crop, folder / "plain", plain.objects, 200, 0, folder)
    clf = folder / "cells.classifier"
    assert _train(urls, components, points, clf) == 0
    return plain, components, clf


def test_the_classifier_raises_precision_against_planted_cells(crop_files, trained, capsys):
    crop, urls, folder = crop_files
    plain, _, clf = trained
    toml = folder / "cells.toml"
    toml.write_text(f"""
[input]
url = "{urls['scan']}?slices=[0]"
[pipeline]
kind = "cells"
[cells]
diameter_um = 10
classifier = "cells.classifier"  # relative to this file
[output]
folder = "classified"
cache = "plain/cache"
report = false
""")
    assert main(["run", str(toml), "--quiet"]) == 0
    objects = pd.read_parquet(folder / "classified" / "objects.parquet")
    p0, r0 = _precision_recall(crop, plain.objects)
    p1, r1 = _precision_recall(crop, objects)
    print(f"precision {p0:.3f} -> {p1:.3f}, recall {r0:.3f} -> {r1:.3f}")
    assert p0 < 0.9  # the task is not trivial without the background channel
    assert p1 >= p0 + 0.1 and p1 >= 0.9
    assert r1 >= r0 - 0.05
    assert objects["is_cell"].all() and (objects["p_cell"] >= 0.5).all()
    assert list(objects["id"]) == list(range(1, len(objects) + 1))
    # the file's hash and what it is go into run.json
    record = json.loads((folder / "classified" / "run.json").read_text())["classifier"]
    stored = load_classifier(clf)
    assert record["sha256"] == hashlib.sha256(clf.read_bytes()).hexdigest()
    assert record["features"] == stored.features and record["radius_um"] == stored.radius_um == 10.0
    assert record["candidates"] - record["rejected"] == len(objects)
    # upstream steps came from the first run's cache; the classifier's steps are new
    again = run_cell_pipeline(load_config(str(toml), []), progress=False)
    pd.testing.assert_frame_equal(again.objects.reset_index(drop=True), objects, check_dtype=False)
    assert all(r.cached for r in again.records)
    assert {"component_objects", "classify_cells"} <= {r.name for r in again.records}


def test_a_changed_classifier_file_recomputes_the_step(crop_files, trained):
    crop, urls, folder = crop_files
    plain, components, _ = trained
    clf = folder / "changing.classifier"
    cache = f"output.cache={folder / 'changing-cache'}"
    _, points = _annotate(crop, folder / "plain", plain.objects, 150, 1, folder)
    assert _train(urls, components, points, clf) == 0
    first = run_cell_pipeline(load_config(None, _overrides(urls, folder / "c1", f"cells.classifier={clf}", cache)),
                              progress=False)
    again = run_cell_pipeline(load_config(None, _overrides(urls, folder / "c2", f"cells.classifier={clf}", cache)),
                              progress=False)
    assert all(r.cached for r in again.records)
    _, points = _annotate(crop, folder / "plain", plain.objects, 150, 2, folder)
    assert _train(urls, components, points, clf) == 0  # same path, new content
    changed = run_cell_pipeline(load_config(None, _overrides(urls, folder / "c3", f"cells.classifier={clf}", cache)),
                                progress=False)
    state = {r.name: r.cached for r in changed.records}
    assert state["foreground_components"] and state["component_objects"]
    assert not state["classify_cells"]
    assert json.loads((folder / "c3" / "run.json").read_text())["classifier"]["sha256"] != \
        json.loads((folder / "c1" / "run.json").read_text())["classifier"]["sha256"]
    assert len(first.objects) and len(changed.objects)


def test_wrong_classifier_files_are_refused_naming_the_file(crop_files, trained, tmp_path):
    crop, urls, folder = crop_files
    plain, components, clf = trained

    def run(path, *extra):
        return run_cell_pipeline(load_config(None, _overrides(urls, tmp_path / "run", f"cells.classifier={path}",
                                                              *extra)), progress=False)

    with pytest.raises(InvalidPathError, match="missing.classifier"):
        run(tmp_path / "missing.classifier")
    text = tmp_path / "notes.classifier"
    text.write_text("not a classifier")
    with pytest.raises(InvalidInputError, match="notes.classifier.*not a voxelflow classifier"):
        run(text)
    # trained with another scikit-learn
    payload = pickle.loads(clf.read_bytes())
    payload["versions"]["scikit-learn"] = "0.1"
    old = tmp_path / "old.classifier"
    old.write_bytes(pickle.dumps(payload))
    with pytest.raises(InvalidInputError, match="old.classifier.*scikit-learn 0.1"):
        run(old)
    # trained with background-channel features, applied to a run without that channel
    _, points = _annotate(crop, folder / "plain", plain.objects, 100, 3, folder)
    two = tmp_path / "two-channel.classifier"
    assert _train(urls, components, points, two, "--background", f"{urls['scan']}?slices=[1]") == 0
    with pytest.raises(InvalidInputError, match="two-channel.classifier.*background_mean.*input.background_channel"):
        run(two)
    # features the run cannot compute at all
    weird = load_classifier(clf)
    weird.features = [*weird.features[:-1], "texture_entropy"]
    save_classifier(weird, tmp_path / "weird.classifier")
    with pytest.raises(InvalidInputError, match="weird.classifier.*texture_entropy"):
        run(tmp_path / "weird.classifier", "input.background_channel=1")
    assert not (tmp_path / "run" / "run.json").exists()
