"""Foreground of a scan: bias-corrected voxels above a value, outside a coarse negative mask (IN -> BS)."""

from __future__ import annotations

from collections.abc import Sequence

import dask.array as da

from voxelflow.ops._bias import apply_bias_field
from voxelflow.ops._masks import upsample_mask
from voxelflow.ops._threshold import threshold

__all__ = ["foreground"]


def foreground(img, value: float, negative=None, factors: int | Sequence[int] = 1, field=None) -> da.Array:
    """Binary segmentation at full resolution: ``img / field > value`` where the negative mask keeps voxels.

    Parameters
    ----------
    img : dask.array.Array or numpy.ndarray, shape (Z, Y, X), numeric
        The scan (IN).
    value : float
        Threshold, in the units of the bias-corrected scan.
    negative : array of bool, shape ceil((Z, Y, X) / factors), optional
        True where voxels are discarded, on the grid of ``downsample(img, factors)``.
    factors : int or sequence of int
        Block size of the grid of ``negative`` (and ``field``).
    field : array, shape of ``negative``, optional
        Bias field (see :func:`voxelflow.ops.apply_bias_field`).

    Returns
    -------
    dask.array.Array, shape and chunks of ``img``, bool (BS)
    """
    img = da.asarray(img)
    if field is not None:
        img = apply_bias_field(img, field)
    bs = threshold(img, value)
    if negative is None:
        return bs
    return bs & ~upsample_mask(negative, factors, img.shape, img.chunks)
