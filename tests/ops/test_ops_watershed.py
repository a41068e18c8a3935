"""watershed_split: planted touching spheres are split, and chunking does not change the result."""

import dask.array as da
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage as ndi

from ops_helpers import chunkings, planted_sphere_pairs
from voxelflow.errors import InvalidInputError
from voxelflow.ops._watershed import watershed_split

SHAPE = (14, 26, 30)
CENTRES = [(4, 5, 7), (9, 18, 20), (6, 19, 6), (10, 6, 22)]
RADIUS, GAP, HALO = 3, 2, 12  # each touching pair spans 7 x 7 x 11 voxels < HALO


@pytest.fixture(scope="module")
def pairs():
    bs, balls = planted_sphere_pairs(SHAPE, CENTRES, RADIUS, GAP)
    whole = watershed_split(da.from_array(bs, chunks=SHAPE), min_distance=2, halo=HALO).compute()
    return bs, balls, whole


def test_touching_pairs_are_split_one_label_per_ball(pairs):
    bs, balls, whole = pairs
    _, n_clusters = ndi.label(bs)
    assert n_clusters == len(CENTRES)  # the threshold+label baseline merges each pair
    ids = np.unique(whole[whole > 0])
    assert len(ids) == len(balls)
    assert np.array_equal(whole > 0, bs)
    # every ball centre is in a different object, and each id is its seed position + 1
    centre_ids = {int(whole[b]) for b in balls}
    assert len(centre_ids) == len(balls)
    for i in ids:
        seed = np.unravel_index(int(i) - 1, SHAPE)
        assert whole[seed] == i


def test_agrees_with_the_plain_skimage_recipe_on_the_whole_array(pairs):
    from skimage.feature import peak_local_max
    from skimage.segmentation import watershed

    bs, _, whole = pairs
    distance = ndi.distance_transform_edt(bs)
    peaks = peak_local_max(distance, min_distance=2, labels=ndi.label(bs)[0], exclude_border=False)
    markers = np.zeros(SHAPE, int)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    ref = watershed(-distance, markers, mask=bs)
    # same seeds ...
    seeds = {tuple(np.unravel_index(int(i) - 1, SHAPE)) for i in np.unique(whole[whole > 0])}
    assert seeds == set(map(tuple, peaks.tolist()))
    # ... and the same basins, except on the mid-plane between the two balls of a pair,
    # where the flooding order of the whole volume and of one cluster break ties differently
    mapped = np.zeros(SHAPE, int)
    for i in np.unique(whole[whole > 0]):
        mapped[whole == i] = ref[np.unravel_index(int(i) - 1, SHAPE)]
    clusters = ndi.label(bs)[0]
    mid_planes = np.zeros(SHAPE, bool)
    for c in CENTRES:
        mid_planes[:, :, c[2]] |= clusters[:, :, c[2]] == clusters[c]
    differ = (mapped != ref) & bs
    assert differ.sum() < 0.1 * bs.sum()
    assert not (differ & ~mid_planes).any()


@settings(max_examples=12, deadline=None)
@given(chunks=chunkings(SHAPE, max_parts=3))
def test_result_does_not_depend_on_chunking(pairs, chunks):
    bs, _, whole = pairs
    got = watershed_split(da.from_array(bs, chunks=chunks), min_distance=2, halo=HALO)
    assert got.chunks == chunks
    np.testing.assert_array_equal(got.compute(), whole)


def test_one_voxel_thick_chunks(pairs):
    bs, _, whole = pairs
    chunks = ((1, 13), (26,), (1, 1, 28))
    got = watershed_split(da.from_array(bs, chunks=chunks), min_distance=2, halo=HALO).compute()
    np.testing.assert_array_equal(got, whole)


def test_objects_larger_than_halo_keep_every_voxel_labelled_with_unique_ids():
    bs, _ = planted_sphere_pairs((12, 20, 40), [(6, 10, 20)], 5, 8)  # spans 21 voxels in x
    got = watershed_split(da.from_array(bs, chunks=(12, 20, 7)), min_distance=2, halo=3).compute()
    assert np.array_equal(got > 0, bs)
    for i in np.unique(got[got > 0]):
        # an id names its seed voxel, which lies inside the foreground
        assert bs[np.unravel_index(int(i) - 1, bs.shape)]


def test_empty_and_full_volumes():
    empty = watershed_split(da.zeros((5, 6, 7), chunks=3, dtype=bool)).compute()
    assert empty.dtype == np.int64 and not empty.any()
    full = watershed_split(da.ones((5, 6, 7), chunks=(5, 6, 7), dtype=bool)).compute()
    assert (full > 0).all()


def test_flat_plate_gets_a_seed():
    bs = np.zeros((3, 8, 8), bool)
    bs[1, 2:6, 2:6] = True
    got = watershed_split(bs, min_distance=1).compute()
    assert np.array_equal(got > 0, bs)


def test_bad_arguments():
    with pytest.raises(InvalidInputError, match="min_distance"):
        watershed_split(np.zeros((3, 3), bool), min_distance=0)
    with pytest.raises(InvalidInputError, match="connectivity"):
        watershed_split(np.zeros((3, 3), bool), connectivity=3)
    with pytest.raises(InvalidInputError, match="dtype"):
        watershed_split(np.zeros((3, 3), np.float32))


@settings(max_examples=10, deadline=None)
@given(st.data())
def test_random_shapes_and_clusters_smaller_than_halo_are_chunking_invariant(data):
    halo = 6
    shape = tuple(data.draw(st.lists(st.integers(4, 16), min_size=3, max_size=3)))
    rng = np.random.default_rng(data.draw(st.integers(0, 10_000)))
    grid = np.indices(shape)
    bs = np.zeros(shape, bool)
    for _ in range(data.draw(st.integers(0, 8))):
        c, r = rng.integers(0, shape), rng.uniform(0.8, 2.6)
        bs |= sum((g - v) ** 2 for g, v in zip(grid, c)) <= r * r
    connectivity = data.draw(st.integers(1, 3))
    # keep only clusters inside the guarantee: bounding box at most `halo` voxels per axis
    clusters, _ = ndi.label(bs, ndi.generate_binary_structure(3, connectivity))
    for k, box in enumerate(ndi.find_objects(clusters), start=1):
        if any(s.stop - s.start > halo for s in box):
            bs[clusters == k] = False
    whole = watershed_split(bs, min_distance=2, halo=halo, connectivity=connectivity).compute()
    assert np.array_equal(whole > 0, bs)
    chunks = data.draw(chunkings(shape, max_parts=3))
    got = watershed_split(da.from_array(bs, chunks=chunks), min_distance=2, halo=halo,
                          connectivity=connectivity).compute()
    np.testing.assert_array_equal(got, whole)
