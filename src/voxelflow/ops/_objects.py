"""Per-object statistics (LC table) from per-chunk statistics, without a relabelled volume."""

from __future__ import annotations

import dask.array as da
import fastremap
import numpy as np
import pandas as pd
from dask.base import tokenize
from dask.delayed import Delayed
from dask.highlevelgraph import HighLevelGraph

from voxelflow.errors import InvalidInputError
from voxelflow.ops._ccpass import (
    as_dask_image,
    check_connectivity,
    chunk_pass,
    cull,
)
from voxelflow.ops._inline import inline_into
from voxelflow.ops._merge import final_ids
from voxelflow.ops._resume import pass_results, saved
from voxelflow.ops._stats import ChunkStats, chunk_stats

_AXES = {2: ("y", "x"), 3: ("z", "y", "x")}


def object_table(
    os_or_bs, intensity=None, connectivity: int = 1, *, kind: str = "auto"
) -> pd.DataFrame:
    """One row per object: centroid, size, bounding box, intensity, border contact.

    Computed from per-chunk statistics merged across chunks; no relabelled
    volume is written or held in memory.

    Parameters
    ----------
    os_or_bs : dask.array.Array or numpy.ndarray, shape (Z, Y, X) or (Y, X)
        Either an ordinal segmentation (OS: integer labels, 0 = background,
        globally unique ids; an object is the set of voxels with one id) or a
        binary segmentation (BS: non-zero = foreground), which is labelled
        exactly as :func:`voxelflow.ops._label.label` would, in the same single
        pass that gathers the statistics. Ids then equal the ids ``label``
        gives for the same array, chunking and connectivity.
    intensity : dask.array.Array or numpy.ndarray, optional
        Intensity image (IN) of the same shape; rechunked to match.
    connectivity : int, default 1
        Connectivity used to label a BS (1 .. ndim, as in
        ``scipy.ndimage.generate_binary_structure``); ignored for an OS.
    kind : {'auto', 'bs', 'os'}
        How to read ``os_or_bs``. ``'auto'``: bool and uint8 arrays are BS,
        other integer arrays OS, float arrays BS.

    Returns
    -------
    pandas.DataFrame
        LC table sorted by ``id``, columns in this order: ``id`` (int64),
        ``z, y, x`` (float64 centroid in voxels of the whole array), ``voxels``
        (int64), ``z0, y0, x0, z1, y1, x1`` (int64 half-open bounding box),
        ``intensity_sum, intensity_mean, intensity_max`` (float64, only with
        ``intensity``), ``touches_border`` (bool: a voxel lies on the first or
        last index of some axis). For 2D input the ``z`` columns are absent.

    Raises
    ------
    voxelflow.errors.InvalidInputError
        Bad array type, shape, dtype, ``connectivity`` or ``kind``.

    Examples
    --------
    >>> import numpy as np
    >>> bs = np.zeros((4, 4), bool); bs[1:3, 1] = True
    >>> object_table(bs)[["id", "y", "x", "voxels"]].to_dict("records")
    [{'id': 1, 'y': 1.5, 'x': 1.0, 'voxels': 2}]
    """
    arr = as_dask_image(os_or_bs, "os_or_bs")
    if kind not in ("auto", "bs", "os"):
        raise InvalidInputError(f"kind must be 'auto', 'bs' or 'os', got {kind!r}")
    if kind == "auto":
        kind = "os" if arr.dtype.kind in "iu" and arr.dtype != np.uint8 else "bs"
    if kind == "os" and arr.dtype.kind not in "iu":
        raise InvalidInputError(f"an OS must have an integer dtype, got {arr.dtype}")
    connectivity = check_connectivity(connectivity, arr.ndim)
    if intensity is not None:
        intensity = as_dask_image(intensity, "intensity")
        if intensity.shape != arr.shape:
            raise InvalidInputError(
                f"intensity shape {intensity.shape} differs from os_or_bs shape {arr.shape}"
            )
        intensity = intensity.rechunk(arr.chunks)
    if arr.size == 0:
        return _table(np.empty(0, np.int64), _concat([], arr.ndim, intensity is not None), arr.ndim)
    if kind == "bs":
        return bs_pass_table(chunk_pass(arr, connectivity, want_stats=True, intensity=intensity), arr.ndim,
                             intensity is not None)
    chunk_ids, stats = _os_pass(arr, intensity)
    rows = _concat(stats, arr.ndim, intensity is not None)
    ids, group = np.unique(np.concatenate(chunk_ids), return_inverse=True)
    return _table(ids, _aggregate(group, ids.size, rows), arr.ndim)


def bs_pass_table(result, ndim: int, with_intensity: bool) -> pd.DataFrame:
    """The LC table of a binary image from its :func:`~voxelflow.ops._ccpass.chunk_pass` (with statistics)."""
    rows = _concat(result.stats, ndim, with_intensity)
    ids = np.arange(1, result.plan.n + 1, dtype=np.int64)
    return _table(ids, _aggregate(final_ids(result.plan) - 1, ids.size, rows), ndim)


def _os_chunk(block, origin, full_shape, intensity=None):
    """Statistics of every id present in one OS chunk."""
    block = np.asarray(block)
    if block.dtype.kind == "i" and block.size and block.min() < 0:
        raise InvalidInputError(f"OS labels must be >= 0, found {block.min()}")
    renumbered, mapping = fastremap.renumber(block)
    renumbered = renumbered.view(np.dtype(f"u{renumbered.itemsize}"))
    old = np.fromiter(mapping.keys(), dtype=np.int64, count=len(mapping))
    new = np.fromiter(mapping.values(), dtype=np.int64, count=len(mapping))
    ids = np.empty(new.max() + 1, dtype=np.int64)
    ids[new] = old
    n = ids.size - 1
    return ids[1:], chunk_stats(renumbered, n, origin, full_shape, intensity)


def _os_pass(arr: da.Array, intensity: da.Array | None):
    """Compute per-chunk ids and statistics of an OS in one graph execution.

    Inside a resumable step (:func:`voxelflow.ops.resumable_passes`) every finished
    chunk's result is kept, and a rerun reads those back instead of their input.
    """
    inputs = [arr] if intensity is None else [arr, intensity]
    token = tokenize(arr, intensity)
    name = f"vf-objects-os-{token}"
    starts = [np.concatenate([[0], np.cumsum(c)[:-1]]).astype(int) for c in arr.chunks]
    store = pass_results(token, int(np.prod(arr.numblocks)))
    finished = store.done() if store is not None else set()
    dsk = {}
    for k, idx in enumerate(np.ndindex(*arr.numblocks)):
        if k in finished:
            dsk[(name, *idx)] = (store.load, k)
            continue
        origin = tuple(int(starts[ax][i]) for ax, i in enumerate(idx))
        task = [_os_chunk, (arr.name, *idx), origin, arr.shape]
        if intensity is not None:
            task.append((intensity.name, *idx))
        dsk[(name, *idx)] = tuple(task) if store is None else (saved, store, k, tuple(task))
    gather = f"vf-objects-gather-{token}"
    dsk[gather] = (list, [(name, *idx) for idx in np.ndindex(*arr.numblocks)])
    graph = HighLevelGraph.from_collections(gather, dsk, dependencies=inputs)
    chunk_keys = [(name, *idx) for idx in np.ndindex(*arr.numblocks)]
    flat = inline_into(graph, chunk_keys)
    if finished:
        flat = cull(flat, gather)  # the input chunks of finished chunks are not read
    results = Delayed(gather, flat).compute()
    return [r[0] for r in results], [r[1] for r in results]


def _concat(stats: list[ChunkStats], ndim: int, with_intensity: bool) -> dict:
    """Stack per-chunk statistics into arrays with one row per chunk label."""

    def stack(field, shape, dtype):
        parts = [getattr(s, field) for s in stats]
        return np.concatenate(parts) if parts else np.empty(shape, dtype)

    rows = {
        "voxels": stack("voxels", (0,), np.int64),
        "coord_sum": stack("coord_sum", (0, ndim), np.float64),
        "lo": stack("lo", (0, ndim), np.int64),
        "hi": stack("hi", (0, ndim), np.int64),
        "border": stack("border", (0,), bool),
    }
    if with_intensity:
        rows["intensity_sum"] = stack("intensity_sum", (0,), np.float64)
        rows["intensity_max"] = stack("intensity_max", (0,), np.float64)
    return rows


def _aggregate(group: np.ndarray, n: int, rows: dict) -> dict:
    """Merge rows that belong to one object (``group`` in ``0 .. n-1``)."""
    ndim = rows["lo"].shape[1]
    voxels = np.bincount(group, weights=rows["voxels"], minlength=n).astype(np.int64)
    coord_sum = np.stack(
        [np.bincount(group, weights=rows["coord_sum"][:, ax], minlength=n) for ax in range(ndim)],
        axis=1,
    ).reshape(n, ndim)
    lo = np.full((n, ndim), np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(lo, group, rows["lo"])
    hi = np.zeros((n, ndim), dtype=np.int64)
    np.maximum.at(hi, group, rows["hi"])
    border = np.bincount(group, weights=rows["border"], minlength=n) > 0
    out = {"voxels": voxels, "coord_sum": coord_sum, "lo": lo, "hi": hi, "border": border}
    if "intensity_sum" in rows:
        out["intensity_sum"] = np.bincount(group, weights=rows["intensity_sum"], minlength=n)
        imax = np.full(n, -np.inf)
        np.maximum.at(imax, group, rows["intensity_max"])
        out["intensity_max"] = imax
    return out


def _table(ids: np.ndarray, agg: dict, ndim: int) -> pd.DataFrame:
    """Assemble the LC DataFrame in the contract's column order."""
    axes = _AXES[ndim]
    voxels = agg["voxels"]
    columns = {"id": ids.astype(np.int64)}
    with np.errstate(invalid="ignore", divide="ignore"):
        centroid = agg["coord_sum"] / voxels[:, None]
    for ax, name in enumerate(axes):
        columns[name] = centroid[:, ax].astype(np.float64)
    columns["voxels"] = voxels
    for ax, name in enumerate(axes):
        columns[f"{name}0"] = agg["lo"][:, ax]
    for ax, name in enumerate(axes):
        columns[f"{name}1"] = agg["hi"][:, ax]
    if "intensity_sum" in agg:
        columns["intensity_sum"] = agg["intensity_sum"]
        with np.errstate(invalid="ignore", divide="ignore"):
            columns["intensity_mean"] = agg["intensity_sum"] / voxels
        columns["intensity_max"] = agg["intensity_max"]
    columns["touches_border"] = agg["border"].astype(bool)
    return pd.DataFrame(columns)
