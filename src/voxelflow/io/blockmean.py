"""Compiled block mean: one pass over a chunk, the values of the numpy reduction.

``block_reduce(..., "mean")`` is the pyramid down-sampler of every image voxelflow
writes, so its cost adds straight onto the write time. The numpy reduction needs
several passes over the chunk (one per axis plus rounding and casting); the
numba kernel here reads each voxel once and keeps one row of sums in cache.

Semantics are those of :mod:`voxelflow.io.blockreduce`: border-cut blocks average
the voxels that exist; integer results are ``floor(sum / n + 1/2)`` computed
exactly in an integer accumulator (identical to numpy); float results are the
float64 mean cast to the input dtype (equal up to the order of the float64 sums). Arrays the kernel does not cover (bool, 64-bit integers,
non-native byte order, more than three reduced axes) return ``None`` so the
caller uses numpy.
"""

from __future__ import annotations

import logging
import math

import numba
import numpy as np

__all__ = ["block_mean"]


_on_disk_cache = True


def _compile(**options):
    """``numba.njit`` with an on-disk cache, or without one where no cache folder is writable."""

    def decorate(fn):
        global _on_disk_cache
        if _on_disk_cache:
            try:
                return numba.njit(nogil=True, cache=True, **options)(fn)
            except RuntimeError as exc:  # no writable cache location (read-only install and home)
                _on_disk_cache = False
                logging.getLogger(__name__).warning(
                    "%s; the block-mean kernels compile in every process (set NUMBA_CACHE_DIR to a writable folder)",
                    exc,
                )
        return numba.njit(nogil=True, **options)(fn)

    return decorate


@_compile(inline="always")
def _sum_rows(src, z0, z1, y0, y1, acc):
    """``acc[x] = sum of src[z, y, x] over z0 <= z < z1, y0 <= y < y1``."""
    first = True
    for z in range(z0, z1):
        for y in range(y0, y1):
            row = src[z, y]
            if first:
                for x in range(row.shape[0]):
                    acc[x] = row[x]
                first = False
            else:
                for x in range(row.shape[0]):
                    acc[x] += row[x]


@_compile(inline="always")
def _sum_x(acc, x0, x1):
    """``acc[x0] + ... + acc[x1 - 1]`` (one block along the last axis)."""
    total = acc[x0]
    for x in range(x0 + 1, x1):
        total += acc[x]
    return total


@_compile()
def _mean_int(src, fz, fy, fx, out, acc):
    size_z, size_y, size_x = src.shape
    n_full = fz * fy * fx
    shift = 0
    while (1 << shift) < n_full:
        shift += 1
    pow2 = (1 << shift) == n_full
    half = n_full // 2
    whole_x = size_x // fx
    for k in range(out.shape[0]):
        z0, z1 = k * fz, min(k * fz + fz, size_z)
        for j in range(out.shape[1]):
            y0, y1 = j * fy, min(j * fy + fy, size_y)
            _sum_rows(src, z0, z1, y0, y1, acc)
            rows = (z1 - z0) * (y1 - y0)
            dst = out[k, j]
            start = 0
            if pow2 and rows * fx == n_full:
                # Whole blocks of a power-of-two size: a shift instead of an integer division.
                start = whole_x
                if fx == 2:  # the usual 2x2x2 pyramid: a fixed-stride loop, about 1.7x faster
                    for i in range(whole_x):
                        dst[i] = (acc[2 * i] + acc[2 * i + 1] + half) >> shift
                else:
                    for i in range(whole_x):
                        dst[i] = (_sum_x(acc, i * fx, i * fx + fx) + half) >> shift
            for i in range(start, out.shape[2]):
                x0, x1 = i * fx, min(i * fx + fx, size_x)
                n = rows * (x1 - x0)
                dst[i] = (_sum_x(acc, x0, x1) + n // 2) // n  # floor division: rounds half up for negatives too


@_compile()
def _mean_float(src, fz, fy, fx, out, acc):
    size_z, size_y, size_x = src.shape
    for k in range(out.shape[0]):
        z0, z1 = k * fz, min(k * fz + fz, size_z)
        for j in range(out.shape[1]):
            y0, y1 = j * fy, min(j * fy + fy, size_y)
            _sum_rows(src, z0, z1, y0, y1, acc)
            rows = (z1 - z0) * (y1 - y0)
            dst = out[k, j]
            for i in range(out.shape[2]):
                x0, x1 = i * fx, min(i * fx + fx, size_x)
                dst[i] = _sum_x(acc, x0, x1) / (rows * (x1 - x0))


def _accumulator(dtype: np.dtype, n: int) -> np.dtype | None:
    """Exact accumulator for a block of ``n`` voxels, or None if the kernel does not cover ``dtype``."""
    if not dtype.isnative or dtype.kind not in "iuf":
        return None
    if dtype.kind == "f":
        return np.dtype(np.float64)
    if dtype.itemsize <= 2 and n < 2**16:
        return np.dtype(np.uint32 if dtype.kind == "u" else np.int32)
    if dtype.itemsize <= 4:
        return np.dtype(np.int64)
    return None


def block_mean(block: np.ndarray, factors: tuple[int, ...]) -> np.ndarray | None:
    """Mean of every block of ``factors`` voxels, or None if the kernel does not apply.

    Parameters
    ----------
    block : numpy.ndarray, shape (s0, s1, ...)
        Integer (up to 32-bit) or float array, native byte order. Only the last three
        axes may have factors above 1.
    factors : tuple of int
        Block size per axis, one per axis of ``block``.

    Returns
    -------
    numpy.ndarray, shape (ceil(s0 / f0), ceil(s1 / f1), ...), or None
        Same dtype as ``block``; None when the caller should use the numpy reduction.
    """
    lead = max(0, block.ndim - 3)
    acc_dtype = _accumulator(block.dtype, math.prod(factors))
    if acc_dtype is None or block.ndim == 0 or any(f > 1 for f in factors[:lead]):
        return None
    out = np.empty(tuple(-(-s // f) for s, f in zip(block.shape, factors)), dtype=block.dtype)
    pad = (1,) * (3 - (block.ndim - lead))  # 1-D and 2-D blocks become (1, 1, x) and (1, y, x)
    fz, fy, fx = pad + tuple(factors[lead:])
    kernel = _mean_float if block.dtype.kind == "f" else _mean_int
    block = np.ascontiguousarray(block)
    acc = np.empty(block.shape[-1], dtype=acc_dtype)
    for index in np.ndindex(*block.shape[:lead]):
        src, dst = block[index], out[index]
        kernel(src.reshape(pad + src.shape), fz, fy, fx, dst.reshape(pad + dst.shape), acc)
    return out
