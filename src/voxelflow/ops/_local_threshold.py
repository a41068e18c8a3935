"""Thresholds that follow the brightness of planes, tiles or neighbourhoods (IN -> BS).

Lightsheet planes and tiles differ in brightness, so one global threshold
misses objects in dark planes and floods bright ones. Three rules:

- :func:`tile_stats` + :func:`tile_threshold`: per z plane (and per (y, x)
  tile of it) ``mean + k * SD`` of the voxels inside a tissue mask, the rule
  cellfinder applies per plane; statistics are exact sums over every voxel,
  gathered chunk by chunk.
- :func:`local_threshold`: ``local mean + k * local SD + offset`` over a box of
  ``window_um`` around each voxel (Niblack's rule; ``k = 0`` is the adaptive
  mean threshold), computed with halos so any chunking gives the whole-array
  result.
"""

from __future__ import annotations

from dataclasses import dataclass

import dask
import dask.array as da
import numpy as np

from voxelflow.errors import InvalidInputError
from voxelflow.ops._filter_args import as_image, as_length, as_mode, as_spacing, tile_shape, voxel_lengths
from voxelflow.ops._filter_map import map_filter
from voxelflow.ops._halo import iter_blocks
from voxelflow.ops._kernels import _compile, by_tile, correlate_axis

__all__ = ["TileStats", "tile_stats", "tile_threshold", "local_threshold"]


@dataclass(frozen=True)
class TileStats:
    """Per-plane / per-tile intensity statistics.

    Attributes
    ----------
    mean, sd : numpy.ndarray, shape (Z, n_tiles_y, n_tiles_x), float64
        Mean and (population) standard deviation of the counted voxels; NaN where none.
    count : numpy.ndarray, shape (Z, n_tiles_y, n_tiles_x), int64
        Voxels counted (inside the mask).
    tile : tuple of 2 int
        Tile size in voxels (y, x); the whole plane for per-plane statistics.
    """

    mean: np.ndarray
    sd: np.ndarray
    count: np.ndarray
    tile: tuple[int, int]


@_compile(fast=True)
def _tile_sums(block, mask, use_mask, y0, x0, ty, tx, out_n, out_s, out_q):
    nz, ny, nx = block.shape
    for z in range(nz):
        for y in range(ny):
            a = (y0 + y) // ty
            src = block[z, y]
            keep = mask[z, y] if use_mask else mask[0, 0]
            # the row in runs of constant tile column: [x, stop) lies in tile (x0 + x) // tx
            x = 0
            while x < nx:
                b = (x0 + x) // tx
                stop = min(nx, (b + 1) * tx - x0)
                n = 0
                s = 0.0
                q = 0.0
                if use_mask:
                    for i in range(x, stop):
                        if keep[i]:
                            v = np.float64(src[i])
                            n += 1
                            s += v
                            q += v * v
                else:
                    n = stop - x
                    for i in range(x, stop):
                        v = np.float64(src[i])
                        s += v
                        q += v * v
                out_n[z, a, b] += n
                out_s[z, a, b] += s
                out_q[z, a, b] += q
                x = stop


def _block_sums(block, start, tile, n_tiles, mask):
    data = np.ascontiguousarray(block, dtype=np.float32)
    shape = (data.shape[0],) + tuple(n_tiles)
    n = np.zeros(shape, np.int64)
    s = np.zeros(shape, np.float64)
    q = np.zeros(shape, np.float64)
    use = mask is not None
    m = np.ascontiguousarray(mask, dtype=np.bool_) if use else np.zeros((1, 1, 1), np.bool_)
    _tile_sums(data, m, use, start[1], start[2], tile[0], tile[1], n, s, q)
    return start[0], n, s, q


def tile_stats(img, spacing, *, tile_um: float | None = None, mask=None) -> TileStats:
    """Mean and SD of every z plane, or of every (y, x) tile of every plane, inside a mask.

    Parameters
    ----------
    img : dask.array.Array or numpy.ndarray, shape (Z, Y, X), numeric
        Usually a filtered image (e.g. :func:`voxelflow.ops.log_filter`).
    spacing : sequence of 3 float
        Voxel size in um.
    tile_um : float, optional
        Square tiles of this edge length in um, from voxel 0; None = whole planes.
    mask : array of bool, shape of ``img``, optional
        Voxels counted (e.g. tissue); all when None.

    Returns
    -------
    TileStats
        Equal to ``img[z, tile][mask[z, tile]].mean()`` / ``.std()`` per plane and tile.
    """
    img = as_image(img)
    if img.ndim != 3:
        raise InvalidInputError(f"tile_stats needs a 3-D (z, y, x) image, got {img.ndim} axes")
    sp = as_spacing(spacing, 3)
    tile = tile_shape(tile_um, sp, img.shape)
    n_tiles = (-(-img.shape[1] // tile[0]), -(-img.shape[2] // tile[1]))
    if mask is not None:
        mask = da.asarray(mask)
        if mask.shape != img.shape:
            raise InvalidInputError(f"mask shape {mask.shape} differs from the image shape {img.shape}")
        mask = mask.rechunk(img.chunks)
    # one graph for all chunks (to_delayed), so the upstream work of a chunk is shared, not redone per task
    parts = img.to_delayed()
    masks = None if mask is None else mask.to_delayed()
    tasks = []
    for block in iter_blocks(img.chunks):
        m = None if masks is None else masks[block.index]
        tasks.append(dask.delayed(_block_sums)(parts[block.index], block.start, tile, n_tiles, m))
    shape = (img.shape[0],) + n_tiles
    n = np.zeros(shape, np.int64)
    s = np.zeros(shape, np.float64)
    q = np.zeros(shape, np.float64)
    for z0, bn, bs, bq in dask.compute(*tasks):
        sl = slice(z0, z0 + bn.shape[0])
        n[sl] += bn
        s[sl] += bs
        q[sl] += bq
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, s / n, np.nan)
        var = np.where(n > 0, q / n - mean * mean, np.nan)
    return TileStats(mean=mean, sd=np.sqrt(np.maximum(var, 0.0)), count=n, tile=tile)


def tile_threshold(img, stats: TileStats, k: float, *, min_voxels: int = 1) -> da.Array:
    """Binary segmentation ``img > mean + k * SD`` of the voxel's plane/tile.

    Parameters
    ----------
    img : dask.array.Array or numpy.ndarray, shape (Z, Y, X), numeric
        The image the statistics were computed on.
    stats : TileStats
        From :func:`tile_stats`.
    k : float
        Standard deviations above the mean.
    min_voxels : int
        Tiles with fewer counted voxels use their plane's pooled statistics,
        and planes with fewer use the whole volume's (so a tile or plane with
        little tissue does not get a threshold from a handful of voxels).

    Returns
    -------
    dask.array.Array, shape and chunks of ``img``, bool (BS)
    """
    img = as_image(img)
    thr = tile_thresholds(img.shape, stats, k, min_voxels=min_voxels)
    starts = [np.concatenate([[0], np.cumsum(c)[:-1]]).astype(int) for c in img.chunks]
    tile = stats.tile

    def run(block, block_info=None):
        loc = block_info[0]["chunk-location"]
        start = tuple(int(starts[a][i]) for a, i in enumerate(loc))
        return by_tile(np.asarray(block), thr, start, tile, "greater")

    return img.map_blocks(run, dtype=bool)


def tile_thresholds(shape, stats: TileStats, k: float, *, min_voxels: int = 1) -> np.ndarray:
    """The threshold ``mean + k * SD`` of every plane and tile, as :func:`tile_threshold` applies it.

    Parameters
    ----------
    shape : tuple of 3 int
        Shape (Z, Y, X) of the image the statistics were computed on.
    stats : TileStats
    k : float
    min_voxels : int
        As in :func:`tile_threshold`.

    Returns
    -------
    numpy.ndarray, shape (Z, n_tiles_y, n_tiles_x), float32
        +inf where no voxel was counted.
    """
    expected = (shape[0], -(-shape[1] // stats.tile[0]), -(-shape[2] // stats.tile[1]))
    if stats.mean.shape != expected:
        raise InvalidInputError(f"stats are for a grid of {stats.mean.shape} planes x tiles; this image needs "
                                f"{expected}")
    try:
        k = float(k)
    except (TypeError, ValueError):
        raise InvalidInputError(f"k must be a number of standard deviations, got {k!r}") from None
    return np.ascontiguousarray(_thresholds(stats, k, int(min_voxels)), dtype=np.float32)


def _pooled(n, s, q):
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s / n
        return mean + 0.0, np.sqrt(np.maximum(q / n - mean * mean, 0.0))


def _thresholds(stats: TileStats, k: float, min_voxels: int) -> np.ndarray:
    """``mean + k * sd`` per plane and tile, falling back to plane then volume statistics."""
    n = stats.count.astype(np.float64)
    s = np.nan_to_num(stats.mean) * n
    q = (np.nan_to_num(stats.sd) ** 2 + np.nan_to_num(stats.mean) ** 2) * n
    thr = stats.mean + k * stats.sd
    pn, ps, pq = n.sum(axis=(1, 2)), s.sum(axis=(1, 2)), q.sum(axis=(1, 2))
    pm, psd = _pooled(pn, ps, pq)
    vm, vsd = _pooled(pn.sum(), ps.sum(), pq.sum())
    plane_thr = np.where(pn >= max(min_voxels, 1), pm + k * psd, vm + k * vsd)
    small = stats.count < max(min_voxels, 1)
    thr = np.where(small, plane_thr[:, None, None], thr)
    # no voxel counted anywhere: nothing is foreground
    return np.where(np.isfinite(thr), thr, np.inf)


def _local_block(data, radii, k, offset, mode):
    mean = data
    sq = data * data
    for axis, r in enumerate(radii):
        if r > 0:
            w = np.full(2 * r + 1, 1.0 / (2 * r + 1))
            mean = correlate_axis(mean, w, axis, mode)
            sq = correlate_axis(sq, w, axis, mode)
    thr = mean + np.float32(offset)
    if k != 0:
        thr += np.float32(k) * np.sqrt(np.maximum(sq - mean * mean, 0.0))
    return (data > thr).astype(np.float32)


def local_threshold(img, window_um: float, spacing, *, k: float = 0.0, offset: float = 0.0,
                    per_plane: bool = False, mode: str = "reflect") -> da.Array:
    """Adaptive threshold: ``img > local mean + k * local SD + offset`` over a box around each voxel.

    Parameters
    ----------
    img : dask.array.Array or numpy.ndarray, shape (Z, Y, X) or (Y, X), numeric
    window_um : float
        Half-width of the box in micrometres: ``2 * round(window_um / spacing) + 1`` voxels per axis.
    spacing : sequence of float
        Voxel size in um per axis.
    k : float
        Weight of the local standard deviation (0 = local mean only).
    offset : float
        Added to the local threshold, in the units of ``img``.
    per_plane : bool
        A flat (y, x) box.
    mode : {'reflect', 'mirror', 'nearest'}
        Boundary mode of the box means (scipy's ``uniform_filter``).

    Returns
    -------
    dask.array.Array, shape and chunks of ``img``, bool (BS)
        The local mean is ``scipy.ndimage.uniform_filter(img, size)`` of the
        float32 image, and the local SD ``sqrt(uniform_filter(img**2) - mean**2)``.
    """
    img = as_image(img)
    sp = as_spacing(spacing, img.ndim)
    radii = [int(round(v)) for v in voxel_lengths(as_length(window_um, "window_um"), sp, per_plane)]
    if img.ndim == 2:
        radii = [0] + radii
    args = (radii, float(k), float(offset), as_mode(mode))
    depth = radii[-img.ndim:]
    return map_filter(img, depth, _local_block, args, "vf-local-threshold").astype(bool)
