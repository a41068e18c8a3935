"""Intensity normalisation with statistics taken from a coarse level.

Percentiles of a full whole-brain scan are expensive; those of a small pyramid
level are nearly the same and fit in memory. :func:`percentile_range` computes
them there, :func:`rescale_intensity` applies the mapping to the full
resolution lazily.
"""

from __future__ import annotations

import dask.array as da
import numpy as np

from voxelflow.errors import InvalidInputError

__all__ = ["percentile_range", "rescale_intensity"]


def percentile_range(coarse_img, low: float = 1.0, high: float = 99.5, mask=None) -> tuple[float, float]:
    """Low and high percentiles of a (small) image, optionally inside a mask.

    Parameters
    ----------
    coarse_img : numpy.ndarray or dask.array.Array, numeric
        Loaded in memory; pass a coarse pyramid level.
    low, high : float
        Percentiles in [0, 100], ``low < high``.
    mask : array_like of bool, same shape, optional
        Only these voxels count (e.g. the tissue).

    Returns
    -------
    (float, float)
    """
    if not 0 <= low < high <= 100:
        raise InvalidInputError(f"need 0 <= low < high <= 100, got {low}, {high}")
    values = np.asarray(coarse_img)
    if mask is not None:
        mask = np.asarray(mask).astype(bool)
        if mask.shape != values.shape:
            raise InvalidInputError(f"mask shape {mask.shape} differs from image shape {values.shape}")
        values = values[mask]
    if values.size == 0:
        raise InvalidInputError("no voxels to take percentiles of (empty image or mask)")
    lo, hi = np.percentile(values.astype(np.float64), [low, high])
    return float(lo), float(hi)


def rescale_intensity(img, in_range: tuple[float, float], *, clip: bool = True, dtype=np.float32) -> da.Array:
    """Map ``in_range`` linearly to [0, 1], like ``skimage.exposure.rescale_intensity(out_range=(0, 1))``.

    Parameters
    ----------
    img : dask.array.Array or numpy.ndarray, numeric
    in_range : (float, float)
        ``(lo, hi)`` with ``lo < hi``, e.g. from :func:`percentile_range`.
    clip : bool
        Clip the result to [0, 1].
    dtype : numpy floating dtype of the result

    Returns
    -------
    dask.array.Array, shape and chunks of ``img``, ``dtype``
    """
    lo, hi = (float(v) for v in in_range)
    if not lo < hi:
        raise InvalidInputError(f"in_range must have lo < hi, got {in_range!r}")
    dtype = np.dtype(dtype)
    if not np.issubdtype(dtype, np.floating):
        raise InvalidInputError(f"dtype must be floating, got {dtype}")
    out = (da.asarray(img).astype(np.float64) - lo) / (hi - lo)
    if clip:
        out = da.clip(out, 0.0, 1.0)
    return out.astype(dtype)
