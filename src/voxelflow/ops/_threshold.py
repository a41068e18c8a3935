"""Global threshold (IN -> BS)."""

from __future__ import annotations

import dask.array as da
import numpy as np

from voxelflow.errors import InvalidInputError

__all__ = ["threshold"]


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
