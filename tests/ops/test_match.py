"""One-to-one point matching: as many pairs as a dense Hungarian solution, at the same total distance."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

from voxelflow.errors import InvalidInputError
from voxelflow.ops import detection_scores, pair_points, points_to_um


def _dense_reference(det, ref, reach):
    """Maximum number of pairs within ``reach``, then least total distance, on the full distance matrix."""
    if len(det) == 0 or len(ref) == 0:
        return 0, 0.0
    d = cdist(det, ref)
    ok = d <= reach
    big = reach * (min(d.shape) + 1) + 1.0
    cost = np.where(ok, d - big, 0.0)
    r, c = linear_sum_assignment(cost)
    keep = ok[r, c]
    return int(keep.sum()), float(d[r[keep], c[keep]].sum())


@settings(max_examples=40)
@given(st.integers(0, 40), st.integers(0, 40), st.floats(0.5, 12.0), st.integers(0, 2**16))
def test_matching_is_maximal_and_minimal_like_a_dense_hungarian(n_det, n_ref, reach, seed):
    rng = np.random.default_rng(seed)
    ref = rng.uniform(0, 60, size=(n_ref, 3))
    # detections: jittered copies of some reference points plus spurious ones
    take = rng.random(n_ref) < 0.7
    det = np.concatenate([ref[take] + rng.normal(0, 2.0, size=(take.sum(), 3)),
                          rng.uniform(0, 60, size=(max(n_det - take.sum(), 0), 3))])
    pairs = pair_points(det, ref, reach)
    n, total = _dense_reference(det, ref, reach)
    assert len(pairs) == n
    if n:
        dist = np.linalg.norm(det[pairs[:, 0]] - ref[pairs[:, 1]], axis=1)
        assert (dist <= reach).all()
        assert dist.sum() == pytest.approx(total, rel=1e-9, abs=1e-9)
    # one to one
    assert len(set(pairs[:, 0])) == len(pairs) and len(set(pairs[:, 1])) == len(pairs)


def test_a_greedy_nearest_pairing_would_lose_a_match():
    # d0 is nearest to r0, but r0 is the only partner of d1: the best pairing is d0-r1, d1-r0
    det = np.array([[0.0, 0, 0], [0, 0, 4.5]])
    ref = np.array([[0.0, 0, 2.5], [0, 0, -3.0]])
    pairs = pair_points(det, ref, 3.0)
    assert sorted(map(tuple, pairs.tolist())) == [(0, 1), (1, 0)]


def test_scores_overall_and_per_region():
    ref = np.array([[0.0, 0, 0], [0, 0, 100], [0, 0, 200], [0, 0, 300]])
    det = np.array([[0.0, 0, 1], [0, 0, 101], [0, 0, 500], [0, 0, 600], [0, 0, 301]])
    overall, per = detection_scores(det, ref, 5.0, detected_regions=[1, 1, 2, 1, 2], reference_regions=[1, 1, 2, 2])
    assert overall["matched"] == 3 and overall["false_positives"] == 2 and overall["false_negatives"] == 1
    assert overall["precision"] == pytest.approx(3 / 5) and overall["recall"] == pytest.approx(3 / 4)
    assert overall["f1"] == pytest.approx(2 * 0.6 * 0.75 / 1.35)
    per = per.set_index("region_id")
    assert per.loc[1, "matched"] == 2 and per.loc[1, "precision"] == pytest.approx(2 / 3) and per.loc[1, "recall"] == 1
    assert per.loc[2, "matched"] == 1 and per.loc[2, "precision"] == pytest.approx(1 / 2)
    assert per.loc[2, "recall"] == pytest.approx(1 / 2)


def test_points_in_voxels_convert_with_spacing_and_edge_cases():
    np.testing.assert_allclose(points_to_um([[1, 2, 3]], (5, 2, 2), (10, 0, 0)), [[15, 4, 6]])
    assert pair_points(np.zeros((0, 3)), np.ones((3, 3)), 5.0).shape == (0, 2)
    overall, per = detection_scores(np.zeros((0, 3)), np.ones((2, 3)), 5.0)
    assert overall["precision"] == 0 and overall["recall"] == 0 and per is None
    with pytest.raises(InvalidInputError):
        pair_points(np.ones((2, 3)), np.ones((2, 2)), 1.0)
    with pytest.raises(InvalidInputError):
        pair_points(np.ones((2, 3)), np.ones((2, 3)), -1.0)
    with pytest.raises(InvalidInputError):
        detection_scores(np.ones((2, 3)), np.ones((2, 3)), 1.0, detected_regions=[1, 2])
