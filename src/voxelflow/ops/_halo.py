"""Block bookkeeping shared by the halo-based ops (watershed, blobs, affine).

Each op computes one output block from an input region that extends past the
block (its *halo*). Rather than going through ``dask.array.map_overlap`` (which
rechunks when a chunk is thinner than the halo and hides the global position of
a block), each output chunk is one task that copies its padded region straight
out of the input chunks it overlaps, so any chunking -- including 1-voxel-thick
chunks -- works unchanged and each task knows where it sits in the whole volume.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence

import dask.array as da
import numpy as np
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

__all__ = ["Block", "iter_blocks", "padded_region", "map_regions"]


class Block:
    """One chunk of a chunked array.

    Attributes
    ----------
    index : tuple of int
        Position of the chunk on the chunk grid.
    start, stop : tuple of int
        Half-open voxel bounds of the chunk in the whole array.
    """

    __slots__ = ("index", "start", "stop")

    def __init__(self, index: tuple[int, ...], start: tuple[int, ...], stop: tuple[int, ...]):
        self.index = index
        self.start = start
        self.stop = stop

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(b - a for a, b in zip(self.start, self.stop))

    @property
    def slices(self) -> tuple[slice, ...]:
        return tuple(slice(a, b) for a, b in zip(self.start, self.stop))


def iter_blocks(chunks: Sequence[Sequence[int]]) -> Iterator[Block]:
    """Yield every chunk of a dask ``chunks`` tuple in C order."""
    bounds = [np.concatenate([[0], np.cumsum(c, dtype=np.int64)]) for c in chunks]
    for index in itertools.product(*(range(len(c)) for c in chunks)):
        start = tuple(int(b[i]) for b, i in zip(bounds, index))
        stop = tuple(int(b[i + 1]) for b, i in zip(bounds, index))
        yield Block(index, start, stop)


def padded_region(block: Block, depth: Sequence[int], shape: Sequence[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Bounds of ``block`` grown by ``depth`` voxels per axis, clipped to ``shape``.

    Clipping (rather than padding) at the array border means a padded block that
    touches the border sees exactly what a whole-array computation sees there.
    """
    start = tuple(max(a - d, 0) for a, d in zip(block.start, depth))
    stop = tuple(min(b + d, n) for b, d, n in zip(block.stop, depth, shape))
    return start, stop


def map_regions(arr: da.Array, chunks, plan, dtype, name: str) -> da.Array:
    """Build an array whose every chunk is ``func(arr[lo:hi], *args)``.

    Parameters
    ----------
    arr : dask.array.Array
        Input array.
    chunks : tuple of tuple of int
        Chunks of the output.
    plan : iterable of (index, box, func, args)
        One entry per output chunk: ``box`` is ``(lo, hi)``, a half-open region
        of ``arr`` handed to ``func`` as a numpy array, or None (``func`` gets None).
    dtype : numpy dtype of the output.
    name : str
        Prefix of the task names.

    Each chunk is a single task that copies the region straight out of the input
    chunks it overlaps; slicing the dask array instead would cost one task per
    overlapped chunk plus a concatenation, i.e. thousands of tiny tasks when
    chunks are thin and the halo is wide.
    """
    bounds = [np.concatenate([[0], np.cumsum(c, dtype=np.int64)]) for c in arr.chunks]
    plan = list(plan)
    token = tokenize(arr, chunks, [(i, b, f, a) for i, b, f, a in plan])
    out_name = f"{name}-{token}"
    dsk = {}
    pieces = (f"{out_name}-piece", dsk)
    for index, box, func, args in plan:
        region = None if box is None else _region_task(arr.name, bounds, *box, arr.dtype, pieces)
        dsk[(out_name,) + tuple(index)] = (func, region) + tuple(args)
    graph = HighLevelGraph.from_collections(out_name, dsk, dependencies=[arr])
    return da.Array(graph, out_name, chunks, dtype=np.dtype(dtype))


def _region_task(name, bounds, start, stop, dtype, pieces=None):
    """The task that assembles ``[start, stop)`` of the array ``name`` (chunk edges ``bounds``).

    With ``pieces = (piece_name, dsk)``, a chunk that lies only partly in the region enters through a task (added
    to ``dsk``) that copies out the part needed: a chunk is then held in memory until its own consumer and the
    copies of its edges have run, not until every neighbour that reads a halo from it has.
    """
    ranges = []
    for b, a, z in zip(bounds, start, stop):
        first = int(np.searchsorted(b, a, side="right")) - 1
        last = int(np.searchsorted(b, z, side="left"))
        ranges.append(range(first, last))
    keys, origins = [], []
    for index in itertools.product(*ranges):
        origin = tuple(int(b[i]) for b, i in zip(bounds, index))
        size = tuple(int(b[i + 1] - b[i]) for b, i in zip(bounds, index))
        lo = tuple(max(a, o) for a, o in zip(start, origin))
        hi = tuple(min(z, o + n) for z, o, n in zip(stop, origin, size))
        key = (name,) + index
        if pieces is not None and (lo != origin or hi != tuple(o + n for o, n in zip(origin, size))):
            piece_name, dsk = pieces
            piece = (piece_name,) + index + lo + hi
            dsk[piece] = (_copy_box, key, tuple(slice(a - o, z - o) for a, z, o in zip(lo, hi, origin)))
            key, origin = piece, lo
        keys.append(key)
        origins.append(origin)
    return (_stitch, keys, origins, tuple(start), tuple(stop), dtype)


def _copy_box(part, box) -> np.ndarray:
    return np.array(part[box])


def _stitch(parts, origins, start, stop, dtype) -> np.ndarray:
    out = np.empty(tuple(b - a for a, b in zip(start, stop)), dtype=dtype)
    for part, origin in zip(parts, origins):
        src, dst = [], []
        for a, z, o, n in zip(start, stop, origin, part.shape):
            lo, hi = max(a, o), min(z, o + n)
            src.append(slice(lo - o, hi - o))
            dst.append(slice(lo - a, hi - a))
        out[tuple(dst)] = part[tuple(src)]
    return out
