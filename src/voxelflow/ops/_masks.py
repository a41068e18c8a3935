"""Masks given at a coarser resolution, applied at full resolution chunk by chunk.

A *negative mask* marks voxels to discard (outside the tissue, bright edge
artefacts, vessels). It is usually drawn or computed on a small pyramid level;
:func:`upsample_mask` brings it to the full-resolution grid by nearest
neighbour with voxel centres aligned (:func:`voxelflow.ops._resample.scale_nearest`),
computing only the chunk each task needs.
"""

from __future__ import annotations

from collections.abc import Sequence

import dask.array as da
import numpy as np

from voxelflow.errors import InvalidInputError
from voxelflow.ops._resample import scale_nearest

__all__ = ["upsample_mask", "apply_negative_mask"]


def upsample_mask(mask, shape: Sequence[int], chunks=None) -> da.Array:
    """Nearest-neighbour up-sampling of a coarse boolean mask to ``shape``.

    Parameters
    ----------
    mask : numpy.ndarray or dask.array.Array, shape (M0, M1, ...), bool or 0/1 integers
        Covers the same physical box as the target grid.
    shape : sequence of int
        Target shape (same number of axes).
    chunks : dask chunks, optional
        Target chunking (e.g. ``img.chunks``); defaults to the mask's chunk size.

    Returns
    -------
    dask.array.Array, shape ``shape``, bool
        Target voxel ``i`` takes mask voxel ``floor((i + 0.5) * M / N)``
        (clamped); for an integer ratio ``f`` that is ``mask[i // f]``.
    """
    mask = da.asarray(mask)
    shape = tuple(int(n) for n in shape)
    if mask.ndim != len(shape):
        raise InvalidInputError(f"mask has {mask.ndim} axes but the target shape {shape} has {len(shape)}")
    return scale_nearest(mask.astype(bool), output_shape=shape, output_chunks=chunks)


def apply_negative_mask(arr, negative_mask, fill=0) -> da.Array:
    """Set to ``fill`` every voxel of ``arr`` that a (coarser) negative mask marks.

    Parameters
    ----------
    arr : dask.array.Array or numpy.ndarray, shape (N0, N1, ...)
        IN, BS or OS array.
    negative_mask : numpy.ndarray or dask.array.Array, bool, shape (M0, M1, ...)
        True where voxels must be discarded; any resolution covering the same
        box (up-sampled with :func:`upsample_mask`).
    fill : scalar
        Value written into masked voxels, cast to ``arr.dtype``.

    Returns
    -------
    dask.array.Array, shape, chunks and dtype of ``arr``
    """
    arr = da.asarray(arr)
    up = upsample_mask(negative_mask, arr.shape, arr.chunks)
    fill = np.asarray(fill).astype(arr.dtype)
    return da.where(up, fill, arr)
