"""Atlas region assignment and per-region counts (LC -> RC).

Geometry convention: the image and the atlas cover the same physical box,
starting at the corner of their first voxel. Voxel ``i`` of an array with voxel
size ``s`` (micrometres) spans ``[i * s, (i + 1) * s)``, so its centre is at
``(i + 0.5) * s``. An object with centroid ``c`` (voxel coordinates of the
image) is at ``(c + 0.5) * object_scale`` and belongs to atlas voxel
``floor((c + 0.5) * object_scale / atlas_scale)``.

Region files are read by :func:`voxelflow.io.atlas_files.read_region_table`.
"""

from __future__ import annotations

from collections.abc import Sequence

import dask
import dask.array as da
import numpy as np
import pandas as pd

from voxelflow.errors import InvalidInputError
from voxelflow.io.regions import region_depths, validate_region_table

__all__ = ["add_regions", "assign_regions", "region_volumes", "rollup", "count_by_region", "RC_COLUMNS"]

RC_COLUMNS = ["id", "acronym", "name", "parent", "count", "count_self", "volume_mm3", "density_per_mm3"]
_AXES = ("z", "y", "x")


def assign_regions(
    lc: pd.DataFrame,
    atlas,
    atlas_scale: Sequence[float],
    object_scale: Sequence[float],
    image_shape: Sequence[int] | None = None,
    *,
    tolerance: float = 1.0,
    block_bytes: int = 2**28,
) -> pd.Series:
    """Region id of the atlas voxel under each object's centroid.

    Parameters
    ----------
    lc : pandas.DataFrame (LC) with columns ``z, y, x`` (voxel coordinates of the image)
    atlas : numpy.ndarray or dask.array.Array, shape (Za, Ya, Xa), integer
        Region id per atlas voxel (0 = outside any region), at its own resolution.
    atlas_scale : sequence of float
        Atlas voxel size per axis (micrometres).
    object_scale : sequence of float
        Voxel size of the image the centroids refer to (micrometres).
    image_shape : sequence of int, optional
        Shape of that image. When given, the physical extents of the image and
        the atlas must agree within ``tolerance`` atlas voxels on every axis.
    tolerance : float
        Allowed extent difference in atlas voxels (default 1: an atlas made by
        down-sampling the image with a partial last block still fits).
    block_bytes : int
        A dask ``atlas`` (e.g. labels up-sampled lazily to the image grid) is
        read only in the chunks holding centroids, in groups of chunks of at
        most this many bytes, so memory stays bounded whatever its size.

    Returns
    -------
    pandas.Series, int64, index of ``lc``, name ``region_id``
        0 for centroids that fall outside the atlas array.

    Raises
    ------
    InvalidInputError
        On mismatched axes, non-positive scales, a non-integer atlas or
        extents that differ by more than ``tolerance``.
    """
    if not isinstance(atlas, da.Array):
        atlas = np.asarray(atlas)
    ndim = atlas.ndim
    atlas_scale = _scale(atlas_scale, ndim, "atlas_scale")
    object_scale = _scale(object_scale, ndim, "object_scale")
    if not np.issubdtype(atlas.dtype, np.integer):
        raise InvalidInputError(f"atlas must hold integer region ids, got dtype {atlas.dtype}")
    if image_shape is not None:
        _check_extent(tuple(image_shape), object_scale, atlas.shape, atlas_scale, tolerance)
    axes = list(_AXES[-ndim:])
    missing = [a for a in axes if a not in lc.columns]
    if missing:
        raise InvalidInputError(f"object table lacks centroid columns {missing}")
    pos = lc[axes].to_numpy(dtype=np.float64).reshape(len(lc), ndim)
    idx = np.floor((pos + 0.5) * object_scale / atlas_scale).astype(np.int64)
    inside = np.all((idx >= 0) & (idx < np.asarray(atlas.shape)), axis=1)
    region = np.zeros(len(lc), dtype=np.int64)
    if inside.any():
        where = tuple(idx[inside].T)
        region[inside] = _lookup_chunked(atlas, idx[inside], block_bytes) if isinstance(atlas, da.Array) \
            else atlas[where]
    return pd.Series(region, index=lc.index, name="region_id")


def add_regions(
    lc: pd.DataFrame,
    atlas,
    atlas_scale: Sequence[float],
    object_scale: Sequence[float],
    regions: pd.DataFrame,
    image_shape: Sequence[int] | None = None,
) -> pd.DataFrame:
    """The object table with ``region_id`` and ``region_acronym`` of the atlas voxel under each centroid.

    Parameters
    ----------
    lc, atlas, atlas_scale, object_scale, image_shape
        As in :func:`assign_regions`.
    regions : pandas.DataFrame
        Region table (``id``, ``acronym``, ...); ids missing from it get an empty acronym.

    Returns
    -------
    pandas.DataFrame
        A copy of ``lc`` with the two columns added.
    """
    rid = assign_regions(lc, atlas, atlas_scale, object_scale, image_shape=image_shape)
    acronyms = dict(zip(regions["id"], regions["acronym"]))
    out = lc.assign(region_id=rid.to_numpy())
    out["region_acronym"] = [acronyms.get(int(r), "") for r in out["region_id"]]
    return out


def region_volumes(atlas, atlas_scale: Sequence[float]) -> pd.Series:
    """Volume in mm^3 of the voxels labelled with each id (0 excluded, no roll-up).

    Parameters
    ----------
    atlas : numpy.ndarray or dask.array.Array, integer
    atlas_scale : sequence of float
        Voxel size per axis in micrometres.

    Returns
    -------
    pandas.Series, float64, indexed by region id (int64)
    """
    ndim = atlas.ndim
    atlas_scale = _scale(atlas_scale, ndim, "atlas_scale")
    if isinstance(atlas, da.Array):
        parts = [dask.delayed(_unique_counts)(b) for b in atlas.to_delayed().ravel()]
        counts = pd.concat(dask.compute(*parts)).groupby(level=0).sum()
    else:
        counts = _unique_counts(np.asarray(atlas))
    counts = counts[counts.index != 0]
    voxel_mm3 = float(np.prod(atlas_scale)) * 1e-9
    return (counts.astype(np.float64) * voxel_mm3).rename("volume_mm3")


def rollup(values: pd.Series, regions: pd.DataFrame) -> pd.Series:
    """Sum ``values`` of each region and all of its descendants.

    Parameters
    ----------
    values : pandas.Series indexed by region id (ids absent from it count as 0)
    regions : pandas.DataFrame region table (id, acronym, name, parent)

    Returns
    -------
    pandas.Series indexed like ``regions['id']``
    """
    depth = region_depths(regions)
    ids = regions["id"].to_numpy(dtype=np.int64)
    pos = pd.Series(np.arange(len(ids)), index=ids)
    parent_pos = pos.reindex(regions["parent"].to_numpy()).fillna(-1).to_numpy(dtype=np.int64)
    total = values.reindex(ids).fillna(0).to_numpy()
    total = total.astype(np.result_type(total.dtype, np.int64), copy=True)
    # children before parents: every level adds its (already complete) totals one level up
    for d in range(int(depth.max(initial=0)), 0, -1):
        at = np.flatnonzero(depth == d)
        np.add.at(total, parent_pos[at], total[at])
    return pd.Series(total, index=pd.Index(ids, name="id"))


def count_by_region(
    lc_with_regions: pd.DataFrame,
    atlas,
    atlas_scale: Sequence[float],
    regions: pd.DataFrame,
    *,
    region_column: str = "region_id",
    unknown: str = "error",
    volumes: pd.Series | None = None,
) -> pd.DataFrame:
    """Per-region object counts, volumes and densities, rolled up the hierarchy (RC).

    Parameters
    ----------
    lc_with_regions : pandas.DataFrame (LC) with a ``region_column`` of region ids
        (e.g. from :func:`assign_regions`); rows with region 0 (outside the
        atlas) are not counted.
    atlas : numpy.ndarray or dask.array.Array, integer
        The annotation the volumes are measured on.
    atlas_scale : sequence of float
        Atlas voxel size per axis in micrometres.
    regions : pandas.DataFrame
        Region table (id, acronym, name, parent).
    region_column : str
        Column of ``lc_with_regions`` holding the region ids.
    unknown : {'error', 'ignore'}
        What to do with non-zero ids, in the objects or the atlas, that the
        region table does not list.
    volumes : pandas.Series, optional
        Volume (mm^3) of every atlas id, measured elsewhere (e.g. by
        :func:`voxelflow.ops._atlas_space.upsampled_label_volumes` for labels
        up-sampled lazily); ``atlas`` and ``atlas_scale`` are then not read.

    Returns
    -------
    pandas.DataFrame (RC), one row per region of ``regions`` in table order
        ``id, acronym, name, parent`` (int64/str/str/int64); ``count`` (int64,
        objects in the region or any descendant); ``count_self`` (int64,
        objects assigned to exactly this id); ``volume_mm3`` (float64, atlas
        voxels of the region and its descendants times the voxel volume);
        ``density_per_mm3`` (float64, ``count / volume_mm3``, NaN where the
        volume is 0).

    Raises
    ------
    InvalidInputError
        On a malformed region table, a missing column or, with
        ``unknown='error'``, ids the table does not list.
    """
    if unknown not in ("error", "ignore"):
        raise InvalidInputError(f"unknown must be 'error' or 'ignore', got {unknown!r}")
    regions = validate_region_table(regions)
    if region_column not in lc_with_regions.columns:
        raise InvalidInputError(f"object table lacks the region column {region_column!r}")
    assigned = lc_with_regions[region_column].to_numpy(dtype=np.int64)
    count_self = pd.Series(assigned[assigned != 0]).value_counts()
    if volumes is None:
        volumes = region_volumes(atlas, atlas_scale)
    known = pd.Index(regions["id"])
    if unknown == "error":
        for what, ids in (("objects", count_self.index), ("atlas", volumes.index)):
            stray = ids.difference(known)
            if len(stray):
                raise InvalidInputError(
                    f"{what} use region ids {sorted(stray.tolist())[:10]} that are not in the region table"
                )
    out = regions.copy()
    out["count"] = rollup(count_self, regions).to_numpy(dtype=np.int64)
    out["count_self"] = count_self.reindex(known).fillna(0).to_numpy(dtype=np.int64)
    out["volume_mm3"] = rollup(volumes, regions).to_numpy(dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        density = out["count"].to_numpy(dtype=np.float64) / out["volume_mm3"].to_numpy()
    out["density_per_mm3"] = np.where(out["volume_mm3"].to_numpy() > 0, density, np.nan)
    return out[RC_COLUMNS]


def _lookup_chunked(atlas: da.Array, idx: np.ndarray, block_bytes: int) -> np.ndarray:
    """``atlas[idx]`` (``idx`` of shape (N, ndim), inside the array) computing only the chunks hit, a group at a time."""
    starts = [np.cumsum((0,) + tuple(c)) for c in atlas.chunks]
    block = np.stack([np.searchsorted(b, idx[:, k], side="right") - 1 for k, b in enumerate(starts)], axis=1)
    keys, inverse = np.unique(block, axis=0, return_inverse=True)
    order = np.argsort(inverse.reshape(-1), kind="stable")
    bounds = np.searchsorted(inverse.reshape(-1)[order], np.arange(len(keys) + 1))
    chunk_bytes = int(np.prod(atlas.chunksize)) * atlas.dtype.itemsize
    per_group = max(1, int(block_bytes) // max(chunk_bytes, 1))
    out = np.zeros(len(idx), dtype=atlas.dtype)
    for g0 in range(0, len(keys), per_group):
        group = range(g0, min(g0 + per_group, len(keys)))
        picks, parts = [], []
        for j in group:
            sel = order[bounds[j]:bounds[j + 1]]
            local = idx[sel] - np.asarray([starts[k][keys[j][k]] for k in range(idx.shape[1])])
            picks.append(sel)
            parts.append(atlas.blocks[tuple(keys[j])].vindex[tuple(local.T)])
        for sel, values in zip(picks, dask.compute(*parts)):
            out[sel] = values
    return out


def _unique_counts(block: np.ndarray) -> pd.Series:
    import fastremap

    values, counts = fastremap.unique(np.ascontiguousarray(block), return_counts=True)
    return pd.Series(np.asarray(counts, dtype=np.int64), index=np.asarray(values, dtype=np.int64))


def _scale(scale, ndim: int, name: str) -> np.ndarray:
    try:
        out = np.asarray(scale, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name} must be {ndim} numbers, got {scale!r}") from None
    if out.shape != (ndim,) or not np.all(np.isfinite(out)) or np.any(out <= 0):
        raise InvalidInputError(f"{name} must be {ndim} positive numbers (micrometres), got {scale!r}")
    return out


def _check_extent(image_shape, object_scale, atlas_shape, atlas_scale, tolerance: float) -> None:
    if len(image_shape) != len(atlas_shape):
        raise InvalidInputError(f"image shape {image_shape} and atlas shape {atlas_shape} have different axes")
    image_extent = np.asarray(image_shape) * object_scale
    atlas_extent = np.asarray(atlas_shape) * atlas_scale
    off = np.abs(image_extent - atlas_extent) > tolerance * atlas_scale
    if off.any():
        raise InvalidInputError(
            f"atlas extent {atlas_extent.tolist()} um differs from the image extent {image_extent.tolist()} um "
            f"by more than {tolerance} atlas voxel(s) on axes {np.flatnonzero(off).tolist()}; "
            "check atlas_scale / object_scale and the image level"
        )
