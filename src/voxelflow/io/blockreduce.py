"""Chunk-parallel block reduction of dask arrays (the pyramid down-sampler).

Every output voxel summarises one block of ``factors`` input voxels. Edge blocks
that are cut by the array border are kept and summarised over the voxels that
exist (no padding values take part), so the output shape is the ceiling of
``shape / factors``. Each dask chunk is reduced on its own; the array is only
rechunked (to multiples of ``factors``) when a chunk boundary would split a block.

Methods
-------
``mean``
    Average; integer and bool inputs round half up back to their dtype, float
    inputs keep their dtype. Computed by the compiled one-pass kernel of
    :mod:`voxelflow.io.blockmean` where it applies, by numpy otherwise (same results).
``max`` / ``min``
    Brightest / darkest voxel; keeps small bright objects visible.
``mode``
    Most frequent value of the block, ties to the smallest value; for label
    images (never invents a label id).
``nearest``
    The first voxel of the block (``arr[::f0, ::f1, ...]``); for label images.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import dask.array as da
import numpy as np

from voxelflow.errors import InvalidInputError

__all__ = ["METHODS", "block_reduce", "block_reduce_numpy", "normalize_factors"]

METHODS = ("mean", "max", "min", "mode", "nearest")


def normalize_factors(factors: int | Sequence[int], ndim: int) -> tuple[int, ...]:
    """Return ``factors`` as a tuple of ``ndim`` positive ints.

    Parameters
    ----------
    factors : int or sequence of int
        One factor for every axis, or a single factor used for all axes.
    ndim : int
        Number of axes of the array.

    Raises
    ------
    InvalidInputError
        If the length does not match ``ndim`` or a factor is not a positive int.
    """
    if isinstance(factors, (int, np.integer)) and not isinstance(factors, bool):
        factors = (int(factors),) * ndim
    try:
        out = tuple(factors)
    except TypeError:
        raise InvalidInputError(f"factors must be an int or a sequence of ints, got {factors!r}") from None
    if len(out) != ndim:
        raise InvalidInputError(f"factors {out} has {len(out)} entries but the array has {ndim} axes")
    for f in out:
        if isinstance(f, bool) or not isinstance(f, (int, np.integer)) or f < 1:
            raise InvalidInputError(f"factors must be positive ints, got {out}")
    return tuple(int(f) for f in out)


def _accumulator(dtype: np.dtype, n: int) -> np.dtype:
    # Exact integer sums in the narrowest type that cannot overflow; float64 otherwise.
    if dtype.kind in "bu" and dtype.itemsize <= 2 and n < 2**16:
        return np.dtype(np.uint32)
    if dtype.kind == "i" and dtype.itemsize <= 2 and n < 2**16:
        return np.dtype(np.int32)
    if dtype.kind in "biu" and dtype.itemsize <= 4:
        return np.dtype(np.int64)
    return np.dtype(np.float64)


def _axis_reduce(block: np.ndarray, axis: int, factor: int, ufunc, dtype=None) -> np.ndarray:
    """Combine each run of ``factor`` entries along ``axis`` with ``ufunc`` (a cut last run too)."""

    def part(offset):
        return block[(slice(None),) * axis + (slice(offset, None, factor),)]

    def head(arr, n):
        return arr[(slice(None),) * axis + (slice(0, n),)]

    first, second = part(0), part(1)
    n = second.shape[axis]
    dtype = np.dtype(dtype or block.dtype)
    out = np.empty(first.shape, dtype=dtype)
    # Combining the first two offsets straight into the output avoids a separate cast pass;
    # dtype= makes bool sums count instead of OR.
    ufunc(head(first, n), second, out=head(out, n), dtype=dtype, casting="unsafe")
    if n < first.shape[axis]:
        out[(slice(None),) * axis + (slice(n, None),)] = first[(slice(None),) * axis + (slice(n, None),)]
    for offset in range(2, factor):
        view = part(offset)
        # The last run along this axis may lack this offset.
        target = head(out, view.shape[axis])
        ufunc(target, view, out=target, dtype=dtype, casting="unsafe")
    return out


def _separable(block: np.ndarray, factors: tuple[int, ...], ufunc, dtype=None) -> np.ndarray:
    # One axis at a time, leading axis first: each pass streams over contiguous planes
    # and shrinks the data for the next, about half the memory traffic of all offsets at once.
    out = block
    for axis, factor in enumerate(factors):
        if factor > 1:
            out = _axis_reduce(out, axis, factor, ufunc, dtype)
    if out is block:
        out = block.astype(dtype or block.dtype, copy=True)
    return out


def _axis_counts(size: int, factor: int) -> np.ndarray:
    """Voxels per block along one axis: ``factor`` except a shorter last block."""
    n = -(-size // factor)
    return np.minimum(factor, size - np.arange(n) * factor)


def _reduce_mean(block: np.ndarray, factors: tuple[int, ...]) -> np.ndarray:
    n = math.prod(factors)
    acc = _accumulator(block.dtype, n)
    total = _separable(block, factors, np.add, acc)
    # Only blocks cut by the border (the last slab along an axis) hold fewer than n voxels.
    cut = [ax for ax, (s, f) in enumerate(zip(block.shape, factors)) if s % f]
    if block.dtype.kind == "f":
        if cut:
            counts = 1
            for ax, (s, f) in enumerate(zip(block.shape, factors)):
                shape = [1] * block.ndim
                shape[ax] = -1
                counts = counts * _axis_counts(s, f).reshape(shape)
            return (total / counts).astype(block.dtype, copy=False)
        return (total / n).astype(block.dtype, copy=False)
    fixes = []
    for ax in cut:
        index = (slice(None),) * ax + (slice(-1, None),)
        counts = 1
        for other, (s, f) in enumerate(zip(block.shape, factors)):
            per_axis = _axis_counts(s, f)[-1:] if other == ax else _axis_counts(s, f)
            shape = [1] * block.ndim
            shape[other] = -1
            counts = counts * per_axis.reshape(shape)
        fixes.append((index, _round_div(total[index].copy(), counts, acc)))
    rounded = _round_div(total, n, acc)
    for index, value in fixes:
        rounded[index] = value
    return rounded.astype(block.dtype, copy=False)


def _round_div(total: np.ndarray, counts, acc: np.dtype) -> np.ndarray:
    """``floor(total / counts + 1/2)``, in place and exact for integer accumulators."""
    if acc.kind == "f":
        return np.floor(total / counts + 0.5)
    if isinstance(counts, int) and counts & (counts - 1) == 0:
        # Power-of-two block (the usual 2x2x2): a shift instead of an integer division.
        total += counts // 2
        total >>= counts.bit_length() - 1
        return total
    counts = np.asarray(counts).astype(acc)
    # floor((sum + n/2) / n) == floor((sum + n//2) / n) for integers.
    total += counts // 2
    total //= counts
    return total


def _reduce_extreme(block: np.ndarray, factors: tuple[int, ...], ufunc) -> np.ndarray:
    return _separable(block, factors, ufunc)


def _reduce_mode(block: np.ndarray, factors: tuple[int, ...]) -> np.ndarray:
    low = _reduce_extreme(block, factors, np.minimum)
    high = _reduce_extreme(block, factors, np.maximum)
    # Label images are mostly uniform blocks (background, object interiors): sort only the rest.
    mixed = low != high
    if not mixed.any():
        return low
    out_shape = low.shape
    pad = [(0, -s % f) for s, f in zip(block.shape, factors)]
    inter = [n for pair in zip(out_shape, factors) for n in pair]
    order = [*range(0, 2 * block.ndim, 2), *range(1, 2 * block.ndim, 2)]
    k = math.prod(factors)
    rows = mixed.reshape(-1)
    values = np.pad(block, pad).reshape(inter).transpose(order).reshape(-1, k)[rows]
    valid = np.pad(np.ones(block.shape, dtype=np.int32), pad)
    valid = valid.reshape(inter).transpose(order).reshape(-1, k)[rows]
    idx = np.argsort(values, axis=1, kind="stable")
    values = np.take_along_axis(values, idx, axis=1)
    valid = np.take_along_axis(valid, idx, axis=1)
    # Count only real voxels in each run of equal values (padding has weight 0);
    # argmax takes the first maximal run, i.e. the smallest of tied values.
    csum = np.cumsum(valid, axis=1)
    starts = np.ones(values.shape, dtype=bool)
    starts[:, 1:] = values[:, 1:] != values[:, :-1]
    before = np.where(starts, csum - valid, 0)
    np.maximum.accumulate(before, axis=1, out=before)
    best = np.argmax(csum - before, axis=1)
    out = low.reshape(-1).copy()
    out[rows] = values[np.arange(values.shape[0]), best]
    return out.reshape(out_shape)


_SLAB_BYTES = 1 << 20

_REDUCERS = {
    "mean": _reduce_mean,
    "max": lambda block, factors: _reduce_extreme(block, factors, np.maximum),
    "min": lambda block, factors: _reduce_extreme(block, factors, np.minimum),
    "mode": _reduce_mode,
}


def _in_slabs(block: np.ndarray, factors: tuple[int, ...], reduce) -> np.ndarray:
    """Apply ``reduce`` to slabs of about ``_SLAB_BYTES`` along the first reduced axis.

    Slab edges fall on block edges, so the result equals reducing the whole block, but
    every temporary stays cache-sized instead of streaming the chunk through memory
    once per reduction pass.
    """
    k = next((ax for ax, f in enumerate(factors) if f > 1), None)
    if k is None or block.nbytes <= _SLAB_BYTES:
        return reduce(block, factors)
    out_shape = tuple(-(-s // f) for s, f in zip(block.shape, factors))
    per_index = math.prod(block.shape[k + 1 :]) * factors[k] * block.itemsize
    step = max(1, _SLAB_BYTES // max(1, per_index))
    out = None
    for lead in np.ndindex(*block.shape[:k]):
        for j0 in range(0, out_shape[k], step):
            j1 = min(j0 + step, out_shape[k])
            part = reduce(block[(*lead, slice(j0 * factors[k], j1 * factors[k]))], factors[k:])
            if out is None:
                out = np.empty(out_shape, dtype=part.dtype)
            out[(*lead, slice(j0, j1))] = part
    return out


def block_reduce_numpy(block: np.ndarray, factors: tuple[int, ...], method: str) -> np.ndarray:
    """Block-reduce one in-memory array.

    Parameters
    ----------
    block : numpy.ndarray, shape (s0, s1, ...)
        Any numeric or bool dtype.
    factors : tuple of int
        Block size per axis, one per axis of ``block``.
    method : {'mean', 'max', 'min', 'mode', 'nearest'}
        See the module docstring.

    Returns
    -------
    numpy.ndarray, shape (ceil(s0 / f0), ceil(s1 / f1), ...)
        Same dtype as ``block``.
    """
    if method == "nearest":
        return np.ascontiguousarray(block[tuple(slice(None, None, f) for f in factors)])
    if method not in _REDUCERS:
        raise InvalidInputError(f"unknown block_reduce method {method!r}; expected one of {METHODS}")
    if method == "mean":
        # Imported here so that importing voxelflow does not load numba.
        from voxelflow.io.blockmean import block_mean

        out = block_mean(block, tuple(factors))
        if out is not None:
            return out
    return _in_slabs(block, tuple(factors), _REDUCERS[method])


def _aligned_chunks(chunks: tuple[int, ...], factor: int) -> tuple[int, ...] | None:
    """New chunking along one axis if some inner chunk boundary would split a block, else None."""
    if factor == 1 or sum(chunks) == 0 or all(c % factor == 0 for c in chunks[:-1]):
        return None
    size = max(factor, round(max(chunks) / factor) * factor)
    total = sum(chunks)
    return (size,) * (total // size) + ((total % size,) if total % size else ())


def block_reduce(arr, factors: int | Sequence[int], method: str = "mean") -> da.Array:
    """Reduce every block of ``factors`` voxels to one voxel, chunk by chunk.

    Parameters
    ----------
    arr : dask.array.Array or numpy.ndarray, shape (s0, s1, ...)
        Any numeric or bool dtype.
    factors : int or sequence of int
        Block size per axis (an int applies to every axis). 1 leaves an axis alone.
    method : {'mean', 'max', 'min', 'mode', 'nearest'}
        Reduction; see the module docstring. Use ``mode`` or ``nearest`` for label images.

    Returns
    -------
    dask.array.Array, shape (ceil(s0 / f0), ceil(s1 / f1), ...)
        Same dtype as ``arr``. Chunk ``i`` along an axis is ``ceil(c_i / f)`` for input
        chunk ``c_i``, after rechunking axes whose chunks are not multiples of ``f``.

    Raises
    ------
    InvalidInputError
        If ``method`` is unknown, ``factors`` do not fit ``arr``, or the dtype is not numeric.

    Examples
    --------
    >>> import numpy as np, dask.array as da
    >>> a = da.from_array(np.arange(10, dtype=np.uint8), chunks=4)
    >>> block_reduce(a, 3, "max").compute()
    array([2, 5, 8, 9], dtype=uint8)
    """
    if method not in METHODS:
        raise InvalidInputError(f"unknown block_reduce method {method!r}; expected one of {METHODS}")
    if not isinstance(arr, da.Array):
        if not hasattr(arr, "shape") or not hasattr(arr, "dtype"):
            raise InvalidInputError(f"block_reduce needs an array, got {type(arr).__name__}")
        arr = da.from_array(arr)
    if arr.dtype.kind not in "biuf":
        raise InvalidInputError(f"block_reduce needs a numeric or bool array, got dtype {arr.dtype}")
    factors = normalize_factors(factors, arr.ndim)
    if all(f == 1 for f in factors):
        return arr
    new = {ax: c for ax, c in enumerate(_aligned_chunks(ch, f) for ch, f in zip(arr.chunks, factors)) if c}
    if new:
        arr = arr.rechunk(new)
    out_chunks = tuple(tuple(-(-c // f) for c in ch) for ch, f in zip(arr.chunks, factors))
    return arr.map_blocks(
        block_reduce_numpy,
        factors,
        method,
        chunks=out_chunks,
        dtype=arr.dtype,
        meta=np.empty((0,) * arr.ndim, dtype=arr.dtype),
    )
