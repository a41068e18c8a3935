"""The compiled block mean against an exact Python-integer reference, over the full value range."""

from __future__ import annotations

import itertools
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voxelflow.io.blockmean import block_mean
from voxelflow.io.blockreduce import block_reduce_numpy

KERNEL_DTYPES = ["uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64"]


def exact_mean(arr: np.ndarray, factors) -> np.ndarray:
    """Block means with Python ints (no overflow, no float rounding): floor(sum / n + 1/2)."""
    out_shape = tuple(-(-s // f) for s, f in zip(arr.shape, factors))
    out = np.empty(out_shape, dtype=arr.dtype)
    for idx in itertools.product(*(range(n) for n in out_shape)):
        block = arr[tuple(slice(i * f, (i + 1) * f) for i, f in zip(idx, factors))]
        if arr.dtype.kind == "f":
            out[idx] = block.astype(np.float64).mean()
        else:
            total = sum(int(v) for v in block.ravel())
            out[idx] = (total + block.size // 2) // block.size
    return out


@st.composite
def arrays(draw):
    ndim = draw(st.integers(1, 5))
    shape = tuple(draw(st.lists(st.integers(1, 7), min_size=ndim, max_size=ndim)))
    factors = tuple(draw(st.integers(1, 4)) for _ in shape)
    dtype = np.dtype(draw(st.sampled_from(KERNEL_DTYPES)))
    fill = draw(st.sampled_from(["random", "max", "min", "extremes"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    if dtype.kind == "f":
        arr = (rng.normal(size=shape) * 1e4).astype(dtype)
    else:
        info = np.iinfo(dtype)
        if fill == "random":
            arr = rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype)
        elif fill == "extremes":  # sums far beyond the dtype, ties at .5 in both signs
            arr = rng.choice(np.array([info.min, info.max], dtype=dtype), size=shape)
        else:
            arr = np.full(shape, info.max if fill == "max" else info.min, dtype=dtype)
    return arr, factors


@settings(max_examples=200, deadline=None)
@given(arrays())
def test_matches_exact_reference_over_the_full_value_range(case):
    arr, factors = case
    got = block_reduce_numpy(arr, factors, "mean")
    expected = exact_mean(arr, factors)
    assert got.dtype == arr.dtype and got.shape == expected.shape
    if arr.dtype.kind == "f":
        np.testing.assert_allclose(got, expected, rtol=1e-6)
    else:
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("dtype", KERNEL_DTYPES)
def test_kernel_covers_native_dtypes_and_the_trailing_three_axes(dtype):
    arr = np.arange(2 * 3 * 4 * 6 * 8, dtype=dtype).reshape(2, 3, 4, 6, 8)
    got = block_mean(arr, (1, 1, 2, 3, 4))
    assert got is not None
    np.testing.assert_allclose(got, exact_mean(arr, (1, 1, 2, 3, 4)))


@pytest.mark.parametrize(
    "arr,factors",
    [
        (np.ones((4, 4), dtype=bool), (2, 2)),
        (np.ones((4, 4), dtype=np.int64), (2, 2)),
        (np.ones((4, 4), dtype=">u2"), (2, 2)),
        (np.ones((2, 4, 4, 4), dtype=np.uint16), (2, 2, 2, 2)),
    ],
    ids=["bool", "int64", "big-endian", "four-reduced-axes"],
)
def test_uncovered_inputs_fall_back_to_numpy_with_the_same_result(arr, factors):
    assert block_mean(arr, factors) is None
    np.testing.assert_array_equal(block_reduce_numpy(arr, factors, "mean"), exact_mean(arr, factors))


def test_large_blocks_switch_to_a_wider_accumulator():
    # 65792 voxels in one column of rows: 65535 * n passes 2**32 and -32768 * n passes -2**31.
    arr = np.full((256, 257, 1), 65535, dtype=np.uint16)
    np.testing.assert_array_equal(block_mean(arr, arr.shape), [[[65535]]])
    arr = np.full((256, 257, 1), -32768, dtype=np.int16)
    np.testing.assert_array_equal(block_mean(arr, arr.shape), [[[-32768]]])


def test_strided_input_gives_the_same_result_as_its_copy():
    arr = np.random.default_rng(1).integers(0, 65535, size=(10, 12, 30), dtype=np.uint16)
    view = arr[:, ::2, 3:27]
    np.testing.assert_array_equal(block_mean(view, (2, 2, 3)), exact_mean(np.ascontiguousarray(view), (2, 2, 3)))


def test_works_without_a_writable_numba_cache_folder():
    # Read-only install and home: numba cannot cache; the kernels compile in the process instead.
    code = (
        "import numba.core.caching as c; c.CacheImpl._locator_classes = []\n"
        "import numpy as np\n"
        "from voxelflow.io.blockmean import block_mean\n"
        "print(block_mean(np.arange(16, dtype=np.uint16).reshape(4, 4), (2, 2)).tolist())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[[3, 5], [11, 13]]"
    assert done.stderr.count("NUMBA_CACHE_DIR") == 1
