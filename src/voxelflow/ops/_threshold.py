"""Global threshold (IN -> BS) and a threshold relative to the tissue intensity."""

from __future__ import annotations

import dask.array as da
import numpy as np

from voxelflow.errors import EmptyResultError, InvalidInputError
from voxelflow.ops._bias import upsample_field

__all__ = ["relative_threshold", "threshold"]


def threshold(img, value: float) -> da.Array:
    """Binary segmentation of the voxels strictly brighter than ``value``.

    Same rule as scikit-image's ``image > threshold_otsu(image)`` idiom: a voxel
    equal to ``value`` is background.

    Parameters
    ----------
    img : dask.array.Array or numpy.ndarray, any shape, numeric dtype
        Intensity image (IN), compared in its own dtype (never rescaled).
    value : float
        Threshold in the units of ``img``.

    Returns
    -------
    dask.array.Array, shape and chunks of ``img``, bool (BS)
    """
    img = da.asarray(img)
    if not (np.issubdtype(img.dtype, np.number) or img.dtype == bool):
        raise InvalidInputError(f"threshold needs a numeric image, got dtype {img.dtype}")
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise InvalidInputError(f"threshold value must be a number, got {value!r}") from None
    if np.isnan(value):
        raise InvalidInputError("threshold value is NaN")
    return img > value


def relative_threshold(coarse, negative, factor: float, field=None) -> float:
    """``factor`` x the median intensity of the kept voxels of a coarse level.

    Parameters
    ----------
    coarse : numpy.ndarray or dask.array.Array, shape (Z, Y, X), numeric
        A coarse level of the scan (IN), small enough to hold in memory.
    negative : array of bool, shape (Z, Y, X)
        True where voxels are discarded (outside the tissue).
    factor : float
        Multiple of the median (> 0).
    field : array, shape (Z, Y, X) or any coarser shape over the same box, optional
        Bias field of ``coarse`` (a coarser one is up-sampled linearly, as
        :func:`voxelflow.ops.apply_bias_field` does); the median is taken of
        ``coarse / field`` (field clipped below at 1e-6).

    Returns
    -------
    float
        The threshold, in the units of the (bias-corrected) scan.

    Raises
    ------
    EmptyResultError
        If ``negative`` discards every voxel.
    """
    img = np.asarray(coarse, dtype=np.float64)
    if field is not None:
        field = np.asarray(field, dtype=np.float64)
        if field.shape != img.shape:  # a field fitted on a coarser grid: linear up-sampling
            field = upsample_field(field, (0,) * img.ndim, img.shape, img.shape, "linear")
        img = img / np.maximum(field, 1e-6)
    keep = ~np.asarray(negative, dtype=bool)
    if keep.shape != img.shape:
        raise InvalidInputError(f"negative mask shape {keep.shape} differs from the image shape {img.shape}")
    if not keep.any():
        raise EmptyResultError(
            "the negative mask removes the whole scan; lower pipeline.edge_um or check pipeline.mask"
        )
    return float(factor * np.median(img[keep]))
