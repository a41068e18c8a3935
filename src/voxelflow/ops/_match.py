"""One-to-one matching of detected and reference points in micrometres, and detection scores (LC, LC -> table).

Two points may be paired when they are at most ``max_distance_um`` apart. The
pairing has the largest possible number of pairs and, among those, the
smallest total distance (a minimum-cost assignment). Only pairs within reach
are ever considered: a KD-tree lists them, the bipartite graph they form is
split into connected groups, and each group is solved on its own with
``scipy.optimize.linear_sum_assignment``, so a million points cost little more
than their neighbourhoods.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.optimize import linear_sum_assignment
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from voxelflow.errors import InvalidInputError

__all__ = ["pair_points", "detection_scores", "points_to_um"]


def _points(points, name: str) -> np.ndarray:
    arr = np.asarray(points, dtype=np.float64)
    if arr.size == 0:
        return np.zeros((0, arr.shape[-1] if arr.ndim == 2 else 3))
    if arr.ndim != 2 or not np.isfinite(arr).all():
        raise InvalidInputError(f"{name} must be an (N, ndim) array of finite coordinates, got shape {arr.shape}")
    return arr


def points_to_um(points, spacing, translation=None) -> np.ndarray:
    """Voxel coordinates (N, ndim) to micrometres: ``points * spacing + translation``."""
    pts = _points(points, "points")
    out = pts * np.asarray(spacing, dtype=np.float64)
    if translation is not None:
        out = out + np.asarray(translation, dtype=np.float64)
    return out


def pair_points(detected, reference, max_distance_um: float) -> np.ndarray:
    """Pair detected and reference points one to one within a distance.

    Parameters
    ----------
    detected : array, shape (N, ndim), float
        Detected centres in micrometres.
    reference : array, shape (M, ndim), float
        Reference (annotated or planted) centres in micrometres.
    max_distance_um : float
        Points farther apart than this are never paired.

    Returns
    -------
    numpy.ndarray of int64, shape (K, 2)
        ``(i, j)`` pairs: ``detected[i]`` matches ``reference[j]``; the most
        pairs possible, with the least total distance among such pairings,
        sorted by ``i``.
    """
    det, ref = _points(detected, "detected"), _points(reference, "reference")
    if det.size and ref.size and det.shape[1] != ref.shape[1]:
        raise InvalidInputError(f"detected points have {det.shape[1]} coordinates, reference points {ref.shape[1]}")
    try:
        reach = float(max_distance_um)
    except (TypeError, ValueError):
        raise InvalidInputError(f"max_distance_um must be a length in um, got {max_distance_um!r}") from None
    if not reach >= 0:
        raise InvalidInputError(f"max_distance_um must be >= 0, got {max_distance_um!r}")
    if len(det) == 0 or len(ref) == 0:
        return np.zeros((0, 2), np.int64)
    near = cKDTree(det).sparse_distance_matrix(cKDTree(ref), reach, output_type="coo_matrix")
    rows, cols, dist = near.row.astype(np.int64), near.col.astype(np.int64), near.data
    if len(rows) == 0:
        return np.zeros((0, 2), np.int64)
    n, m = len(det), len(ref)
    graph = sparse.coo_matrix((np.ones(len(rows)), (rows, cols + n)), shape=(n + m, n + m))
    _, comp = connected_components(graph, directed=False)
    order = np.argsort(comp[rows], kind="stable")
    rows, cols, dist = rows[order], cols[order], dist[order]
    edge_comp = comp[rows]
    bounds = np.flatnonzero(np.r_[True, edge_comp[1:] != edge_comp[:-1], True])
    pairs = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        pairs.append(_assign(rows[a:b], cols[a:b], dist[a:b], reach))
    out = np.concatenate(pairs)
    return out[np.argsort(out[:, 0], kind="stable")]


def _assign(rows, cols, dist, reach):
    """Maximum-cardinality, minimum-distance assignment of one connected group of candidate pairs."""
    ur, ri = np.unique(rows, return_inverse=True)
    uc, ci = np.unique(cols, return_inverse=True)
    if len(rows) == 1:
        return np.array([[ur[0], uc[0]]], np.int64)
    # every real pair is worth more than any sum of distances, so more pairs always win
    bonus = reach * (min(len(ur), len(uc)) + 1) + 1.0
    cost = np.zeros((len(ur), len(uc)))
    allowed = np.zeros(cost.shape, bool)
    cost[ri, ci] = dist - bonus
    allowed[ri, ci] = True
    r, c = linear_sum_assignment(cost)
    ok = allowed[r, c]
    return np.stack([ur[r[ok]], uc[c[ok]]], axis=1).astype(np.int64)


def _prf(tp, n_det, n_ref):
    precision = tp / n_det if n_det else (1.0 if n_ref == 0 else 0.0)
    recall = tp / n_ref if n_ref else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def detection_scores(detected, reference, max_distance_um: float, *, detected_regions=None,
                 reference_regions=None) -> tuple[dict, pd.DataFrame | None]:
    """Precision, recall and F1 of detections against reference points, overall and per region.

    Parameters
    ----------
    detected, reference : array, shape (N, ndim) / (M, ndim)
        Centres in micrometres.
    max_distance_um : float
        Matching distance (e.g. half the expected object diameter).
    detected_regions, reference_regions : array of int, shape (N,) / (M,), optional
        Region id of every point (both or neither). A matched pair counts for
        the reference point's region, a missed reference point for its region,
        a spurious detection for its own region.

    Returns
    -------
    overall : dict
        ``detected, reference, matched, false_positives, false_negatives,
        precision, recall, f1`` (precision is 1 with no detection and no
        reference, 0 with no detection but some reference).
    per_region : pandas.DataFrame or None
        ``region_id, reference, detected, matched, precision, recall, f1``
        (``detected`` = detections in that region), one row per region seen.
    """
    det, ref = _points(detected, "detected"), _points(reference, "reference")
    pairs = pair_points(det, ref, max_distance_um)
    tp = len(pairs)
    p, r, f = _prf(tp, len(det), len(ref))
    overall = {"detected": len(det), "reference": len(ref), "matched": tp, "false_positives": len(det) - tp,
               "false_negatives": len(ref) - tp, "precision": p, "recall": r, "f1": f}
    if detected_regions is None and reference_regions is None:
        return overall, None
    if detected_regions is None or reference_regions is None:
        raise InvalidInputError("give the regions of both the detected and the reference points, or of neither")
    dreg = np.asarray(detected_regions).reshape(-1)
    rreg = np.asarray(reference_regions).reshape(-1)
    if len(dreg) != len(det) or len(rreg) != len(ref):
        raise InvalidInputError(f"region ids: {len(dreg)} for {len(det)} detections, {len(rreg)} for "
                                f"{len(ref)} reference points")
    matched_det = np.zeros(len(det), bool)
    matched_det[pairs[:, 0]] = True
    tp_regions = rreg[pairs[:, 1]]
    rows = []
    for region in np.unique(np.concatenate([dreg, rreg])):
        n_ref = int((rreg == region).sum())
        n_tp = int((tp_regions == region).sum())
        n_fp = int(((dreg == region) & ~matched_det).sum())
        pr, rc, f1 = _prf(n_tp, n_tp + n_fp, n_ref)
        rows.append({"region_id": region, "reference": n_ref, "detected": int((dreg == region).sum()),
                     "matched": n_tp, "precision": pr, "recall": rc, "f1": f1})
    return overall, pd.DataFrame(rows)
