"""Orientation codes: every one of the 48 codes against an independently built anatomical volume."""

import dask.array as da
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from voxelflow.errors import InvalidInputError, OrientationError
from voxelflow.ops._orientation import (
    ORIENTATION_CODES,
    orientation_map,
    parse_orientation,
    reorient_points,
    reorient_scale,
    reorient_shape,
    reorient_volume,
)

# anatomical extents (voxels) along antero-posterior, supero-inferior, left-right
EXTENT = {"ap": 2, "si": 3, "lr": 4}
START = {"a": ("ap", True), "p": ("ap", False), "s": ("si", True), "i": ("si", False),
         "r": ("lr", True), "l": ("lr", False)}


def anatomical_volume(code):
    """Each voxel holds (distance from anterior, from superior, from right) packed in one int.

    Built from the brainglobe-space definition alone: the letter of an axis is
    the side where index 0 lies.
    """
    axes = [START[c] for c in code]
    shape = tuple(EXTENT[name] for name, _ in axes)
    idx = np.indices(shape)
    pos = {}
    for k, (name, from_start) in enumerate(axes):
        pos[name] = idx[k] if from_start else EXTENT[name] - 1 - idx[k]
    return pos["ap"] * 100 + pos["si"] * 10 + pos["lr"]


def test_there_are_48_distinct_codes():
    assert len(ORIENTATION_CODES) == 48 == len(set(ORIENTATION_CODES))
    assert "asr" in ORIENTATION_CODES and "psl" in ORIENTATION_CODES


@pytest.mark.parametrize("source", ORIENTATION_CODES)
def test_every_code_maps_to_every_code_and_back(source):
    vol = anatomical_volume(source)
    for target in ORIENTATION_CODES:
        out = reorient_volume(vol, source, target)
        np.testing.assert_array_equal(out, anatomical_volume(target))
        assert out.shape == reorient_shape(vol.shape, source, target)
        np.testing.assert_array_equal(reorient_volume(out, target, source), vol)


@pytest.mark.parametrize("source", ORIENTATION_CODES)
def test_points_follow_the_voxels(source):
    vol = anatomical_volume(source)
    scale = (3.0, 5.0, 7.0)
    pts = np.argwhere(np.ones(vol.shape, dtype=bool)).astype(np.float64)
    for target in ORIENTATION_CODES:
        tvol = anatomical_volume(target)
        mapped = reorient_points(pts, source, target, vol.shape)
        # the voxel a point lands on holds the same anatomical position
        np.testing.assert_array_equal(tvol[tuple(mapped.astype(int).T)], vol[tuple(pts.astype(int).T)])
        back = reorient_points(mapped, target, source, tvol.shape)
        np.testing.assert_array_equal(back, pts)
        # physical coordinates: voxel centres map to voxel centres
        tscale = reorient_scale(scale, source, target)
        phys = reorient_points((pts + 0.5) * scale, source, target, vol.shape, scale)
        np.testing.assert_allclose(phys / tscale - 0.5, mapped, atol=1e-12)


def test_dask_volume_matches_numpy():
    vol = np.random.default_rng(0).integers(0, 100, (5, 6, 7))
    lazy = reorient_volume(da.from_array(vol, chunks=(2, 4, 3)), "ipl", "ras")
    np.testing.assert_array_equal(lazy.compute(), reorient_volume(vol, "ipl", "ras"))


@given(
    shape=st.tuples(*[st.integers(1, 9)] * 3),
    codes=st.tuples(st.sampled_from(ORIENTATION_CODES), st.sampled_from(ORIENTATION_CODES)),
    data=st.data(),
)
def test_physical_round_trip(shape, codes, data):
    src, tgt = codes
    scale = data.draw(st.tuples(*[st.floats(0.5, 30.0)] * 3))
    pts = np.array(data.draw(st.lists(st.tuples(*[st.floats(-50, 400)] * 3), min_size=1, max_size=5)))
    mapped = reorient_points(pts, src, tgt, shape, scale)
    back = reorient_points(mapped, tgt, src, reorient_shape(shape, src, tgt), reorient_scale(scale, src, tgt))
    np.testing.assert_allclose(back, pts, atol=1e-9)


def test_known_case_allen_to_psl():
    order, flips = orientation_map("asr", "psl")
    assert order == (0, 1, 2) and flips == (True, False, True)
    order, flips = orientation_map("asr", "sal")
    assert order == (1, 0, 2) and flips == (False, False, True)


@pytest.mark.parametrize("bad", ["abc", "aas", "asrx", "as", "apl", "sis", "", 5, None])
def test_invalid_codes_raise(bad):
    with pytest.raises(OrientationError, match="orientation"):
        parse_orientation(bad)
    with pytest.raises(InvalidInputError):
        reorient_volume(np.zeros((2, 2, 2)), bad, "asr")


def test_upper_case_is_accepted_and_shape_checked():
    assert parse_orientation(" PSL ") == "psl"
    with pytest.raises(OrientationError, match="3-D"):
        reorient_volume(np.zeros((2, 2)), "asr", "psl")
    with pytest.raises(OrientationError, match=r"\(N, 3\)"):
        reorient_points(np.zeros((2, 2)), "asr", "psl", (2, 2, 2))

