"""Chunked pre-filters equal scipy.ndimage on the whole array, for any chunking and voxel size."""

import dask.array as da
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage as ndi

from ops_helpers import partitions
from voxelflow.errors import InvalidInputError
from voxelflow.ops import (
    channel_background,
    channel_levels,
    dog_filter,
    estimate_channel_factor,
    gaussian,
    log_filter,
    plane_tile_median,
    remove_plane_background,
    white_tophat,
)


@st.composite
def cases(draw, ndim=3):
    shape = tuple(draw(st.integers(4, 12 if ax == 0 and ndim == 3 else 24)) for ax in range(ndim))
    chunks = tuple(draw(partitions(n)) for n in shape)
    spacing = tuple(draw(st.sampled_from([0.7, 1.0, 2.0, 3.5, 5.0])) for _ in range(ndim))
    seed = draw(st.integers(0, 2**16))
    img = np.random.default_rng(seed).normal(100.0, 30.0, shape).astype(np.float32)
    return img, chunks, spacing


modes = st.sampled_from(["reflect", "mirror", "nearest"])


def _close(got, ref, img=None):
    """Equal up to float32 rounding of values of the size of the input and output."""
    scale = max(float(np.abs(ref).max()), 0.0 if img is None else float(np.abs(img).max()), 1.0)
    np.testing.assert_allclose(got, ref, rtol=0, atol=2e-5 * scale)


def _sigmas(sigma_um, spacing, per_plane):
    s = np.asarray([sigma_um / v for v in spacing])
    if per_plane and len(s) == 3:
        s[0] = 0.0
    return s


@settings(max_examples=25)
@given(cases(), st.floats(0.8, 6.0), st.booleans(), modes)
def test_gaussian_equals_scipy_on_the_whole_array(case, sigma_um, per_plane, mode):
    img, chunks, spacing = case
    got = gaussian(da.from_array(img, chunks=chunks), sigma_um, spacing, per_plane=per_plane, mode=mode)
    assert got.chunks == da.from_array(img, chunks=chunks).chunks and got.dtype == np.float32
    ref = ndi.gaussian_filter(img, _sigmas(sigma_um, spacing, per_plane), mode=mode)
    _close(got.compute(), ref)


def _log_reference(img, sigma_um, spacing, per_plane, mode, truncate=4.0):
    s = _sigmas(sigma_um, spacing, per_plane)
    ref = np.zeros(img.shape, np.float64)
    for ax in range(img.ndim):
        if s[ax] > 0:
            order = [2 if a == ax else 0 for a in range(img.ndim)]
            # sigma 0 on the other skipped axis: scipy skips it too
            ref += ndi.gaussian_filter(img.astype(np.float64), s, order=order, mode=mode, truncate=truncate) / spacing[ax] ** 2
    return -(sigma_um**2) * ref


@settings(max_examples=25)
@given(cases(), st.floats(0.8, 6.0), st.booleans(), modes)
def test_log_equals_scipy_second_derivatives_in_micrometres(case, sigma_um, per_plane, mode):
    img, chunks, spacing = case
    got = log_filter(da.from_array(img, chunks=chunks), sigma_um, spacing, per_plane=per_plane, mode=mode)
    _close(got.compute(), _log_reference(img, sigma_um, spacing, per_plane, mode))


@settings(max_examples=15)
@given(cases(ndim=2), st.floats(0.8, 6.0), modes)
def test_2d_images_are_filtered_like_scipy(case, sigma_um, mode):
    img, chunks, spacing = case
    arr = da.from_array(img, chunks=chunks)
    _close(log_filter(arr, sigma_um, spacing, mode=mode).compute(), _log_reference(img, sigma_um, spacing, False, mode))
    s = _sigmas(sigma_um, spacing, False)
    _close(gaussian(arr, sigma_um, spacing, mode=mode).compute(), ndi.gaussian_filter(img, s, mode=mode))


@settings(max_examples=20)
@given(cases(), st.floats(0.8, 4.0), st.floats(1.2, 2.5), st.booleans(), modes)
def test_dog_equals_difference_of_scipy_gaussians(case, sigma_um, ratio, per_plane, mode):
    img, chunks, spacing = case
    got = dog_filter(da.from_array(img, chunks=chunks), sigma_um, spacing, ratio=ratio, per_plane=per_plane, mode=mode)
    s = _sigmas(sigma_um, spacing, per_plane)
    ref = ndi.gaussian_filter(img, s, mode=mode) - ndi.gaussian_filter(img, s * ratio, mode=mode)
    _close(got.compute(), ref, img)


@settings(max_examples=25)
@given(cases(), st.floats(0.5, 8.0), st.booleans(), modes)
def test_white_tophat_equals_scipy_with_a_box(case, radius_um, per_plane, mode):
    img, chunks, spacing = case
    got = white_tophat(da.from_array(img, chunks=chunks), radius_um, spacing, per_plane=per_plane, mode=mode)
    r = [int(round(radius_um / v)) for v in spacing]
    if per_plane:
        r[0] = 0
    ref = ndi.white_tophat(img, size=tuple(2 * v + 1 for v in r), mode=mode)
    np.testing.assert_array_equal(got.compute(), ref)


def test_log_peaks_at_the_centre_of_a_bright_ball_on_anisotropic_voxels():
    spacing = (5.0, 2.0, 2.0)
    shape = (24, 60, 60)
    z, y, x = np.indices(shape).astype(float)
    centre = (11.0, 31.0, 28.0)
    d = np.sqrt(((z - centre[0]) * spacing[0]) ** 2 + ((y - centre[1]) * 2.0) ** 2 + ((x - centre[2]) * 2.0) ** 2)
    img = (d <= 5.0).astype(np.float32) * 100.0
    resp = log_filter(da.from_array(img, chunks=(7, 17, 13)), 10.0 / (2 * np.sqrt(3)), spacing).compute()
    assert np.unravel_index(np.argmax(resp), shape) == tuple(int(c) for c in centre)
    assert resp.max() > 0 and resp.min() < 0


def test_plane_tile_median_equals_numpy_on_the_sub_grid():
    rng = np.random.default_rng(3)
    img = rng.integers(0, 1000, size=(5, 37, 41)).astype(np.uint16)
    mask = rng.random(img.shape) > 0.3
    spacing = (5.0, 2.0, 2.0)
    got = plane_tile_median(da.from_array(img, chunks=(2, 10, 9)), spacing, tile_um=30.0, step=3,
                            mask=da.from_array(mask, chunks=(3, 7, 11)))
    tile = 15  # 30 um / 2 um
    assert got.shape == (5, 3, 3)
    for z in range(5):
        for a in range(3):
            for b in range(3):
                ys = [y for y in range(0, 37, 3) if y // tile == a]
                xs = [x for x in range(0, 41, 3) if x // tile == b]
                vals = img[z][np.ix_(ys, xs)][mask[z][np.ix_(ys, xs)]]
                assert got[z, a, b] == pytest.approx(np.median(vals))
    whole = plane_tile_median(img, spacing, step=1)
    np.testing.assert_allclose(whole[:, 0, 0], np.median(img.reshape(5, -1), axis=1))


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**16), st.data(), st.sampled_from([None, 8.0, 30.0]), st.integers(1, 5), st.booleans())
def test_plane_tile_median_equals_numpy_on_the_sub_grid_for_any_chunking(seed, data, tile_um, step, with_mask):
    rng = np.random.default_rng(seed)
    shape = (4, 23, 19)
    img = rng.integers(0, 1000, size=shape).astype(np.uint16)
    mask = rng.random(shape) > 0.3 if with_mask else np.ones(shape, bool)
    spacing = (5.0, 2.0, 2.0)
    chunks = tuple(data.draw(partitions(n)) for n in shape)  # chunks thinner than the step included
    got = plane_tile_median(da.from_array(img, chunks=chunks), spacing, tile_um=tile_um, step=step,
                            mask=da.from_array(mask, chunks=chunks[::-1][::-1]) if with_mask else None)
    tile = shape[1:] if tile_um is None else (int(round(tile_um / 2.0)),) * 2
    assert got.shape == (4, -(-shape[1] // tile[0]), -(-shape[2] // tile[1]))
    for z, a, b in np.ndindex(got.shape):
        ys = [y for y in range(0, shape[1], step) if y // tile[0] == a]
        xs = [x for x in range(0, shape[2], step) if x // tile[1] == b]
        vals = img[z][np.ix_(ys, xs)][mask[z][np.ix_(ys, xs)]]
        if vals.size:
            assert got[z, a, b] == np.median(vals.astype(np.float32))
        else:
            assert np.isnan(got[z, a, b])


def test_remove_plane_background_divides_each_plane_and_tile():
    rng = np.random.default_rng(4)
    img = rng.uniform(50, 150, size=(4, 20, 30)).astype(np.float32)
    medians = rng.uniform(10, 100, size=(4, 2, 3))
    medians[1, 0, 2] = np.nan  # filled with the plane's median
    got = remove_plane_background(da.from_array(img, chunks=(3, 7, 8)), medians, (5.0, 2.0, 2.0), tile_um=20.0).compute()
    filled = medians.copy()
    filled[1, 0, 2] = np.nanmedian(medians[1])
    level = np.repeat(np.repeat(filled, 10, axis=1), 10, axis=2)[:, :20, :30]
    np.testing.assert_allclose(got, img / level, rtol=1e-6)
    sub = remove_plane_background(img, medians, (5.0, 2.0, 2.0), tile_um=20.0, how="subtract").compute()
    np.testing.assert_allclose(sub, img - level, rtol=1e-5, atol=1e-4)


@settings(max_examples=25)
@given(st.integers(0, 2**16), st.data(), st.sampled_from([None, 6.0, 14.0, 40.0]), st.sampled_from(["divide", "subtract"]))
def test_remove_plane_background_equals_numpy_for_any_chunking_and_tile(seed, data, tile_um, how):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 900, size=(5, 23, 31)).astype(np.uint16)
    spacing = (5.0, 2.0, 2.5)
    tile = (23, 31) if tile_um is None else (int(round(tile_um / 2.0)), int(round(tile_um / 2.5)))
    grid = (5, -(-23 // tile[0]), -(-31 // tile[1]))
    levels = rng.uniform(0.2, 300.0, size=grid)
    chunks = tuple(data.draw(partitions(n)) for n in img.shape)
    got = remove_plane_background(da.from_array(img, chunks=chunks), levels, spacing, tile_um=tile_um, how=how)
    level = np.repeat(np.repeat(levels, tile[0], axis=1), tile[1], axis=2)[:, :23, :31].astype(np.float32)
    x = img.astype(np.float32)
    ref = x / np.maximum(level, np.float32(1.0)) if how == "divide" else x - level
    np.testing.assert_array_equal(got.compute(), ref)


@settings(max_examples=20)
@given(st.integers(0, 2**16), st.data(), st.sampled_from([None, 10.0, 30.0]), st.sampled_from(["subtract", "ratio"]))
def test_channel_background_with_levels_equals_the_composed_ops_exactly(seed, data, tile_um, how):
    rng = np.random.default_rng(seed)
    shape = (4, 19, 26)
    bg = rng.integers(0, 600, size=shape).astype(np.uint16)
    img = (rng.integers(0, 300, size=shape) + 0.6 * bg).astype(np.uint16)  # autofluorescence in both channels
    spacing = (5.0, 2.0, 2.5)
    tile = (19, 26) if tile_um is None else (int(round(tile_um / 2.0)), int(round(tile_um / 2.5)))
    grid = (4, -(-19 // tile[0]), -(-26 // tile[1]))
    levels = rng.uniform(50.0, 150.0, size=grid)
    bg_levels = levels * rng.uniform(0.7, 0.9, size=grid)  # planes and tiles brighter or darker in both channels
    levels[1, 0, 0] = np.nan  # filled with the plane's median, as remove_plane_background does
    bg_levels[2, -1, -1] = 0.3  # raised to 1
    chunks = tuple(data.draw(partitions(n)) for n in shape)
    a, b = da.from_array(img, chunks=chunks), da.from_array(bg, chunks=chunks[::-1][::-1])
    fused = channel_background(a, b, how=how, factor=0.7, floor=2.0, levels=levels, bg_levels=bg_levels,
                               spacing=spacing, tile_um=tile_um)
    composed = channel_background(remove_plane_background(a, levels, spacing, tile_um=tile_um),
                                  remove_plane_background(b, bg_levels, spacing, tile_um=tile_um), how=how,
                                  factor=0.7, floor=2.0)
    np.testing.assert_array_equal(fused.compute(), composed.compute())
    mask = rng.random(shape) > 0.2
    step = data.draw(st.integers(1, 5))
    got = estimate_channel_factor(a, b, step=step, mask=mask, quantile=0.5, levels=levels, bg_levels=bg_levels,
                                  spacing=spacing, tile_um=tile_um)
    ref = estimate_channel_factor(remove_plane_background(a, levels, spacing, tile_um=tile_um),
                                  remove_plane_background(b, bg_levels, spacing, tile_um=tile_um), step=step,
                                  mask=mask, quantile=0.5)
    assert got == ref
    # a whole background plane left at level 1 (tile_um None) makes its raw voxels the brightest "structures",
    # and their signal, divided by ~100, carries no autofluorescence: the estimate may then be 0, never below
    assert got > 0 if tile_um is not None else got >= 0


def test_plane_steps_vanish_after_background_division():
    rng = np.random.default_rng(5)
    gains = np.array([1.0, 1.8, 0.6, 1.3])
    img = (rng.normal(200, 5, size=(4, 32, 32)) * gains[:, None, None]).astype(np.float32)
    flat = remove_plane_background(img, plane_tile_median(img, (5, 2, 2), step=1), (5, 2, 2)).compute()
    np.testing.assert_allclose(np.median(flat.reshape(4, -1), axis=1), 1.0, atol=1e-6)


def test_channel_background_recovers_the_planted_autofluorescence_factor():
    rng = np.random.default_rng(6)
    shape = (6, 64, 64)
    auto = np.zeros(shape, np.float32)
    auto[:, 20:24, :] = 400.0  # a vessel in both channels
    auto[:, :, 40:42] = 300.0
    cells = np.zeros(shape, np.float32)
    cells[2:4, 50:54, 10:14] = 900.0  # only in the signal channel
    bg = 100.0 + auto + rng.normal(0, 3, shape)
    img = 120.0 + 0.6 * auto + cells + rng.normal(0, 3, shape)
    factor = estimate_channel_factor(img, bg, step=1)
    assert factor == pytest.approx(0.6, abs=0.05)
    clean = channel_background(da.from_array(img, chunks=(4, 30, 30)), bg, factor=factor).compute()
    np.testing.assert_allclose(clean, (img.astype(np.float32) - np.float32(factor) * bg.astype(np.float32)), rtol=1e-5)
    assert abs(np.median(clean[:, 20:24, :]) - np.median(clean)) < 15  # the vessel is gone
    assert clean[2:4, 50:54, 10:14].min() > np.median(clean) + 800  # the cell is kept
    ratio = channel_background(img, bg, how="ratio").compute()
    np.testing.assert_allclose(ratio, img.astype(np.float32) / np.maximum(bg.astype(np.float32), 1.0), rtol=1e-6)


@pytest.mark.parametrize(
    "call",
    [
        lambda a: gaussian(a, -1.0, (5, 2, 2)),
        lambda a: gaussian(a, 2.0, (5, 2)),
        lambda a: log_filter(a, 2.0, (5, 0, 2)),
        lambda a: gaussian(a, 2.0, (5, 2, 2), mode="wrap"),
        lambda a: dog_filter(a, 2.0, (5, 2, 2), ratio=1.0),
        lambda a: white_tophat(a, "big", (5, 2, 2)),
        lambda a: channel_background(a, a[:, :2], factor=1.0),
        lambda a: remove_plane_background(a, np.ones((1, 1, 1)), (5, 2, 2)),
        lambda a: channel_background(a, a, levels=np.ones((4, 1, 1))),
        lambda a: channel_background(a, a, levels=np.ones((3, 1, 1)), spacing=(5, 2, 2)),
        lambda a: channel_levels(a, a[:, :2], (5, 2, 2)),
        lambda a: channel_levels(a[0], a[0], (5, 2, 2)),
        lambda a: channel_levels(a, a, (5, 2, 2), step=0),
        lambda a: estimate_channel_factor(a, a, max_samples=0),
    ],
)
def test_bad_arguments_raise_a_clear_error(call):
    with pytest.raises(InvalidInputError):
        call(da.zeros((4, 8, 8), chunks=4))


def _channel_pair(rng, shape, with_levels):
    """A uint16 signal channel with 0.7 x an autofluorescence channel (with bright spots) in it, and plane levels."""
    bg = rng.integers(90, 130, shape).astype(np.uint16)
    bg = bg + (rng.random(shape) < 0.2) * rng.integers(100, 2000, shape).astype(np.uint16)
    img = (bg * 0.7 + rng.integers(50, 80, shape)).astype(np.uint16)
    lev = rng.uniform(0.5, 300.0, (shape[0], 1, 1)) if with_levels else None
    blev = rng.uniform(0.5, 300.0, (shape[0], 1, 1)) if with_levels else None
    return img, bg, lev, blev


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**16), st.sampled_from([(3, 9, 10), (4, 17, 13), (2, 8, 8)]), st.integers(1, 3),
       st.booleans(), st.booleans())
def test_channel_factor_equals_the_float64_formula(seed, shape, step, with_levels, with_mask):
    from voxelflow.ops import estimate_channel_factor

    rng = np.random.default_rng(seed)
    img, bg, lev, blev = _channel_pair(rng, shape, with_levels)
    spacing = (5.0, 2.0, 2.0)
    mask = rng.random(shape) > 0.3 if with_mask else None
    got = estimate_channel_factor(img, bg, step=step, quantile=0.9, mask=mask, levels=lev, bg_levels=blev,
                                  spacing=spacing)
    sel = (slice(None), slice(None, None, step), slice(None, None, step))
    s, b = img[sel].astype(np.float32), bg[sel].astype(np.float32)
    if with_levels:
        s = s / np.maximum(lev.astype(np.float32), np.float32(1.0))
        b = b / np.maximum(blev.astype(np.float32), np.float32(1.0))
    s, b = s.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    if with_mask:
        s, b = s[mask[sel].ravel()], b[mask[sel].ravel()]
    b_med, s_med = np.median(b), np.median(s)
    high = (b > np.quantile(b, 0.9)) & (b > b_med)
    want = max(np.median((s[high] - s_med) / (b[high] - b_med)), 0.0) if high.any() else 0.0
    assert got == want


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**16), st.integers(1, 4), st.integers(20, 400), st.booleans())
def test_channel_factor_within_a_sample_budget_equals_the_formula_on_the_thinned_sub_grid(seed, step, budget,
                                                                                           with_levels):
    rng = np.random.default_rng(seed)
    shape = (7, 30, 26)
    img, bg, lev, blev = _channel_pair(rng, shape, with_levels)
    spacing = (5.0, 2.0, 2.0)
    got = estimate_channel_factor(da.from_array(img, chunks=(3, 11, 9)), da.from_array(bg, chunks=(2, 30, 13)),
                                  step=step, quantile=0.8, levels=lev, bg_levels=blev, spacing=spacing,
                                  max_samples=budget)
    # the smallest f whose sub-grid (every f-th plane, every f * step-th voxel along y and x) fits the budget
    f = next(f for f in range(1, 100)
             if -(-7 // f) * -(-30 // (f * step)) * -(-26 // (f * step)) <= budget or f * step >= 30)
    sel = (slice(None, None, f), slice(None, None, f * step), slice(None, None, f * step))
    s, b = img[sel].astype(np.float32), bg[sel].astype(np.float32)
    assert s.size <= budget or f * step >= 30
    if with_levels:
        s = s / np.maximum(lev[::f].astype(np.float32), np.float32(1.0))
        b = b / np.maximum(blev[::f].astype(np.float32), np.float32(1.0))
    s, b = s.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    b_med, s_med = np.median(b), np.median(s)
    high = (b > np.quantile(b, 0.8)) & (b > b_med)
    want = max(np.median((s[high] - s_med) / (b[high] - b_med)), 0.0) if high.any() else 0.0
    assert got == want
    full = estimate_channel_factor(img, bg, step=step, quantile=0.8, levels=lev, bg_levels=blev, spacing=spacing,
                                   max_samples=None)
    assert full == estimate_channel_factor(img, bg, step=step, quantile=0.8, levels=lev, bg_levels=blev,
                                           spacing=spacing, max_samples=10**9)


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**16), st.data(), st.sampled_from([None, 10.0, 30.0]), st.integers(1, 4),
       st.sampled_from([None, 40, 300]), st.booleans())
def test_channel_levels_equal_the_levels_and_factor_read_apart(seed, data, tile_um, step, budget, with_mask):
    rng = np.random.default_rng(seed)
    shape = (6, 27, 23)
    bg = rng.integers(90, 130, shape).astype(np.uint16)
    bg = bg + (rng.random(shape) < 0.2) * rng.integers(100, 2000, shape).astype(np.uint16)
    gain = rng.uniform(0.5, 2.0, (shape[0], 1, 1))  # planes brighter or darker in both channels
    img = ((bg * 0.7 + rng.integers(50, 80, shape)) * gain).astype(np.uint16)
    bg = (bg * gain).astype(np.uint16)
    spacing = (5.0, 2.0, 2.0)
    mask = rng.random(shape) > 0.3 if with_mask else None
    chunks = tuple(data.draw(partitions(n)) for n in shape)
    a = da.from_array(img, chunks=chunks)
    b = da.from_array(bg, chunks=tuple(data.draw(partitions(n)) for n in shape))  # rechunked to the image's
    levels, bg_levels, factor = channel_levels(a, b, spacing, tile_um=tile_um, step=step, mask=mask, quantile=0.8,
                                               max_samples=budget)
    want_a = plane_tile_median(img, spacing, tile_um=tile_um, step=step, mask=mask)
    want_b = plane_tile_median(bg, spacing, tile_um=tile_um, step=step, mask=mask)
    np.testing.assert_array_equal(levels, want_a)
    np.testing.assert_array_equal(bg_levels, want_b)
    assert factor == estimate_channel_factor(img, bg, step=step, mask=mask, quantile=0.8, levels=want_a,
                                             bg_levels=want_b, spacing=spacing, tile_um=tile_um, max_samples=budget)
    assert factor > 0
