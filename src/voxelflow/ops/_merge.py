"""Global label ids from per-chunk labels and the face-contact graph.

Ids are allocated without a serial chain over chunks: chunk ``k`` owns the
provisional ids ``offsets[k] + 1 .. offsets[k] + counts[k]`` (a cumulative sum
of the per-chunk counts). Provisional ids that touch across chunk faces are
merged with a sparse connected-components pass; every merged component keeps
its smallest provisional id (its *representative*), the others are *removed*.
Final ids number the kept provisional ids ``1 .. n`` in order, so they are
contiguous and independent of how the merge graph was traversed.

A chunk's remap table is rebuilt on the worker from a spec that only lists the
chunk's own removed labels, so no task ever receives a table larger than the
labels of its chunk.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from voxelflow.errors import InvalidInputError

#: Largest label count stored as int32; above it labels are int64.
#: A module attribute so tests can lower it instead of building huge arrays.
MAX_INT32_LABELS = int(np.iinfo(np.int32).max)


def label_dtype(n: int) -> np.dtype:
    """The integer dtype of a label image with ``n`` objects (int32, else int64)."""
    if n < 0 or n > np.iinfo(np.int64).max:
        raise InvalidInputError(f"label count {n} does not fit a signed 64-bit integer")
    return np.dtype(np.int32) if n <= MAX_INT32_LABELS else np.dtype(np.int64)


def merge_face_pairs(ga: np.ndarray, gb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Connected components of the graph of touching provisional ids.

    Parameters
    ----------
    ga, gb : ndarray of int64, shape (m,)
        Edges ``ga[i] -- gb[i]`` between provisional global ids.

    Returns
    -------
    nodes : ndarray of int64, shape (k,)
        Sorted unique ids that appear in an edge.
    reps : ndarray of int64, shape (k,)
        For each node, the smallest id of its component.
    """
    ga = np.asarray(ga, dtype=np.int64)
    gb = np.asarray(gb, dtype=np.int64)
    if ga.size == 0:
        empty = np.empty(0, np.int64)
        return empty, empty
    nodes, inverse = np.unique(np.concatenate([ga, gb]), return_inverse=True)
    m = ga.size
    graph = coo_matrix(
        (np.ones(m, dtype=np.int8), (inverse[:m], inverse[m:])), shape=(nodes.size, nodes.size)
    ).tocsr()
    _, component = connected_components(graph, directed=True, connection="weak")
    # nodes are sorted, so a component's first occurrence is its smallest id
    _, first = np.unique(component, return_index=True)
    return nodes, nodes[first][component]


@dataclass(frozen=True)
class LabelPlan:
    """How provisional per-chunk labels become final global ids.

    Attributes
    ----------
    counts : ndarray of int64, shape (nchunks,)
        Local label count of each chunk (C order over the block grid).
    offsets : ndarray of int64, shape (nchunks,)
        Provisional id just before the first label of each chunk.
    removed : ndarray of int64, shape (r,)
        Sorted provisional ids merged into a smaller representative.
    removed_final : ndarray of int64, shape (r,)
        Final id of each removed provisional id.
    n : int
        Number of objects (final ids are ``1 .. n``).
    dtype : numpy.dtype
        int32 if ``n`` fits (see :data:`MAX_INT32_LABELS`), else int64.
    """

    counts: np.ndarray
    offsets: np.ndarray
    removed: np.ndarray
    removed_final: np.ndarray
    n: int
    dtype: np.dtype

    @property
    def total(self) -> int:
        """Number of provisional ids (sum of the per-chunk counts)."""
        return int(self.counts.sum())


def plan_labels(counts: np.ndarray, ga: np.ndarray, gb: np.ndarray) -> LabelPlan:
    """Allocate ids and merge the face-contact graph.

    Parameters
    ----------
    counts : ndarray of int, shape (nchunks,)
        Local label count per chunk.
    ga, gb : ndarray of int64, shape (m,)
        Touching provisional ids (see :func:`merge_face_pairs`).

    Returns
    -------
    LabelPlan
    """
    counts = np.asarray(counts, dtype=np.int64)
    offsets = np.cumsum(counts) - counts
    nodes, reps = merge_face_pairs(ga, gb)
    merged = nodes != reps
    removed = nodes[merged]
    reps = reps[merged]
    removed_final = reps - np.searchsorted(removed, reps)
    n = int(counts.sum()) - removed.size
    return LabelPlan(counts, offsets, removed, removed_final, n, label_dtype(n))


def final_ids(plan: LabelPlan) -> np.ndarray:
    """Final id of every provisional id.

    Returns
    -------
    ndarray of int64, shape (plan.total,)
        Entry ``g - 1`` is the final id of provisional id ``g``.
    """
    provisional = np.arange(1, plan.total + 1, dtype=np.int64)
    out = provisional - np.searchsorted(plan.removed, provisional)
    out[plan.removed - 1] = plan.removed_final
    return out


@dataclass(frozen=True)
class RemapSpec:
    """What one chunk needs to rebuild its remap table.

    Attributes
    ----------
    n_local : int
        Local label count of the chunk.
    base : int
        Final id of local label ``l`` is ``base + l - (#removed local labels < l)``
        unless ``l`` is removed.
    removed_local : ndarray of int64, shape (r,)
        Sorted local labels of this chunk merged into another object.
    removed_final : ndarray of int64, shape (r,)
        Their final ids.
    """

    n_local: int
    base: int
    removed_local: np.ndarray
    removed_final: np.ndarray


def remap_specs(plan: LabelPlan) -> list[RemapSpec]:
    """One :class:`RemapSpec` per chunk, sized by that chunk's own labels."""
    ends = plan.offsets + plan.counts
    start = np.searchsorted(plan.removed, plan.offsets, side="right")
    stop = np.searchsorted(plan.removed, ends, side="right")
    bases = plan.offsets - start
    return [
        RemapSpec(
            int(plan.counts[k]),
            int(bases[k]),
            plan.removed[start[k] : stop[k]] - plan.offsets[k],
            plan.removed_final[start[k] : stop[k]],
        )
        for k in range(plan.counts.size)
    ]


def build_remap(spec: RemapSpec, dtype: np.dtype) -> np.ndarray:
    """The remap table of one chunk.

    Returns
    -------
    ndarray of ``dtype``, shape (spec.n_local + 1,)
        ``table[l]`` is the final id of local label ``l``; ``table[0] == 0``.
    """
    local = np.arange(spec.n_local + 1, dtype=np.int64)
    table = spec.base + local - np.searchsorted(spec.removed_local, local)
    table[0] = 0
    table[spec.removed_local] = spec.removed_final
    return table.astype(dtype, copy=False)
