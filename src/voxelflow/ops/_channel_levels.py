"""Per-plane / per-tile levels of a signal and a background channel and the autofluorescence factor, in one read.

:func:`voxelflow.ops.plane_tile_median` of each channel and
:func:`voxelflow.ops.estimate_channel_factor` of the level-divided channels each
read the whole scan; :func:`channel_levels` gathers the samples of all three
from one read of both channels (each chunk once) and returns the same values.
"""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np

from voxelflow.errors import InvalidInputError
from voxelflow.ops._channel_background import FACTOR_SAMPLES, factor_of_samples, sub_grid_steps
from voxelflow.ops._filter_args import as_image, as_spacing, tile_shape
from voxelflow.ops._halo import iter_blocks
from voxelflow.ops._plane_background import checked_levels, median_samples, medians_of_samples

__all__ = ["channel_levels"]


def _grid(first: int, n: int, step: int) -> slice:
    """The voxels of a chunk starting at ``first`` (``n`` long) on the global grid of ``step``, as a slice."""
    return slice(-(-first // step) * step - first, n, step)


def _block_samples(a, b, start, tile, step, n_tiles, factor_steps, mask):
    """Level samples of both channels, and the factor's sub-grid voxels of a chunk with the flat index of the
    (plane, tile) each lies in."""
    a, b = np.asarray(a), np.asarray(b)
    med_a = median_samples(a, start, tile, step, n_tiles, mask)
    med_b = median_samples(b, start, tile, step, n_tiles, mask)
    zs, ys = factor_steps
    sel = tuple(_grid(s, n, k) for s, n, k in zip(start, a.shape, (zs, ys, ys)))
    z, y, x = (np.arange(s.start, n, s.step) + o for s, n, o in zip(sel, a.shape, start))
    where = ((z[:, None, None] * n_tiles[0] + (y // tile[0])[None, :, None]) * n_tiles[1]
             + (x // tile[1])[None, None, :])
    if mask is None:
        return med_a, med_b, a[sel].ravel(), b[sel].ravel(), where.ravel()
    keep = np.asarray(mask)[sel].astype(bool)
    return med_a, med_b, a[sel][keep], b[sel][keep], where[keep]


def _divided(values: np.ndarray, levels: np.ndarray, where: np.ndarray) -> np.ndarray:
    """Samples divided by the level of their (plane, tile), flat index ``where``, raised to 1, in float32."""
    lv = np.maximum(levels.astype(np.float32).ravel(), np.float32(1.0))
    return values.astype(np.float32) / lv[where]


def channel_levels(img, bg, spacing, *, tile_um: float | None = None, step: int = 4, mask=None,
                   quantile: float = 0.995, max_samples: int | None = FACTOR_SAMPLES):
    """Levels of both channels and the autofluorescence factor of the level-divided channels, in one read.

    Parameters
    ----------
    img, bg : dask.array.Array or numpy.ndarray, shape (Z, Y, X), numeric
        Signal and background (autofluorescence) channel; ``bg`` is rechunked to ``img``.
    spacing : sequence of 3 float
        Voxel size in um.
    tile_um : float, optional
        Tile edge length in um; None = whole planes.
    step : int
        Sub-grid spacing of the levels and (before the sample budget) of the factor.
    mask : array of bool, shape of ``img``, optional
        Only voxels where True are used (e.g. tissue).
    quantile, max_samples
        As in :func:`voxelflow.ops.estimate_channel_factor`.

    Returns
    -------
    levels, bg_levels : numpy.ndarray, shape (Z, n_tiles_y, n_tiles_x), float64
        Equal to :func:`voxelflow.ops.plane_tile_median` of each channel (NaN where no sample).
    factor : float
        Equal to :func:`voxelflow.ops.estimate_channel_factor` ``(img, bg, levels=levels, bg_levels=bg_levels,
        ...)`` with the same settings.
    """
    img, bg = as_image(img), as_image(bg, "bg")
    if img.ndim != 3:
        raise InvalidInputError(f"channel_levels needs a 3-D (z, y, x) image, got {img.ndim} axes")
    if img.shape != bg.shape:
        raise InvalidInputError(f"background channel shape {bg.shape} differs from the image shape {img.shape}")
    if int(step) < 1:
        raise InvalidInputError(f"step must be a positive number of voxels, got {step!r}")
    tile = tile_shape(tile_um, as_spacing(spacing, 3), img.shape)
    n_tiles = (-(-img.shape[1] // tile[0]), -(-img.shape[2] // tile[1]))
    bg = bg.rechunk(img.chunks)
    if mask is not None:
        mask = da.asarray(mask)
        if mask.shape != img.shape:
            raise InvalidInputError(f"mask shape {mask.shape} differs from the image shape {img.shape}")
        mask = mask.rechunk(img.chunks)
    factor_steps = sub_grid_steps(img.shape, int(step), max_samples)
    # one graph for all chunks of both channels (to_delayed), so each chunk is read once
    pa, pb = img.to_delayed(), bg.to_delayed()
    pm = None if mask is None else mask.to_delayed()
    tasks = [dask.delayed(_block_samples)(pa[b.index], pb[b.index], b.start, tile, int(step), n_tiles,
                                          factor_steps, None if pm is None else pm[b.index])
             for b in iter_blocks(img.chunks)]
    parts = dask.compute(*tasks)
    shape = (img.shape[0],) + n_tiles
    levels = medians_of_samples([p[0] for p in parts], shape)
    bg_levels = medians_of_samples([p[1] for p in parts], shape)
    where = np.concatenate([p[4] for p in parts])
    s = _divided(np.concatenate([p[2] for p in parts]), checked_levels(levels, img.shape, tile, "levels"), where)
    b = _divided(np.concatenate([p[3] for p in parts]), checked_levels(bg_levels, img.shape, tile, "bg_levels"),
                 where)
    return levels, bg_levels, factor_of_samples(s, b, quantile)
