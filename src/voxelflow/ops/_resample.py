"""Chunked resampling: block down-sampling and nearest-neighbour affine maps.

:func:`downsample` summarises blocks of voxels (a thin wrapper over
:func:`voxelflow.io.blockreduce.block_reduce`). :func:`affine_nearest` and
:func:`scale_nearest` reproduce ``scipy.ndimage.affine_transform(order=0)``
voxel for voxel on any input and output chunking: for every output chunk the
input coordinates are computed with the same floating-point operations, in the
same order, as scipy's C loop (offset first, then the matrix terms left to right), so even coordinates that land exactly on ``.5``
round the same way (half up, ``floor(c + 0.5)``).

Examples
--------
>>> import dask.array as da, numpy as np
>>> from scipy import ndimage as ndi
>>> x = da.arange(6 * 7, chunks=5).reshape(6, 7).rechunk((2, 3))
>>> m = np.array([[0.0, 1.0], [-1.0, 0.0]])        # rotate by 90 degrees
>>> y = affine_nearest(x, m, offset=(0, 6), output_shape=(7, 6), output_chunks=(4, 4))
>>> bool((y.compute() == ndi.affine_transform(x.compute(), m, (0, 6), (7, 6), order=0)).all())
True
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import dask.array as da
import numpy as np
from scipy import ndimage as ndi

from voxelflow.errors import InvalidInputError
from voxelflow.io.blockreduce import block_reduce
from voxelflow.ops._halo import iter_blocks, map_regions

__all__ = ["budget_factors", "downsample", "scale_nearest", "affine_nearest", "DOWNSAMPLE_METHODS"]

DOWNSAMPLE_METHODS = ("max", "mean", "mode", "min", "nearest")
_MODES = ("constant", "nearest")


def downsample(arr, factors: int | Sequence[int], method: str = "max") -> da.Array:
    """Reduce every block of ``factors`` voxels to one voxel.

    Partial blocks at the far edges are kept and summarised over the voxels
    that exist, so the output shape is ``ceil(shape / factors)``.

    Parameters
    ----------
    arr : dask.array.Array or numpy.ndarray, shape (N0, N1, ...)
        Any numeric or bool dtype.
    factors : int or sequence of int
        Block size per axis (one int means the same on every axis).
    method : {'max', 'mean', 'mode', 'min', 'nearest'}
        ``max`` keeps small bright objects (use for IN/BS), ``mode`` and
        ``nearest`` never invent a label (use for OS), ``mean`` of integers is
        rounded back to the input dtype.

    Returns
    -------
    dask.array.Array, shape ceil(N / factors), dtype of ``arr`` (``mean`` of
    floats stays float)
    """
    if method not in DOWNSAMPLE_METHODS:
        raise InvalidInputError(f"downsample method must be one of {DOWNSAMPLE_METHODS}, got {method!r}")
    return block_reduce(da.asarray(arr), factors, method)


def budget_factors(shape: Sequence[int], scale: Sequence[float], max_voxels: int,
                   start: Sequence[int] | None = None) -> tuple[int, ...]:
    """Smallest integer block factors (from ``start``) that bring ``shape`` within ``max_voxels``.

    Grows, one step at a time, the factor of the axis whose reduced voxel is the
    smallest physically, so the reduced voxels tend towards isotropy.

    Parameters
    ----------
    shape : sequence of int
    scale : sequence of float
        Voxel size per axis.
    max_voxels : int
        Budget, >= 1.
    start : sequence of int, optional
        Initial factors (default all 1).

    Returns
    -------
    tuple of int
        Factors ``f`` with ``prod(ceil(shape / f)) <= max_voxels``.

    Examples
    --------
    >>> budget_factors((64, 256, 256), (4.0, 2.0, 2.0), 2**15)
    (3, 7, 7)
    """
    f = [int(v) for v in (start or [1] * len(shape))]
    if max_voxels < 1:
        raise InvalidInputError(f"max_voxels must be >= 1, got {max_voxels}")
    while math.prod(-(-int(n) // k) for n, k in zip(shape, f)) > max_voxels:
        growable = [i for i in range(len(shape)) if f[i] < shape[i]]
        i = min(growable, key=lambda a: (f[a] * scale[a], -shape[a] / f[a]))
        f[i] += 1
    return tuple(f)


def scale_nearest(
    arr,
    factors: float | Sequence[float] | None = None,
    *,
    output_shape: Sequence[int] | None = None,
    output_chunks=None,
    mode: str = "nearest",
    cval: float = 0.0,
) -> da.Array:
    """Resize by nearest neighbour with voxel centres kept aligned.

    Output voxel ``o`` samples input coordinate ``(o + 0.5) * s - 0.5`` with
    ``s = 1 / factors`` (or ``s = input_shape / output_shape`` when only
    ``output_shape`` is given), i.e. exactly
    ``scipy.ndimage.affine_transform(arr, np.diag(s), 0.5 * s - 0.5,
    output_shape, order=0, mode='nearest')``. An integer up-scale by ``f`` therefore repeats
    every voxel ``f`` times (``np.repeat``) and an integer down-scale by ``f``
    picks ``arr[f // 2::f]``.

    Parameters
    ----------
    arr : dask.array.Array or numpy.ndarray, shape (N0, N1, ...)
    factors : float or sequence of float, optional
        Output size / input size per axis (2 doubles the size).
    output_shape : sequence of int, optional
        Defaults to ``round(N * factors)``. At least one of ``factors`` and
        ``output_shape`` is required.
    output_chunks : dask chunks, optional
        Chunking of the result; defaults to the chunk size of ``arr``.
    mode, cval
        As in :func:`affine_nearest`. The default ``'nearest'`` matters when
        up-scaling: the first output voxels sample coordinates just below 0
        (e.g. -0.25), which ``'constant'`` would fill with ``cval``.

    Returns
    -------
    dask.array.Array, shape ``output_shape``, dtype of ``arr``
    """
    arr = da.asarray(arr)
    if factors is None and output_shape is None:
        raise InvalidInputError("scale_nearest needs factors or output_shape")
    if factors is not None:
        f = np.broadcast_to(np.asarray(factors, dtype=np.float64), (arr.ndim,)).copy()
        if not np.all(np.isfinite(f)) or np.any(f <= 0):
            raise InvalidInputError(f"scale factors must be positive and finite, got {factors!r}")
        s = 1.0 / f
        if output_shape is None:
            output_shape = tuple(max(1, int(round(n * x))) for n, x in zip(arr.shape, f))
    else:
        output_shape = _check_shape(output_shape, arr.ndim, "output_shape")
        s = np.array(arr.shape, dtype=np.float64) / np.array(output_shape, dtype=np.float64)
    return affine_nearest(
        arr, np.diag(s), offset=0.5 * s - 0.5, output_shape=output_shape,
        output_chunks=output_chunks, mode=mode, cval=cval,
    )


def affine_nearest(
    arr,
    matrix,
    offset: float | Sequence[float] = 0.0,
    output_shape: Sequence[int] | None = None,
    output_chunks=None,
    *,
    mode: str = "constant",
    cval: float = 0.0,
) -> da.Array:
    """``scipy.ndimage.affine_transform(order=0)`` over chunked arrays.

    Output voxel ``o`` takes the input voxel nearest to ``matrix @ o + offset``
    (pull mapping, as in scipy). The result equals scipy's on the whole array
    for every input and output chunking. Each output chunk reads only the input
    bounding box its coordinates can reach.

    Parameters
    ----------
    arr : dask.array.Array or numpy.ndarray, shape (N0, ..., N{d-1})
    matrix : array_like
        ``(d, d)`` matrix, ``(d,)`` diagonal (scipy's separable zoom/shift path),
        ``(d, d + 1)`` or homogeneous ``(d + 1, d + 1)`` (the last column is
        then the offset and ``offset`` is ignored), exactly as scipy accepts.
    offset : float or sequence of float
        Added after the matrix product.
    output_shape : sequence of int, optional
        Defaults to ``arr.shape``.
    output_chunks : dask chunks, optional
        Defaults to ``arr.chunks`` when the shape is unchanged, else to the
        chunk size of ``arr``.
    mode : {'constant', 'nearest'}
        ``constant``: coordinates outside ``[0, N - 1]`` give ``cval``;
        ``nearest``: they are clamped to the border.
    cval : float
        Fill value, cast to the dtype the way scipy casts it.

    Returns
    -------
    dask.array.Array, shape ``output_shape``, dtype of ``arr``

    Raises
    ------
    InvalidInputError
        On a matrix, offset, shape or mode scipy would not accept.
    """
    arr = da.asarray(arr)
    ndim = arr.ndim
    if ndim < 1:
        raise InvalidInputError("affine_nearest needs an array with at least one axis")
    if mode not in _MODES:
        raise InvalidInputError(f"mode must be one of {_MODES}, got {mode!r}")
    matrix, offset = _normalise_affine(matrix, offset, ndim)
    if output_shape is None:
        output_shape = arr.shape
    output_shape = _check_shape(output_shape, ndim, "output_shape")
    if output_chunks is None:
        output_chunks = arr.chunks if output_shape == arr.shape else arr.chunksize
    chunks = da.core.normalize_chunks(output_chunks, output_shape, dtype=arr.dtype)
    cval_out = _cast_cval(cval, arr.dtype)

    plan = []
    for block in iter_blocks(chunks):
        box = _input_bounds(block.start, block.stop, matrix, offset, arr.shape, mode)
        args = (box, block.start, block.shape, matrix, offset, arr.shape, mode, cval_out, arr.dtype)
        plan.append((block.index, box, _affine_block, args))
    return map_regions(arr, chunks, plan, arr.dtype, "affine-nearest")


def _check_shape(shape, ndim: int, name: str) -> tuple[int, ...]:
    try:
        out = tuple(int(n) for n in shape)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name} must be a sequence of ints, got {shape!r}") from None
    if len(out) != ndim or any(n < 1 for n in out):
        raise InvalidInputError(f"{name} must be {ndim} positive ints, got {shape!r}")
    return out


def _normalise_affine(matrix, offset, ndim: int) -> tuple[np.ndarray, np.ndarray]:
    """Split ``matrix`` as scipy does; a 1-D result marks scipy's zoom path."""
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim == 2 and m.shape[1] == ndim + 1 and m.shape[0] in (ndim, ndim + 1):
        if m.shape[0] == ndim + 1 and not np.all(m[ndim] == [0] * ndim + [1]):
            raise InvalidInputError(f"homogeneous matrix must end with the row {[0] * ndim + [1]}, got {m[ndim]}")
        offset = m[:ndim, ndim]
        m = m[:ndim, :ndim]
    if not ((m.ndim == 1 and m.shape == (ndim,)) or m.shape == (ndim, ndim)):
        raise InvalidInputError(f"matrix must have shape ({ndim},), ({ndim}, {ndim}), ({ndim}, {ndim + 1}) "
                                f"or ({ndim + 1}, {ndim + 1}), got {m.shape}")
    if not np.all(np.isfinite(m)):
        raise InvalidInputError("matrix must be finite")
    if m.ndim == 1 and np.any(m == 0):
        raise InvalidInputError(f"a diagonal matrix must not contain zeros, got {m}")
    off = np.broadcast_to(np.asarray(offset, dtype=np.float64), (ndim,)).copy() if np.ndim(offset) <= 1 else None
    if off is None or not np.all(np.isfinite(off)):
        raise InvalidInputError(f"offset must be a float or {ndim} finite floats, got {offset!r}")
    return np.ascontiguousarray(m), off


def _cast_cval(cval: float, dtype: np.dtype):
    """``cval`` as scipy writes it into an output of ``dtype`` (its rounding and clipping)."""
    probe = np.zeros(1, dtype=dtype)
    return ndi.affine_transform(probe, np.ones((1, 1)), offset=2.0, output_shape=(1,), order=0, cval=cval)[0]


def _coordinates(out_start, out_shape, matrix: np.ndarray, offset: np.ndarray, axis: int) -> np.ndarray:
    """Input coordinate along ``axis`` for every output voxel of a block.

    Mirrors scipy's arithmetic: in the matrix path ``offset`` first, then
    ``o_l * M[axis, l]`` added left to right; in the diagonal path
    ``(o + offset / zoom) * zoom``. The result broadcasts against the block.
    """
    ndim = len(out_shape)
    grids = []
    for ax in range(ndim):
        g = np.arange(out_start[ax], out_start[ax] + out_shape[ax], dtype=np.float64)
        grids.append(g.reshape((1,) * ax + (-1,) + (1,) * (ndim - ax - 1)))
    if matrix.ndim == 1:
        shift = offset[axis] / matrix[axis]
        return (grids[axis] + shift) * matrix[axis]
    # Zero entries are skipped: adding o * 0.0 leaves the sum unchanged (up to the sign
    # of a zero, which neither the bounds test nor the rounding can see), and skipping
    # them keeps diagonal and permutation matrices separable (1-D per-axis arrays).
    acc = np.full((1,) * ndim, offset[axis])
    for ax in range(ndim):
        if matrix[axis, ax] != 0:
            acc = acc + grids[ax] * matrix[axis, ax]
    return acc


def _input_bounds(start, stop, matrix, offset, in_shape, mode):
    """Half-open input box holding every voxel an output block can sample, or None."""
    lo, hi = [], []
    corners = np.array(list(itertools.product(*[(a, b - 1) for a, b in zip(start, stop)])), dtype=np.float64)
    for axis, n in enumerate(in_shape):
        if matrix.ndim == 1:
            c = (corners[:, axis] + offset[axis] / matrix[axis]) * matrix[axis]
        else:
            c = corners @ matrix[axis] + offset[axis]
        if mode == "nearest":
            c = np.clip(c, 0, n - 1)
        # one voxel of slack: interior points may differ from the corner values by a few ulps
        first = max(int(np.floor(c.min() + 0.5)) - 1, 0)
        last = min(int(np.floor(c.max() + 0.5)) + 1, n - 1)
        if first > last:
            return None
        lo.append(first)
        hi.append(last + 1)
    return tuple(lo), tuple(hi)


def _affine_block(piece, box, out_start, out_shape, matrix, offset, in_shape, mode, cval_out, dtype):
    if piece is None:
        # the whole block maps outside the input
        return np.full(out_shape, cval_out, dtype=dtype)
    piece_start = box[0]
    index = []
    valid = np.ones((1,) * len(out_shape), dtype=bool)
    for axis, n in enumerate(in_shape):
        c = _coordinates(out_start, out_shape, matrix, offset, axis)
        if mode == "constant":
            inside = (c >= 0) & (c <= n - 1)
            valid = valid & inside
            c = np.where(inside, c, piece_start[axis])
        else:
            c = np.clip(c, 0, n - 1)
        idx = np.floor(c + 0.5).astype(np.int64) - piece_start[axis]
        index.append(np.clip(idx, 0, piece.shape[axis] - 1))
    out = np.asarray(piece)[tuple(np.broadcast_arrays(*index))]
    out = np.broadcast_to(out, out_shape)
    if mode == "constant" and not valid.all():
        out = np.where(np.broadcast_to(valid, out_shape), out, cval_out)
    return np.ascontiguousarray(out, dtype=piece.dtype)
