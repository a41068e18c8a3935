"""threshold_corrected against whole-array references (scipy map_coordinates / affine_transform, np.repeat)."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage as ndi

from voxelflow.errors import InvalidInputError
from voxelflow.ops import foreground_objects, object_table, threshold_corrected


def _field_reference(field, shape):
    """Trilinear, clamped, centre-aligned up-sampling of the whole field (float64)."""
    axes = [np.clip((np.arange(n) + 0.5) * (m / n) - 0.5, 0, m - 1) for n, m in zip(shape, field.shape)]
    grid = np.meshgrid(*axes, indexing="ij")
    return ndi.map_coordinates(field.astype(np.float64), grid, order=1, mode="nearest")


@settings(max_examples=25)
@given(
    shape=st.tuples(st.integers(1, 24), st.integers(1, 30), st.integers(1, 30)),
    fshape=st.tuples(st.integers(1, 5), st.integers(1, 6), st.integers(1, 6)),
    mfactor=st.tuples(st.integers(1, 4), st.integers(1, 5), st.integers(1, 5)),
    chunks=st.tuples(st.integers(1, 12), st.integers(1, 16), st.integers(1, 16)),
    seed=st.integers(0, 10_000),
)
def test_matches_whole_array_reference(shape, fshape, mfactor, chunks, seed):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 2000, shape).astype(np.uint16)
    field = rng.uniform(0.5, 1.6, fshape).astype(np.float32)
    # an integer up-sampling of the mask, so np.repeat is the reference
    mshape = tuple(max(1, n // f) for n, f in zip(shape, mfactor))
    mshape = tuple(m if n % m == 0 else 1 for n, m in zip(shape, mshape))
    negative = rng.random(mshape) < 0.3
    got = threshold_corrected(da.from_array(img, chunks=chunks), 700.0, field, negative).compute()
    thr = 700.0 * _field_reference(field, shape)
    neg_up = negative
    for axis, (n, m) in enumerate(zip(shape, mshape)):
        neg_up = np.repeat(neg_up, n // m, axis=axis)
    want = (img > thr) & ~neg_up
    # float32 arithmetic may only differ from the float64 reference right at the threshold
    close = np.abs(img - thr) < 1e-3 * 700
    assert np.array_equal(got[~close], want[~close])


def test_mask_of_any_ratio_matches_affine_transform():
    rng = np.random.default_rng(1)
    shape, mshape = (23, 37, 41), (5, 7, 9)
    negative = rng.random(mshape) < 0.5
    img = np.full(shape, 10, np.uint16)
    got = threshold_corrected(da.from_array(img, chunks=(7, 9, 11)), 5, None, negative).compute()
    s = np.array(mshape) / np.array(shape)
    up = ndi.affine_transform(negative.astype(np.uint8), s, 0.5 * s - 0.5, shape, order=0, mode="nearest")
    assert np.array_equal(got, up == 0)


def test_without_field_and_mask_is_a_plain_threshold():
    img = np.arange(60, dtype=np.uint16).reshape(3, 4, 5)
    assert np.array_equal(threshold_corrected(img, 30).compute(), img > 30)


@pytest.mark.parametrize("field", [np.zeros((2, 2, 2)), np.full((2, 2), 1.0), np.full((2, 2, 2), np.nan)])
def test_bad_field_is_refused(field):
    with pytest.raises(InvalidInputError, match="field"):
        threshold_corrected(np.ones((4, 4, 4)), 1.0, field)


@settings(max_examples=10, deadline=None)
@given(
    shape=st.tuples(st.integers(2, 20), st.integers(2, 24), st.integers(2, 24)),
    chunks=st.tuples(st.integers(2, 10), st.integers(2, 12), st.integers(2, 12)),
    with_field=st.booleans(),
    with_mask=st.booleans(),
    seed=st.integers(0, 10_000),
)
def test_streaming_table_equals_the_table_of_the_foreground(shape, chunks, with_field, with_mask, seed):
    # the pass thresholds each chunk inside its labelling task; the result is that of the foreground image
    rng = np.random.default_rng(seed)
    img = ndi.gaussian_filter(rng.random(shape), 1.0)
    img = (img * 2000).astype(np.uint16)
    value = float(np.quantile(img, 0.7))
    field = rng.uniform(0.8, 1.2, (2, 3, 3)).astype(np.float32) if with_field else None
    negative = rng.random((2, 2, 2)) < 0.3 if with_mask else None
    arr = da.from_array(img, chunks=chunks)
    got = foreground_objects(arr, value, negative, field, connectivity=1)
    bs = threshold_corrected(arr, value, field, negative)
    pd.testing.assert_frame_equal(got, object_table(bs, intensity=arr, kind="bs"))
    labels, n = ndi.label(bs.compute())
    assert len(got) == n
    assert sorted(got["voxels"]) == sorted(np.bincount(labels.ravel())[1:])
