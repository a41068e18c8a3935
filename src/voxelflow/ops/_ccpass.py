"""The one chunked pass shared by ``label`` and ``object_table``.

Per chunk, a single task labels the chunk with cc3d, keeps its shell (faces)
and, if asked, its per-label statistics. A second task per chunk finds the
label contacts with its forward neighbours (see :mod:`._faces`). Only the
counts, statistics and contact pairs come back to the client, where ids are
allocated by a cumulative sum and the contacts merged on a sparse graph
(see :mod:`._merge`). The input graph is computed exactly once.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

import cc3d
import dask.array as da
import numpy as np
from dask._task_spec import convert_legacy_graph
from dask.base import tokenize
from dask.delayed import Delayed
from dask.highlevelgraph import HighLevelGraph
from dask.utils import ensure_dict

from voxelflow.errors import InvalidInputError
from voxelflow.ops._faces import block_faces, face_contacts, forward_directions
from voxelflow.ops._inline import inline_into
from voxelflow.ops._merge import LabelPlan, plan_labels
from voxelflow.ops._resume import pass_results, saved
from voxelflow.ops._stats import chunk_stats

#: Input bytes (binary + intensity) of the chunks one task labels; see :func:`block_groups`.
GROUP_BYTES = 8 << 20

#: The same on a distributed scheduler, where a task costs a few milliseconds of scheduler,
#: worker and client time (measured ~5 ms against ~20 ms of compute per 64x256x256 chunk).
CLUSTER_GROUP_BYTES = 48 << 20

#: cc3d connectivity for ``generate_binary_structure(ndim, connectivity)``.
CC3D_CONNECTIVITY = {2: {1: 4, 2: 8}, 3: {1: 6, 2: 18, 3: 26}}


def as_dask_image(arr, what: str) -> da.Array:
    """Check a 2D/3D numeric or boolean image and return it as a dask array."""
    if isinstance(arr, np.ndarray):
        arr = da.from_array(arr, chunks=arr.shape) if arr.size else da.from_array(arr)
    if not isinstance(arr, da.Array):
        raise InvalidInputError(
            f"{what} must be a dask or numpy array, got {type(arr).__name__}"
        )
    if arr.ndim not in (2, 3):
        raise InvalidInputError(f"{what} must be 2D or 3D, got shape {arr.shape}")
    if any(np.isnan(size) for sizes in arr.chunks for size in sizes):
        raise InvalidInputError(
            f"{what} has unknown chunk sizes; call compute_chunk_sizes() first"
        )
    if arr.dtype.kind not in "biuf":
        raise InvalidInputError(
            f"{what} must have a boolean, integer or float dtype, got {arr.dtype}"
        )
    return arr


def check_connectivity(connectivity, ndim: int) -> int:
    """Validate ``connectivity`` (1 .. ndim, as in generate_binary_structure)."""
    if isinstance(connectivity, bool) or not isinstance(connectivity, (int, np.integer)):
        raise InvalidInputError(f"connectivity must be an int, got {connectivity!r}")
    if not 1 <= connectivity <= ndim:
        raise InvalidInputError(
            f"connectivity must be between 1 and {ndim} for a {ndim}D array, got {connectivity}"
        )
    return int(connectivity)


def local_labels(block: np.ndarray, connectivity: int) -> tuple[np.ndarray, int]:
    """Label the non-zero voxels of one chunk with cc3d.

    Returns
    -------
    labels : ndarray of unsigned int, shape ``block.shape``
        Local labels ``1 .. n`` (0 = background), deterministic for a block.
    n : int
    """
    foreground = block if block.dtype == bool else block != 0
    # cc3d 4.1's binary-image path (taken for bool input) mislabels background
    # pixels with 8-connectivity in 2D and crashes on 26-connected 1-voxel
    # lines, and it misreads strided views; its multi-valued path on a
    # C-contiguous uint8 copy is exact.
    labels, n = cc3d.connected_components(
        np.ascontiguousarray(foreground).view(np.uint8),
        connectivity=CC3D_CONNECTIVITY[block.ndim][connectivity],
        return_N=True,
    )
    return labels, int(n)


def _local_task(block, connectivity, origin, full_shape, want_stats, intensity=None):
    labels, n = local_labels(np.asarray(block), connectivity)
    stats = chunk_stats(labels, n, origin, full_shape, intensity) if want_stats else None
    return n, block_faces(labels), stats


def _local_group(blocks, origins, connectivity, full_shape, want_stats, intensities=None, make_bs=None):
    """:func:`_local_task` for each chunk of a group.

    With ``make_bs = [fn, *args]`` the binary chunks are ``fn(intensity, origin, *args)``
    (``blocks`` is then unused), so each intensity chunk is read by this task alone.
    """
    intensities = intensities or [None] * len(blocks)
    if make_bs is not None:
        fn, *args = make_bs
        blocks = [fn(i, o, *args) for i, o in zip(intensities, origins)]
    out = [
        _local_task(b, connectivity, o, full_shape, want_stats, i)
        for b, o, i in zip(blocks, origins, intensities)
    ]
    release_free_heap()
    return out


def _malloc_trim():
    try:
        return ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):  # not glibc
        return None


_MALLOC_TRIM = _malloc_trim()


def release_free_heap() -> None:
    """Return freed heap pages to the OS (glibc ``malloc_trim``; no-op elsewhere).

    A chunk task frees its large blocks (the decoded chunk, masks, labels) but
    keeps small results (faces, statistics). glibc reuses the freed holes only
    in part, so over thousands of chunks the resident size climbed to ~2 GB on a
    2 GVox volume although little was alive; trimming after each group keeps it
    near what is alive (~0.3 GB).
    """
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def _contacts(local, neighbours, deltas, neighbour_ids, connectivity):
    """``(n, stats, la, lb, kb)`` of one chunk from its and its forward neighbours' shells."""
    n, faces, stats = local
    found_a, found_b, found_k = [], [], []
    for other, delta, k in zip(neighbours, deltas, neighbour_ids):
        la, lb = face_contacts(faces, other[1], delta, connectivity)
        found_a.append(la)
        found_b.append(lb)
        found_k.append(np.full(la.size, k, dtype=np.int64))
    if not found_a:
        empty = np.empty(0, np.uint64)
        return n, stats, empty, empty, np.empty(0, np.int64)
    return n, stats, np.concatenate(found_a), np.concatenate(found_b), np.concatenate(found_k)


def _pair_group(groups, links, connectivity):
    """:func:`_contacts` for each chunk of ``groups[0]``.

    ``links[c]`` lists, for chunk ``c`` of the group, its forward neighbours as
    ``(group slot in groups, position in that group, delta, flat block id)``.
    """
    return [
        _contacts(
            local,
            [groups[g][p] for g, p, _, _ in chunk_links],
            [d for _, _, d, _ in chunk_links],
            [k for _, _, _, k in chunk_links],
            connectivity,
        )
        for local, chunk_links in zip(groups[0], links)
    ]


def block_groups(grid: tuple[int, ...], size: int) -> list[list[tuple[int, ...]]]:
    """Runs of up to ``size`` consecutive blocks along the last grid axis, in C order.

    One task per group instead of per chunk keeps the scheduler's per-task cost
    (paid under the GIL on the threaded scheduler) small next to the kernels.
    """
    return [
        [(*head, k) for k in range(start, min(start + size, grid[-1]))]
        for head in np.ndindex(*grid[:-1])
        for start in range(0, grid[-1], size)
    ]


@dataclass(frozen=True)
class PassResult:
    """Outcome of :func:`chunk_pass`.

    Attributes
    ----------
    plan : LabelPlan
        Id allocation and merge over the block grid (C order).
    stats : list of ChunkStats or None
        Per-chunk statistics (C order) when requested.
    """

    plan: LabelPlan
    stats: list | None


def chunk_pass(
    bs: da.Array,
    connectivity: int,
    *,
    want_stats: bool = False,
    intensity: da.Array | None = None,
    make_bs: list | None = None,
) -> PassResult:
    """Label every chunk, find face contacts, compute once and merge.

    Parameters
    ----------
    bs : dask.array.Array, shape (Z, Y, X) or (Y, X)
        Binary segmentation (non-zero = foreground).
    connectivity : int
        1 .. ndim.
    want_stats : bool
        Also return per-chunk :class:`ChunkStats`.
    intensity : dask.array.Array, optional
        Same shape and chunks as ``bs``; adds intensity sums and maxima.
    make_bs : list, optional
        ``[fn, *args]``: each binary chunk is ``fn(intensity_chunk, origin, *args)``,
        computed inside the labelling task (``args`` may name graph keys of ``bs``,
        e.g. a mask shared by every chunk); ``bs`` then gives only the chunking and
        those keys. Each intensity chunk is then read by one task only.

    Returns
    -------
    PassResult
    """
    inputs = [bs] if intensity is None else [bs, intensity]
    token = tokenize(bs, connectivity, want_stats, intensity)
    local_name = f"vf-cc-local-{token}"
    pair_name = f"vf-cc-pairs-{token}"
    grid = bs.numblocks
    starts = [np.concatenate([[0], np.cumsum(c)[:-1]]).astype(int) for c in bs.chunks]
    deltas = forward_directions(bs.ndim, connectivity)
    chunk_bytes = max(1, int(np.prod([max(c) for c in bs.chunks]))) * (
        bs.dtype.itemsize + (intensity.dtype.itemsize if intensity is not None else 0)
    )
    group_bytes = GROUP_BYTES if _in_process(inputs) else CLUSTER_GROUP_BYTES
    groups = block_groups(grid, max(1, group_bytes // chunk_bytes))
    where = {idx: (g, p) for g, group in enumerate(groups) for p, idx in enumerate(group)}

    # inside a resumable step, finished groups are read back and the others stored as they finish
    # parts are kept per grouping: a rerun on another scheduler starts its own
    store = pass_results(tokenize(token, len(groups)), len(groups))
    finished = store.done() if store is not None else set()
    dsk = {}
    for g, group in enumerate(groups):
        if g in finished:
            dsk[(local_name, g)] = (store.load, g)
            continue
        origins = [tuple(int(starts[ax][i]) for ax, i in enumerate(idx)) for idx in group]
        blocks = [None] * len(group) if make_bs is not None else [(bs.name, *idx) for idx in group]
        task = [_local_group, blocks, origins, connectivity, bs.shape, want_stats]
        if intensity is not None:
            task.append([(intensity.name, *idx) for idx in group])
        if make_bs is not None:
            task.append(list(make_bs))
        dsk[(local_name, g)] = tuple(task) if store is None else (saved, store, g, tuple(task))
    for g, group in enumerate(groups):
        slots, links = [g], []
        for idx in group:
            chunk_links = []
            for delta in deltas:
                other = tuple(i + d for i, d in zip(idx, delta))
                if all(0 <= o < n for o, n in zip(other, grid)):
                    og, op = where[other]
                    if og not in slots:
                        slots.append(og)
                    k = int(np.ravel_multi_index(other, grid))
                    chunk_links.append((slots.index(og), op, delta, k))
            links.append(chunk_links)
        dsk[(pair_name, g)] = (_pair_group, [(local_name, s) for s in slots], links, connectivity)
    gather_key = f"vf-cc-gather-{token}"
    dsk[gather_key] = (list, [(pair_name, g) for g in range(len(groups))])
    graph = HighLevelGraph.from_collections(gather_key, dsk, dependencies=inputs)
    local_keys = [(local_name, g) for g in range(len(groups))]
    if make_bs is not None:  # bs's own chunk tasks are not used: drop them before counting uses
        graph = cull(convert_legacy_graph(ensure_dict(graph)), gather_key)
    flat = inline_into(graph, local_keys)
    if finished:
        flat = cull(flat, gather_key)  # the input chunks of finished groups are not read
    grouped = Delayed(gather_key, flat).compute()
    results = [r for group in grouped for r in group]  # C order over the block grid

    plan = plan_from_chunk_results(results)
    return PassResult(plan, [r[1] for r in results] if want_stats else None)


def _in_process(collections) -> bool:
    """True if ``collections`` compute on a scheduler of this process (threads or sync), not a cluster."""
    import dask.base
    import dask.local
    import dask.threaded

    return dask.base.get_scheduler(collections=collections) in (dask.threaded.get, dask.local.get_sync)


def cull(dsk: dict, key) -> dict:
    """The part of a flat graph that ``key`` depends on."""
    keep, todo = set(), [key]
    while todo:
        k = todo.pop()
        if k in keep or k not in dsk:
            continue
        keep.add(k)
        todo.extend(dsk[k].dependencies)
    return {k: v for k, v in dsk.items() if k in keep}


def plan_from_chunk_results(results: list) -> LabelPlan:
    """Allocate global ids and merge contacts from the per-chunk pair results.

    Parameters
    ----------
    results : list of tuple, one per chunk in C order over the block grid
        ``(n, stats, la, lb, kb)``: local label count, statistics (unused
        here), and contact pairs: local label ``la[i]`` of this chunk touches
        local label ``lb[i]`` of chunk ``kb[i]`` (flat block index).

    Returns
    -------
    LabelPlan
    """
    counts = np.fromiter((r[0] for r in results), dtype=np.int64, count=len(results))
    offsets = np.cumsum(counts) - counts
    sizes = np.fromiter((r[2].size for r in results), dtype=np.int64, count=len(results))
    ka = np.repeat(np.arange(len(results)), sizes)
    la = np.concatenate([r[2] for r in results]).astype(np.int64)
    lb = np.concatenate([r[3] for r in results]).astype(np.int64)
    kb = np.concatenate([r[4] for r in results])
    return plan_labels(counts, offsets[ka] + la, offsets[kb] + lb)
