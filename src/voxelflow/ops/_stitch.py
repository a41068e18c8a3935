"""Exact stitching of per-chunk instance labels into one ordinal segmentation (OS).

A model that outputs instance labels is run on every chunk plus a halo, so two
neighbouring chunks both label the objects that lie in the region where their
padded blocks overlap. Each chunk keeps only its own (core) voxels and numbers
the labels found there ``1 .. n``; an object that crosses a chunk face is then
one label in each chunk it touches. Two such labels are the same object when
their voxels in the overlap of the two padded blocks agree: intersection over
union (IoU, counted inside that overlap only) above a threshold, 0.5 by
default. A threshold of at least 0.5 makes the matching one-to-one between two
chunks. Matched labels are merged and given final ids by the same machinery as
:func:`voxelflow.ops.label.label` (:mod:`._merge`: ids by a cumulative sum of
per-chunk counts, a sparse connected-components pass over the matches, remap
tables sized by each chunk's own labels).

Exactness. If the model labels an object the same way whenever the object lies
inside the padded block (true of any model whose output for an object depends
only on the voxels within the halo of it: thresholding plus connected
components, a per-cluster watershed, a network whose receptive field is at most
the halo), then every object whose extent is at most ``halo + 1`` voxels on each
axis is seen whole, with identical voxels, by every chunk it touches: it gets
exactly one id and no other object shares it, whatever the chunking. Border
padding other than zeros (``pad_mode='constant'``) can extend an object that
touches the array border into the pad, where the model may see more of it in a
whole-array run than in a block; with zero padding nothing is added. Larger
objects are seen in part; whether the parts match depends on the shape and the
model: a straight object whose cross-section is the same in both views matches
(IoU 1), an object whose parts only connect outside the padded block (a U bent
back outside the halo) is seen as two labels by one chunk and one by the other
and stays cut into pieces. A voxel is never given two ids and never lost: every
foreground voxel of a chunk's core keeps a non-zero id.

Provisional ids. The first pass writes, for chunk ``k``, ``k * stride + l``
(``l`` its local label, ``stride`` one more than the largest chunk's voxel
count), so the pass needs no global information and its output can be stored
(e.g. to OME-Zarr) before the matches are merged; :func:`stitch` then remaps the
stored provisional labels chunk by chunk.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import dask
import dask.array as da
import fastremap
import numpy as np
from dask.base import tokenize
from dask.delayed import Delayed
from dask.highlevelgraph import HighLevelGraph

from voxelflow.errors import InvalidInputError
from voxelflow.ops._faces import forward_directions
from voxelflow.ops._merge import RemapSpec, build_remap, plan_labels, remap_specs

__all__ = ["Matches", "InstanceTiles", "stitch", "chunk_stride"]


def chunk_stride(chunks: tuple[tuple[int, ...], ...]) -> int:
    """Provisional-id stride: one more than the voxel count of the largest chunk.

    Raises
    ------
    voxelflow.errors.InvalidInputError
        If ``number of chunks * stride`` does not fit a signed 64-bit integer.
    """
    stride = int(np.prod([max(c) if c else 0 for c in chunks], dtype=object)) + 1
    nblocks = int(np.prod([len(c) for c in chunks], dtype=object))
    if nblocks * stride >= 2**63:
        raise InvalidInputError(
            f"{nblocks} chunks of up to {stride - 1} voxels need provisional ids beyond int64; use larger/fewer chunks"
        )
    return stride


@dataclass(frozen=True)
class Matches:
    """Per-chunk label counts and the matched labels of neighbouring chunks.

    Attributes
    ----------
    chunks : tuple of tuple of int
        Chunking of the spatial axes the tiles were computed on.
    stride : int
        Provisional-id stride (see :func:`chunk_stride`).
    counts : ndarray of int64, shape (nchunks,)
        Local label count of each chunk, C order over the block grid.
    ka, la, kb, lb : ndarray of int64, shape (m,)
        Local label ``la[i]`` of chunk ``ka[i]`` (flat index) is the same object
        as local label ``lb[i]`` of chunk ``kb[i]``.
    """

    chunks: tuple
    stride: int
    counts: np.ndarray
    ka: np.ndarray
    la: np.ndarray
    kb: np.ndarray
    lb: np.ndarray


@dataclass(frozen=True)
class InstanceTiles:
    """Lazy result of an instance model run chunk by chunk (see ``predict``).

    Attributes
    ----------
    labels : dask.array.Array of int64, spatial shape and chunks of the image
        Provisional ids (``k * stride + local``, 0 = background). Store it (or
        keep it in memory) and pass it to :func:`stitch` with the matches.
    matches : dask.delayed.Delayed
        Computes to a :class:`Matches`. Compute it together with ``labels``
        (``dask.compute(labels_store_task, matches)``) so the model runs once.
    """

    labels: da.Array
    matches: Delayed

    def stitch(self) -> tuple[da.Array, int]:
        """Run the model once, keep the provisional labels in memory, and stitch.

        For volumes whose labels fit in memory; otherwise store ``labels`` and
        call :func:`stitch` on the stored copy.
        """
        labels, matches = dask.persist(self.labels, self.matches)
        return stitch(labels, matches.compute())


def tile_geometry(chunks, depth):
    """Per chunk: flat index, block bounds and the overlap regions with its neighbours.

    Returns
    -------
    list of dict
        ``index``, ``start``, ``stop`` (core bounds), and ``overlaps``: for every
        neighbour offset ``delta`` (``{-1, 0, 1}**ndim`` minus zero) whose chunk
        exists, the half-open region ``(lo, hi)`` where the two padded blocks,
        clipped to the array, overlap.
    """
    shape = tuple(int(sum(c)) for c in chunks)
    bounds = [np.concatenate([[0], np.cumsum(c, dtype=np.int64)]) for c in chunks]
    grid = tuple(len(c) for c in chunks)
    deltas = [d for d in itertools.product((-1, 0, 1), repeat=len(chunks)) if any(d)]

    def padded(index):
        lo = tuple(max(int(b[i]) - h, 0) for b, i, h in zip(bounds, index, depth))
        hi = tuple(min(int(b[i + 1]) + h, n) for b, i, h, n in zip(bounds, index, depth, shape))
        return lo, hi

    out = []
    for index in itertools.product(*(range(g) for g in grid)):
        lo_a, hi_a = padded(index)
        overlaps = {}
        for delta in deltas:
            other = tuple(i + d for i, d in zip(index, delta))
            if not all(0 <= o < g for o, g in zip(other, grid)):
                continue
            lo_b, hi_b = padded(other)
            lo = tuple(max(a, b) for a, b in zip(lo_a, lo_b))
            hi = tuple(min(a, b) for a, b in zip(hi_a, hi_b))
            overlaps[delta] = (lo, hi)
        out.append({
            "index": index,
            "start": tuple(int(b[i]) for b, i in zip(bounds, index)),
            "stop": tuple(int(b[i + 1]) for b, i in zip(bounds, index)),
            "overlaps": overlaps,
        })
    return out


def instance_tile(padded: np.ndarray, origin: tuple[int, ...], tile: dict, flat: int, stride: int):
    """Cut one chunk's padded instance labels into its provisional core labels and overlap slabs.

    Parameters
    ----------
    padded : ndarray of int, shape (n0 + 2 h0, ...)
        Instance labels of the padded block (0 = background); voxels outside
        the array (border padding) are ignored.
    origin : tuple of int
        Global index of ``padded[0, ..., 0]`` (may be negative at the border).
    tile : dict
        Entry of :func:`tile_geometry` for this chunk.
    flat : int
        Flat (C-order) index of the chunk.
    stride : int

    Returns
    -------
    core : ndarray of int64, shape of the chunk
        ``flat * stride + l`` for local labels ``l = 1 .. n``, 0 for background.
    n : int
    slabs : dict
        Neighbour offset -> local labels (uint32, 0 = background or a label
        absent from the core) over the overlap region with that neighbour.
    """
    padded = np.asarray(padded)
    if padded.dtype.kind not in "iu":
        raise InvalidInputError(f"an instance model must return integer labels, got dtype {padded.dtype}")
    core_sl = tuple(slice(a - o, b - o) for a, b, o in zip(tile["start"], tile["stop"], origin))
    core = np.ascontiguousarray(padded[core_sl])
    if core.size and core.min() < 0:
        raise InvalidInputError("an instance model returned negative labels")
    local, mapping = fastremap.renumber(core, preserve_zero=True, in_place=False)
    mapping.pop(0, None)
    n = len(mapping)
    old = np.fromiter(mapping.keys(), dtype=np.int64, count=n)
    new = np.fromiter(mapping.values(), dtype=np.int64, count=n)
    order = np.argsort(old)
    old, new = old[order], new[order]
    out = local.astype(np.int64)
    out[out != 0] += flat * stride
    slabs = {}
    for delta, (lo, hi) in tile["overlaps"].items():
        part = padded[tuple(slice(a - o, b - o) for a, b, o in zip(lo, hi, origin))].astype(np.int64, copy=False)
        slabs[delta] = _to_local(part, old, new)
    return out, n, slabs


def _to_local(values: np.ndarray, old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Map model labels to the chunk's local ids; labels not in the core become 0."""
    out = np.zeros(values.shape, dtype=np.uint32)
    if old.size == 0 or values.size == 0:
        return out
    pos = np.minimum(np.searchsorted(old, values), old.size - 1)
    found = (old[pos] == values) & (values != 0)
    out[found] = new[pos[found]]
    return out


def match_overlap(a: np.ndarray, b: np.ndarray, iou: float) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of labels of two views of one region whose IoU in the region exceeds ``iou``.

    Parameters
    ----------
    a, b : ndarray of uint32, same shape
        Local labels of the two chunks over their overlap (0 = none).
    iou : float

    Returns
    -------
    la, lb : ndarray of int64, shape (m,)
    """
    empty = np.empty(0, np.int64)
    if a.size == 0:
        return empty, empty
    a = a.ravel().astype(np.int64)
    b = b.ravel().astype(np.int64)
    both = (a != 0) & (b != 0)
    if not both.any():
        return empty, empty
    size_a = np.bincount(a[a != 0])
    size_b = np.bincount(b[b != 0])
    width = int(b.max()).bit_length()
    keys, inter = np.unique((a[both] << width) | b[both], return_counts=True)
    pa, pb = keys >> width, keys & ((1 << width) - 1)
    union = size_a[pa] + size_b[pb] - inter
    keep = inter > iou * union
    return pa[keep], pb[keep]


def _pick(results, i):
    return results[i]


def _match_pair(slabs_a, slabs_b, delta, iou):
    back = tuple(-d for d in delta)
    return match_overlap(slabs_a[delta], slabs_b[back], iou)


def _collect(chunks, stride, counts, pairs, links):
    counts = np.asarray(counts, dtype=np.int64)
    parts = [(np.full(la.size, ka), la, np.full(lb.size, kb), lb) for (la, lb), (ka, kb) in zip(pairs, links)]
    if parts:
        ka, la, kb, lb = (np.concatenate([p[i] for p in parts]).astype(np.int64) for i in range(4))
    else:
        ka = la = kb = lb = np.empty(0, np.int64)
    return Matches(chunks, stride, counts, ka, la, kb, lb)


def instance_graph(tile_dsk, tile_keys, geometry, chunks, stride, iou, dependencies, token):
    """Wire per-chunk tile results into the provisional label array and the matches.

    Parameters
    ----------
    tile_dsk : dict
        Tasks that compute the tiles (and the nodes they read).
    tile_keys : list of keys, one per chunk in C order
        Each computes to the tuple returned by :func:`instance_tile`.
    geometry : list of dict
        :func:`tile_geometry` of ``chunks``.
    chunks : tuple of tuple of int
    stride : int
    iou : float
    dependencies : list of dask collections
        Collections whose keys ``tile_dsk`` reads.
    token : str

    Returns
    -------
    InstanceTiles
    """
    ndim = len(chunks)
    grid = tuple(len(c) for c in chunks)
    core_name, n_name, slab_name = (f"vf-instances-{p}-{token}" for p in ("core", "count", "slabs"))
    pair_name, match_key = f"vf-instances-pair-{token}", f"vf-instances-matches-{token}"
    dsk = dict(tile_dsk)
    for key, tile in zip(tile_keys, geometry):
        idx = tile["index"]
        dsk[(core_name, *idx)] = (_pick, key, 0)
        dsk[(n_name, *idx)] = (_pick, key, 1)
        dsk[(slab_name, *idx)] = (_pick, key, 2)
    pair_keys, links = [], []
    for tile in geometry:
        idx = tile["index"]
        for delta in forward_directions(ndim, ndim):
            other = tuple(i + d for i, d in zip(idx, delta))
            if not all(0 <= o < g for o, g in zip(other, grid)):
                continue
            key = (pair_name, *idx, *other)
            dsk[key] = (_match_pair, (slab_name, *idx), (slab_name, *other), delta, iou)
            pair_keys.append(key)
            links.append((int(np.ravel_multi_index(idx, grid)), int(np.ravel_multi_index(other, grid))))
    count_keys = [(n_name, *tile["index"]) for tile in geometry]
    dsk[match_key] = (_collect, chunks, stride, count_keys, pair_keys, links)
    graph = HighLevelGraph.from_collections(core_name, dsk, dependencies=dependencies)
    labels = da.Array(graph, core_name, chunks, dtype=np.int64, meta=np.empty((0,) * ndim, np.int64))
    return InstanceTiles(labels, Delayed(match_key, graph, layer=core_name))


def _final_block(prov: np.ndarray, base: int, spec: RemapSpec, dtype: np.dtype) -> np.ndarray:
    prov = np.asarray(prov)
    local = np.where(prov != 0, prov - base, 0)
    if local.size and (local.min() < 0 or local.max() > spec.n_local):
        raise InvalidInputError(
            "provisional labels do not belong to this chunk: the labels passed to stitch are not the ones "
            "the matches were computed with (different chunking or another run)"
        )
    return build_remap(spec, dtype)[local]


def stitch(labels, matches: Matches) -> tuple[da.Array, int]:
    """Give matched provisional labels one global id (OS).

    Parameters
    ----------
    labels : dask.array.Array of int64
        Provisional labels (``InstanceTiles.labels`` or a stored copy; any
        chunking, it is rechunked to the tile grid).
    matches : Matches
        The computed ``InstanceTiles.matches`` of the same run.

    Returns
    -------
    os_arr : dask.array.Array, chunks ``matches.chunks``
        0 for background, objects ``1 .. n``; int32 if ``n`` fits, else int64.
    n : int

    Raises
    ------
    voxelflow.errors.InvalidInputError
        If ``labels`` does not have the shape of the tiles, or holds ids that
        the matches do not know (computed chunk by chunk).
    """
    labels = da.asarray(labels)
    shape = tuple(int(sum(c)) for c in matches.chunks)
    if labels.shape != shape:
        raise InvalidInputError(f"labels of shape {labels.shape} do not match the tiles' shape {shape}")
    if labels.dtype != np.int64:
        raise InvalidInputError(f"provisional labels must be int64, got {labels.dtype}")
    if labels.chunks != matches.chunks:
        labels = labels.rechunk(matches.chunks)
    offsets = np.cumsum(matches.counts) - matches.counts
    plan = plan_labels(matches.counts, offsets[matches.ka] + matches.la, offsets[matches.kb] + matches.lb)
    specs = remap_specs(plan)
    name = f"vf-stitch-{tokenize(labels, matches.counts, matches.la, matches.lb, matches.ka, matches.kb)}"
    dsk = {
        (name, *idx): (_final_block, (labels.name, *idx), k * matches.stride, spec, plan.dtype)
        for k, (idx, spec) in enumerate(zip(np.ndindex(*labels.numblocks), specs))
    }
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=[labels])
    meta = np.empty((0,) * labels.ndim, dtype=plan.dtype)
    return da.Array(graph, name, chunks=labels.chunks, dtype=plan.dtype, meta=meta), plan.n
