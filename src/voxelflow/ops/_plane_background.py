"""Per-plane / per-tile background levels of a lightsheet scan and their removal (IN -> IN).

Lightsheet scans are acquired in tiles and planes whose brightness differs in
steps. :func:`plane_tile_median` measures the level of every plane (and tile)
from a fixed sub-grid of voxels, and :func:`remove_plane_background` divides
(or subtracts) it out chunk by chunk.
"""

from __future__ import annotations

import dask.array as da
import numpy as np

from voxelflow.errors import InvalidInputError
from voxelflow.ops._filter_args import as_image, as_spacing, tile_shape
from voxelflow.ops._halo import iter_blocks
from voxelflow.ops._kernels import by_tile

__all__ = ["plane_tile_median", "remove_plane_background", "checked_levels", "median_samples", "medians_of_samples"]


def median_samples(block, start, tile, step, n_tiles, mask):
    """Sub-grid samples of one chunk grouped by (plane, tile y, tile x): dict key -> float32 values."""
    z0, y0, x0 = start
    # the sub-grid is global (every ``step`` voxels from 0), so samples do not depend on chunking
    fy, fx = -(-y0 // step) * step - y0, -(-x0 // step) * step - x0
    sub = np.asarray(block)[:, fy::step, fx::step].astype(np.float32)
    keep = None if mask is None else np.asarray(mask)[:, fy::step, fx::step].astype(bool)
    out = {}
    for a, ya, yb in _tile_runs(np.arange(fy, block.shape[1], step) + y0, tile[0]):
        for b, xa, xb in _tile_runs(np.arange(fx, block.shape[2], step) + x0, tile[1]):
            part = sub[:, ya:yb, xa:xb]
            for iz in range(sub.shape[0]):
                vals = part[iz].ravel() if keep is None else part[iz][keep[iz, ya:yb, xa:xb]]
                if vals.size:
                    out[(z0 + iz, a, b)] = vals
    return out


def _tile_runs(pos: np.ndarray, tile: int):
    """(tile index, first, stop) of the runs of sampled positions ``pos`` (increasing) that share a tile."""
    if not len(pos):
        return []
    t = pos // tile
    cuts = np.flatnonzero(np.diff(t)) + 1
    edges = np.concatenate([[0], cuts, [len(t)]]).astype(int)
    return [(int(t[a]), int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def plane_tile_median(img, spacing, *, tile_um: float | None = None, step: int = 4, mask=None) -> np.ndarray:
    """Median intensity of every z plane (and every tile of it), from a fixed sub-grid of voxels.

    Lightsheet scans are acquired in tiles and planes whose brightness differs
    in steps; this is the background level of each. The median is taken over
    the voxels ``y % step == 0 and x % step == 0`` of the plane/tile (inside
    ``mask`` when given), so it costs one read of the scan and does not depend
    on chunking.

    Parameters
    ----------
    img : dask.array.Array or numpy.ndarray, shape (Z, Y, X), numeric
    spacing : sequence of 3 float
        Voxel size in um.
    tile_um : float, optional
        Tile edge length in um (square tiles from voxel 0); None = whole planes.
    step : int
        Sub-grid spacing in voxels along y and x.
    mask : array of bool, shape of ``img``, optional
        Only voxels where True are used (e.g. tissue).

    Returns
    -------
    numpy.ndarray, shape (Z, n_tiles_y, n_tiles_x), float64
        NaN where a plane/tile has no sampled voxel.
    """
    img = as_image(img)
    if img.ndim != 3:
        raise InvalidInputError(f"plane_tile_median needs a 3-D (z, y, x) image, got {img.ndim} axes")
    sp = as_spacing(spacing, 3)
    if int(step) < 1:
        raise InvalidInputError(f"step must be a positive number of voxels, got {step!r}")
    tile = tile_shape(tile_um, sp, img.shape)
    n_tiles = (-(-img.shape[1] // tile[0]), -(-img.shape[2] // tile[1]))
    if mask is not None:
        mask = da.asarray(mask)
        if mask.shape != img.shape:
            raise InvalidInputError(f"mask shape {mask.shape} differs from the image shape {img.shape}")
        mask = mask.rechunk(img.chunks)
    parts = _gather_blocks(img, mask, median_samples, (tile, int(step), n_tiles))
    return medians_of_samples(parts, (img.shape[0],) + n_tiles)


def medians_of_samples(parts, shape) -> np.ndarray:
    """The median of every (plane, tile y, tile x) from the per-chunk samples of :func:`median_samples`.

    Returns an array of ``shape`` (Z, n_tiles_y, n_tiles_x), float64, NaN where no sample.
    """
    samples: dict = {}
    for part in parts:
        for key, vals in part.items():
            samples.setdefault(key, []).append(vals)
    out = np.full(shape, np.nan)
    for (z, a, b), vals in samples.items():
        out[z, a, b] = float(np.median(np.concatenate(vals)))
    return out


def _gather_blocks(img: da.Array, mask, func, args) -> list:
    """``func(block, start, *args, mask_block)`` for every chunk, computed in one graph."""
    import dask

    # one graph for all chunks (to_delayed), so the upstream work of a chunk is shared, not redone per task
    parts = img.to_delayed()
    masks = None if mask is None else mask.to_delayed()
    tasks = []
    for block in iter_blocks(img.chunks):
        m = None if masks is None else masks[block.index]
        tasks.append(dask.delayed(func)(parts[block.index], block.start, *args, m))
    return list(dask.compute(*tasks))


def _background_block(block, start, medians, tile, how, floor):
    return by_tile(np.asarray(block), medians, start, tile, "divide" if how == "divide" else "subtract", floor)


def remove_plane_background(img, medians, spacing, *, tile_um: float | None = None, how: str = "divide",
                            floor: float = 1.0) -> da.Array:
    """Remove a per-plane / per-tile background level (e.g. from :func:`plane_tile_median`).

    Parameters
    ----------
    img : dask.array.Array or numpy.ndarray, shape (Z, Y, X), numeric
    medians : numpy.ndarray, shape (Z, n_tiles_y, n_tiles_x)
        Background level per plane and tile; NaN entries are filled with the
        median of the plane (or of all planes).
    spacing : sequence of 3 float
    tile_um : float, optional
        The tile size the levels were computed with.
    how : {'divide', 'subtract'}
        ``img / level`` (removes multiplicative brightness steps; 1 = background)
        or ``img - level``.
    floor : float
        Levels below ``floor`` are raised to it before dividing.

    Returns
    -------
    dask.array.Array, shape and chunks of ``img``, float32
    """
    img = as_image(img)
    sp = as_spacing(spacing, 3)
    if how not in ("divide", "subtract"):
        raise InvalidInputError(f"how must be 'divide' or 'subtract', got {how!r}")
    tile = tile_shape(tile_um, sp, img.shape)
    medians = checked_levels(medians, img.shape, tile)
    starts = [np.concatenate([[0], np.cumsum(c)[:-1]]).astype(int) for c in img.chunks]

    def run(block, block_info=None):
        loc = block_info[0]["chunk-location"]
        start = tuple(int(starts[a][i]) for a, i in enumerate(loc))
        return _background_block(block, start, medians, tile, how, floor)

    return img.map_blocks(run, dtype=np.float32)


def checked_levels(levels, shape, tile, name: str = "medians") -> np.ndarray:
    """Levels of every plane and tile of an image of ``shape`` (Z, Y, X), NaN filled: (Z, ny, nx), float64.

    Raises
    ------
    InvalidInputError
        If ``levels`` does not have one value per plane and tile of ``tile`` (y, x) voxels.
    """
    n_tiles = (-(-shape[1] // tile[0]), -(-shape[2] // tile[1]))
    levels = np.array(levels, dtype=np.float64)
    if levels.shape != (shape[0],) + n_tiles:
        raise InvalidInputError(f"{name} must have shape {(shape[0],) + n_tiles} for this image and tile "
                                f"size, got {levels.shape}")
    return _fill_missing(levels)


def _fill_missing(levels: np.ndarray) -> np.ndarray:
    out = levels.copy()
    overall = np.nanmedian(out) if np.isfinite(out).any() else 1.0
    for z in range(out.shape[0]):
        plane = out[z]
        bad = ~np.isfinite(plane)
        if bad.any():
            plane[bad] = np.nanmedian(plane) if (~bad).any() else overall
    return out

