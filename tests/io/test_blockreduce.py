"""block_reduce against a per-block numpy reference on the whole array and against scikit-image."""

from __future__ import annotations

import itertools

import dask.array as da
import numpy as np
import pytest
import skimage.measure
from hypothesis import given, settings
from hypothesis import strategies as st

from voxelflow.errors import InvalidInputError
from voxelflow.io import blockreduce
from voxelflow.io.blockreduce import block_reduce


def reference(arr: np.ndarray, factors, method: str) -> np.ndarray:
    """Reduce each (possibly border-cut) block of the whole array with plain numpy."""
    out_shape = tuple(-(-s // f) for s, f in zip(arr.shape, factors))
    out = np.empty(out_shape, dtype=arr.dtype)
    for idx in itertools.product(*(range(n) for n in out_shape)):
        block = arr[tuple(slice(i * f, (i + 1) * f) for i, f in zip(idx, factors))]
        if method == "mean":
            mean = block.astype(np.float64).mean()
            value = mean if arr.dtype.kind == "f" else np.floor(mean + 0.5)
        elif method == "max":
            value = block.max()
        elif method == "min":
            value = block.min()
        elif method == "nearest":
            value = block.flat[0]
        else:
            values, counts = np.unique(block, return_counts=True)
            value = values[np.argmax(counts)]  # unique sorts, so ties go to the smallest
        out[idx] = value
    return out


@st.composite
def cases(draw):
    ndim = draw(st.integers(1, 3))
    shape = tuple(draw(st.lists(st.integers(1, 9), min_size=ndim, max_size=ndim)))
    chunks = tuple(draw(st.integers(1, s)) for s in shape)
    factors = tuple(draw(st.integers(1, 4)) for _ in shape)
    dtype = draw(st.sampled_from(["uint8", "uint16", "int16", "int32", "uint64", "float32", "float64", "bool"]))
    method = draw(st.sampled_from(["mean", "max", "min", "mode", "nearest"]))
    seed = draw(st.integers(0, 2**16))
    slab_bytes = draw(st.sampled_from([1 << 20, 64, 1]))  # small values force the slab-wise path
    rng = np.random.default_rng(seed)
    if dtype == "bool":
        arr = rng.random(shape) > 0.5
    elif dtype.startswith("float"):
        arr = rng.normal(size=shape).astype(dtype)
    else:
        # Few distinct values so that mode ties and runs really happen.
        lo = -3 if dtype.startswith("int") else 0
        arr = rng.integers(lo, 4, size=shape).astype(dtype)
    return arr, chunks, factors, method, slab_bytes


@settings(max_examples=150, deadline=None)
@given(cases())
def test_block_reduce_matches_reference(case):
    arr, chunks, factors, method, slab_bytes = case
    result = block_reduce(da.from_array(arr, chunks=chunks), factors, method)
    expected = reference(arr, factors, method)
    assert result.dtype == arr.dtype
    assert result.shape == expected.shape
    default, blockreduce._SLAB_BYTES = blockreduce._SLAB_BYTES, slab_bytes
    try:
        computed = result.compute(scheduler="sync")
    finally:
        blockreduce._SLAB_BYTES = default
    assert computed.dtype == arr.dtype
    if arr.dtype.kind == "f" and method == "mean":
        np.testing.assert_allclose(computed, expected, rtol=1e-6, atol=1e-6)
    else:
        np.testing.assert_array_equal(computed, expected)


@pytest.mark.parametrize("method,func", [("mean", np.mean), ("max", np.max), ("min", np.min)])
def test_agrees_with_skimage_when_blocks_divide(method, func):
    rng = np.random.default_rng(0)
    arr = rng.random((12, 16, 20))
    got = block_reduce(da.from_array(arr, chunks=(6, 8, 10)), (3, 4, 2), method).compute()
    np.testing.assert_allclose(got, skimage.measure.block_reduce(arr, (3, 4, 2), func))


def test_aligned_chunks_are_not_merged():
    arr = da.zeros((64, 64, 64), chunks=(16, 32, 64), dtype=np.uint16)
    out = block_reduce(arr, (2, 2, 2), "mean")
    assert out.chunks == ((8,) * 4, (16,) * 2, (32,))
    # One reduction task per input chunk, no rechunk layer.
    assert out.numblocks == arr.numblocks


def test_misaligned_chunks_rechunk_to_multiples_not_whole_array():
    arr = da.from_array(np.arange(100 * 30).reshape(100, 30), chunks=(15, 7))
    out = block_reduce(arr, (4, 2), "max")
    assert out.numblocks[0] > 1 and out.numblocks[1] > 1
    np.testing.assert_array_equal(out.compute(), reference(arr.compute(), (4, 2), "max"))


def test_label_modes_never_invent_ids():
    rng = np.random.default_rng(3)
    labels = rng.choice(np.array([0, 7, 1000, 65535], dtype=np.uint32), size=(17, 23, 9))
    for method in ("mode", "nearest"):
        out = block_reduce(da.from_array(labels, chunks=5), (2, 3, 2), method).compute()
        assert set(np.unique(out)) <= {0, 7, 1000, 65535}


def test_mean_of_ints_rounds_half_up():
    arr = da.from_array(np.array([1, 2, 3, 4, -3, -2], dtype=np.int8), chunks=2)
    np.testing.assert_array_equal(block_reduce(arr, 2, "mean").compute(), [2, 4, -2])


def test_numpy_input_and_int_factor():
    out = block_reduce(np.arange(10, dtype=np.uint8), 3, "max")
    assert isinstance(out, da.Array)
    np.testing.assert_array_equal(out.compute(), [2, 5, 8, 9])


@pytest.mark.parametrize(
    "args,match",
    [
        (((2, 2), "median"), "unknown block_reduce method"),
        (((2,), "mean"), "has 1 entries but the array has 2 axes"),
        (((0, 2), "mean"), "positive ints"),
        (((2.5, 2), "mean"), "positive ints"),
    ],
)
def test_bad_arguments(args, match):
    with pytest.raises(InvalidInputError, match=match):
        block_reduce(da.zeros((4, 4)), *args)


def test_non_numeric_dtype_rejected():
    with pytest.raises(InvalidInputError, match="numeric"):
        block_reduce(da.from_array(np.array(["a", "b"])), 2, "mode")
