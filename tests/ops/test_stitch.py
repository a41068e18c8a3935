"""Instance outputs of a model run chunk by chunk are stitched into the whole-array result.

The reference is the same "model" run once on the whole (padded) array: labelled
spheres (threshold + scipy.ndimage.label) and a per-cluster watershed of the
distance map that splits touching spheres. Whatever the chunking, stitched ids
equal the reference up to renumbering for every object no larger than the halo.
"""

import dask
import dask.array as da
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ops_label_helpers import assert_same_partition
from scipy import ndimage as ndi
from skimage.feature import peak_local_max
from skimage.segmentation import watershed

from ops_helpers import chunkings
from voxelflow.errors import InvalidInputError
from voxelflow.ops import predict, stitch


def label_model(block):
    """Threshold + connected components: each sphere (or group of touching spheres) one label."""
    return ndi.label(block > 0)[0]


def watershed_model(block):
    """Split touching spheres: watershed of the distance map, one cluster at a time."""
    clusters, _ = ndi.label(block > 0)
    out = np.zeros(block.shape, np.int64)
    for k, box in enumerate(ndi.find_objects(clusters), start=1):
        box = tuple(slice(max(s.start - 1, 0), min(s.stop + 1, n)) for s, n in zip(box, block.shape))
        mask = clusters[box] == k
        dist = ndi.distance_transform_edt(mask)
        peaks = peak_local_max(dist, min_distance=2, labels=mask.astype(np.int32), exclude_border=False)
        if len(peaks) == 0:
            peaks = np.argwhere(mask)[:1]
        markers = np.zeros(mask.shape, np.int64)
        markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
        basins = watershed(-dist, markers, mask=mask)
        region = out[box]
        region[mask] = basins[mask] + out.max()
    return out


def spheres(shape, centres, radii):
    grid = np.indices(shape)
    x = np.zeros(shape, np.uint8)
    for c, r in zip(centres, radii):
        x[sum((g - v) ** 2 for g, v in zip(grid, c)) <= r * r] = 1
    return x


@st.composite
def sphere_volumes(draw, pairs=False):
    shape = tuple(draw(st.integers(6, 20)) for _ in range(3))
    n = draw(st.integers(0, 6))
    centres, radii = [], []
    for _ in range(n):
        c = [draw(st.integers(0, s - 1)) for s in shape]
        r = draw(st.integers(1, 3))
        centres.append(c)
        radii.append(r)
        if pairs:  # a touching partner along x, to be split by the watershed
            centres.append([c[0], c[1], c[2] + 2 * r - 1])
            radii.append(r)
    return spheres(shape, centres, radii), draw(chunkings(shape)), draw(st.integers(0, 2))


def max_extent(labels):
    boxes = [b for b in ndi.find_objects(labels) if b is not None]
    return max((max(s.stop - s.start for s in b) for b in boxes), default=1)


def run(x, chunks, model, halo, pad_mode="constant", **kw):
    tiles = predict(da.from_array(x, chunks=chunks), model, halo=halo, output="instances", pad_mode=pad_mode, **kw)
    os_arr, n = tiles.stitch()
    return os_arr.compute(), n


def padded_reference(x, model, halo, pad_mode):
    ref = model(np.pad(x, halo, mode=pad_mode))
    return ref[tuple(slice(halo, halo + s) for s in x.shape)]


@settings(max_examples=25)
@given(sphere_volumes(), st.sampled_from(["constant", "reflect", "edge"]))
def test_labelled_spheres_equal_the_whole_array_labels_for_any_chunking(case, pad_mode):
    x, chunks, extra = case
    ref, n_ref = ndi.label(x)
    halo = max_extent(ref) - 1 + extra
    ours, n = run(x, chunks, label_model, max(halo, 1), pad_mode)
    assert n == n_ref
    assert_same_partition(ours, ref)
    np.testing.assert_array_equal(np.unique(ours[ours != 0]), np.arange(1, n + 1))


@settings(max_examples=20)
@given(sphere_volumes(pairs=True))
def test_watershed_split_spheres_equal_the_whole_array_result_for_any_chunking(case):
    x, chunks, extra = case
    # a cluster and the background ring around it must fit in every padded block it touches;
    # zero padding adds no foreground (mirrored padding extends clusters that touch the border
    # into the pad, where a block beside the border sees less of them than the whole array)
    pad_mode = "constant"
    halo = max_extent(ndi.label(x)[0]) + 1 + extra
    ref = padded_reference(x, watershed_model, halo, pad_mode)
    ours, n = run(x, chunks, watershed_model, halo, pad_mode)
    assert n == len(np.unique(ref[ref != 0]))
    assert_same_partition(ours, ref)


def test_touching_instances_across_a_chunk_face_stay_separate():
    # two spheres touching exactly on the face between two chunks: a face-contact
    # merge would join them, the overlap match keeps the model's two instances
    x = spheres((16, 16, 24), [(8, 8, 8), (8, 8, 15)], [4, 4])
    assert ndi.label(x)[1] == 1
    ref = watershed_model(x)
    assert len(np.unique(ref)) == 3
    ours, n = run(x, (16, 16, 12), watershed_model, 12)
    assert n == 2
    assert_same_partition(ours, ref)


def test_object_longer_than_the_halo_but_straight_is_stitched_whole():
    x = np.zeros((8, 8, 60), np.uint8)
    x[3:5, 3:5, 2:58] = 1  # a fibre across 6 chunks of 10 with a halo of 2
    ours, n = run(x, (8, 8, 10), label_model, 2)
    assert n == 1
    assert_same_partition(ours, ndi.label(x)[0])


def u_shape():
    """A U in a plane: two arms along y joined at y = 39, plus a small sphere elsewhere."""
    x = np.zeros((5, 48, 24), np.uint8)
    x[2, 0:40, 5] = 1
    x[2, 0:40, 15] = 1
    x[2, 39, 5:16] = 1
    x[1:4, 10:13, 20:23] = 1
    return x


def test_object_whose_parts_join_outside_the_halo_is_cut_never_merged_or_lost():
    # Documented behaviour: the chunk y < 20 sees the two arms as two labels, the
    # chunk y >= 20 sees one U; in their overlap each arm covers half of the U
    # (IoU 0.5, not above it), so nothing matches and the U stays in 3 pieces.
    x = u_shape()
    ref, n_ref = ndi.label(x)
    assert n_ref == 2
    ours, n = run(x, (5, 20, 24), label_model, 3)
    assert n == 4
    np.testing.assert_array_equal(ours != 0, x != 0)  # no voxel lost
    u = ref == ref[2, 0, 5]
    pieces = np.unique(ours[u])
    assert len(pieces) == 3
    assert not np.isin(ours[~u & (ours != 0)], pieces).any()  # no piece shared with another object
    # a halo that holds the whole U stitches it exactly
    ours, n = run(x, (5, 20, 24), label_model, 40)
    assert n == 2
    assert_same_partition(ours, ref)


def test_stitch_of_stored_labels_with_another_chunking():
    x = spheres((12, 30, 30), [(6, 10, 10), (6, 14, 20), (3, 25, 5)], [3, 4, 2])
    tiles = predict(da.from_array(x, chunks=(6, 10, 10)), label_model, halo=9, output="instances")
    # the labels and matches computed in one pass, as a step does before storing the labels
    labels, matches = dask.compute(tiles.labels, tiles.matches)
    stored = da.from_array(labels, chunks=(12, 15, 7))
    os_arr, n = stitch(stored, matches)
    assert n == 3
    assert_same_partition(os_arr.compute(), ndi.label(x)[0])


def test_stitch_refuses_labels_from_another_run():
    x = spheres((12, 20, 20), [(6, 10, 10)], [3])
    tiles = predict(da.from_array(x, chunks=(6, 10, 10)), label_model, halo=7, output="instances")
    matches = tiles.matches.compute()
    other = predict(da.from_array(x, chunks=(12, 5, 20)), label_model, halo=7, output="instances").labels
    with pytest.raises(InvalidInputError, match="do not belong to this chunk"):
        stitch(other, matches)[0].compute()
    with pytest.raises(InvalidInputError, match="shape"):
        stitch(da.zeros((3, 3, 3), dtype=np.int64), matches)


def test_instances_need_a_halo_and_integer_labels():
    x = np.zeros((8, 8, 8), np.uint8)
    with pytest.raises(InvalidInputError, match="halo of at least 1"):
        predict(da.from_array(x, chunks=4), label_model, halo=0, output="instances")
    tiles = predict(da.from_array(x, chunks=4), lambda b: b.astype(np.float32), halo=1, output="instances")
    with pytest.raises(InvalidInputError, match="integer labels"):
        tiles.stitch()
    with pytest.raises(InvalidInputError, match="iou"):
        predict(da.from_array(x, chunks=4), label_model, halo=1, output="instances", iou=0.3)
