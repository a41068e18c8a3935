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
features without a background channel) raises before anything is computed,
naming the file.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from voxelflow import ops, steps
from voxelflow.errors import InvalidInputError
from voxelflow.io.classifier import load_classifier
from voxelflow.paths import as_vpath
from voxelflow.steps import Runner, Step

__all__ = ["classify_candidates", "DEFAULT_RADIUS_UM"]

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


def classify_candidates(run: Runner, cells: pd.DataFrame, components, signal, background, spacing,
                        path: str) -> tuple[pd.DataFrame, dict]:
    """Classify the components holding ``cells`` with the classifier at ``path``; keep the cells' ones.

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
    path : str
        Classifier file (``voxelflow train-classifier``).

    Returns
    -------
    cells : pandas.DataFrame
        The kept candidates with ``p_cell`` and ``is_cell``, ids renumbered ``1 .. n``.
    facts : dict
        For ``run.json``: the file, its SHA-256, features, training score, candidate counts.

    Raises
    ------
    voxelflow.errors.InvalidPathError
        The file cannot be read.
    voxelflow.errors.InvalidInputError
        Not a classifier file, trained with another scikit-learn, or needs features this run lacks.
    """
    url = as_vpath(path).url
    stamp = steps.classifier_stamp(path)
    clf = load_classifier(path)
    cube = _check_features(clf, url, background is not None)
    radius = clf.radius_um if clf.radius_um is not None else DEFAULT_RADIUS_UM
    table = run.step(_component_objects, components, name="component_objects")
    hosts = table[table["id"].isin(cells["component"].to_numpy())].reset_index(drop=True)
    classified = run.step(steps.classify_cells, hosts, components, signal, background, classifier=path,
                          stamp=stamp, voxel_size=tuple(spacing), radius_um=radius, cube=cube,
                          name="classify_cells")
    by_component = classified.set_index("id")
    out = cells.copy()
    out["p_cell"] = by_component["p_cell"].reindex(out["component"].to_numpy()).to_numpy(np.float64)
    out["is_cell"] = np.nan_to_num(out["p_cell"].to_numpy(), nan=0.0) >= clf.threshold
    kept = out[out["is_cell"].to_numpy()].reset_index(drop=True)
    kept["id"] = np.arange(1, len(kept) + 1, dtype=np.int64)
    facts = {"path": url, "sha256": stamp, "features": list(clf.features), "radius_um": radius,
             "threshold": clf.threshold, "cv_score": None if clf.cv_score is None or math.isnan(clf.cv_score)
             else float(clf.cv_score), "versions": dict(clf.versions), "candidates": int(len(cells)),
             "rejected": int(len(cells) - len(kept))}
    return kept, facts
