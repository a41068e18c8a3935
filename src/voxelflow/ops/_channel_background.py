"""Autofluorescence removal with a background channel (IN, IN -> IN): its scale in the signal, and subtraction.

Autofluorescent structures (vessels, fibres, lipofuscin) are bright in both the
signal and the background channel; labelled cells only in the signal channel.
"""

from __future__ import annotations

import dask.array as da
import numpy as np

from voxelflow.errors import InvalidInputError
from voxelflow.ops._filter_args import as_image
from voxelflow.ops._kernels import _compile

__all__ = ["estimate_channel_factor", "channel_background"]


def estimate_channel_factor(img, bg, *, quantile: float = 0.995, step: int = 4, mask=None) -> float:
    """Scale of the autofluorescence seen in the signal channel, per unit of the background channel.

    Autofluorescent structures (vessels, fibres, lipofuscin) are bright in both
    channels; labelled cells only in the signal channel. Among the sub-grid
    voxels whose background channel is above its ``quantile``, the factor is
    the median of ``(img - median(img)) / (bg - median(bg))``, so cells do not
    bias it.

    Parameters
    ----------
    img, bg : dask.array.Array or numpy.ndarray, shape (Z, Y, X), numeric
        Signal and background channel (same shape).
    quantile : float
        Which background-channel voxels count as autofluorescent.
    step : int
        Sub-grid spacing in voxels (every ``step``-th voxel along y and x).
    mask : array of bool, optional
        Only voxels where True are used.

    Returns
    -------
    float
        0 when the background channel has no bright structure.
    """
    img, bg = as_image(img), as_image(bg, "bg")
    if img.shape != bg.shape:
        raise InvalidInputError(f"background channel shape {bg.shape} differs from the image shape {img.shape}")
    sel = (Ellipsis, slice(None, None, step), slice(None, None, step))
    s = np.asarray(img[sel], dtype=np.float64).ravel()
    b = np.asarray(bg[sel], dtype=np.float64).ravel()
    if mask is not None:
        keep = np.asarray(da.asarray(mask)[sel], dtype=bool).ravel()
        s, b = s[keep], b[keep]
    if s.size == 0:
        return 0.0
    b_med, s_med = np.median(b), np.median(s)
    high = b > np.quantile(b, quantile)
    high &= b > b_med
    if not high.any():
        return 0.0
    return float(max(np.median((s[high] - s_med) / (b[high] - b_med)), 0.0))


def channel_background(img, bg, *, how: str = "subtract", factor: float = 1.0, floor: float = 1.0) -> da.Array:
    """Remove autofluorescence with a background channel: ``img - factor * bg`` or ``img / bg``.

    Parameters
    ----------
    img, bg : dask.array.Array or numpy.ndarray, same shape, numeric
        Signal and background (autofluorescence) channel; ``bg`` is rechunked to ``img``.
    how : {'subtract', 'ratio'}
    factor : float
        Scale of ``bg`` when subtracting (see :func:`estimate_channel_factor`).
    floor : float
        ``bg`` below ``floor`` is raised to it before dividing.

    Returns
    -------
    dask.array.Array, shape and chunks of ``img``, float32
    """
    img, bg = as_image(img), as_image(bg, "bg")
    if img.shape != bg.shape:
        raise InvalidInputError(f"background channel shape {bg.shape} differs from the image shape {img.shape}")
    if how not in ("subtract", "ratio"):
        raise InvalidInputError(f"how must be 'subtract' or 'ratio', got {how!r}")
    bg = bg.rechunk(img.chunks)
    return da.map_blocks(_combine_block, img, bg, np.float32(factor), np.float32(floor), how == "ratio",
                         dtype=np.float32)


@_compile
def _combine(a, b, factor, floor, ratio, out):
    for i in range(a.size):
        x = np.float32(a[i])
        y = np.float32(b[i])
        out[i] = x / max(y, floor) if ratio else x - factor * y


def _combine_block(a, b, factor, floor, ratio):
    """``a - factor * b`` or ``a / max(b, floor)`` of two blocks in one float32 pass."""
    out = np.empty(a.shape, np.float32)
    _combine(np.ascontiguousarray(a).reshape(-1), np.ascontiguousarray(b).reshape(-1), factor, floor, ratio,
             out.reshape(-1))
    return out
