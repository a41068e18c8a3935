"""threshold, coarse negative masks and percentile normalisation."""

import dask.array as da
import numpy as np
import pytest
import scipy.ndimage as ndi
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage.exposure import rescale_intensity as sk_rescale

from ops_helpers import chunkings
from voxelflow.errors import EmptyResultError, InvalidInputError
from voxelflow.ops import (
    apply_negative_mask,
    foreground,
    percentile_range,
    relative_threshold,
    rescale_intensity,
    scale_nearest,
    threshold,
    upsample_mask,
)


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


@settings(max_examples=20, deadline=None)
@given(st.tuples(st.integers(1, 9), st.integers(1, 11), st.integers(1, 7)),
       st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(1, 3)), st.data())
def test_negative_mask_upsampling_matches_zoom_and_repeat_on_any_shape(shape, f, data):
    """Voxel i takes the coarse voxel containing its centre, for divisible and non-divisible shapes."""
    rng = np.random.default_rng(data.draw(st.integers(0, 99)))
    coarse_shape = tuple(-(-n // k) for n, k in zip(shape, f))
    mask = rng.random(coarse_shape) < 0.4
    img = rng.integers(1, 100, shape).astype(np.int32)
    chunks = data.draw(chunkings(shape))
    up = upsample_mask(mask, f, shape, chunks)
    crop = tuple(slice(0, n) for n in shape)
    by_repeat = mask.repeat(f[0], 0).repeat(f[1], 1).repeat(f[2], 2)[crop]
    by_zoom = ndi.zoom(mask, f, order=0, grid_mode=True, mode="grid-constant")[crop]
    np.testing.assert_array_equal(by_zoom, by_repeat)
    assert up.chunks == chunks
    np.testing.assert_array_equal(up.compute(), by_zoom)
    # the rule of the pipeline's coarse grid: the block a voxel was pooled into
    idx = np.indices(shape)
    np.testing.assert_array_equal(up.compute(), mask[idx[0] // f[0], idx[1] // f[1], idx[2] // f[2]])
    got = apply_negative_mask(da.from_array(img, chunks=chunks), mask, f, fill=-1)
    np.testing.assert_array_equal(got.compute(), np.where(by_zoom, -1, img))


def test_upsample_mask_refuses_a_mask_of_another_grid():
    with pytest.raises(InvalidInputError, match=r"\(4,\)"):
        upsample_mask(np.zeros(3, dtype=bool), 3, (10,))
    with pytest.raises(InvalidInputError, match="integers"):
        upsample_mask(np.zeros(4, dtype=bool), 2.5, (10,))


def test_mask_of_another_resolution_uses_scale_nearest_on_the_same_box():
    mask = np.array([False, True, False])
    got = scale_nearest(mask, output_shape=(7,)).compute()
    # target voxel i takes mask voxel floor((i + 0.5) * 3 / 7): the same physical box
    np.testing.assert_array_equal(got, mask[np.floor((np.arange(7) + 0.5) * 3 / 7).astype(int)])


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 99), st.sampled_from([0.5, 1.0, 2.5]), st.booleans())
def test_relative_threshold_is_a_multiple_of_the_kept_median(seed, factor, with_field):
    rng = np.random.default_rng(seed)
    coarse = rng.gamma(2.0, 40.0, (6, 9, 8))
    negative = rng.random(coarse.shape) < 0.5
    negative[0, 0, 0] = False
    field = rng.uniform(0.5, 2.0, coarse.shape) if with_field else None
    corrected = coarse / field if with_field else coarse
    want = factor * float(np.median(corrected[~negative]))
    got = relative_threshold(da.from_array(coarse, chunks=4), negative, factor, field=field)
    assert got == pytest.approx(want, rel=1e-12)


def test_relative_threshold_needs_kept_voxels():
    with pytest.raises(EmptyResultError, match="negative mask"):
        relative_threshold(np.ones((2, 2, 2)), np.ones((2, 2, 2), dtype=bool), 2.0)


@settings(max_examples=10, deadline=None)
@given(st.tuples(st.integers(2, 9), st.integers(2, 10), st.integers(2, 8)), st.data())
def test_foreground_is_threshold_outside_the_upsampled_mask(shape, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 99)))
    f = (2, 3, 2)
    img = rng.integers(0, 50, shape).astype(np.uint16)
    negative = rng.random(tuple(-(-n // k) for n, k in zip(shape, f))) < 0.3
    chunks = data.draw(chunkings(shape))
    got = foreground(da.from_array(img, chunks=chunks), 20, negative, f)
    idx = np.indices(shape)
    want = (img > 20) & ~negative[idx[0] // 2, idx[1] // 3, idx[2] // 2]
    assert got.chunks == chunks
    np.testing.assert_array_equal(got.compute(), want)
    np.testing.assert_array_equal(foreground(img, 20).compute(), img > 20)


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
