"""Cell classifiers on disk: the fitted estimator with its feature list and versions.

A classifier file is a pickle of a dict (format name and version, feature list,
threshold, cross-validated score, training counts, the radius the features were
computed in, library versions, and the scikit-learn estimator); a JSON file beside it (``<file>.json``) repeats
everything but the estimator for people and tools. Pickles run code when
loaded: load only classifier files you trust.
"""

from __future__ import annotations

import json
import pickle

from voxelflow.errors import InvalidInputError, InvalidPathError
from voxelflow.io.cell_classifier import CellClassifier, training_versions
from voxelflow.paths import as_vpath

__all__ = ["save_classifier", "load_classifier"]

FORMAT = "voxelflow-cell-classifier"
FORMAT_VERSION = 1


def _metadata(clf: CellClassifier) -> dict:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "features": list(clf.features),
        "threshold": clf.threshold,
        "cv_score": clf.cv_score,
        "n_train": dict(clf.n_train),
        "radius_um": clf.radius_um,
        "versions": dict(clf.versions),
    }


def save_classifier(clf: CellClassifier, path) -> None:
    """Write ``clf`` to ``path`` (and ``path + '.json'``), each replaced atomically.

    Parameters
    ----------
    clf : CellClassifier
    path : str or os.PathLike
        Local path or fsspec URL, e.g. ``run/cells.classifier``.
    """
    if not isinstance(clf, CellClassifier):
        raise InvalidInputError(f"expected a CellClassifier, got {type(clf).__name__}")
    target = as_vpath(path)
    meta = _metadata(clf)
    target.write_bytes(pickle.dumps({**meta, "estimator": clf.estimator}, protocol=pickle.HIGHEST_PROTOCOL))
    as_vpath(target.url + ".json").write_text(json.dumps(meta, indent=2) + "\n")


def load_classifier(path, *, check_versions: bool = True) -> CellClassifier:
    """Read a classifier written by :func:`save_classifier`.

    Parameters
    ----------
    path : str or os.PathLike
    check_versions : bool
        Refuse a classifier trained with another scikit-learn version (its
        pickled trees may load but predict differently). False loads it anyway.

    Raises
    ------
    voxelflow.errors.InvalidPathError
        The file cannot be read.
    voxelflow.errors.InvalidInputError
        Not a voxelflow classifier file, a damaged one, or trained with another scikit-learn.
    """
    source = as_vpath(path)
    try:
        data = source.read_bytes()
    except (OSError, ValueError) as exc:
        raise InvalidPathError(f"cannot read the classifier {source.url}: {exc}") from exc
    try:
        payload = pickle.loads(data)
    except Exception as exc:  # any unpickling failure means: not our file
        raise InvalidInputError(f"{source.url} is not a voxelflow classifier file: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise InvalidInputError(f"{source.url} is not a voxelflow classifier file (no '{FORMAT}' header)")
    if payload.get("format_version") != FORMAT_VERSION:
        raise InvalidInputError(
            f"{source.url} has classifier format version {payload.get('format_version')}, expected {FORMAT_VERSION}"
        )
    missing = [k for k in ("features", "versions", "threshold", "cv_score", "n_train", "estimator") if k not in payload]
    features = payload.get("features")
    if missing or not isinstance(features, list) or not all(isinstance(f, str) for f in features) \
            or not isinstance(payload.get("versions"), dict):
        raise InvalidInputError(
            f"{source.url} is a damaged voxelflow classifier file: "
            + (f"it lacks {missing}" if missing else "its feature list or versions are malformed")
        )
    trained = payload["versions"].get("scikit-learn")
    running = training_versions()["scikit-learn"]
    if check_versions and trained != running:
        raise InvalidInputError(
            f"{source.url} was trained with scikit-learn {trained}, this is {running}; retrain it, or load it "
            "with check_versions=False"
        )
    radius = payload.get("radius_um")
    return CellClassifier(payload["estimator"], list(features), dict(payload["versions"]),
                          float(payload["threshold"]), payload["cv_score"], dict(payload["n_train"]),
                          None if radius is None else float(radius))
