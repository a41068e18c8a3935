"""Keep the cell pipeline's candidates that a saved classifier calls cells (``cells.classifier``).

The shape filter rejects foreground objects by size and elongation only. A
classifier trained from a lab's own annotations (``voxelflow train-classifier``
on the foreground components of a run, see :mod:`voxelflow.ops._classify`)
looks at more: intensities in the signal and background channels, local
contrast, shape. Here every foreground component that holds a candidate is
classified (cached step ``classify_cells``), and a candidate is kept when its
component is a cell.

The classifier file's SHA-256 is part of the step's key, so replacing the file
recomputes the step; the file, its hash, feature count and training score go
into ``run.json``. A file that is not a classifier, was trained with another
scikit-learn, or needs features this run cannot compute (background-channel
features without a background channel) raises when the recipe starts, before
anything is computed, naming the file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from voxelflow import ops, steps
from voxelflow.errors import InvalidInputError
from voxelflow.io.classifier import load_classifier
from voxelflow.paths import as_vpath
from voxelflow.steps import Runner, Step
from voxelflow.steps.models import classifier_stamp

__all__ = ["CandidateClassifier", "DEFAULT_RADIUS_UM", "classify_candidates", "open_candidate_classifier"]

#: Feature cube half side for classifiers that do not record theirs (``train-classifier``'s default).
DEFAULT_RADIUS_UM = 10.0


def _components_table(components):
    """LC table of the foreground components (OS)."""
    return ops.object_table(components, kind="os")


_component_objects = Step(_components_table, kind="OS->LC", name="component_objects")


def _check_features(clf, url: str, has_background: bool) -> int | None:
    """The ``cube`` the classifier's features need; raise if this run cannot compute them."""
    cubes = [f for f in clf.features if f.startswith("cube_")]
    cube = round(len(cubes) ** (1 / 3)) if cubes else None
    if cube is not None and (cube**3 != len(cubes) or cube % 2 == 0):
        raise InvalidInputError(f"{url}: the classifier has {len(cubes)} cube_* features, not an odd cube of a "
                                "3-D image")
    missing = [f for f in clf.features if f not in ops.feature_names(3, has_background, cube)]
    if missing:
        hint = " (they need a background channel: set input.background_channel)" \
            if not has_background and any(f.startswith(("background", "excess")) for f in missing) else ""
        raise InvalidInputError(
            f"{url}: the classifier was trained on features this run cannot compute: {missing}{hint}"
        )
    return cube


@dataclass(frozen=True)
class CandidateClassifier:
    """A checked classifier file, ready for :func:`classify_candidates`.

    Attributes
    ----------
    path : str
        As configured.
    url : str
    sha256 : str
        Of the file's bytes.
    classifier : CellClassifier
    cube : int or None
        ``cube`` of the features it needs.
    radius_um : float
        Feature cube half side it was trained with (or :data:`DEFAULT_RADIUS_UM`).
    """

    path: str
    url: str
    sha256: str
    classifier: object
    cube: int | None
    radius_um: float


def open_candidate_classifier(path: str, has_background: bool) -> CandidateClassifier:
    """Read and check a classifier file for a run with (or without) a background channel.

    Raises
    ------
    voxelflow.errors.InvalidPathError
        The file cannot be read.
    voxelflow.errors.InvalidInputError
        Not a classifier file, trained with another scikit-learn, or needs features this run lacks.
    """
    url = as_vpath(path).url
    stamp = classifier_stamp(path)
    clf = load_classifier(path)
    cube = _check_features(clf, url, has_background)
    radius = clf.radius_um if clf.radius_um is not None else DEFAULT_RADIUS_UM
    return CandidateClassifier(path, url, stamp, clf, cube, radius)


def classify_candidates(run: Runner, cells: pd.DataFrame, components, signal, background, spacing,
                        classifier: CandidateClassifier) -> tuple[pd.DataFrame, dict]:
    """Classify the components holding ``cells``; keep the cells whose component is a cell.

    Parameters
    ----------
    run : Runner
    cells : pandas.DataFrame
        Candidates (LC) with the ``component`` each lies in.
    components : dask.array.Array, shape (Z, Y, X), integer
        Foreground components (OS).
    signal, background : dask.array.Array or None
        Signal and background channels (IN).
    spacing : sequence of 3 float
        Voxel size in um.
    classifier : CandidateClassifier
        From :func:`open_candidate_classifier`.

    Returns
    -------
    cells : pandas.DataFrame
        The kept candidates with ``p_cell`` and ``is_cell``, ids renumbered ``1 .. n``.
    facts : dict
        For ``run.json``: the file, its SHA-256, features, training score, candidate counts.
    """
    clf = classifier.classifier
    table = run.step(_component_objects, components, name="component_objects")
    hosts = table[table["id"].isin(cells["component"].to_numpy())].reset_index(drop=True)
    classified = run.step(steps.classify_cells, hosts, components, signal, background, classifier=classifier.path,
                          stamp=classifier.sha256, voxel_size=tuple(spacing), radius_um=classifier.radius_um,
                          cube=classifier.cube, name="classify_cells")
    by_component = classified.set_index("id")
    out = cells.copy()
    out["p_cell"] = by_component["p_cell"].reindex(out["component"].to_numpy()).to_numpy(np.float64)
    out["is_cell"] = np.nan_to_num(out["p_cell"].to_numpy(), nan=0.0) >= clf.threshold
    kept = out[out["is_cell"].to_numpy()].reset_index(drop=True)
    kept["id"] = np.arange(1, len(kept) + 1, dtype=np.int64)
    score = clf.cv_score
    facts = {"path": classifier.url, "sha256": classifier.sha256, "features": list(clf.features),
             "radius_um": classifier.radius_um, "threshold": clf.threshold,
             "cv_score": None if score is None or math.isnan(score) else float(score),
             "versions": dict(clf.versions), "candidates": int(len(cells)), "rejected": int(len(cells) - len(kept))}
    return kept, facts
