"""Autofluorescence removal with a background channel (IN, IN -> IN): its scale in the signal, and subtraction.

Autofluorescent structures (vessels, fibres, lipofuscin) are bright in both the
signal and the background channel; labelled cells only in the signal channel.
"""

from __future__ import annotations

import dask.array as da
import numpy as np

from voxelflow.errors import InvalidInputError
from voxelflow.ops._filter_args import as_image, as_spacing, tile_shape
from voxelflow.ops._kernels import _compile
from voxelflow.ops._plane_background import checked_levels

__all__ = ["estimate_channel_factor", "channel_background", "factor_of_samples", "sub_grid_steps", "FACTOR_SAMPLES"]


#: Default sample budget of :func:`estimate_channel_factor`: enough for a stable median of the top 0.5 %
#: (some 20 000 voxels), small enough that the estimate costs little more than one read of both channels.
FACTOR_SAMPLES = 2**22


def estimate_channel_factor(img, bg, *, quantile: float = 0.995, step: int = 4, mask=None, levels=None,
                            bg_levels=None, spacing=None, tile_um: float | None = None,
                            max_samples: int | None = FACTOR_SAMPLES) -> float:
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
    levels, bg_levels, spacing, tile_um : optional
        Per-plane / per-tile levels each channel is divided by first (as in
        :func:`channel_background`); only the sub-grid is divided, with the
        same result as dividing the whole channel.
    max_samples : int or None
        Sample budget: when the sub-grid holds more voxels, it is thinned to
        every ``f``-th plane and every ``f * step``-th voxel along y and x, with
        the smallest ``f`` that fits, so the cost and memory of the estimate do
        not grow with the scan beyond one read of both channels. None: no budget.

    Returns
    -------
    float
        0 when the background channel has no bright structure.
    """
    img, bg = as_image(img), as_image(bg, "bg")
    if img.shape != bg.shape:
        raise InvalidInputError(f"background channel shape {bg.shape} differs from the image shape {img.shape}")
    with_levels = levels is not None or bg_levels is not None
    if with_levels and (img.ndim != 3 or spacing is None):
        raise InvalidInputError("estimate_channel_factor with plane levels needs a 3-D image and its spacing")
    zs, ys = sub_grid_steps(img.shape, int(step), max_samples)
    sel = (Ellipsis, slice(None, None, ys), slice(None, None, ys))
    if img.ndim == 3:
        sel = (slice(None, None, zs),) + sel[1:]
    parts = [img[sel], bg[sel]] + ([] if mask is None else [da.asarray(mask)[sel]])
    s, b, *keep = (np.asarray(p) for p in da.compute(*parts))  # one graph: both channels read in parallel
    if with_levels:
        tile = tile_shape(tile_um, as_spacing(spacing, 3), img.shape)
        s, b = (x if v is None else _divide_sub_grid(x, checked_levels(v, img.shape, tile, name)[::zs], tile, ys)
                for x, v, name in ((s, levels, "levels"), (b, bg_levels, "bg_levels")))
    if keep:
        k = keep[0].astype(bool).ravel()
        s, b = s.ravel()[k], b.ravel()[k]
    return factor_of_samples(s, b, quantile)


def factor_of_samples(s: np.ndarray, b: np.ndarray, quantile: float) -> float:
    """:func:`estimate_channel_factor` of the sampled signal ``s`` and background ``b`` (same shape, any order).

    Returns 0.0 when there is no sample or no bright background structure.
    """
    # the medians partition float32 samples when that dtype holds them exactly (uint16, the level-divided grid)
    exact = np.float32 if np.can_cast(np.result_type(s, b), np.float32, "safe") else np.float64
    s = np.asarray(s, dtype=exact).ravel()
    b = np.asarray(b, dtype=exact).ravel()
    if s.size == 0:
        return 0.0
    b_med, s_med = _median64(b), _median64(s)
    b64 = b.astype(np.float64)
    high = b64 > np.quantile(b64, quantile)
    high &= b64 > b_med
    if not high.any():
        return 0.0
    return float(max(np.median((s[high].astype(np.float64) - s_med) / (b64[high] - b_med)), 0.0))


def sub_grid_steps(shape, step: int, max_samples: int | None) -> tuple[int, int]:
    """Steps (along z, along y and x) of the factor's sub-grid: ``(f, f * step)`` with the smallest ``f >= 1``
    whose sub-grid holds at most ``max_samples`` voxels."""
    if step < 1:
        raise InvalidInputError(f"step must be a positive number of voxels, got {step!r}")
    if max_samples is not None and int(max_samples) < 1:
        raise InvalidInputError(f"max_samples must be a positive number of voxels or None, got {max_samples!r}")

    def count(f):
        n = [-(-shape[-2] // (f * step)), -(-shape[-1] // (f * step))]
        return int(np.prod(n)) * (-(-shape[0] // f) if len(shape) == 3 else 1)

    f = 1
    while max_samples is not None and count(f) > int(max_samples) and f * step < max(shape[-2:]):
        f += 1
    return (f if len(shape) == 3 else 1), f * step


def _median64(x: np.ndarray) -> float:
    """``numpy.median(x.astype(float64))`` of a 1-D float array without NaN, partitioning ``x`` itself."""
    k = x.size // 2
    if x.size % 2:
        return float(np.partition(x, k)[k])
    part = np.partition(x, [k - 1, k])
    return float(np.mean(np.array([part[k - 1], part[k]], np.float64)))


def _divide_sub_grid(sub: np.ndarray, levels: np.ndarray, tile, step: int) -> np.ndarray:
    """Sub-grid voxels (``[:, ::step, ::step]``) divided by the level of their plane and tile, in float32.

    ``levels`` holds one row per plane of ``sub`` (the sampled planes)."""
    ys = np.arange(sub.shape[1]) * step // tile[0]
    xs = np.arange(sub.shape[2]) * step // tile[1]
    lv = np.maximum(levels.astype(np.float32)[:, ys][:, :, xs], np.float32(1.0))
    return sub.astype(np.float32) / lv


def channel_background(img, bg, *, how: str = "subtract", factor: float = 1.0, floor: float = 1.0, levels=None,
                       bg_levels=None, spacing=None, tile_um: float | None = None) -> da.Array:
    """Remove autofluorescence with a background channel: ``img - factor * bg`` or ``img / bg``.

    With per-plane / per-tile ``levels`` and ``bg_levels`` (e.g. from
    :func:`voxelflow.ops.plane_tile_median`) each channel is first divided by
    its level, in the same pass: the result equals ``channel_background(
    remove_plane_background(img, levels, spacing, tile_um=tile_um),
    remove_plane_background(bg, bg_levels, spacing, tile_um=tile_um), ...)``
    exactly, with one float32 array written instead of three.

    Parameters
    ----------
    img, bg : dask.array.Array or numpy.ndarray, shape (Z, Y, X) (or (Y, X) without levels), numeric
        Signal and background (autofluorescence) channel; ``bg`` is rechunked to ``img``.
    how : {'subtract', 'ratio'}
    factor : float
        Scale of ``bg`` when subtracting (see :func:`estimate_channel_factor`).
    floor : float
        ``bg`` below ``floor`` is raised to it before dividing.
    levels, bg_levels : numpy.ndarray, shape (Z, n_tiles_y, n_tiles_x), optional
        Background level of every plane (and tile) of each channel; levels below
        1 are raised to 1 (as :func:`voxelflow.ops.remove_plane_background` does).
    spacing : sequence of 3 float, optional
        Voxel size in um; needed with levels.
    tile_um : float, optional
        The tile size the levels were computed with (None: whole planes).

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
    if levels is None and bg_levels is None:
        return da.map_blocks(_combine_block, img, bg, np.float32(factor), np.float32(floor), how == "ratio",
                             dtype=np.float32)
    if img.ndim != 3 or spacing is None:
        raise InvalidInputError("channel_background with plane levels needs a 3-D (z, y, x) image and its spacing")
    tile = tile_shape(tile_um, as_spacing(spacing, 3), img.shape)
    ones = np.ones((img.shape[0], -(-img.shape[1] // tile[0]), -(-img.shape[2] // tile[1])))
    lv = [np.ascontiguousarray(checked_levels(ones if v is None else v, img.shape, tile, name), dtype=np.float32)
          for v, name in ((levels, "levels"), (bg_levels, "bg_levels"))]
    starts = [np.concatenate([[0], np.cumsum(c)[:-1]]).astype(int) for c in img.chunks]

    def run(a, b, block_info=None):
        loc = block_info[0]["chunk-location"]
        start = tuple(int(starts[axis][i]) for axis, i in enumerate(loc))
        out = np.empty(a.shape, np.float32)
        _levelled_combine(np.ascontiguousarray(a), np.ascontiguousarray(b), lv[0], lv[1], *start, *tile,
                          np.float32(factor), np.float32(floor), how == "ratio", out)
        return out

    return da.map_blocks(run, img, bg, dtype=np.float32)


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


@_compile
def _levelled_combine(a, b, la, lb, z0, y0, x0, ty, tx, factor, floor, ratio, out):
    """``_combine`` of ``a / max(level_a, 1)`` and ``b / max(level_b, 1)``, levels per plane and tile."""
    nz, ny, nx = a.shape
    one = np.float32(1.0)
    for z in range(nz):
        for y in range(ny):
            row_a, row_b = la[z0 + z, (y0 + y) // ty], lb[z0 + z, (y0 + y) // ty]
            src_a, src_b, dst = a[z, y], b[z, y], out[z, y]
            x = 0
            while x < nx:  # runs of constant tile column
                t = (x0 + x) // tx
                stop = min(nx, (t + 1) * tx - x0)
                da_, db_ = max(row_a[t], one), max(row_b[t], one)
                for i in range(x, stop):
                    u = np.float32(src_a[i]) / da_
                    v = np.float32(src_b[i]) / db_
                    dst[i] = u / max(v, floor) if ratio else u - factor * v
                x = stop
