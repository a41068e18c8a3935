"""Scores of detected centres against the planted cells of a synthetic crop."""

from __future__ import annotations

import numpy as np
import pandas as pd

from voxelflow.errors import InvalidInputError
from voxelflow.synth_cells._crop import SyntheticCells

__all__ = ["score_cells"]


def score_cells(crop: SyntheticCells, detected_um, *, detected_regions=None,
                max_distance_um: float | None = None) -> dict:
    """Precision, recall and counts per region of detected centres against the planted cells.

    Detections are matched one to one (:func:`voxelflow.ops.pair_points`)
    against every planted cell that shows in the crop. A detection matched to a
    cell centred outside the crop (``inside`` False), or left unmatched within
    that cell's radius plus one voxel of it, is a correct sighting of a cell
    cap at the border: counted neither as a hit nor as a false positive, and
    left out of the region counts. Recall is over the cells centred inside.

    Parameters
    ----------
    crop : SyntheticCells
    detected_um : array, shape (N, 3)
        Detected centres in um (voxel index x spacing).
    detected_regions : array of int, shape (N,), optional
        Atlas region of every detection (for the per-region counts).
    max_distance_um : float, optional
        Match radius; default half the mean planted diameter.

    Returns
    -------
    dict
        ``detected, planted, matched, precision, recall, f1`` and, with
        ``detected_regions``, ``regions``: a DataFrame ``id, acronym, planted,
        detected, error`` (``error`` = |detected - planted| / planted).
    """
    from voxelflow.ops import pair_points

    det = np.asarray(detected_um, dtype=np.float64).reshape(-1, 3)
    truth = crop.truth
    reach = crop.diameter_um / 2 if max_distance_um is None else float(max_distance_um)
    pairs = pair_points(det, truth[["z_um", "y_um", "x_um"]].to_numpy(), reach)
    inside = truth["inside"].to_numpy()
    ignored = np.zeros(len(det), bool)
    ignored[pairs[~inside[pairs[:, 1]], 0]] = True
    outside = truth[~truth["inside"]]
    free = np.ones(len(det), bool)
    free[pairs[:, 0]] = False
    if len(outside) and free.any():
        # a cap seen in the border voxels sits up to a radius (plus a voxel) from its centre outside
        from scipy.spatial import cKDTree

        dist, j = cKDTree(outside[["z_um", "y_um", "x_um"]].to_numpy()).query(det[free])
        reach_cap = outside["diameter_um"].to_numpy()[j] / 2 + max(crop.spacing)
        ignored[np.flatnonzero(free)[dist <= reach_cap]] = True
    tp = int(inside[pairs[:, 1]].sum())
    n_det = int((~ignored).sum())
    n_true = int(inside.sum())
    precision = tp / n_det if n_det else 0.0
    recall = tp / n_true if n_true else 1.0
    out = {"detected": n_det, "planted": n_true, "matched": tp, "precision": precision, "recall": recall,
           "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0}
    if detected_regions is not None:
        regs = np.asarray(detected_regions).reshape(-1)
        if len(regs) != len(det):
            raise InvalidInputError(f"{len(regs)} region ids for {len(det)} detections")
        per = crop.truth_counts().rename(columns={"cells": "planted"})
        counts = pd.Series(regs[~ignored]).value_counts()
        per["detected"] = per.id.map(counts).fillna(0).astype(np.int64)
        per["error"] = (per.detected - per.planted).abs() / per.planted.where(per.planted > 0)
        out["regions"] = per
    return out
