"""Bias-field (uneven illumination) estimation and correction.

:func:`estimate_bias_field` runs SimpleITK's N4 on a small, coarse pyramid
level (the optional ``bias`` extra, imported only when called).
:func:`apply_bias_field` divides the full-resolution image by that field,
up-sampled chunk by chunk: each task computes only its chunk's part of the
up-sampled field (separable interpolation from the small field), so the
full-size field never exists in memory.

Geometry: the field and the image cover the same box. Image voxel ``i`` on an
axis of length ``n`` sits at field coordinate ``u = (i + 0.5) * m / n - 0.5``
(``m`` = field length), i.e. voxel centres are aligned, as in
:func:`voxelflow.ops._resample.scale_nearest`.
"""

from __future__ import annotations

from collections.abc import Sequence

import dask.array as da
import numpy as np
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

from voxelflow.errors import InvalidInputError, OptionalDependencyError
from voxelflow.ops._halo import iter_blocks

__all__ = ["estimate_bias_field", "bias_fit_factors", "apply_bias_field", "BIAS_METHODS"]

BIAS_METHODS = ("linear", "nearest")


def estimate_bias_field(
    coarse_img,
    mask=None,
    *,
    iterations: int = 50,
    fitting_levels: int = 4,
    control_points: int = 4,
    spacing: Sequence[float] | None = None,
    max_voxels: int | None = None,
) -> np.ndarray:
    """Estimate a smooth multiplicative bias field with N4 on a coarse image.

    Parameters
    ----------
    coarse_img : numpy.ndarray or dask.array.Array, shape (Z, Y, X) (2-D also works), numeric
        A small pyramid level of the intensity image (it is loaded in memory).
    mask : array_like of bool, same shape, optional
        Voxels to fit on (the tissue). Defaults to SimpleITK's Otsu threshold.
    iterations : int
        Maximum N4 iterations per fitting level.
    fitting_levels : int
        Number of B-spline refinement levels.
    control_points : int
        B-spline control points per axis at the first level (at least 4).
    spacing : sequence of float, optional
        Voxel size per axis (only the relative values matter to N4).
    max_voxels : int, optional
        Voxel budget of the fit. N4 fits a smooth B-spline field of a few
        control points per axis and its time grows with the voxels it is given:
        a larger image is first reduced by block means (factors from
        :func:`voxelflow.ops.budget_factors`; a reduced voxel is in the mask when
        its whole block is, or any of it if that leaves nothing), and the field
        is returned on that reduced grid, covering the same box.

    Returns
    -------
    numpy.ndarray, shape of ``coarse_img`` (or of its reduction, see ``max_voxels``), float32
        The field ``b`` with ``image ~ b * true_image``, scaled to mean 1 inside
        the mask (so correcting keeps the average tissue intensity).

    Raises
    ------
    OptionalDependencyError
        If SimpleITK (the ``bias`` extra) is not installed.
    InvalidInputError
        On a negative image, a mask of another shape or an empty mask.
    """
    sitk = _simpleitk()
    if max_voxels is not None and np.size(coarse_img) > max_voxels:
        coarse_img, mask, spacing = _reduced_for_fit(coarse_img, mask, spacing, int(max_voxels))
    arr = np.asarray(coarse_img, dtype=np.float32)
    if arr.ndim not in (2, 3):
        raise InvalidInputError(f"coarse_img must be 2-D or 3-D, got shape {arr.shape}")
    if np.any(arr < 0) or not np.all(np.isfinite(arr)):
        raise InvalidInputError("coarse_img must be finite and non-negative for N4")
    if control_points < 4 or iterations < 1 or fitting_levels < 1:
        raise InvalidInputError("need control_points >= 4, iterations >= 1 and fitting_levels >= 1")
    image = sitk.GetImageFromArray(arr)
    if spacing is not None:
        image.SetSpacing([float(s) for s in reversed(tuple(spacing))])
    if mask is None:
        mask_img = sitk.OtsuThreshold(image, 0, 1, 200)
        mask_arr = sitk.GetArrayFromImage(mask_img).astype(bool)
    else:
        mask_arr = np.asarray(mask).astype(bool)
        if mask_arr.shape != arr.shape:
            raise InvalidInputError(f"mask shape {mask_arr.shape} differs from coarse_img shape {arr.shape}")
        mask_img = sitk.GetImageFromArray(mask_arr.astype(np.uint8))
        mask_img.CopyInformation(image)
    if not mask_arr.any():
        raise InvalidInputError("the bias-field mask is empty")
    n4 = sitk.N4BiasFieldCorrectionImageFilter()
    n4.SetMaximumNumberOfIterations([int(iterations)] * int(fitting_levels))
    n4.SetNumberOfControlPoints([int(control_points)] * arr.ndim)
    n4.Execute(image, mask_img)
    field = np.exp(sitk.GetArrayFromImage(n4.GetLogBiasFieldAsImage(image)).astype(np.float64))
    field /= field[mask_arr].mean()
    return field.astype(np.float32)


def bias_fit_factors(shape: Sequence[int], spacing: Sequence[float] | None, max_voxels: int | None) -> tuple[int, ...]:
    """Block factors of the grid :func:`estimate_bias_field` fits on (and returns its field on).

    All 1 when ``shape`` is within ``max_voxels`` (or no budget is given), else
    :func:`voxelflow.ops.budget_factors` of ``shape`` and ``spacing``.
    """
    from voxelflow.ops._resample import budget_factors

    if max_voxels is None or int(np.prod(shape)) <= max_voxels:
        return (1,) * len(shape)
    return budget_factors(shape, tuple(spacing) if spacing is not None else (1.0,) * len(shape), int(max_voxels))


def _reduced_for_fit(img, mask, spacing, max_voxels: int):
    """Block means of ``img`` (and its mask) within ``max_voxels``; the reduced spacing."""
    from voxelflow.ops._resample import downsample

    img = np.asarray(img, dtype=np.float32)
    spacing = tuple(spacing) if spacing is not None else (1.0,) * img.ndim
    factors = bias_fit_factors(img.shape, spacing, max_voxels)
    small = np.asarray(downsample(img, factors, method="mean"))
    if mask is not None:
        keep = np.asarray(mask).astype(bool)
        if keep.shape != img.shape:
            raise InvalidInputError(f"mask shape {keep.shape} differs from coarse_img shape {img.shape}")
        mask = np.asarray(downsample(keep, factors, method="min"))
        if not mask.any():
            mask = np.asarray(downsample(keep, factors, method="max"))
    return small, mask, tuple(s * f for s, f in zip(spacing, factors))


def apply_bias_field(img, field, method: str = "linear", *, dtype=np.float32) -> da.Array:
    """Divide an image by a coarse bias field up-sampled to its shape.

    Parameters
    ----------
    img : dask.array.Array or numpy.ndarray, shape (N0, N1, ...), numeric
        Full-resolution intensity image.
    field : numpy.ndarray or dask.array.Array, same number of axes, any shape
        Positive multiplicative field covering the same box as ``img``
        (e.g. from :func:`estimate_bias_field`); loaded in memory.
    method : {'linear', 'nearest'}
        Separable linear interpolation (clamped at the borders) or nearest voxel
        (``floor(u + 0.5)``, clamped).
    dtype : numpy dtype
        Output dtype (floating).

    Returns
    -------
    dask.array.Array, shape and chunks of ``img``, ``dtype``
        ``img / field_upsampled``; identical for every chunking of ``img``.
    """
    img = da.asarray(img)
    if method not in BIAS_METHODS:
        raise InvalidInputError(f"method must be one of {BIAS_METHODS}, got {method!r}")
    field = np.asarray(field, dtype=np.float64)
    if field.ndim != img.ndim or field.size == 0:
        raise InvalidInputError(f"field must have {img.ndim} axes and be non-empty, got shape {field.shape}")
    if not np.all(np.isfinite(field)) or np.any(field <= 0):
        raise InvalidInputError("field must be finite and positive")
    dtype = np.dtype(dtype)
    if not np.issubdtype(dtype, np.floating):
        raise InvalidInputError(f"dtype must be floating, got {dtype}")

    token = tokenize(img, field, method, dtype)
    field_name = f"bias-field-{token}"
    out_name = f"apply-bias-field-{token}"
    dsk = {field_name: field}
    for block in iter_blocks(img.chunks):
        dsk[(out_name,) + block.index] = (
            _divide_block, (img.name,) + block.index, field_name, block.start, img.shape, method, dtype,
        )
    graph = HighLevelGraph.from_collections(out_name, dsk, dependencies=[img])
    return da.Array(graph, out_name, img.chunks, dtype=dtype)


def upsample_field(field: np.ndarray, start, stop, full_shape, method: str) -> np.ndarray:
    """The part ``[start, stop)`` of ``field`` resampled to ``full_shape`` (float64)."""
    out = field
    for axis, (a, b, n) in enumerate(zip(start, stop, full_shape)):
        m = field.shape[axis]
        u = (np.arange(a, b, dtype=np.float64) + 0.5) * (m / n) - 0.5
        u = np.clip(u, 0, m - 1)
        if method == "nearest":
            out = np.take(out, np.floor(u + 0.5).astype(np.int64), axis=axis)
            continue
        lo = np.floor(u).astype(np.int64)
        hi = np.minimum(lo + 1, m - 1)
        w = (u - lo).reshape((-1,) + (1,) * (field.ndim - axis - 1))
        out = np.take(out, lo, axis=axis) * (1 - w) + np.take(out, hi, axis=axis) * w
    return out


def _divide_block(block, field, start, full_shape, method, dtype):
    stop = tuple(a + n for a, n in zip(start, block.shape))
    up = upsample_field(field, start, stop, full_shape, method)
    return (block.astype(np.float64) / up).astype(dtype)


def _simpleitk():
    try:
        import SimpleITK
    except ImportError as exc:
        raise OptionalDependencyError(
            "bias-field estimation needs SimpleITK: pip install 'voxelflow[bias]'"
        ) from exc
    return SimpleITK
