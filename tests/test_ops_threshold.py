"""threshold, coarse negative masks and percentile normalisation."""

import dask.array as da
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage.exposure import rescale_intensity as sk_rescale

from ops_helpers import chunkings
from voxelflow.errors import InvalidInputError
from voxelflow.ops._masks import apply_negative_mask, upsample_mask
from voxelflow.ops._normalize import percentile_range, rescale_intensity
from voxelflow.ops._threshold import threshold


@settings(max_examples=15, deadline=None)
@given(st.data())
def test_threshold_matches_numpy(data):
    shape = (5, 6, 7)
    img = np.random.default_rng(data.draw(st.integers(0, 99))).integers(0, 10, shape).astype(np.uint16)
    value = data.draw(st.sampled_from([-1, 0, 4, 4.5, 9, 10]))
    got = threshold(da.from_array(img, chunks=data.draw(chunkings(shape))), value)
    assert got.dtype == bool
    np.testing.assert_array_equal(got.compute(), img > value)


def test_threshold_edge_cases():
    assert not threshold(np.zeros((3, 3)), 0).compute().any()
    assert threshold(np.ones((3, 3)), 0).compute().all()
    with pytest.raises(InvalidInputError, match="NaN"):
        threshold(np.ones(3), float("nan"))
    with pytest.raises(InvalidInputError, match="number"):
        threshold(np.ones(3), "high")


@settings(max_examples=15, deadline=None)
@given(st.tuples(st.integers(1, 4), st.integers(1, 5), st.integers(1, 3)),
       st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3)), st.data())
def test_negative_mask_at_coarse_resolution(coarse_shape, f, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 99)))
    mask = rng.random(coarse_shape) < 0.4
    shape = tuple(n * k for n, k in zip(coarse_shape, f))
    img = rng.integers(1, 100, shape).astype(np.int32)
    chunks = data.draw(chunkings(shape))
    up = upsample_mask(mask, shape, chunks)
    expected_mask = mask.repeat(f[0], 0).repeat(f[1], 1).repeat(f[2], 2)
    assert up.chunks == chunks
    np.testing.assert_array_equal(up.compute(), expected_mask)
    got = apply_negative_mask(da.from_array(img, chunks=chunks), mask, fill=-1)
    np.testing.assert_array_equal(got.compute(), np.where(expected_mask, -1, img))


def test_negative_mask_non_integer_ratio_keeps_centres_aligned():
    mask = np.array([False, True, False])
    got = upsample_mask(mask, (7,)).compute()
    # target voxel i takes mask voxel floor((i + 0.5) * 3 / 7)
    np.testing.assert_array_equal(got, mask[np.floor((np.arange(7) + 0.5) * 3 / 7).astype(int)])


def test_percentile_rescale_matches_skimage():
    rng = np.random.default_rng(3)
    img = rng.gamma(2.0, 50.0, (16, 20, 20)).astype(np.float32)
    coarse = img[::2, ::2, ::2]
    lo, hi = percentile_range(coarse, 1, 99)
    assert (lo, hi) == pytest.approx(tuple(np.percentile(coarse.astype(np.float64), [1, 99])))
    got = rescale_intensity(da.from_array(img, chunks=7), (lo, hi)).compute()
    ref = sk_rescale(img.astype(np.float64), in_range=(lo, hi), out_range=(0.0, 1.0))
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-7)
    tissue = coarse > np.median(coarse)
    assert percentile_range(coarse, 0, 100, mask=tissue)[0] == pytest.approx(coarse[tissue].min())


def test_normalisation_errors():
    with pytest.raises(InvalidInputError, match="low < high"):
        percentile_range(np.ones(4), 50, 10)
    with pytest.raises(InvalidInputError, match="empty"):
        percentile_range(np.ones(4), mask=np.zeros(4, bool))
    with pytest.raises(InvalidInputError, match="lo < hi"):
        rescale_intensity(np.ones(4), (3, 3))
