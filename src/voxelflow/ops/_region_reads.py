"""Read any box of a dask array straight from where its chunks come from.

A halo op computes every output block from a box that reaches past the block
into its neighbours. Taking that rim from the neighbours' chunk *results*
keeps every input chunk in memory until the blocks of all its neighbours have
run; Dask walks the grid in C order, so that is a whole layer of chunks, and
memory grows with the volume's cross-section.

Most inputs are *reads*: every chunk is one task over constants only (an
OME-Zarr or zarr chunk read, a slice of an array or store, element-wise steps
that Dask fuses onto the read). For those a box is read by re-running the reads
of the chunks it overlaps, one at a time inside the task that needs the box,
keeping the overlapping part and dropping the rest. Nothing outlives the task,
so memory per task is the box plus one chunk whatever the volume. The price is
re-reading: a chunk that ``k`` boxes overlap is read ``k`` times (up to
``3 ** ndim`` for halos thinner than the chunks; fewer when several chunks
share one box).

Chunks that are already data (an in-memory array split by ``from_array``, a
persisted array) are referenced, not re-read. An array with any other graph (a
rechunk, a filter with its own halo, a reduction) is read from its chunk
results as before: memory then holds up to a layer of its chunks; store such
an array first to bound it.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import dask.array as da
import numpy as np
from dask._task_spec import Alias, DataNode, Task, TaskRef, convert_legacy_graph, parse_input
from dask.core import flatten
from dask.utils import ensure_dict

__all__ = ["RegionReader", "region_reader"]


class ChunkRead:
    """One chunk's read task, carried as data so that only the box reader runs it.

    Parameters
    ----------
    task : dask._task_spec.Task
        Depends only on constants (:class:`~dask._task_spec.DataNode` keys).
    """

    __slots__ = ("task",)

    def __init__(self, task: Task):
        self.task = task

    def __call__(self, values: dict) -> np.ndarray:
        return np.asarray(self.task({k: values[k] for k in self.task.dependencies}))

    def __reduce__(self):
        return ChunkRead, (self.task,)


class RegionReader:
    """Reads boxes of one dask array (build it with :func:`region_reader`).

    Attributes
    ----------
    direct : bool
        True when boxes are read from the source (re-running chunk reads);
        False when they are cut from the chunk results.
    nodes : dict
        Graph nodes the box tasks depend on (constants, or nothing when not
        ``direct``); add them to the graph of the consumer.
    dependencies : list of dask.array.Array
        Collections the consumer's graph depends on (``[array]`` when not ``direct``).
    """

    def __init__(self, arr: da.Array, parts: dict | None, nodes: dict):
        self.direct = parts is not None
        self.nodes = nodes
        self.dependencies = [] if self.direct else [arr]
        self._name = arr.name
        self._dtype = arr.dtype
        self._bounds = [np.concatenate([[0], np.cumsum(c, dtype=np.int64)]) for c in arr.chunks]
        self._parts = parts

    def box(self, start: Sequence[int], stop: Sequence[int]) -> Task:
        """A task (to nest as an argument) that computes ``arr[start:stop]`` as a numpy array.

        Parameters
        ----------
        start, stop : sequence of int
            Half-open box inside the array, one bound per axis.

        Returns
        -------
        dask._task_spec.Task
            Evaluates to an ndarray of shape ``stop - start`` and the array's dtype.
        """
        ranges = []
        for b, a, z in zip(self._bounds, start, stop):
            first = int(np.searchsorted(b, a, side="right")) - 1
            last = int(np.searchsorted(b, z, side="left"))
            ranges.append(range(first, max(last, first + 1)))
        parts, origins, consts = [], [], set()
        for index in itertools.product(*ranges):
            origins.append(tuple(int(b[i]) for b, i in zip(self._bounds, index)))
            if self._parts is None:
                parts.append(TaskRef((self._name, *index)))
                continue
            part = self._parts[index]
            if isinstance(part, ChunkRead):
                consts.update(part.task.dependencies)
            parts.append(part)
        values = {k: TaskRef(k) for k in sorted(consts, key=str)}
        return Task(None, read_box, parse_input(parts), tuple(origins), tuple(int(a) for a in start),
                    tuple(int(z) for z in stop), self._dtype, parse_input(values))


def read_box(parts, origins, start, stop, dtype, values) -> np.ndarray:
    """Assemble ``arr[start:stop]`` from the chunks it overlaps, reading one chunk at a time.

    Parameters
    ----------
    parts : list of ndarray or ChunkRead
        The overlapped chunks (C order), as data or as reads to run.
    origins : tuple of tuple of int
        Global index of each chunk's first voxel.
    start, stop : tuple of int
        The box.
    dtype : numpy dtype
    values : dict
        Constants the reads depend on.

    Returns
    -------
    ndarray, shape ``stop - start``, ``dtype``
    """
    out = np.empty(tuple(b - a for a, b in zip(start, stop)), dtype=dtype)
    for part, origin in zip(parts, origins):
        chunk = part(values) if isinstance(part, ChunkRead) else part
        src, dst = [], []
        for a, z, o, n in zip(start, stop, origin, chunk.shape):
            lo, hi = max(a, o), min(z, o + n)
            src.append(slice(lo - o, hi - o))
            dst.append(slice(lo - a, hi - a))
        out[tuple(dst)] = chunk[tuple(src)]
        del chunk
    return out


def region_reader(arr: da.Array) -> RegionReader:
    """How to read boxes of ``arr``: from its source when every chunk is a read, else from its chunks.

    Parameters
    ----------
    arr : dask.array.Array

    Returns
    -------
    RegionReader
    """
    keys = list(flatten(arr.__dask_keys__()))
    dsk = convert_legacy_graph(ensure_dict(arr.__dask_optimize__(arr.__dask_graph__(), keys)))
    parts, nodes = {}, {}
    for key in keys:
        node = _resolve(dsk, key)
        if isinstance(node, DataNode):
            nodes[node.key] = node
            parts[key[1:]] = TaskRef(node.key)
            continue
        if not isinstance(node, Task):
            return RegionReader(arr, None, {})
        consts = {}
        for dep in node.dependencies:
            const = _resolve(dsk, dep)
            if not isinstance(const, DataNode):
                return RegionReader(arr, None, {})
            consts[dep] = const
        if any(dep != c.key for dep, c in consts.items()):
            return RegionReader(arr, None, {})
        nodes.update(consts)
        parts[key[1:]] = ChunkRead(node)
    return RegionReader(arr, parts, nodes)


def _resolve(dsk: dict, key):
    """The node computing ``key``, following aliases; None if absent."""
    node = dsk.get(key)
    for _ in range(len(dsk) + 1):
        if not isinstance(node, Alias) or node.target == node.key:
            return node
        node = dsk.get(node.target)
    return None
