"""N4 bias-field estimation on a coarse level and its chunked application."""

import sys

import dask.array as da
import numpy as np
import pytest
from hypothesis import given, settings
from scipy import ndimage as ndi

from ops_helpers import chunkings
from voxelflow.errors import InvalidInputError, OptionalDependencyError
from voxelflow.io.blockreduce import block_reduce
from voxelflow.ops._bias import apply_bias_field, estimate_bias_field

SHAPE = (24, 48, 48)


@pytest.fixture(scope="module")
def biased():
    rng = np.random.default_rng(0)
    z, y, x = np.indices(SHAPE).astype(np.float64)
    tissue = ((z - 12) / 11) ** 2 + ((y - 24) / 22) ** 2 + ((x - 24) / 22) ** 2 <= 1
    true = np.where(tissue, 100 + rng.normal(0, 3, SHAPE), 0)
    field = 1 + 0.8 * x / (SHAPE[2] - 1) + 0.3 * np.sin(y / 15)  # smooth, multiplicative
    return (true * field).astype(np.float32), tissue


def _cv(values):
    return values.std() / values.mean()


def test_n4_on_coarse_level_flattens_the_tissue(biased):
    img, tissue = biased
    coarse = block_reduce(da.from_array(img, chunks=24), (2, 2, 2), "mean").compute()
    coarse_mask = block_reduce(da.from_array(tissue, chunks=24), (2, 2, 2), "min").compute()
    field = estimate_bias_field(coarse, coarse_mask, iterations=30, fitting_levels=3)
    assert field.shape == coarse.shape and field.dtype == np.float32
    assert field[coarse_mask].mean() == pytest.approx(1.0, rel=1e-5)
    corrected = apply_bias_field(da.from_array(img, chunks=(8, 48, 20)), field).compute()
    before, after = _cv(img[tissue]), _cv(corrected[tissue])
    assert after < 0.5 * before, (before, after)
    # the fitted field follows the planted gradient along x
    assert field[:, :, -3:][coarse_mask[:, :, -3:]].mean() > 1.3 * field[:, :, :3][coarse_mask[:, :, :3]].mean()


@settings(max_examples=10, deadline=None)
@given(chunks=chunkings((9, 14, 11)))
def test_apply_is_chunking_invariant_and_matches_references(chunks):
    rng = np.random.default_rng(1)
    img = rng.uniform(1, 100, (9, 14, 11)).astype(np.float32)
    field = rng.uniform(0.5, 2.0, (3, 7, 4))
    whole = apply_bias_field(img, field, "linear").compute()
    got = apply_bias_field(da.from_array(img, chunks=chunks), field, "linear")
    assert got.chunks == chunks
    np.testing.assert_array_equal(got.compute(), whole)
    # reference: scipy's order-1 interpolation at the centre-aligned field coordinates, clamped
    coords = [np.clip((np.arange(n) + 0.5) * m / n - 0.5, 0, m - 1) for n, m in zip(img.shape, field.shape)]
    grid = np.meshgrid(*coords, indexing="ij")
    up = ndi.map_coordinates(field, grid, order=1, mode="nearest")
    np.testing.assert_allclose(whole, img / up, rtol=1e-5)
    near = apply_bias_field(da.from_array(img, chunks=chunks), field, "nearest").compute()
    idx = np.ix_(*[np.floor(c + 0.5).astype(int) for c in coords])
    np.testing.assert_allclose(near, img / field[idx], rtol=1e-6)


def test_nearest_with_integer_factor_is_repeat():
    field = np.array([[1.0, 2.0], [4.0, 8.0]])
    img = np.full((4, 6), 8.0)
    got = apply_bias_field(da.from_array(img, chunks=(1, 4)), field, "nearest").compute()
    np.testing.assert_array_equal(got, 8.0 / np.repeat(np.repeat(field, 2, 0), 3, 1))


def test_missing_simpleitk_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "SimpleITK", None)
    with pytest.raises(OptionalDependencyError, match=r"voxelflow\[bias\]"):
        estimate_bias_field(np.ones((4, 4, 4)))


def test_bad_inputs():
    with pytest.raises(InvalidInputError, match="positive"):
        apply_bias_field(np.ones((4, 4)), np.zeros((2, 2)))
    with pytest.raises(InvalidInputError, match="axes"):
        apply_bias_field(np.ones((4, 4)), np.ones(2))
    with pytest.raises(InvalidInputError, match="method"):
        apply_bias_field(np.ones((4, 4)), np.ones((2, 2)), "cubic")
    with pytest.raises(InvalidInputError, match="mask is empty"):
        estimate_bias_field(np.ones((8, 8, 8)), np.zeros((8, 8, 8), bool))
