"""Masks given at a coarser resolution, applied at full resolution chunk by chunk.

A *negative mask* marks voxels to discard (outside the tissue, bright edge
artefacts, vessels). It is usually computed on a coarse level made by block
reduction with integer ``factors`` (:func:`voxelflow.ops.downsample`), so
coarse voxel ``j`` covers full-resolution voxels ``j * f`` to ``(j + 1) * f - 1``
(the last block may be partial). :func:`upsample_mask` gives every
full-resolution voxel the value of the coarse voxel containing its centre,
``mask[i // f]``, computing only the chunk each task needs. A mask of another
resolution covering the same physical box is resampled with
:func:`voxelflow.ops.scale_nearest` and ``output_shape``.
"""

from __future__ import annotations

from collections.abc import Sequence

import dask.array as da
import numpy as np

from voxelflow.errors import InvalidInputError
from voxelflow.ops._resample import scale_nearest

__all__ = ["upsample_mask", "apply_negative_mask"]


def upsample_mask(mask, factors: int | Sequence[int], shape: Sequence[int], chunks=None) -> da.Array:
    """Nearest-neighbour up-sampling of a block-reduced boolean mask to the full-resolution grid.

    Parameters
    ----------
    mask : numpy.ndarray or dask.array.Array, shape (M0, M1, ...), bool or 0/1 integers
        Coarse mask on the grid of ``downsample(img, factors)``: ``M = ceil(N / f)``.
    factors : int or sequence of int
        Block size per axis (>= 1).
    shape : sequence of int
        Full-resolution shape ``N`` (same number of axes).
    chunks : dask chunks, optional
        Target chunking (e.g. ``img.chunks``); defaults to the mask's chunk size.

    Returns
    -------
    dask.array.Array, shape ``shape``, bool
        Voxel ``i`` takes ``mask[i // f]``: the coarse voxel containing its
        centre. Equals ``np.repeat`` by ``f`` along every axis cropped to
        ``shape``, and ``scipy.ndimage.zoom(mask, f, order=0, grid_mode=True)``
        cropped likewise.

    Raises
    ------
    InvalidInputError
        If the axes differ, a factor is not a positive integer, or
        ``M != ceil(N / f)`` on some axis.
    """
    mask = da.asarray(mask)
    shape = tuple(int(n) for n in shape)
    if mask.ndim != len(shape):
        raise InvalidInputError(f"mask has {mask.ndim} axes but the target shape {shape} has {len(shape)}")
    f = np.broadcast_to(np.asarray(factors), (mask.ndim,))
    if not np.issubdtype(f.dtype, np.integer) or np.any(f < 1):
        raise InvalidInputError(f"mask factors must be integers >= 1, got {factors!r}")
    f = tuple(int(x) for x in f)
    expected = tuple(-(-n // x) for n, x in zip(shape, f))
    if tuple(mask.shape) != expected:
        raise InvalidInputError(
            f"a mask block-reduced by {f} from {shape} has shape {expected}, got {tuple(mask.shape)}"
        )
    # scale_nearest with integer factors samples input coordinate (i + 0.5) / f - 0.5, i.e. i // f
    return scale_nearest(mask.astype(bool), f, output_shape=shape, output_chunks=chunks)


def apply_negative_mask(arr, negative_mask, factors: int | Sequence[int], fill=0) -> da.Array:
    """Set to ``fill`` every voxel of ``arr`` that a (coarser) negative mask marks.

    Parameters
    ----------
    arr : dask.array.Array or numpy.ndarray, shape (N0, N1, ...)
        IN, BS or OS array.
    negative_mask : numpy.ndarray or dask.array.Array, bool, shape (M0, M1, ...)
        True where voxels must be discarded, on the grid of
        ``downsample(arr, factors)`` (up-sampled with :func:`upsample_mask`).
    factors : int or sequence of int
        Block size of the mask's grid.
    fill : scalar
        Value written into masked voxels, cast to ``arr.dtype``.

    Returns
    -------
    dask.array.Array, shape, chunks and dtype of ``arr``
    """
    arr = da.asarray(arr)
    up = upsample_mask(negative_mask, factors, arr.shape, arr.chunks)
    fill = np.asarray(fill).astype(arr.dtype)
    return da.where(up, fill, arr)
