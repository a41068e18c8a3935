"""Counting in atlas space and on up-sampled labels (LC -> CD, labels -> volumes).

- :func:`atlas_density_map`: objects per atlas block (the atlas voxel or a
  block of micrometres) from their atlas positions, on a grid over the whole
  atlas, NaN where the scan imaged nothing, so maps of different animals (and
  of partial scans) average with ``nanmean``;
- :func:`upsampled_label_volumes`: the volume of every label of a coarse label
  image up-sampled to the scan grid (:func:`voxelflow.ops._atlas_map.upsample_labels`),
  computed from the coarse image alone (each coarse voxel weighs the number of
  scan voxels it covers), so the full-resolution labels are never built;
- :func:`imaged_fraction`: per region (rolled up the hierarchy), the fraction of
  its atlas voxels a scan imaged;
- :func:`value_at`: the value of an atlas image (annotation, hemispheres) at
  atlas positions in micrometres, so objects get their region in atlas space,
  on the atlas's own grid, rather than on labels resampled onto the scan.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from voxelflow.errors import InvalidInputError
from voxelflow.ops._atlas import rollup

__all__ = ["atlas_density_map", "upsampled_label_volumes", "imaged_fraction", "density_grid", "value_at"]


def density_grid(atlas_shape: Sequence[int], resolution: Sequence[float], block_um: float | None = None):
    """Block size (um per axis) and grid shape of an atlas-space density map.

    Parameters
    ----------
    atlas_shape : sequence of 3 int
    resolution : sequence of 3 float
        Atlas voxel size (micrometres).
    block_um : float, optional
        Side of a block in micrometres (the same along every axis); default the atlas voxel.

    Returns
    -------
    block : numpy.ndarray, shape (3,), float64
    shape : tuple of 3 int
        ``ceil(atlas extent / block)``.
    """
    res = np.asarray(resolution, dtype=np.float64)
    block = res.copy() if not block_um else np.full(3, float(block_um))
    if block.shape != (3,) or not np.all(block > 0):
        raise InvalidInputError(f"density block must be positive micrometres, got {block_um!r}")
    extent = np.asarray(atlas_shape, dtype=np.float64) * res
    shape = tuple(int(np.ceil(e / b - 1e-9)) for e, b in zip(extent, block))
    return block, shape


def atlas_density_map(
    atlas_um,
    atlas_shape: Sequence[int],
    resolution: Sequence[float],
    block_um: float | None = None,
    coverage=None,
    sigma_um: float = 0.0,
) -> np.ndarray:
    """Objects per atlas-space block, NaN where the scan imaged none of the block.

    Parameters
    ----------
    atlas_um : array_like, shape (N, 3), float
        Object positions in micrometres from the atlas corner, atlas axes
        (the ``atlas_z_um, atlas_y_um, atlas_x_um`` columns). Positions outside
        the atlas box (or NaN) are not counted.
    atlas_shape : sequence of 3 int
    resolution : sequence of 3 float
        Atlas voxel size (micrometres).
    block_um : float, optional
        Block side in micrometres; default one atlas voxel. Block ``k`` spans
        ``[k b, (k + 1) b)``.
    coverage : numpy.ndarray, shape ``atlas_shape``, bool, optional
        Atlas voxels the scan imaged (:func:`voxelflow.ops._atlas_part.atlas_coverage`);
        blocks without any are NaN. Default: all imaged.
    sigma_um : float
        Gaussian smoothing (micrometres) of the counts; 0 for none. The
        smoothing treats unimaged blocks as empty and leaves them NaN.

    Returns
    -------
    numpy.ndarray, float32, shape ``ceil(atlas extent / block)`` (CD)
    """
    block, shape = density_grid(atlas_shape, resolution, block_um)
    pts = np.asarray(atlas_um, dtype=np.float64).reshape(-1, 3)
    ok = np.all(np.isfinite(pts), axis=1)
    idx = np.floor(pts[ok] / block).astype(np.int64)
    extent = np.asarray(atlas_shape, dtype=np.float64) * np.asarray(resolution, dtype=np.float64)
    inside = np.all((pts[ok] >= 0) & (pts[ok] < extent), axis=1)
    idx = idx[inside]
    counts = np.zeros(shape, dtype=np.float64)
    np.add.at(counts, tuple(idx.T), 1.0)
    if sigma_um and sigma_um > 0:
        counts = ndi.gaussian_filter(counts, float(sigma_um) / block, mode="constant")
    out = counts.astype(np.float32)
    if coverage is not None:
        out[~_block_any(np.asarray(coverage, dtype=bool), resolution, block, shape)] = np.nan
    return out


def _block_any(mask: np.ndarray, resolution, block, shape) -> np.ndarray:
    """Blocks of the density grid holding at least one True atlas voxel (by the voxel centre)."""
    res = np.asarray(resolution, dtype=np.float64)
    out = np.zeros(shape, dtype=bool)
    where = np.argwhere(mask)
    if len(where):
        k = np.minimum(np.floor((where + 0.5) * res / block).astype(np.int64), np.asarray(shape) - 1)
        out[tuple(k.T)] = True
    return out


def upsampled_label_volumes(coarse_labels, factors: Sequence[int], shape: Sequence[int],
                            scale: Sequence[float]) -> pd.Series:
    """Volume (mm^3) of every non-zero label of a coarse label image up-sampled to the scan grid.

    Equal to :func:`voxelflow.ops.region_volumes` of
    ``upsample_labels(coarse_labels, factors, shape)`` at voxel size ``scale``:
    scan voxel ``i`` takes coarse voxel ``floor((i + 0.5) / f) = floor(i / f)``
    (whole factors), so coarse voxel ``k`` covers ``min(f, n - k f)`` scan voxels
    along each axis.

    Parameters
    ----------
    coarse_labels : numpy.ndarray or dask.array.Array, shape ``ceil(shape / factors)``, integer
    factors : sequence of 3 int
    shape : sequence of 3 int
        Scan shape.
    scale : sequence of 3 float
        Scan voxel size (micrometres).

    Returns
    -------
    pandas.Series, float64, indexed by label (int64), name ``volume_mm3``
    """
    coarse = np.asarray(coarse_labels)
    f = [int(k) for k in factors]
    shape = [int(n) for n in shape]
    expect = tuple(-(-n // k) for n, k in zip(shape, f))
    if coarse.shape != expect:
        raise InvalidInputError(f"coarse labels of shape {coarse.shape} do not fit a scan of shape {tuple(shape)} "
                                f"block-reduced by {tuple(f)} (expected {expect})")
    import fastremap

    weights = [np.minimum(k, n - np.arange(m) * k).astype(np.float64) for n, k, m in zip(shape, f, expect)]
    w = weights[0][:, None, None] * weights[1][None, :, None] * weights[2][None, None, :]
    renumbered, mapping = fastremap.renumber(np.ascontiguousarray(coarse), preserve_zero=True, in_place=False)
    voxels = np.bincount(renumbered.ravel(), weights=w.ravel())
    ids = np.zeros(len(voxels), dtype=np.int64)
    for old_id, new_id in mapping.items():
        ids[new_id] = old_id
    series = pd.Series(voxels * float(np.prod(scale)) * 1e-9, index=pd.Index(ids, dtype=np.int64))
    return series[(series.index != 0) & (voxels > 0)].rename("volume_mm3")


def imaged_fraction(annotation, coverage, regions: pd.DataFrame) -> pd.Series:
    """Fraction of each region's atlas voxels (with its descendants) that the scan imaged.

    Parameters
    ----------
    annotation : numpy.ndarray, shape (Z, Y, X), integer
        The whole atlas annotation.
    coverage : numpy.ndarray, same shape, bool
    regions : pandas.DataFrame
        Region table.

    Returns
    -------
    pandas.Series, float64, indexed like ``regions['id']``; NaN for regions without atlas voxels
    """
    ann = np.asarray(annotation).ravel().astype(np.int64)
    cov = np.asarray(coverage, dtype=bool).ravel()
    if ann.shape != cov.shape:
        raise InvalidInputError(f"coverage of {np.asarray(coverage).shape} differs from the annotation "
                                f"{np.asarray(annotation).shape}")
    ids, inverse = np.unique(ann, return_inverse=True)
    total = pd.Series(np.bincount(inverse, minlength=len(ids)).astype(np.float64), index=ids)
    seen = pd.Series(np.bincount(inverse, weights=cov.astype(np.float64), minlength=len(ids)), index=ids)
    total, seen = rollup(total[total.index != 0], regions), rollup(seen[seen.index != 0], regions)
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = seen.to_numpy(dtype=np.float64) / total.to_numpy(dtype=np.float64)
    return pd.Series(np.where(total.to_numpy() > 0, frac, np.nan), index=total.index, name="imaged_fraction")


def value_at(atlas_um, image, resolution: Sequence[float], *, clip: bool = False) -> np.ndarray:
    """The value of an atlas image at atlas positions: voxel ``floor(p / resolution)``.

    This is the atlas's own nearest-neighbour rule (voxel ``i`` spans
    ``[i r, (i + 1) r)``), the rule the annotation defines regions by.

    Parameters
    ----------
    atlas_um : array_like, shape (N, 3), float
        Positions in micrometres from the image's corner, along its axes.
    image : numpy.ndarray, shape (Z, Y, X), integer
        Annotation or hemispheres on the atlas grid.
    resolution : sequence of 3 float
        Atlas voxel size (micrometres).
    clip : bool
        False: positions outside the image (or NaN) get 0. True: finite
        positions outside take the nearest edge voxel (a filled hemisphere
        image then gives a side to every object, by the midline alone).

    Returns
    -------
    numpy.ndarray, shape (N,), int64
    """
    img = np.asarray(image)
    res = np.asarray(resolution, dtype=np.float64)
    if img.ndim != 3 or res.shape != (3,) or not np.all(res > 0):
        raise InvalidInputError(f"value_at needs a 3-D image and 3 positive voxel sizes, got shape {img.shape} "
                                f"and resolution {tuple(resolution)}")
    pts = np.asarray(atlas_um, dtype=np.float64).reshape(-1, 3)
    out = np.zeros(len(pts), dtype=np.int64)
    ok = np.all(np.isfinite(pts), axis=1)
    idx = np.floor(pts[ok] / res)
    top = np.asarray(img.shape) - 1
    if clip:
        idx = np.clip(idx, 0, top)
    inside = np.all((idx >= 0) & (idx <= top), axis=1)
    keep = np.flatnonzero(ok)[inside]
    out[keep] = img[tuple(idx[inside].astype(np.int64).T)]
    return out
