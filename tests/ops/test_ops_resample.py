"""affine_nearest / scale_nearest equal scipy.ndimage.affine_transform(order=0); downsample wraps block_reduce."""

import dask.array as da
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage as ndi

from ops_helpers import chunkings
from voxelflow.errors import InvalidInputError
from voxelflow.ops._resample import affine_nearest, downsample, scale_nearest

ENTRIES = st.sampled_from([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 1 / 3, 0.7071067811865476])
OFFSETS = st.sampled_from([0.0, 0.5, -0.5, 1.5, -2.25, 3.0, 0.25])


@st.composite
def affine_cases(draw):
    ndim = draw(st.integers(1, 3))
    shape = tuple(draw(st.lists(st.integers(1, 9), min_size=ndim, max_size=ndim)))
    out_shape = tuple(draw(st.lists(st.integers(1, 9), min_size=ndim, max_size=ndim)))
    kind = draw(st.sampled_from(["full", "diag2d", "diag1d", "homogeneous"]))
    if kind == "full":
        matrix = np.array(draw(st.lists(ENTRIES, min_size=ndim * ndim, max_size=ndim * ndim))).reshape(ndim, ndim)
    else:
        diag = np.array(draw(st.lists(ENTRIES.filter(lambda v: v != 0), min_size=ndim, max_size=ndim)))
        matrix = diag if kind == "diag1d" else np.diag(diag)
    offset = np.array(draw(st.lists(OFFSETS, min_size=ndim, max_size=ndim)))
    if kind == "homogeneous":
        matrix = np.vstack([np.hstack([matrix, offset[:, None]]), [[0] * ndim + [1]]])
    return dict(
        shape=shape, out_shape=out_shape, matrix=matrix, offset=offset,
        in_chunks=draw(chunkings(shape)), out_chunks=draw(chunkings(out_shape)),
        mode=draw(st.sampled_from(["constant", "nearest"])),
        dtype=draw(st.sampled_from([np.uint8, np.int16, np.float32, np.float64, bool])),
    )


@settings(max_examples=60, deadline=None)
@given(affine_cases())
def test_affine_nearest_equals_scipy_on_whole_array(case):
    rng = np.random.default_rng(0)
    x = (rng.integers(0, 50, case["shape"]) * 1.5).astype(case["dtype"])
    ref = ndi.affine_transform(x, case["matrix"], case["offset"], case["out_shape"], order=0,
                               mode=case["mode"], cval=7.6)
    got = affine_nearest(da.from_array(x, chunks=case["in_chunks"]), case["matrix"], case["offset"],
                         case["out_shape"], output_chunks=case["out_chunks"], mode=case["mode"], cval=7.6)
    assert got.chunks == case["out_chunks"]
    out = got.compute()
    assert out.dtype == ref.dtype
    np.testing.assert_array_equal(out, ref)


def test_affine_exact_half_positions_round_like_scipy():
    # a scale of 0.5 puts every odd output voxel exactly on .5 input positions
    x = np.arange(40, dtype=np.int32).reshape(5, 8)
    m = np.array([[0.5, 0.0], [0.0, -0.5]])
    ref = ndi.affine_transform(x, m, (0.0, 7.0), (10, 16), order=0)
    got = affine_nearest(da.from_array(x, chunks=(1, 3)), m, (0.0, 7.0), (10, 16), output_chunks=(3, 1))
    np.testing.assert_array_equal(got.compute(), ref)


def test_affine_block_mapping_outside_input_is_cval():
    x = da.ones((4, 4), chunks=2, dtype=np.uint8)
    got = affine_nearest(x, np.eye(2), offset=(100, 0), output_chunks=2, cval=3).compute()
    np.testing.assert_array_equal(got, np.full((4, 4), 3, np.uint8))


@settings(max_examples=20, deadline=None)
@given(st.tuples(st.integers(1, 6), st.integers(1, 6)), st.tuples(st.integers(1, 4), st.integers(1, 4)), st.data())
def test_scale_nearest_integer_upscale_is_repeat(shape, f, data):
    x = np.arange(np.prod(shape)).reshape(shape)
    got = scale_nearest(da.from_array(x, chunks=data.draw(chunkings(shape))), f,
                        output_chunks=data.draw(chunkings((shape[0] * f[0], shape[1] * f[1]))))
    np.testing.assert_array_equal(got.compute(), np.repeat(np.repeat(x, f[0], 0), f[1], 1))


@pytest.mark.parametrize("f", [1, 2, 3, 4])
def test_scale_nearest_integer_downscale_picks_centres(f):
    x = np.arange(12 * 24 * 12).reshape(12, 24, 12)
    out_shape = tuple(n // f for n in x.shape)
    got = scale_nearest(da.from_array(x, chunks=5), output_shape=out_shape).compute()
    expected = x[f // 2::f, f // 2::f, f // 2::f]
    np.testing.assert_array_equal(got, expected)


def test_scale_nearest_matches_documented_affine():
    x = np.random.default_rng(1).random((7, 9))
    s = np.array([7 / 4, 9 / 20])
    ref = ndi.affine_transform(x, np.diag(s), 0.5 * s - 0.5, (4, 20), order=0, mode="nearest")
    np.testing.assert_array_equal(scale_nearest(x, output_shape=(4, 20)).compute(), ref)


@pytest.mark.parametrize("method", ["max", "min", "mean"])
def test_downsample_keeps_partial_blocks(method):
    from skimage.measure import block_reduce as sk_block_reduce

    x = np.random.default_rng(2).random((7, 10, 5))
    # skimage pads partial blocks; with cval=nan and nan-aware reducers the pad is ignored
    nanfunc = {"max": np.nanmax, "min": np.nanmin, "mean": np.nanmean}[method]
    ref = sk_block_reduce(x, (2, 3, 2), func=nanfunc, cval=np.nan)
    got = downsample(da.from_array(x, chunks=(3, 4, 5)), (2, 3, 2), method).compute()
    assert got.shape == (4, 4, 3)
    np.testing.assert_allclose(got, ref)


def test_bad_arguments_raise_named_errors():
    x = da.zeros((4, 4), chunks=2)
    with pytest.raises(InvalidInputError, match="matrix"):
        affine_nearest(x, np.eye(4))
    with pytest.raises(InvalidInputError, match="mode"):
        affine_nearest(x, np.eye(2), mode="wrap")
    with pytest.raises(InvalidInputError, match="method"):
        downsample(x, 2, "median")
    with pytest.raises(InvalidInputError, match="factors or output_shape"):
        scale_nearest(x)
    with pytest.raises(InvalidInputError, match="positive"):
        scale_nearest(x, (0, 1))
