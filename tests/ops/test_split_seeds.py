"""split_seeds: touching balls planted on anisotropic voxels, one seed given, the other one found; chunk invariance."""

import dask.array as da
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import ndimage as ndi

from ops_helpers import partitions
from voxelflow.errors import InvalidInputError
from voxelflow.ops import split_seeds

SPACING = (5.0, 2.0, 2.0)
SHAPE = (16, 48, 48)


def balls(shape, centres_um, radii_um, spacing=SPACING):
    """Union of balls (um) on the voxel grid; voxel i is centred at i * spacing."""
    grid = [np.arange(n) * s for n, s in zip(shape, spacing)]
    z, y, x = np.meshgrid(*grid, indexing="ij")
    out = np.zeros(shape, dtype=bool)
    for c, r in zip(centres_um, radii_um):
        out |= (z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2 <= r**2
    return out


def seeds_at(points_um, spacing=SPACING):
    vox = np.rint(np.asarray(points_um, dtype=np.float64) / np.asarray(spacing))
    return pd.DataFrame(vox.reshape(-1, 3), columns=["z", "y", "x"])


def run(mask, seeds, chunks=None, **kw):
    kw = {"min_radius_um": 2.5, "max_extent_um": 40.0, **kw}
    arr = mask if chunks is None else da.from_array(mask, chunks=chunks)
    return split_seeds(arr, seeds, SPACING, **kw)


@pytest.mark.parametrize("direction", [(1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0)])
def test_a_touching_smaller_ball_without_a_seed_gets_one(direction):
    big, small = 6.0, 4.5
    v = np.asarray(direction, float) / np.linalg.norm(direction)
    a = np.array([40.0, 48.0, 48.0])
    b = a + v * (big + small) * 0.95  # planted touching, as the synthetic cells are
    mask = balls(SHAPE, [a, b], [big, small])
    assert ndi.label(mask)[1] == 1  # one cluster
    new = run(mask, seeds_at([a]))
    assert len(new) == 1
    found = new[["z", "y", "x"]].to_numpy()[0] * np.asarray(SPACING)
    assert np.linalg.norm(found - b) <= small
    # the reported depth is the distance to the background of the whole mask (scipy on the whole array)
    dist = ndi.distance_transform_edt(mask, sampling=SPACING)
    assert new.depth_um.iloc[0] == pytest.approx(dist[tuple(new[["z", "y", "x"]].to_numpy(int)[0])])
    # with both seeds given nothing is added
    assert len(run(mask, seeds_at([a, b]))) == 0


def test_random_touching_pairs_most_are_split_none_wrongly():
    # the neck has to show on the 5 x 2 x 2 um grid: about 70 % of pairs of 6-12 um balls do
    rng = np.random.default_rng(0)
    found = 0
    for _ in range(40):
        v = rng.normal(size=3)
        v /= np.linalg.norm(v)
        small, big = np.sort(rng.uniform(3.0, 6.0, 2))
        a = np.array([40.0, 48.0, 48.0]) + rng.uniform(-2.5, 2.5, 3)
        b = a + v * (big + small) * rng.uniform(0.92, 1.0)
        new = run(balls(SHAPE, [a, b], [big, small]), seeds_at([a]))
        assert len(new) <= 1
        if len(new):
            assert np.linalg.norm(new[["z", "y", "x"]].to_numpy()[0] * np.asarray(SPACING) - b) <= small + 1.0
            found += 1
    assert found >= 24


@pytest.mark.parametrize("semi", [(6.0, 6.0, 6.0), (7.0, 5.0, 6.0), (6.0, 6.5, 5.0)])
def test_one_ball_or_ellipsoid_gets_no_second_seed(semi):
    c = np.array([40.0, 48.0, 48.0])
    grid = [np.arange(n) * s for n, s in zip(SHAPE, SPACING)]
    z, y, x = np.meshgrid(*grid, indexing="ij")
    mask = ((z - c[0]) / semi[0]) ** 2 + ((y - c[1]) / semi[1]) ** 2 + ((x - c[2]) / semi[2]) ** 2 <= 1
    for offset in ([0, 0, 0], [5.0, 2.0, 0.0], [0.0, -2.0, 2.0]):  # a blob maximum can sit a voxel off centre
        assert len(run(mask, seeds_at([c + np.asarray(offset)]))) == 0


def test_a_rod_has_no_neck_and_gets_no_second_seed():
    mask = np.zeros(SHAPE, bool)
    grid = np.indices(SHAPE) * np.asarray(SPACING)[:, None, None, None]
    mask[((grid[0] - 40) ** 2 + (grid[1] - 48) ** 2 <= 16) & (grid[2] > 20) & (grid[2] < 70)] = True
    assert len(run(mask, seeds_at([[40.0, 48.0, 30.0]]))) == 0


def test_clusters_without_seed_or_too_long_are_left_alone():
    a = np.array([40.0, 48.0, 48.0])
    b = a + np.array([0.0, 0.0, 10.5 * 0.95])
    mask = balls(SHAPE, [a, b], [6.0, 4.5])
    assert len(run(mask, seeds_at(np.zeros((0, 3))))) == 0
    assert len(run(mask, seeds_at([a]), max_extent_um=12.0)) == 0  # the cluster is ~21 um long in x
    assert len(run(mask, seeds_at([a]), max_extent_um=24.0)) == 1


@st.composite
def scenes(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    centres, radii, seeds = [], [], []
    for _ in range(draw(st.integers(1, 5))):
        a = rng.uniform([10, 10, 10], [65, 86, 86])
        v = rng.normal(size=3)
        v /= np.linalg.norm(v)
        r = rng.uniform(3.0, 5.5, size=2)
        centres += [a, a + v * r.sum() * rng.uniform(0.9, 1.0)]
        radii += list(r)
        seeds.append(a)
    return balls(SHAPE, centres, radii), seeds_at(seeds)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scene=scenes(), data=st.data())
def test_the_result_does_not_depend_on_the_chunking(scene, data):
    mask, seeds = scene
    whole = run(mask, seeds)
    chunks = tuple(data.draw(partitions(n)) for n in SHAPE)
    pd.testing.assert_frame_equal(run(mask, seeds, chunks=chunks), whole)


def test_bad_arguments_name_what_is_expected():
    mask = np.zeros(SHAPE, bool)
    with pytest.raises(InvalidInputError, match="3-D"):
        split_seeds(mask[0], seeds_at(np.zeros((0, 3))), SPACING, min_radius_um=2, max_extent_um=40)
    with pytest.raises(InvalidInputError, match="z, y, x"):
        split_seeds(mask, pd.DataFrame({"a": [1]}), SPACING, min_radius_um=2, max_extent_um=40)
    with pytest.raises(InvalidInputError, match="min_radius_um"):
        split_seeds(mask, seeds_at(np.zeros((0, 3))), SPACING, min_radius_um=-1, max_extent_um=40)
    with pytest.raises(InvalidInputError, match="neck"):
        split_seeds(mask, seeds_at(np.zeros((0, 3))), SPACING, min_radius_um=2, max_extent_um=40, neck=1.5)
