"""Blob detection (IN -> LC) by scale-normalised Laplacian / difference of Gaussians.

For every scale ``s`` the image is filtered into a response that is large and
positive at the centre of a bright blob of radius ~ ``s * sqrt(ndim)``:

- ``'log'``: ``-s**2 * gaussian_laplace(img, s)``;
- ``'dog'``: ``(gaussian_filter(img, s) - gaussian_filter(img, 1.6 * s)) / 0.6``,
  an approximation of the same quantity.

The response is maximised over scales; a voxel is a blob centre when that
maximum exceeds ``threshold`` and is the largest value within ``min_distance``
voxels (a cube). Each chunk is processed with a halo wide enough for the
filters and the maximum search, and reports only centres inside its own
voxels, so every blob appears once and the table does not depend on chunking.
"""

from __future__ import annotations

import math

import dask.array as da
import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from voxelflow.errors import InvalidInputError
from voxelflow.ops._halo import iter_blocks, map_regions, padded_region

__all__ = ["blob_detect", "BLOB_METHODS"]

BLOB_METHODS = ("log", "dog")
_DOG_RATIO = 1.6


def blob_detect(
    img,
    min_sigma: float = 1.0,
    max_sigma: float = 3.0,
    num_sigma: int = 3,
    *,
    threshold: float,
    method: str = "log",
    min_distance: int | None = None,
    truncate: float = 4.0,
) -> pd.DataFrame:
    """Find bright blobs in a 2-D or 3-D image, each reported once.

    Parameters
    ----------
    img : dask.array.Array or numpy.ndarray, shape (Z, Y, X) or (Y, X), any numeric dtype
        Intensity image (IN). Not rescaled: ``threshold`` is in units of the
        scale-normalised response of ``img`` itself: for a Gaussian blob of
        amplitude ``A`` and width ``w`` the LoG response at its centre, at scale
        ``s = w``, is ``A * ndim / 2**(ndim / 2 + 1)`` (0.53 A in 3-D).
    min_sigma, max_sigma : float
        Smallest and largest Gaussian scale in voxels.
    num_sigma : int
        Number of scales, evenly spaced between ``min_sigma`` and ``max_sigma``.
    threshold : float
        Minimum response of a reported blob (strictly greater). Required: no
        default suits every image, and too low a value reports every noise peak.
    method : {'log', 'dog'}
        Laplacian of Gaussian, or its difference-of-Gaussians approximation.
    min_distance : int, optional
        Half-width of the cube in which a centre must be the maximum; defaults
        to ``max(1, round(min_sigma))``.
    truncate : float
        Gaussian kernels are cut at ``truncate`` standard deviations (scipy).

    Returns
    -------
    pandas.DataFrame (LC)
        One row per blob, sorted by position, columns ``id`` (int64, 1..n),
        ``z, y, x`` (float64 voxel coordinates of the centre; no ``z`` in 2-D),
        ``z0, y0, x0, z1, y1, x1`` (int64 half-open box of the disc/ball of
        radius ``radius`` clipped to the image), ``sigma``, ``radius``
        (``sigma * sqrt(ndim)``), ``response``, ``intensity`` (``img`` at the
        centre) (float64), and ``touches_border`` (bool: that box reaches the
        image border).

    Notes
    -----
    Equal to a single-chunk run on the whole image for any chunking: the halo
    is ``ceil(truncate * largest sigma) + min_distance`` voxels, enough for every
    response value the maximum search reads around a centre to be computed
    exactly as on the whole image (at the image border scipy's ``reflect``
    mode applies in both cases, because halos are clipped, not padded). A
    plateau of exactly equal maxima yields one row per plateau voxel.
    """
    img = da.asarray(img)
    if img.ndim not in (2, 3):
        raise InvalidInputError(f"blob_detect needs a 2-D or 3-D image, got {img.ndim} axes")
    if not (np.issubdtype(img.dtype, np.number) or img.dtype == bool):
        raise InvalidInputError(f"img must be numeric, got dtype {img.dtype}")
    if method not in BLOB_METHODS:
        raise InvalidInputError(f"method must be one of {BLOB_METHODS}, got {method!r}")
    if not (0 < min_sigma <= max_sigma) or int(num_sigma) < 1:
        raise InvalidInputError(
            f"need 0 < min_sigma <= max_sigma and num_sigma >= 1, got {min_sigma}, {max_sigma}, {num_sigma}"
        )
    sigmas = np.linspace(min_sigma, max_sigma, int(num_sigma)) if num_sigma > 1 else np.array([float(min_sigma)])
    if min_distance is None:
        min_distance = max(1, int(round(min_sigma)))
    if int(min_distance) < 1:
        raise InvalidInputError(f"min_distance must be >= 1, got {min_distance!r}")
    widest = sigmas[-1] * (_DOG_RATIO if method == "dog" else 1.0)
    depth = (int(truncate * widest + 0.5) + int(min_distance),) * img.ndim

    grid = tuple(len(c) for c in img.chunks)
    plan = []
    for block in iter_blocks(img.chunks):
        lo, hi = padded_region(block, depth, img.shape)
        args = (lo, block.start, block.stop, sigmas, threshold, method, int(min_distance), truncate, img.ndim)
        plan.append((block.index, (lo, hi), _detect_block, args))
    per_block = map_regions(img, tuple((1,) * n for n in grid), plan, object, "blob-detect")
    tables = [t for t in per_block.compute().ravel() if len(t)]
    axes = ("z", "y", "x")[-img.ndim:]
    if not tables:
        return _table(np.zeros((0, img.ndim)), np.zeros(0), np.zeros(0), np.zeros(0), img.shape, axes)
    found = pd.concat(tables, ignore_index=True)
    pos = found[list(axes)].to_numpy()
    return _table(pos, found["sigma"].to_numpy(), found["response"].to_numpy(),
                  found["intensity"].to_numpy(), img.shape, axes)


def _responses(img: np.ndarray, sigmas, method: str, truncate: float):
    """Scale-normalised response, maximised over ``sigmas``, and the winning sigma."""
    best = np.full(img.shape, -np.inf)
    best_sigma = np.zeros(img.shape)
    for s in sigmas:
        if method == "log":
            r = -(s**2) * ndi.gaussian_laplace(img, s, truncate=truncate)
        else:
            r = (ndi.gaussian_filter(img, s, truncate=truncate)
                 - ndi.gaussian_filter(img, _DOG_RATIO * s, truncate=truncate)) / (_DOG_RATIO - 1)
        better = r > best
        best[better] = r[better]
        best_sigma[better] = s
    return best, best_sigma


def _detect_block(padded, origin, start, stop, sigmas, threshold, method, min_distance, truncate, ndim):
    axes = ("z", "y", "x")[-ndim:]
    data = np.asarray(padded, dtype=np.float64)
    response, sigma = _responses(data, sigmas, method, truncate)
    peak = response == ndi.maximum_filter(response, size=2 * min_distance + 1, mode="nearest")
    peak &= response > threshold
    core = tuple(slice(a - o, b - o) for a, b, o in zip(start, stop, origin))
    local = np.argwhere(peak[core]) + np.array([a - o for a, o in zip(start, origin)])
    where = tuple(local.T)
    table = pd.DataFrame(local + np.asarray(origin), columns=list(axes), dtype=np.float64)
    table["sigma"] = sigma[where]
    table["response"] = response[where]
    table["intensity"] = data[where]
    out = np.empty((1,) * ndim, dtype=object)
    out.flat[0] = table
    return out


def _table(pos, sigma, response, intensity, shape, axes) -> pd.DataFrame:
    order = np.lexsort(pos.T[::-1]) if len(pos) else np.zeros(0, dtype=np.int64)
    pos, sigma, response, intensity = pos[order], sigma[order], response[order], intensity[order]
    radius = sigma * math.sqrt(len(axes))
    cols = {"id": np.arange(1, len(pos) + 1, dtype=np.int64)}
    for k, a in enumerate(axes):
        cols[a] = pos[:, k].astype(np.float64)
    lo = np.maximum(np.floor(pos - radius[:, None]), 0).astype(np.int64)
    hi = np.minimum(np.floor(pos + radius[:, None]) + 1, np.asarray(shape)).astype(np.int64)
    for k, a in enumerate(axes):
        cols[f"{a}0"] = lo[:, k]
    for k, a in enumerate(axes):
        cols[f"{a}1"] = hi[:, k]
    cols["sigma"] = sigma.astype(np.float64)
    cols["radius"] = radius.astype(np.float64)
    cols["response"] = response.astype(np.float64)
    cols["intensity"] = intensity.astype(np.float64)
    cols["touches_border"] = ((lo == 0) | (hi == np.asarray(shape))).any(axis=1) if len(pos) else np.zeros(0, bool)
    return pd.DataFrame(cols)
