"""The synthetic brain: deterministic, and its planted truth matches its image."""

import numpy as np
import pytest
import scipy.ndimage as ndi
from hypothesis import given, settings
from hypothesis import strategies as st

from voxelflow.errors import InvalidInputError
from voxelflow.synth import make_synthetic_brain

SMALL = dict(
    n_plaques=60, scale=(2.0, 1.0, 1.0), edge_margin=6.0, cluster_fraction=0.2,
    radius_range=(1.5, 3.5), atlas_factors=(2, 2, 2), plaque_amplitude=(1400.0, 2600.0), bias_strength=0.25,
)


@pytest.fixture(scope="module")
def brain():
    return make_synthetic_brain(shape=(48, 96, 96), seed=3, **SMALL)


def test_deterministic_given_seed(brain):
    again = make_synthetic_brain(shape=(48, 96, 96), seed=3, **SMALL)
    other = make_synthetic_brain(shape=(48, 96, 96), seed=4, **SMALL)
    assert np.array_equal(brain.image, again.image)
    assert brain.truth.equals(again.truth)
    assert not np.array_equal(brain.image, other.image)


def test_types_and_scales(brain):
    assert brain.image.dtype == np.uint16 and brain.image.shape == (48, 96, 96)
    assert brain.atlas.shape == tuple(-(-s // f) for s, f in zip((48, 96, 96), brain.atlas_factors))
    assert np.allclose(np.array(brain.atlas_scale), np.array(brain.scale) * brain.atlas_factors)
    # the atlas covers the same physical extent as the image, to within one atlas voxel
    ext_img = np.array(brain.image.shape) * brain.scale
    ext_atl = np.array(brain.atlas.shape) * brain.atlas_scale
    assert (np.abs(ext_img - ext_atl) < np.array(brain.atlas_scale)).all()


def test_region_hierarchy(brain):
    r = brain.regions
    ids = set(r.id)
    assert len(r) >= 8 and r.id.is_unique
    assert ((r.parent == -1) | r.parent.isin(ids)).all() and (r.parent == -1).sum() == 1
    painted = set(np.unique(brain.atlas)) - {0}
    assert len(painted) >= 8 and painted <= ids
    # leaves only: no painted region is the parent of another
    assert not painted & set(r.parent)


def test_truth_regions_match_atlas(brain):
    t = brain.truth
    idx = np.floor(t[["z", "y", "x"]].to_numpy() / brain.atlas_factors).astype(int)
    assert (brain.atlas[idx[:, 0], idx[:, 1], idx[:, 2]] == t.region_id.to_numpy()).all()
    assert ((t.radius >= 1.5) & (t.radius <= 3.5)).all()
    assert (t.cluster_size > 1).any(), "expected some touching clusters"


def test_threshold_and_label_recovers_planted_objects(brain):
    """A plain threshold + scipy label inside the deep tissue finds one object per cluster."""
    deep = ndi.binary_erosion(brain.tissue, iterations=5)
    lab, n = ndi.label((brain.image > 900) & deep)
    objects = brain.truth_objects()
    assert n == len(objects)
    t = brain.truth
    centres = np.rint(t[["z", "y", "x"]].to_numpy()).astype(int)
    hit = lab[centres[:, 0], centres[:, 1], centres[:, 2]]
    assert (hit > 0).all()
    # plaques of one cluster share one label; different clusters never do
    per_cluster = t.assign(label=hit).groupby("cluster_id").label.nunique()
    assert (per_cluster == 1).all()
    assert t.assign(label=hit).groupby("label").cluster_id.nunique().max() == 1


def test_edge_artefacts_are_bright_and_in_the_shell(brain):
    shell = brain.tissue & ~ndi.binary_erosion(brain.tissue, iterations=4)
    assert (brain.image[shell] > 1500).sum() > 50
    assert (brain.image[~brain.tissue] < 400).mean() > 0.99


@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(0, 15))
def test_plaques_never_planted_in_background(seed, n):
    b = make_synthetic_brain(shape=(24, 48, 48), seed=seed, n_artefacts=2, **{**SMALL, "n_plaques": n})
    assert len(b.truth) <= n
    c = np.rint(b.truth[["z", "y", "x"]].to_numpy()).astype(int)
    assert b.tissue[c[:, 0], c[:, 1], c[:, 2]].all()
    assert (b.truth.region_id > 0).all()


def test_bad_shape():
    with pytest.raises(InvalidInputError, match="shape"):
        make_synthetic_brain(shape=(8, 64, 64))


def test_matching_is_one_to_one_within_distance():
    from voxelflow.synth import match_detections

    planted = np.array([[0, 0, 0], [10, 0, 0], [20, 0, 0]], float)
    detected = np.array([[1, 0, 0], [10.5, 0, 0], [0.5, 0, 0], [40, 0, 0]], float)
    pairs = match_detections(detected, planted, max_distance=3)
    assert sorted(map(tuple, pairs)) == [(1, 1), (2, 0)] or sorted(map(tuple, pairs)) == [(0, 0), (1, 1)]
    assert len(match_detections(detected[:0], planted, 3)) == 0


def test_scoring_the_planted_truth_itself_is_perfect(brain):
    from voxelflow.synth import score_detections

    objs = brain.truth_objects()
    s = score_detections(objs, brain.truth, brain.regions)
    assert s["precision"] == s["recall"] == 1.0 and s["matched"] == len(objs)
    assert (s["regions"].error.fillna(0) == 0).all()
    half = score_detections(objs.iloc[::2], brain.truth, brain.regions)
    assert half["precision"] == 1.0 and abs(half["recall"] - len(objs.iloc[::2]) / len(objs)) < 1e-9
