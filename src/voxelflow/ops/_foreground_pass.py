"""The whole-brain foreground pass: bias-corrected threshold and coarse mask per chunk (IN -> BS -> LC).

The whole-brain pipeline thresholds the bias-corrected scan and drops what a
coarse negative mask marks. Chaining ``apply_bias_field``, ``threshold`` and
``upsample_mask`` costs a float image, a mask image and three tasks per chunk;
here each chunk is read once and compared with ``value * field`` (the field
up-sampled for that chunk only), which is the same test as
``img / field > value`` for a positive field without the division.
"""

from __future__ import annotations

import dask.array as da
import numpy as np
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

from voxelflow.errors import InvalidInputError
from voxelflow.ops._halo import iter_blocks
from voxelflow.ops._objects import object_table

__all__ = ["threshold_corrected", "foreground_objects", "field_part", "mask_part"]


def field_part(field: np.ndarray, start, stop, full_shape) -> np.ndarray:
    """Linear up-sampling (separable, clamped, voxel centres aligned) of ``field`` on ``[start, stop)``.

    Image voxel ``i`` of an axis of length ``n`` sits at field coordinate
    ``u = (i + 0.5) * m / n - 0.5`` (``m`` = field length), as in
    :func:`voxelflow.ops.apply_bias_field`; computed in float32.

    Returns
    -------
    numpy.ndarray, shape ``stop - start``, float32
    """
    out = np.asarray(field, dtype=np.float32)
    for axis, (a, b, n) in enumerate(zip(start, stop, full_shape)):
        m = field.shape[axis]
        u = np.clip((np.arange(a, b, dtype=np.float64) + 0.5) * (m / n) - 0.5, 0, m - 1)
        lo = np.floor(u).astype(np.intp)
        hi = np.minimum(lo + 1, m - 1)
        w = (u - lo).astype(np.float32).reshape((-1,) + (1,) * (field.ndim - axis - 1))
        a_lo = np.take(out, lo, axis=axis)
        out = a_lo + (np.take(out, hi, axis=axis) - a_lo) * w
    return out


def mask_part(mask: np.ndarray, start, stop, full_shape) -> np.ndarray:
    """Nearest up-sampling of a coarse boolean ``mask`` on ``[start, stop)``.

    Voxel ``i`` of an axis of length ``n`` takes mask voxel ``floor((i + 0.5) * m / n)``
    (clamped to ``m - 1``), i.e. voxel centres aligned.

    Returns
    -------
    numpy.ndarray of bool, shape ``stop - start``
    """
    index = [
        np.minimum(np.floor((np.arange(a, b) + 0.5) * (m / n)).astype(np.intp), m - 1)
        for a, b, n, m in zip(start, stop, full_shape, mask.shape)
    ]
    return mask[np.ix_(*index)]


def _block(block, start, full_shape, value, field, negative):
    stop = tuple(a + n for a, n in zip(start, block.shape))
    if field is None:
        bs = block > value
    else:
        bs = block > np.float32(value) * field_part(field, start, stop, full_shape)
    if negative is not None:
        bs &= ~mask_part(negative, start, stop, full_shape)
    return bs


def threshold_corrected(img, value: float, field=None, negative=None) -> da.Array:
    """Voxels brighter than ``value`` after dividing by a bias field, outside a negative mask.

    Parameters
    ----------
    img : dask.array.Array or numpy.ndarray, shape (N0, N1, ...), numeric
        Full-resolution intensity image (IN).
    value : float
        Threshold in bias-corrected units.
    field : numpy.ndarray, same number of axes, any shape, optional
        Positive multiplicative bias field covering the same box (e.g. from
        :func:`voxelflow.ops.estimate_bias_field`); up-sampled linearly per chunk.
    negative : numpy.ndarray of bool, same number of axes, any shape, optional
        True where voxels are discarded; up-sampled by nearest voxel per chunk.

    Returns
    -------
    dask.array.Array, shape and chunks of ``img``, bool (BS)
        ``img > value * field_up`` (float32 product) and not ``negative_up``;
        identical for every chunking of ``img``.

    Raises
    ------
    InvalidInputError
        On a non-numeric image, a NaN value, a non-positive field or a field or
        mask with another number of axes.
    """
    img = da.asarray(img)
    if not np.issubdtype(img.dtype, np.number):
        raise InvalidInputError(f"threshold_corrected needs a numeric image, got dtype {img.dtype}")
    value = float(value)
    if np.isnan(value):
        raise InvalidInputError("threshold value is NaN")
    if field is not None:
        field = np.asarray(field, dtype=np.float32)
        if field.ndim != img.ndim or field.size == 0:
            raise InvalidInputError(f"field must have {img.ndim} axes and be non-empty, got shape {field.shape}")
        if not np.all(np.isfinite(field)) or np.any(field <= 0):
            raise InvalidInputError("field must be finite and positive")
    if negative is not None:
        negative = np.asarray(negative).astype(bool)
        if negative.ndim != img.ndim or negative.size == 0:
            raise InvalidInputError(
                f"negative mask must have {img.ndim} axes and be non-empty, got shape {negative.shape}"
            )
    token = tokenize(img, value, field, negative)
    name = f"vf-threshold-corrected-{token}"
    # the field and mask are graph keys, not task arguments: a cluster ships them once per worker
    field_key = None if field is None else f"{name}-field"
    mask_key = None if negative is None else f"{name}-negative"
    dsk = {k: v for k, v in ((field_key, field), (mask_key, negative)) if k is not None}
    for block in iter_blocks(img.chunks):
        dsk[(name,) + block.index] = (_block, (img.name,) + block.index, block.start, img.shape, value, field_key,
                                      mask_key)
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=[img])
    return da.Array(graph, name, img.chunks, dtype=bool, meta=np.empty((0,) * img.ndim, bool))


def foreground_objects(img, value: float, negative=None, field=None, connectivity: int = 1):
    """The object table (LC) of the bias-corrected, masked foreground, in one pass over the scan.

    Each chunk is read once, compared with ``value * field`` outside ``negative``
    (:func:`threshold_corrected`), labelled and summarised, with the raw scan's
    intensities; no full-resolution volume is kept or written. Inside a resumable
    step (:func:`voxelflow.ops.resumable_passes`) finished chunk groups are kept.

    Parameters
    ----------
    img : dask.array.Array, shape (Z, Y, X), numeric
        The scan (IN).
    value, negative, field
        As in :func:`threshold_corrected`.
    connectivity : int
        1 .. 3, as in :func:`voxelflow.ops.label`.

    Returns
    -------
    pandas.DataFrame
        As :func:`voxelflow.ops.object_table` of the foreground with ``intensity=img``;
        ids equal those :func:`voxelflow.ops.label` gives that foreground.
    """
    bs = threshold_corrected(img, value, field, negative)
    return object_table(bs, intensity=img, connectivity=connectivity, kind="bs")
