"""Chunked float32 pre-filters for object detection (IN -> IN), sized in micrometres.

Every filter is set by a physical length (``sigma_um``, ``radius_um``) and the
voxel size ``spacing`` (um per voxel, z y x), so a 10 um nucleus gets the same
filter on 5 x 2 x 2 um voxels as on 2 x 1 x 1 um voxels. Each output chunk is
one task that reads its chunk plus a halo as wide as the filter's support
(:mod:`voxelflow.ops._halo`) and runs compiled 1-D passes
(:mod:`voxelflow.ops._kernels`) over it. Halos are clipped at the array border,
where the boundary ``mode`` then applies exactly as on the whole array: the
result equals the ``scipy.ndimage`` filter of the whole array for any chunking,
up to float32 rounding.

``per_plane=True`` filters each z plane on its own (2-D in y, x), as
lightsheet detectors often do when planes differ in brightness.

=========================  ===============================================
function                   whole-array reference
=========================  ===============================================
``gaussian``               ``ndi.gaussian_filter(img, sigma_um / spacing)``
``log_filter``             ``-sigma_um**2 * sum_a ndi.gaussian_filter(img, s, order=e_a) / spacing[a]**2``
``dog_filter``             ``gaussian(sigma) - gaussian(ratio * sigma)``
``white_tophat``           ``ndi.white_tophat(img, size=2 * round(radius_um / spacing) + 1)``
``plane_tile_median``,     per (plane, tile) median of a fixed sub-grid
``remove_plane_background``
``channel_background``     ``img - factor * bg`` or ``img / bg``
=========================  ===============================================
"""

from __future__ import annotations

from collections.abc import Sequence

import dask.array as da
import numpy as np

from voxelflow.errors import InvalidInputError
from voxelflow.ops._halo import iter_blocks, map_regions, padded_region
from voxelflow.ops._kernels import MODES, by_tile, correlate_axis, extremum_axis, gaussian_weights

__all__ = [
    "gaussian",
    "log_filter",
    "dog_filter",
    "white_tophat",
    "plane_tile_median",
    "remove_plane_background",
    "estimate_channel_factor",
    "channel_background",
    "voxel_lengths",
]


# --- argument checks ----------------------------------------------------------------------


def _image(img, name: str = "img") -> da.Array:
    arr = img if isinstance(img, da.Array) else da.asarray(img)
    if arr.ndim not in (2, 3):
        raise InvalidInputError(f"{name} must be a 2-D (y, x) or 3-D (z, y, x) image, got {arr.ndim} axes")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise InvalidInputError(f"{name} must be numeric, got dtype {arr.dtype}")
    return arr


def _spacing(spacing, ndim: int) -> np.ndarray:
    s = np.broadcast_to(np.asarray(spacing, dtype=np.float64), (ndim,)) if np.ndim(spacing) == 0 else np.asarray(
        spacing, dtype=np.float64
    )
    if s.shape != (ndim,) or not np.all(np.isfinite(s)) or (s <= 0).any():
        raise InvalidInputError(f"spacing must be {ndim} positive voxel sizes in um (z, y, x), got {spacing!r}")
    return s


def _length(value, name: str, allow_zero: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name} must be a length in um, got {value!r}") from None
    if not np.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise InvalidInputError(f"{name} must be a {'non-negative' if allow_zero else 'positive'} length in um, "
                                f"got {value!r}")
    return v


def _mode(mode: str) -> str:
    if mode not in MODES:
        raise InvalidInputError(f"mode must be one of {MODES}, got {mode!r}")
    return mode


def voxel_lengths(length_um: float, spacing, per_plane: bool = False) -> np.ndarray:
    """A physical length in voxels along each axis (z first); 0 along z when ``per_plane``.

    Parameters
    ----------
    length_um : float
    spacing : sequence of float, (z, y, x) or (y, x)
    per_plane : bool

    Returns
    -------
    numpy.ndarray of float64, one value per axis
    """
    s = np.asarray(spacing, dtype=np.float64)
    out = float(length_um) / s
    if per_plane and out.size == 3:
        out[0] = 0.0
    return out


# --- the chunked driver -------------------------------------------------------------------


def _map_filter(img: da.Array, depth: Sequence[int], func, args, name: str) -> da.Array:
    """float32 array whose every chunk is ``func(padded float32 block as 3-D)`` cropped to the chunk."""
    depth = tuple(int(d) for d in depth)
    plan = []
    for block in iter_blocks(img.chunks):
        lo, hi = padded_region(block, depth, img.shape)
        core = tuple(slice(a - p, b - p) for a, b, p in zip(block.start, block.stop, lo))
        plan.append((block.index, (lo, hi), _run_block, (func, core, args)))
    return map_regions(img, img.chunks, plan, np.float32, name)


def _run_block(padded, func, core, args):
    data = np.ascontiguousarray(padded, dtype=np.float32)
    flat = data.ndim == 2
    if flat:
        data = data[None]
        core = (slice(0, 1),) + tuple(core)
    out = func(data, *args)[core]
    return np.ascontiguousarray(out[0] if flat else out)


def _as3(values, ndim: int) -> list:
    """Per-axis settings of a 2-D image padded to 3 axes (a dummy z axis that is never filtered)."""
    values = list(values)
    return values if ndim == 3 else [0] + values


# --- Gaussian, LoG, DoG -------------------------------------------------------------------


def _gauss_block(data, sigmas, truncate, mode):
    out = data
    for axis, s in enumerate(sigmas):
        if s > 0:
            out = correlate_axis(out, gaussian_weights(s, 0, truncate), axis, mode)
    return out if out is not data else data.copy()


def _radius(sigma: float, truncate: float) -> int:
    return int(truncate * float(sigma) + 0.5) if sigma > 0 else 0


def _sigmas(sigma_um, spacing, ndim, per_plane) -> np.ndarray:
    s = _spacing(spacing, ndim)
    return voxel_lengths(_length(sigma_um, "sigma_um"), s, per_plane)


def gaussian(img, sigma_um: float, spacing, *, per_plane: bool = False, truncate: float = 4.0,
             mode: str = "reflect") -> da.Array:
    """Gaussian smoothing with a physical standard deviation.

    Parameters
    ----------
    img : dask.array.Array or numpy.ndarray, shape (Z, Y, X) or (Y, X), numeric
        Intensity image (IN).
    sigma_um : float
        Standard deviation in micrometres, the same along every axis.
    spacing : sequence of float
        Voxel size in um per axis (z, y, x).
    per_plane : bool
        Smooth each z plane in (y, x) only.
    truncate : float
        Kernels reach ``int(truncate * sigma_voxels + 0.5)`` voxels, as in scipy.
    mode : {'reflect', 'mirror', 'nearest', 'wrap'}
        Boundary mode at the array border (scipy's meaning).

    Returns
    -------
    dask.array.Array, shape and chunks of ``img``, float32
        ``scipy.ndimage.gaussian_filter(img, sigma_um / spacing, truncate=truncate, mode=mode)``.
    """
    img = _image(img)
    sig = _sigmas(sigma_um, spacing, img.ndim, per_plane)
    depth = [_radius(s, truncate) for s in sig]
    return _map_filter(img, depth, _gauss_block, (_as3(sig, img.ndim), truncate, _mode(mode)), "vf-gaussian")


def _log_block(data, sigmas, spacing, truncate, mode, scale):
    """``scale * sum_a d2/du_a2`` of the Gaussian-smoothed block (u = physical coordinate), in 7 passes for 3-D."""
    axes = [a for a, s in enumerate(sigmas) if s > 0]
    g = {a: gaussian_weights(sigmas[a], 0, truncate) for a in axes}
    d2 = {a: gaussian_weights(sigmas[a], 2, truncate) * (scale / spacing[a] ** 2) for a in axes}
    if not axes:
        return np.zeros_like(data)
    # terms: for each axis a, the 2nd derivative along a and the Gaussian along the others.
    # ``parts`` holds partial sums after the passes along the axes handled so far:
    # ``smooth`` = Gaussian along all of them; ``lap`` = the sum of the terms whose derivative axis is among them.
    first = axes[0]
    smooth = correlate_axis(data, g[first], first, mode)
    lap = correlate_axis(data, d2[first], first, mode)
    for a in axes[1:]:
        new_lap = correlate_axis(lap, g[a], a, mode)
        correlate_axis(smooth, d2[a], a, mode, out=new_lap, accumulate=True)
        if a != axes[-1]:
            smooth = correlate_axis(smooth, g[a], a, mode)
        lap = new_lap
    return lap


def log_filter(img, sigma_um: float, spacing, *, per_plane: bool = False, truncate: float = 4.0,
               mode: str = "reflect") -> da.Array:
    """Scale-normalised negative Laplacian of Gaussian in physical units (bright blobs > 0).

    Parameters
    ----------
    img : dask.array.Array or numpy.ndarray, shape (Z, Y, X) or (Y, X), numeric
        Intensity image (IN).
    sigma_um : float
        Standard deviation of the Gaussian in micrometres. A ball of diameter
        ``d`` responds most at ``sigma_um = d / (2 * sqrt(ndim))``.
    spacing : sequence of float
        Voxel size in um per axis (z, y, x).
    per_plane : bool
        2-D Laplacian of Gaussian of each z plane (no smoothing or derivative along z).
    truncate, mode
        As in :func:`gaussian`.

    Returns
    -------
    dask.array.Array, shape and chunks of ``img``, float32
        ``-sigma_um**2 * sum_a gaussian_filter(img, s, order=e_a) / spacing[a]**2``
        over the filtered axes ``a`` (``e_a`` = 2 on axis ``a``, 0 elsewhere;
        ``s = sigma_um / spacing``): the Laplacian with respect to micrometres,
        so anisotropic voxels do not favour one axis.
    """
    img = _image(img)
    sp = _spacing(spacing, img.ndim)
    sig = _sigmas(sigma_um, sp, img.ndim, per_plane)
    depth = [_radius(s, truncate) for s in sig]
    scale = -float(sigma_um) ** 2
    args = (_as3(sig, img.ndim), _as3(sp, img.ndim), truncate, _mode(mode), scale)
    return _map_filter(img, depth, _log_block, args, "vf-log")


def _dog_block(data, small, large, truncate, mode):
    out = _gauss_block(data, small, truncate, mode)
    out -= _gauss_block(data, large, truncate, mode)
    return out


def dog_filter(img, sigma_um: float, spacing, *, ratio: float = 1.6, per_plane: bool = False,
               truncate: float = 4.0, mode: str = "reflect") -> da.Array:
    """Difference of Gaussians ``G(sigma) - G(ratio * sigma)`` (bright blobs > 0).

    Parameters
    ----------
    img : dask.array.Array or numpy.ndarray, shape (Z, Y, X) or (Y, X), numeric
    sigma_um : float
        The smaller standard deviation in micrometres.
    spacing : sequence of float
        Voxel size in um per axis.
    ratio : float
        Larger sigma over smaller sigma (> 1).
    per_plane, truncate, mode
        As in :func:`gaussian`.

    Returns
    -------
    dask.array.Array, shape and chunks of ``img``, float32
    """
    img = _image(img)
    if not float(ratio) > 1:
        raise InvalidInputError(f"ratio must be > 1, got {ratio!r}")
    small = _sigmas(sigma_um, spacing, img.ndim, per_plane)
    large = small * float(ratio)
    depth = [_radius(s, truncate) for s in large]
    args = (_as3(small, img.ndim), _as3(large, img.ndim), truncate, _mode(mode))
    return _map_filter(img, depth, _dog_block, args, "vf-dog")


# --- white top-hat -------------------------------------------------------------------------


def _tophat_block(data, radii, mode):
    opened = data
    for is_max in (False, True):
        for axis, r in enumerate(radii):
            if r > 0:
                opened = extremum_axis(opened, r, axis, mode, is_max)
    return data - opened


def white_tophat(img, radius_um: float, spacing, *, per_plane: bool = False, mode: str = "reflect") -> da.Array:
    """Image minus its grey opening by a box: keeps bright details smaller than the box.

    Parameters
    ----------
    img : dask.array.Array or numpy.ndarray, shape (Z, Y, X) or (Y, X), numeric
    radius_um : float
        Half-width of the box in micrometres; it spans ``2 * round(radius_um / spacing) + 1``
        voxels per axis (objects wider than that are removed).
    spacing : sequence of float
        Voxel size in um per axis.
    per_plane : bool
        A flat (y, x) box: each plane on its own.
    mode : str
        Boundary mode (scipy's meaning).

    Returns
    -------
    dask.array.Array, shape and chunks of ``img``, float32
        ``scipy.ndimage.white_tophat(img.astype(float32), size=2 * r + 1, mode=mode)``.
    """
    img = _image(img)
    sp = _spacing(spacing, img.ndim)
    radii = [int(round(v)) for v in voxel_lengths(_length(radius_um, "radius_um"), sp, per_plane)]
    depth = [2 * r for r in radii]
    return _map_filter(img, depth, _tophat_block, (_as3(radii, img.ndim), _mode(mode)), "vf-tophat")


# --- per-plane / per-tile median background -------------------------------------------------


def _tile_shape(tile_um, spacing, shape) -> tuple[int, int]:
    """Tile size in voxels (y, x); the whole plane when ``tile_um`` is None."""
    if tile_um is None:
        return int(shape[-2]), int(shape[-1])
    t = _length(tile_um, "tile_um")
    return tuple(max(1, int(round(t / s))) for s in np.asarray(spacing, dtype=np.float64)[-2:])


def _median_block(block, start, tile, step, n_tiles, mask):
    """Sub-grid samples of one chunk grouped by (plane, tile y, tile x): dict key -> values."""
    z0, y0, x0 = start
    # the sub-grid is global (every ``step`` voxels from 0), so samples do not depend on chunking
    ys = np.arange(-(-y0 // step) * step, y0 + block.shape[1], step) - y0
    xs = np.arange(-(-x0 // step) * step, x0 + block.shape[2], step) - x0
    sub = np.asarray(block)[:, ys][:, :, xs].astype(np.float32)
    keep = np.ones(sub.shape, bool) if mask is None else np.asarray(mask)[:, ys][:, :, xs].astype(bool)
    ty = (ys + y0) // tile[0]
    tx = (xs + x0) // tile[1]
    out = {}
    for iz in range(sub.shape[0]):
        for a in np.unique(ty):
            for b in np.unique(tx):
                sel = keep[iz][np.ix_(ty == a, tx == b)]
                vals = sub[iz][np.ix_(ty == a, tx == b)][sel]
                if vals.size:
                    out[(z0 + iz, int(a), int(b))] = vals
    return out


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
    img = _image(img)
    if img.ndim != 3:
        raise InvalidInputError(f"plane_tile_median needs a 3-D (z, y, x) image, got {img.ndim} axes")
    sp = _spacing(spacing, 3)
    if int(step) < 1:
        raise InvalidInputError(f"step must be a positive number of voxels, got {step!r}")
    tile = _tile_shape(tile_um, sp, img.shape)
    n_tiles = (-(-img.shape[1] // tile[0]), -(-img.shape[2] // tile[1]))
    if mask is not None:
        mask = da.asarray(mask)
        if mask.shape != img.shape:
            raise InvalidInputError(f"mask shape {mask.shape} differs from the image shape {img.shape}")
        mask = mask.rechunk(img.chunks)
    parts = _gather_blocks(img, mask, _median_block, (tile, int(step), n_tiles))
    samples: dict = {}
    for part in parts:
        for key, vals in part.items():
            samples.setdefault(key, []).append(vals)
    out = np.full((img.shape[0],) + n_tiles, np.nan)
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
    img = _image(img)
    sp = _spacing(spacing, 3)
    if how not in ("divide", "subtract"):
        raise InvalidInputError(f"how must be 'divide' or 'subtract', got {how!r}")
    tile = _tile_shape(tile_um, sp, img.shape)
    n_tiles = (-(-img.shape[1] // tile[0]), -(-img.shape[2] // tile[1]))
    medians = np.array(medians, dtype=np.float64)
    if medians.shape != (img.shape[0],) + n_tiles:
        raise InvalidInputError(f"medians must have shape {(img.shape[0],) + n_tiles} for this image and tile "
                                f"size, got {medians.shape}")
    medians = _fill_missing(medians)
    starts = [np.concatenate([[0], np.cumsum(c)[:-1]]).astype(int) for c in img.chunks]

    def run(block, block_info=None):
        loc = block_info[0]["chunk-location"]
        start = tuple(int(starts[a][i]) for a, i in enumerate(loc))
        return _background_block(block, start, medians, tile, how, floor)

    return img.map_blocks(run, dtype=np.float32)


def _fill_missing(levels: np.ndarray) -> np.ndarray:
    out = levels.copy()
    overall = np.nanmedian(out) if np.isfinite(out).any() else 1.0
    for z in range(out.shape[0]):
        plane = out[z]
        bad = ~np.isfinite(plane)
        if bad.any():
            plane[bad] = np.nanmedian(plane) if (~bad).any() else overall
    return out


# --- background (autofluorescence) channel -------------------------------------------------


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
    img, bg = _image(img), _image(bg, "bg")
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
    img, bg = _image(img), _image(bg, "bg")
    if img.shape != bg.shape:
        raise InvalidInputError(f"background channel shape {bg.shape} differs from the image shape {img.shape}")
    if how not in ("subtract", "ratio"):
        raise InvalidInputError(f"how must be 'subtract' or 'ratio', got {how!r}")
    bg = bg.rechunk(img.chunks)
    a = img.astype(np.float32)
    b = bg.astype(np.float32)
    if how == "subtract":
        return a - np.float32(factor) * b
    return a / da.maximum(b, np.float32(floor))
