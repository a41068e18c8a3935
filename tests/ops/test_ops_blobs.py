"""blob_detect: planted Gaussian blobs are found once each, whatever the chunking."""

import dask.array as da
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ops_helpers import chunkings, planted_gaussians
from voxelflow.errors import InvalidInputError
from voxelflow.ops._blobs import blob_detect

SHAPE = (20, 28, 24)
CENTRES = [(4, 4, 4), (10, 14, 12), (16, 24, 20), (8, 22, 5), (0, 9, 14), (19, 27, 23)]
WIDTH = 2.0


@pytest.fixture(scope="module")
def planted():
    img = planted_gaussians(SHAPE, CENTRES, WIDTH, amplitude=1.0, noise=0.02, seed=4).astype(np.float32)
    whole = blob_detect(da.from_array(img, chunks=SHAPE), 1.0, 3.0, 3, threshold=0.2)
    return img, whole


def test_finds_each_planted_blob_once(planted):
    _, whole = planted
    assert len(whole) == len(CENTRES)
    found = sorted(map(tuple, whole[["z", "y", "x"]].to_numpy().astype(int).tolist()))
    assert found == sorted(CENTRES)
    assert list(whole["id"]) == list(range(1, len(CENTRES) + 1))
    # away from the border (where scipy's reflect mode mirrors the blob) scale selection
    # picks the planted width, and the LoG response at the centre is ndim / 2**(ndim/2+1)
    pos = whole[["z", "y", "x"]].to_numpy()
    inner = whole[np.all((pos >= 4) & (pos <= np.array(SHAPE) - 5), axis=1)]
    assert len(inner) == 3
    assert np.allclose(inner["sigma"], WIDTH)
    assert np.allclose(inner["response"], 3 / 2**2.5, rtol=0.1)
    border = whole.set_index(["z", "y", "x"])["touches_border"]
    assert border[(0.0, 9.0, 14.0)] and border[(19.0, 27.0, 23.0)] and not border[(10.0, 14.0, 12.0)]


def test_agrees_with_skimage_blob_log_on_the_whole_image(planted):
    from skimage.feature import blob_log

    img, whole = planted
    ref = blob_log(img, min_sigma=1.0, max_sigma=3.0, num_sigma=3, threshold=0.2)
    ref = ref[np.lexsort(ref[:, 2::-1].T)]
    np.testing.assert_array_equal(whole[["z", "y", "x", "sigma"]].to_numpy(), ref)


@settings(max_examples=10, deadline=None)
@given(chunks=chunkings(SHAPE, max_parts=3))
def test_table_does_not_depend_on_chunking(planted, chunks):
    img, whole = planted
    got = blob_detect(da.from_array(img, chunks=chunks), 1.0, 3.0, 3, threshold=0.2)
    assert got.equals(whole)


def test_dog_finds_the_same_centres(planted):
    img, whole = planted
    got = blob_detect(da.from_array(img, chunks=(7, 28, 11)), 1.0, 3.0, 3, threshold=0.2, method="dog")
    np.testing.assert_array_equal(got[["z", "y", "x"]].to_numpy(), whole[["z", "y", "x"]].to_numpy())


def test_empty_image_gives_empty_table_with_columns():
    got = blob_detect(da.zeros((6, 7, 8), chunks=3), threshold=0.1)
    assert len(got) == 0
    assert list(got.columns[:4]) == ["id", "z", "y", "x"] and "touches_border" in got.columns


def test_2d_image():
    img = planted_gaussians((30, 30), [(10, 10), (20, 22)], 2.0)
    got = blob_detect(da.from_array(img, chunks=(7, 30)), 1.0, 3.0, 3, threshold=0.2)
    assert got[["y", "x"]].to_numpy().tolist() == [[10.0, 10.0], [20.0, 22.0]]


def test_bad_arguments():
    with pytest.raises(InvalidInputError, match="2-D or 3-D"):
        blob_detect(np.zeros(5), threshold=0.1)
    with pytest.raises(InvalidInputError, match="method"):
        blob_detect(np.zeros((5, 5)), threshold=0.1, method="doh")
    with pytest.raises(InvalidInputError, match="min_sigma"):
        blob_detect(np.zeros((5, 5)), min_sigma=3, max_sigma=1, threshold=0.1)


@settings(max_examples=8, deadline=None)
@given(st.data())
def test_random_shapes_and_blobs_whole_equals_chunked(data):
    shape = tuple(data.draw(st.lists(st.integers(3, 18), min_size=3, max_size=3)))
    rng = np.random.default_rng(data.draw(st.integers(0, 10_000)))
    centres = [tuple(rng.uniform(0, shape)) for _ in range(data.draw(st.integers(0, 5)))]
    img = planted_gaussians(shape, centres, rng.uniform(1.0, 2.5), noise=0.01, seed=1)
    whole = blob_detect(img, 1.0, 2.0, 2, threshold=0.1)
    chunks = data.draw(chunkings(shape, max_parts=3))
    assert blob_detect(da.from_array(img, chunks=chunks), 1.0, 2.0, 2, threshold=0.1).equals(whole)
