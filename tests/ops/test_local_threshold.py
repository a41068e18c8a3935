"""Per-plane / per-tile and local thresholds equal numpy / scipy on the whole array."""

import dask.array as da
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage as ndi

from ops_helpers import partitions
from voxelflow.errors import InvalidInputError
from voxelflow.ops import local_threshold, tile_stats, tile_threshold


@st.composite
def volumes(draw):
    shape = (draw(st.integers(1, 6)), draw(st.integers(2, 30)), draw(st.integers(2, 30)))
    chunks = tuple(draw(partitions(n)) for n in shape)
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    img = rng.normal(100, 20, shape).astype(np.float32)
    mask = rng.random(shape) > draw(st.sampled_from([0.0, 0.3, 0.9]))
    return img, mask, chunks


def _reference(img, mask, tile):
    nz, ny, nx = img.shape
    nty, ntx = -(-ny // tile[0]), -(-nx // tile[1])
    mean = np.full((nz, nty, ntx), np.nan)
    sd = np.full((nz, nty, ntx), np.nan)
    count = np.zeros((nz, nty, ntx), np.int64)
    for z in range(nz):
        for a in range(nty):
            for b in range(ntx):
                sl = (z, slice(a * tile[0], (a + 1) * tile[0]), slice(b * tile[1], (b + 1) * tile[1]))
                v = img[sl][mask[sl]].astype(np.float64)
                count[z, a, b] = v.size
                if v.size:
                    mean[z, a, b], sd[z, a, b] = v.mean(), v.std()
    return mean, sd, count


@settings(max_examples=30)
@given(volumes(), st.sampled_from([None, 7.0, 20.0, 1000.0]))
def test_tile_stats_equal_numpy_per_plane_and_tile(vol, tile_um):
    img, mask, chunks = vol
    spacing = (5.0, 2.0, 2.5)
    got = tile_stats(da.from_array(img, chunks=chunks), spacing, tile_um=tile_um,
                     mask=da.from_array(mask, chunks=chunks[::-1][::-1]))
    tile = (img.shape[1], img.shape[2]) if tile_um is None else (int(round(tile_um / 2.0)), int(round(tile_um / 2.5)))
    assert got.tile == tile
    mean, sd, count = _reference(img, mask, tile)
    np.testing.assert_array_equal(got.count, count)
    np.testing.assert_allclose(got.mean, mean, rtol=1e-10, equal_nan=True)
    np.testing.assert_allclose(got.sd, sd, rtol=1e-6, atol=1e-8, equal_nan=True)


def test_tile_threshold_is_mean_plus_k_sd_of_each_tile():
    rng = np.random.default_rng(1)
    gains = np.array([1.0, 2.5, 0.5])[:, None, None]
    img = (rng.normal(100, 10, (3, 40, 40)) * gains).astype(np.float32)
    img[1, :, 20:] *= 1.6  # a brighter tile
    mask = np.ones(img.shape, bool)
    stats = tile_stats(img, (5, 2, 2), tile_um=40.0, mask=mask)
    bs = tile_threshold(da.from_array(img, chunks=(2, 15, 9)), stats, 2.0).compute()
    mean, sd, _ = _reference(img, mask, (20, 20))
    level = np.repeat(np.repeat(mean + 2.0 * sd, 20, axis=1), 20, axis=2)
    np.testing.assert_array_equal(bs, img > level)
    # every plane and tile keeps about the same fraction (2 SD above a normal mean: 2.3 %)
    frac = bs.reshape(3, 2, 20, 2, 20).mean(axis=(2, 4))
    assert (frac > 0.005).all() and (frac < 0.06).all()


def test_tiles_with_too_few_voxels_use_their_plane_and_empty_planes_the_volume():
    img = np.arange(2 * 4 * 8, dtype=np.float32).reshape(2, 4, 8)
    mask = np.zeros(img.shape, bool)
    mask[0, :, :4] = True  # plane 0: only tile 0 has tissue; plane 1: nothing
    stats = tile_stats(img, (1, 1, 1), tile_um=4.0, mask=mask)
    bs = tile_threshold(img, stats, 0.0, min_voxels=2).compute()
    m0 = img[0, :, :4].mean()
    np.testing.assert_array_equal(bs[0], img[0] > m0)
    np.testing.assert_array_equal(bs[1], img[1] > m0)  # the volume's statistics are plane 0's


@settings(max_examples=25)
@given(volumes(), st.floats(1.0, 9.0), st.sampled_from([0.0, 0.5, -1.0]), st.booleans(),
       st.sampled_from(["reflect", "nearest", "mirror"]))
def test_local_threshold_equals_scipy_uniform_filter(vol, window_um, k, per_plane, mode):
    img, _, chunks = vol
    spacing = (5.0, 2.0, 2.5)
    got = local_threshold(da.from_array(img, chunks=chunks), window_um, spacing, k=k, offset=1.5,
                          per_plane=per_plane, mode=mode).compute()
    r = [int(round(window_um / s)) for s in spacing]
    if per_plane:
        r[0] = 0
    size = tuple(2 * v + 1 for v in r)
    f = img.astype(np.float64)
    mean = ndi.uniform_filter(f, size, mode=mode)
    sd = np.sqrt(np.maximum(ndi.uniform_filter(f * f, size, mode=mode) - mean**2, 0))
    thr = mean + k * sd + 1.5
    # float32 box sums: only voxels within rounding of their threshold may differ
    differ = got != (img > thr)
    assert np.all(np.abs(img - thr)[differ] < 1e-3 * (1 + np.abs(thr[differ])))


def test_bad_input_raises():
    img = da.zeros((2, 4, 4), chunks=2)
    with pytest.raises(InvalidInputError):
        tile_stats(img[0], (1, 1))
    with pytest.raises(InvalidInputError):
        tile_threshold(da.zeros((3, 4, 4), chunks=2), tile_stats(img, (1, 1, 1)), 2.0)
    with pytest.raises(InvalidInputError):
        local_threshold(img, 0.0, (1, 1, 1))
