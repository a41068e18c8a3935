"""find_peaks: the local maxima scipy's maximum_filter finds on the whole array, for any chunking."""

import dask.array as da
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage as ndi

from ops_helpers import partitions
from voxelflow.errors import InvalidInputError
from voxelflow.ops import find_peaks, peak_box, thin_peaks


@settings(max_examples=30)
@given(st.integers(0, 2**16), st.data(), st.floats(0.0, 9.0), st.booleans())
def test_peaks_equal_scipy_maximum_filter_on_the_whole_array(seed, data, radius_um, with_fg):
    rng = np.random.default_rng(seed)
    shape = (9, 20, 17)
    resp = ndi.gaussian_filter(rng.normal(size=shape), 1.0).astype(np.float32)
    fg = resp > np.quantile(resp, 0.6) if with_fg else np.ones(shape, bool)
    chunks = tuple(data.draw(partitions(n)) for n in shape)
    spacing = (5.0, 2.0, 2.0)
    got = find_peaks(da.from_array(resp, chunks=chunks), spacing, radius_um,
                     foreground=da.from_array(fg, chunks=chunks[::-1][::-1]) if with_fg else None)
    box = peak_box(radius_um, spacing)
    m = np.where(fg, resp, -np.inf)
    ref = np.argwhere((ndi.maximum_filter(m, size=tuple(2 * b + 1 for b in box), mode="nearest") == m) & fg)
    np.testing.assert_array_equal(got[["z", "y", "x"]].to_numpy(), ref.astype(float))
    np.testing.assert_array_equal(got["response"].to_numpy(), resp[tuple(ref.T)].astype(float))
    assert list(got["id"]) == list(range(1, len(ref) + 1))


@pytest.mark.parametrize("direct_box_voxels", [0, 10**6])
def test_both_peak_searches_equal_scipy_on_plateaus_and_ties(monkeypatch, direct_box_voxels):
    from voxelflow.ops import _peaks

    monkeypatch.setattr(_peaks, "DIRECT_BOX_VOXELS", direct_box_voxels)  # neighbour checks / separable passes
    rng = np.random.default_rng(7)
    shape = (7, 26, 19)
    resp = np.round(ndi.gaussian_filter(rng.normal(size=shape), 1.2) * 4).astype(np.float32)  # many ties
    fg = rng.random(shape) > 0.2
    spacing = (5.0, 2.0, 2.0)
    for radius_um in (2.0, 6.0):
        got = find_peaks(da.from_array(resp, chunks=(3, 8, 7)), spacing, radius_um,
                         foreground=da.from_array(fg, chunks=(2, 9, 10)))
        box = peak_box(radius_um, spacing)
        m = np.where(fg, resp, -np.inf)
        ref = np.argwhere((ndi.maximum_filter(m, size=tuple(2 * b + 1 for b in box), mode="nearest") == m) & fg)
        np.testing.assert_array_equal(got[["z", "y", "x"]].to_numpy(), ref.astype(float))


@settings(max_examples=15)
@given(st.integers(0, 2**16), st.data(), st.sampled_from([1.0, 2.0, 6.0]), st.booleans())
def test_threshold_in_the_search_equals_the_tile_threshold_foreground(seed, data, radius_um, with_mask):
    from voxelflow.ops import tile_stats, tile_threshold

    rng = np.random.default_rng(seed)
    shape = (6, 23, 18)
    resp = ndi.gaussian_filter(rng.normal(size=shape), 1.0).astype(np.float32)
    resp[rng.random(shape) < 0.01] = np.nan
    spacing = (5.0, 2.0, 2.0)
    stats = tile_stats(np.nan_to_num(resp), spacing, tile_um=data.draw(st.sampled_from([None, 16.0, 22.0])))
    k = data.draw(st.floats(-0.5, 1.5))
    mask = rng.random(shape) > 0.3 if with_mask else np.ones(shape, bool)
    chunks = tuple(data.draw(partitions(n)) for n in shape)
    got = find_peaks(da.from_array(resp, chunks=chunks), spacing, radius_um,
                     foreground=mask if with_mask else None, threshold=(stats, k))
    fg = np.asarray(tile_threshold(resp, stats, k)) & mask
    box = peak_box(radius_um, spacing)
    m = np.where(fg, resp, -np.inf)
    ref = np.argwhere((ndi.maximum_filter(m, size=tuple(2 * b + 1 for b in box), mode="nearest") == m) & fg)
    assert len(ref)
    np.testing.assert_array_equal(got[["z", "y", "x"]].to_numpy(), ref.astype(float))
    np.testing.assert_array_equal(got["response"].to_numpy(), resp[tuple(ref.T)].astype(float))


def test_peak_box_is_in_micrometres_and_compares_neighbouring_planes():
    assert peak_box(2.0, (5.0, 2.0, 2.0)) == (1, 1, 1)
    assert peak_box(6.0, (5.0, 2.0, 1.0)) == (1, 3, 6)
    assert peak_box(0.0, (1.0, 1.0, 1.0)) == (1, 0, 0)


def test_bad_input():
    with pytest.raises(InvalidInputError):
        find_peaks(np.zeros((4, 4)), (1, 1), 1.0)
    with pytest.raises(InvalidInputError):
        find_peaks(np.zeros((4, 4, 4)), (1, 1, 1), 1.0, foreground=np.zeros((4, 4, 3), bool))
    with pytest.raises(InvalidInputError):
        find_peaks(np.zeros((4, 4, 4)), (1, 1, 1), -1.0)


@settings(max_examples=30)
@given(st.integers(0, 2**16), st.floats(0.0, 15.0), st.booleans())
def test_thin_peaks_keeps_the_strongest_within_the_distance_like_brute_force(seed, reach, per_peak):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 60))
    table = pd.DataFrame({"id": np.arange(1, n + 1), "z": rng.integers(0, 10, n).astype(float),
                          "y": rng.integers(0, 40, n).astype(float), "x": rng.integers(0, 40, n).astype(float),
                          "response": rng.integers(0, 5, n).astype(float),  # ties are frequent
                          "own": rng.uniform(0, 20, n)})
    spacing = (5.0, 2.0, 1.0)
    got = thin_peaks(table, spacing, reach, radius_column="own" if per_peak else None)
    pos = table[["z", "y", "x"]].to_numpy() * np.asarray(spacing)
    d = np.linalg.norm(pos[:, None] - pos[None], axis=2)
    v = table.response.to_numpy()
    own = np.maximum(reach, table.own.to_numpy()) if per_peak else np.full(n, reach)
    stronger_near = ((d < own[:, None]) & (v[None, :] > v[:, None])).any(axis=1)
    expected = table[~stronger_near]
    np.testing.assert_array_equal(got[["z", "y", "x", "response"]].to_numpy(),
                                  expected[["z", "y", "x", "response"]].to_numpy())
    assert list(got["id"]) == list(range(1, len(got) + 1))


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**16), st.data(), st.sampled_from(["log", "dog", "gaussian", "tophat"]),
       st.sampled_from([1.0, 2.0, 6.0]), st.booleans())
def test_peaks_of_a_filter_output_filtered_in_the_search_equal_those_of_the_stored_response(seed, data, kind,
                                                                                            radius_um, tiled):
    from voxelflow.ops import dog_filter, gaussian, log_filter, tile_stats, white_tophat

    rng = np.random.default_rng(seed)
    shape = (7, 25, 22)
    img = rng.normal(100.0, 30.0, shape).astype(np.float32)
    spacing = (5.0, 2.0, 2.0)
    chunks = tuple(data.draw(partitions(n)) for n in shape)
    filt = {"log": log_filter, "dog": dog_filter, "gaussian": gaussian, "tophat": white_tophat}[kind]
    resp = filt(da.from_array(img, chunks=chunks), 2.5, spacing)
    stored = resp.compute()
    stats = tile_stats(stored, spacing, tile_um=16.0 if tiled else None)
    k = data.draw(st.floats(-0.5, 1.5))
    # the filter output is filtered again inside each peak task; the stored one is read with halos
    got = find_peaks(resp, spacing, radius_um, threshold=(stats, k))
    ref = find_peaks(da.from_array(stored, chunks=chunks), spacing, radius_um, threshold=(stats, k))
    assert len(ref)
    pd.testing.assert_frame_equal(got, ref)
