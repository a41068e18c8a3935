"""Scoring a detection table against the planted plaques of a synthetic brain."""

from __future__ import annotations

import numpy as np
import pandas as pd

from voxelflow.errors import InvalidInputError

__all__ = ["match_detections", "score_detections", "truth_counts", "truth_objects"]


def truth_objects(truth: pd.DataFrame) -> pd.DataFrame:
    """The planted objects as a thresholded, labelled image sees them.

    Touching plaques of one cluster form one object, located at the
    volume-weighted centre of its plaques.

    Parameters
    ----------
    truth : pandas.DataFrame
        :attr:`SyntheticBrain.truth`.

    Returns
    -------
    pandas.DataFrame
        ``cluster_id, z, y, x, region_id, n_plaques``, one row per object.
    """
    t = truth
    w = t.radius.to_numpy() ** 3
    g = t.assign(wz=t.z * w, wy=t.y * w, wx=t.x * w, w=w).groupby("cluster_id")
    s = g[["wz", "wy", "wx", "w"]].sum()
    out = pd.DataFrame(
        {
            "cluster_id": s.index.to_numpy(dtype=np.int64),
            "z": (s.wz / s.w).to_numpy(),
            "y": (s.wy / s.w).to_numpy(),
            "x": (s.wx / s.w).to_numpy(),
            "region_id": g.region_id.first().to_numpy(dtype=np.int64),
            "n_plaques": g.size().to_numpy(dtype=np.int64),
        }
    )
    return out.reset_index(drop=True)


def truth_counts(truth: pd.DataFrame, regions: pd.DataFrame) -> pd.DataFrame:
    """Planted plaques and objects per region (not rolled up).

    Returns
    -------
    pandas.DataFrame
        ``id, acronym, plaques, objects`` for every region of ``regions``
        (zero where none were planted).
    """
    plaques = truth.groupby("region_id").size()
    objects = truth_objects(truth).groupby("region_id").size()
    r = regions[["id", "acronym"]].copy()
    r["plaques"] = r.id.map(plaques).fillna(0).astype(np.int64)
    r["objects"] = r.id.map(objects).fillna(0).astype(np.int64)
    return r


def match_detections(detected: np.ndarray, planted: np.ndarray, max_distance: float) -> np.ndarray:
    """One-to-one matching of detected to planted centres (Hungarian, within a distance).

    Parameters
    ----------
    detected : numpy.ndarray, shape (N, 3)
        Detected centres (voxels).
    planted : numpy.ndarray, shape (M, 3)
        Planted centres (voxels).
    max_distance : float
        Pairs farther apart than this never match.

    Returns
    -------
    numpy.ndarray of int, shape (K, 2)
        Index pairs ``(detected_i, planted_j)`` minimising the total distance.
    """
    from scipy.optimize import linear_sum_assignment
    from scipy.spatial.distance import cdist

    detected = np.asarray(detected, dtype=np.float64).reshape(-1, 3)
    planted = np.asarray(planted, dtype=np.float64).reshape(-1, 3)
    if len(detected) == 0 or len(planted) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    d = cdist(detected, planted)
    far = d > max_distance
    cost = np.where(far, max_distance * 10 + d.max(), d)
    rows, cols = linear_sum_assignment(cost)
    ok = ~far[rows, cols]
    return np.stack([rows[ok], cols[ok]], axis=1).astype(np.int64)


def score_detections(objects: pd.DataFrame, truth: pd.DataFrame, regions: pd.DataFrame,
                     max_distance: float = 5.0, level: str = "objects") -> dict:
    """Precision, recall and per-region count error of an object table against the planted truth.

    With ``level="objects"`` a touching cluster is one expected object
    (:func:`truth_objects`), as connected-component labelling sees it; with
    ``level="plaques"`` every planted plaque is expected on its own (for
    pipelines that split touching objects).

    Parameters
    ----------
    objects : pandas.DataFrame
        Detected objects with ``z, y, x`` (voxels) and, for the per-region
        comparison, ``region_id``.
    truth : pandas.DataFrame
        Planted plaques (:attr:`SyntheticBrain.truth`).
    regions : pandas.DataFrame
        Region hierarchy (``id, acronym, parent``); its leaves are compared.
    max_distance : float
        Match radius in voxels.
    level : {'objects', 'plaques'}
        What counts as one planted item.

    Returns
    -------
    dict
        ``detected, planted, matched, precision, recall`` and ``regions``: a
        DataFrame ``id, acronym, planted, detected, error`` over the leaf
        regions, ``error`` = |detected - planted| / planted.
    """
    if level not in ("objects", "plaques"):
        raise InvalidInputError(f"level must be 'objects' or 'plaques', got {level!r}")
    planted = truth_objects(truth) if level == "objects" else truth
    pairs = match_detections(objects[["z", "y", "x"]].to_numpy(), planted[["z", "y", "x"]].to_numpy(), max_distance)
    n_det, n_true, n_match = len(objects), len(planted), len(pairs)
    leaves = [i for i in regions.id if i not in set(regions.parent)]
    per = truth_counts(truth, regions).set_index("id").loc[leaves, ["acronym", level]]
    per = per.rename(columns={level: "planted"})
    if "region_id" in objects.columns:
        det = objects.groupby("region_id").size()
        per["detected"] = per.index.map(det).fillna(0).astype(np.int64)
    else:
        per["detected"] = 0
    per["error"] = (per.detected - per.planted).abs() / per.planted.where(per.planted > 0)
    return {
        "detected": n_det,
        "planted": n_true,
        "matched": n_match,
        "precision": n_match / n_det if n_det else 0.0,
        "recall": n_match / n_true if n_true else 1.0,
        "regions": per.reset_index(),
    }
