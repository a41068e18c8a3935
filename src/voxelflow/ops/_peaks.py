"""Local maxima of a filter response inside a foreground, as an object table (IN, BS -> LC).

A voxel is a peak when it is in the foreground and no foreground voxel within
a box of ``radius_um`` around it has a larger response. Each chunk is read with
a halo of that box, and reports only the peaks among its own voxels, so every
peak appears once and the table does not depend on chunking.
"""

from __future__ import annotations

import dask.array as da
import numpy as np
import pandas as pd

from voxelflow.errors import InvalidInputError
from voxelflow.ops._filter_args import as_length, as_spacing, voxel_lengths
from voxelflow.ops._filter_map import filter_recipe, filter_region
from voxelflow.ops._halo import Block, iter_blocks, map_regions, padded_region
from voxelflow.ops._kernels import _compile, extremum_axis
from voxelflow.ops._local_threshold import TileStats, tile_thresholds

__all__ = ["find_peaks", "peak_box", "thin_peaks"]


def peak_box(radius_um: float, spacing) -> tuple[int, int, int]:
    """Half-widths in voxels (z, y, x) of the box ``radius_um`` spans; at least one voxel along z.

    Along z at least one neighbouring plane is always compared, so an object
    that spans two planes yields one peak, not one per plane.
    """
    sp = as_spacing(spacing, 3)
    r = [int(round(v)) for v in voxel_lengths(as_length(radius_um, "radius_um", allow_zero=True), sp)]
    r[0] = max(r[0], 1)
    return tuple(r)


#: Boxes of up to this many voxels are checked neighbour by neighbour; larger ones by separable max passes.
DIRECT_BOX_VOXELS = 125


@_compile
def _direct_peaks(data, z0, z1, y0, y1, x0, x1, rz, ry, rx, thr_rows, row_of):
    """Positions (n, 3) in the block, in C order, of the core voxels whose value is finite, above its threshold,
    and not below any voxel of its box (clipped to the block) that is above its own threshold.

    ``thr_rows[row_of[z, y], x]`` is the threshold of voxel (z, y, x) of the block (-inf: none).
    """
    nz, ny, nx = data.shape
    count = 0
    found = np.empty((64, 3), np.int64)
    for z in range(z0, z1):
        za, zb = max(z - rz, 0), min(z + rz + 1, nz)
        for y in range(y0, y1):
            ya, yb = max(y - ry, 0), min(y + ry + 1, ny)
            row, low = data[z, y], thr_rows[row_of[z, y]]
            for x in range(x0, x1):
                v = row[x]
                # NaN and -inf are never above a threshold; +inf is not a peak either
                if not v > low[x] or v == np.inf:
                    continue
                xa, xb = max(x - rx, 0), min(x + rx + 1, nx)
                peak = True
                for zz in range(za, zb):
                    for yy in range(ya, yb):
                        other, other_low = data[zz, yy], thr_rows[row_of[zz, yy]]
                        for xx in range(xa, xb):
                            w = other[xx]
                            if w > v and w > other_low[xx]:
                                peak = False
                                break
                        if not peak:
                            break
                    if not peak:
                        break
                if peak:
                    if count == found.shape[0]:
                        grown = np.empty((2 * count, 3), np.int64)
                        grown[:count] = found
                        found = grown
                    found[count, 0], found[count, 1], found[count, 2] = z, y, x
                    count += 1
    return found[:count]


def _block_thresholds(shape, origin, above):
    """The threshold of every voxel of a block as rows: ``(thr_rows, row_of)`` with ``thr_rows[row_of[z, y], x]``
    the threshold at (z, y, x) of the block (float32; one row of -inf without a threshold)."""
    nz, ny, nx = shape
    if above is None:
        return np.full((1, nx), -np.inf, np.float32), np.zeros((nz, ny), np.int64)
    thr, (ty, tx) = above
    oz, oy, ox = (int(o) for o in origin)
    tile_y = (oy + np.arange(ny)) // ty
    first = int(tile_y[0])
    rows = thr[oz:oz + nz, first:int(tile_y[-1]) + 1][:, :, (ox + np.arange(nx)) // tx]
    row_of = np.arange(nz)[:, None] * rows.shape[1] + (tile_y - first)[None, :]
    return np.ascontiguousarray(rows.reshape(-1, nx), dtype=np.float32), np.ascontiguousarray(row_of, np.int64)


@_compile
def _drop_below(data, thr, z0, y0, x0, ty, tx):
    """Set ``data`` to -inf where it is not above the threshold of its plane and tile (NaN included), in place."""
    nz, ny, nx = data.shape
    low = np.float32(-np.inf)
    for z in range(nz):
        for y in range(ny):
            row, lv = data[z, y], thr[z0 + z, (y0 + y) // ty]
            for x in range(nx):
                if not row[x] > lv[(x0 + x) // tx]:
                    row[x] = low


def _peak_positions(data, core, radii, origin, above):
    """Positions (n, 3) int64 in the block, in C order, of the core voxels that are finite, above their threshold
    and the maximum of their box."""
    if np.prod([2 * r + 1 for r in radii]) <= DIRECT_BOX_VOXELS:
        return _direct_peaks(data, *(v for c in core for v in (c.start, c.stop)), *radii,
                             *_block_thresholds(data.shape, origin, above))
    if above is not None:
        data = data.copy()
        _drop_below(data, above[0], *(int(o) for o in origin), *above[1])
    # the box's maximum at every voxel; "nearest" at the block's clipped edges repeats the edge
    # voxel, which lies in the box anyway, so it equals the maximum over the clipped box
    high = data
    for axis, r in enumerate(radii):
        high = extremum_axis(np.ascontiguousarray(high), r, axis, "nearest", True)
    flags = ((data == high) & np.isfinite(data))[core]
    return np.argwhere(flags) + np.array([c.start for c in core], dtype=np.int64)


def _filtered_peaks_block(padded, recipe, region, origin, start, stop, radii, above):
    """:func:`_peaks_block` of the filter response of ``region`` (3 slices of ``padded``, the block plus the peak
    box's halo), filtered here from its input."""
    return _peaks_block(filter_region(padded, recipe, region), origin, start, stop, radii, above)


def _peaks_block(padded, origin, start, stop, radii, above):
    data = np.ascontiguousarray(padded, dtype=np.float32)
    core = tuple(slice(a - o, b - o) for a, b, o in zip(start, stop, origin))
    local = _peak_positions(data, core, radii, origin, above)
    values = data[tuple(local.T)]
    out = np.empty((1, 1, 1), dtype=object)
    out.flat[0] = (local + np.asarray(origin, dtype=np.int64), values)
    return out


def find_peaks(response, spacing, radius_um: float, foreground=None, *,
               threshold: tuple[TileStats, float] | None = None) -> pd.DataFrame:
    """Local maxima of ``response`` among foreground voxels.

    Parameters
    ----------
    response : dask.array.Array or numpy.ndarray, shape (Z, Y, X), float
        Filter response (e.g. :func:`voxelflow.ops.log_filter`), large at object centres.
    spacing : sequence of 3 float
        Voxel size in um.
    radius_um : float
        Half-width of the comparison box in um (:func:`peak_box`); two peaks
        are at least this far apart along some axis unless they tie.
    foreground : array of bool, shape of ``response``, optional
        Where peaks may lie (e.g. the thresholded response); everywhere when None.
    threshold : tuple (TileStats, float), optional
        ``(stats, k)``: peaks may lie only where the response is above ``mean +
        k * SD`` of its plane/tile, the foreground of
        :func:`voxelflow.ops.tile_threshold` ``(response, stats, k)``, here
        applied inside each block's search (and-ed with ``foreground``).

    Returns
    -------
    pandas.DataFrame (LC)
        One row per peak sorted by position: ``id`` (int64, 1..n), ``z, y, x``
        (float64 voxel coordinates), ``response`` (float64). Equal to the
        voxels where ``scipy.ndimage.maximum_filter(m, size=2 * box + 1,
        mode='nearest') == m`` for ``m = where(foreground, response, -inf)``,
        among the foreground voxels. Equal maxima within a box all count.
    """
    resp = response if isinstance(response, da.Array) else da.asarray(response)
    if resp.ndim != 3 or not np.issubdtype(resp.dtype, np.number):
        raise InvalidInputError(f"response must be a 3-D numeric array, got {resp.ndim} axes of {resp.dtype}")
    radii = peak_box(radius_um, spacing)
    if foreground is not None:
        fg = da.asarray(foreground)
        if fg.shape != resp.shape:
            raise InvalidInputError(f"foreground shape {fg.shape} differs from the response shape {resp.shape}")
        resp = da.where(fg.rechunk(resp.chunks).astype(bool), resp.astype(np.float32), np.float32(-np.inf))
    above = None
    if threshold is not None:
        stats, k = threshold
        above = (tile_thresholds(resp.shape, stats, k), tuple(int(t) for t in stats.tile))
    grid = tuple(len(c) for c in resp.chunks)
    recipe = filter_recipe(resp)
    plan = []
    for block in iter_blocks(resp.chunks):
        lo, hi = padded_region(block, radii, resp.shape)
        if recipe is None:
            plan.append((block.index, (lo, hi), _peaks_block, (lo, block.start, block.stop, radii, above)))
            continue
        # a filter output: each task filters its block plus the box's halo from the filter's input, so no
        # response chunk is held in memory for its neighbours (the voxels are the same, bitwise)
        flo, fhi = padded_region(Block(block.index, lo, hi), recipe.depth, resp.shape)
        region = tuple(slice(a - f, b - f) for a, b, f in zip(lo, hi, flo))
        plan.append((block.index, (flo, fhi), _filtered_peaks_block,
                     (recipe, region, lo, block.start, block.stop, radii, above)))
    source = resp if recipe is None else recipe.img
    per_block = map_regions(source, tuple((1,) * n for n in grid), plan, object, "vf-peaks").compute()
    parts = [p for p in per_block.ravel() if len(p[0])]
    pos = np.concatenate([p[0] for p in parts]) if parts else np.zeros((0, 3), np.int64)
    val = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.float32)
    order = np.lexsort(pos.T[::-1]) if len(pos) else np.zeros(0, np.int64)
    pos, val = pos[order], val[order]
    return pd.DataFrame({
        "id": np.arange(1, len(pos) + 1, dtype=np.int64),
        "z": pos[:, 0].astype(np.float64), "y": pos[:, 1].astype(np.float64), "x": pos[:, 2].astype(np.float64),
        "response": val.astype(np.float64),
    })


def thin_peaks(table: pd.DataFrame, spacing, min_distance_um: float, column: str = "response", *,
               radius_column: str | None = None) -> pd.DataFrame:
    """Keep the peaks that are the strongest within a ball of ``min_distance_um`` (LC -> LC).

    A peak is dropped when another peak closer than ``min_distance_um``
    (Euclidean, in micrometres) has a larger ``column`` value, whether or not
    that one is kept itself; equal values keep both. So the result depends on
    each peak's neighbourhood only, not on an order of processing. This
    removes the second maximum a large or irregular object can show, while
    touching objects farther apart than ``min_distance_um`` keep one peak each.

    Parameters
    ----------
    table : pandas.DataFrame
        Peaks with ``z, y, x`` (voxels) and ``column``.
    spacing : sequence of 3 float
        Voxel size in um.
    min_distance_um : float
    column : str
        Strength of a peak.
    radius_column : str, optional
        A column of per-peak distances in um: a peak is then dropped when a
        stronger one lies closer than ``max(min_distance_um, its own value)``
        (e.g. half the size of the object it sits in).

    Returns
    -------
    pandas.DataFrame
        The kept rows, in their order, with ``id`` renumbered 1..n when present.
    """
    sp = as_spacing(spacing, 3)
    reach = as_length(min_distance_um, "min_distance_um", allow_zero=True)
    if column not in table.columns or not {"z", "y", "x"} <= set(table.columns):
        raise InvalidInputError(f"the peak table needs columns z, y, x and {column!r}")
    if len(table) < 2 or (reach == 0 and radius_column is None):
        return table.reset_index(drop=True)
    from scipy.spatial import cKDTree

    pos = table[["z", "y", "x"]].to_numpy(np.float64) * sp
    val = table[column].to_numpy(np.float64)
    own = np.full(len(table), reach)
    if radius_column is not None:
        if radius_column not in table.columns:
            raise InvalidInputError(f"the peak table has no {radius_column!r} column")
        own = np.maximum(own, np.nan_to_num(table[radius_column].to_numpy(np.float64)))
    pairs = cKDTree(pos).query_pairs(float(own.max()), output_type="ndarray")
    drop = np.zeros(len(table), bool)
    if len(pairs):
        a, b = pairs[:, 0], pairs[:, 1]
        dist = np.linalg.norm(pos[a] - pos[b], axis=1)
        drop[a[(val[a] < val[b]) & (dist < own[a])]] = True
        drop[b[(val[b] < val[a]) & (dist < own[b])]] = True
    out = table[~drop].reset_index(drop=True)
    if "id" in out.columns:
        out["id"] = np.arange(1, len(out) + 1, dtype=np.int64)
    return out
