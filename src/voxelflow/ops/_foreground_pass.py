"""The whole-brain foreground pass: bias-corrected threshold and coarse mask per chunk (IN -> BS -> LC).

The whole-brain pipeline thresholds the bias-corrected scan and drops what a
coarse negative mask marks. Chaining ``apply_bias_field``, ``threshold`` and
``upsample_mask`` costs a float image, a mask image and three tasks per chunk;
here each chunk is read once and compared with ``value * field`` (the field
up-sampled for that chunk only), which is the same test as
``img / field > value`` for a positive field without the division. The field is
evaluated only at voxels brighter than ``value`` times the least field sample
the chunk uses (a small share of a scan), so the float field of a chunk is never
built.
"""

from __future__ import annotations

import itertools

import dask.array as da
import numpy as np
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

from voxelflow.errors import InvalidInputError
from voxelflow.ops._ccpass import as_dask_image, check_connectivity, chunk_pass
from voxelflow.ops._halo import iter_blocks
from voxelflow.ops._objects import bs_pass_table, object_table

__all__ = ["threshold_corrected", "foreground_objects", "field_at", "mask_part"]


def _weights(index: np.ndarray, n: int, m: int):
    """Linear-interpolation samples and weights of image voxels ``index`` (of ``n``) on ``m`` field samples."""
    u = np.clip((index.astype(np.float64) + 0.5) * (m / n) - 0.5, 0, m - 1)
    lo = np.floor(u).astype(np.intp)
    return lo, np.minimum(lo + 1, m - 1), (u - lo).astype(np.float32)


def field_at(field: np.ndarray, index: tuple, full_shape) -> np.ndarray:
    """The field up-sampled linearly (separable, clamped, centres aligned) at some image voxels.

    Image voxel ``i`` of an axis of length ``n`` sits at field coordinate
    ``u = (i + 0.5) * m / n - 0.5`` (``m`` = field length), as in
    :func:`voxelflow.ops.apply_bias_field`. Interpolation runs in float32 along
    the last axis first, then the others, ``a + (b - a) * w`` at each step.

    Parameters
    ----------
    field : numpy.ndarray, shape (M0, M1, ...)
    index : tuple of int arrays, one per axis, each of shape (k,)
        Voxel coordinates in the full image.
    full_shape : tuple of int

    Returns
    -------
    numpy.ndarray, shape (k,), float32
    """
    f = np.asarray(field, dtype=np.float32)
    lohiw = [_weights(np.asarray(i), n, m) for i, n, m in zip(index, full_shape, f.shape)]
    corners = {}
    for bits in itertools.product((0, 1), repeat=f.ndim):
        corners[bits] = f[tuple(lohiw[ax][bit] for ax, bit in enumerate(bits))]
    for axis in reversed(range(f.ndim)):
        w = lohiw[axis][2]
        corners = {key[:-1]: corners[key[:-1] + (0,)] + (corners[key[:-1] + (1,)] - corners[key[:-1] + (0,)]) * w
                   for key in corners if key[-1] == 0}
    return corners[()]


def _field_floor(field: np.ndarray, start, stop, full_shape) -> float:
    """A lower bound of the up-sampled field on ``[start, stop)``: the least field sample it uses."""
    sel = []
    for a, b, n, m in zip(start, stop, full_shape, field.shape):
        lo, hi, _ = _weights(np.array([a, b - 1]), n, m)
        sel.append(slice(int(lo[0]), int(hi[1]) + 1))
    return float(field[tuple(sel)].min())


def _mask_index(a: int, b: int, n: int, m: int) -> np.ndarray:
    return np.minimum(np.floor((np.arange(a, b) + 0.5) * (m / n)).astype(np.intp), m - 1)


def mask_part(mask: np.ndarray, start, stop, full_shape) -> np.ndarray:
    """Nearest up-sampling of a coarse boolean ``mask`` on ``[start, stop)``.

    Voxel ``i`` of an axis of length ``n`` takes mask voxel ``floor((i + 0.5) * m / n)``
    (clamped to ``m - 1``), i.e. voxel centres aligned.

    Returns
    -------
    numpy.ndarray of bool, shape ``stop - start``
    """
    out = mask
    for axis in reversed(range(mask.ndim)):
        out = np.take(out, _mask_index(start[axis], stop[axis], full_shape[axis], mask.shape[axis]), axis=axis)
    return out


def _mask_window(mask: np.ndarray, start, stop, full_shape) -> np.ndarray:
    """The coarse mask voxels a chunk samples (to test all-true / all-false cheaply)."""
    sel = tuple(slice(int(i[0]), int(i[-1]) + 1) for i in
                (_mask_index(a, b, n, m) for a, b, n, m in zip(start, stop, full_shape, mask.shape)))
    return mask[sel]


def _block(block, start, full_shape, value, field, negative):
    stop = tuple(a + n for a, n in zip(start, block.shape))
    if negative is not None:
        window = _mask_window(negative, start, stop, full_shape)
        if window.all():  # outside the tissue: nothing to compare
            return np.zeros(block.shape, dtype=bool)
        if not window.any():
            negative = None
    if field is None:
        bs = block > value
    else:
        # a voxel at or below value x (least field sample) is below value x field wherever it is
        # (linear interpolation stays within its samples): only brighter ones need the field
        bs = block > value * _field_floor(field, start, stop, full_shape) * (1 - 1e-6)
        index = np.nonzero(bs)
        if index[0].size:
            where = tuple(i + a for i, a in zip(index, start))
            bs[index] = block[index] > np.float32(value) * field_at(field, where, full_shape)
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
    img = as_dask_image(img, "img")
    connectivity = check_connectivity(connectivity, img.ndim)
    bs = threshold_corrected(img, value, field, negative)
    if img.size == 0:
        return object_table(bs, intensity=img, connectivity=connectivity, kind="bs")
    # each chunk is thresholded inside its labelling task: read once, by one task
    keys = [f"{bs.name}-{what}" if arr is not None else None for what, arr in (("field", field), ("negative", negative))]
    make_bs = [_block, img.shape, float(value), *keys]
    result = chunk_pass(bs, connectivity, want_stats=True, intensity=img, make_bs=make_bs)
    return bs_pass_table(result, img.ndim, True)
