"""Object counts on a block grid (LC/OS -> CC) and the exact total count.

Three ways to count, from the most to the least exact:

- :func:`count_objects`: the number of objects in an object table. Tables made
  by ``voxelflow.ops._objects.object_table`` have one row per global object, so
  this count does not depend on chunking at all.
- :func:`count_per_block` with ``method='centroid'``: every object is counted
  once, in the block holding its centroid voxel ``floor(c + 0.5)``; the blocks
  sum to the exact total.
- :func:`count_per_block` with ``method='edge_penalized'``: the estimate of the
  original tool, which could not tell that pieces of an object cut by a chunk
  boundary belong together. Rule: an object whose bounding box
  ``[z0, z1) x [y0, y1) x [x0, x1)`` overlaps ``k_z`` blocks along z, ``k_y``
  along y and ``k_x`` along x touches ``B = k_z * k_y * k_x`` blocks and adds
  ``1 / B`` to each of them. An object inside one block adds 1 to it; one
  straddling a face adds 1/2 to both sides, one at a corner where 8 blocks meet
  adds 1/8 to each. The blocks still sum to the total.
- :func:`count_labels_per_chunk`: the naive count, the number of distinct
  non-zero labels in each chunk of an OS array; an object cut by chunk
  boundaries is counted in every chunk it touches.
"""

from __future__ import annotations

from collections.abc import Sequence

import dask.array as da
import numpy as np
import pandas as pd

from voxelflow.errors import InvalidInputError

__all__ = ["count_objects", "count_per_block", "count_labels_per_chunk", "centroid_voxels", "COUNT_METHODS"]

COUNT_METHODS = ("centroid", "edge_penalized")
_AXES = ("z", "y", "x")


def count_objects(lc: pd.DataFrame) -> int:
    """Exact number of objects in an object table (distinct ``id`` values).

    Parameters
    ----------
    lc : pandas.DataFrame (LC) with an ``id`` column

    Returns
    -------
    int
    """
    _require(lc, ["id"])
    return int(lc["id"].nunique())


def centroid_voxels(lc: pd.DataFrame, shape: Sequence[int]) -> np.ndarray:
    """Index of the voxel containing each centroid, ``floor(c + 0.5)``.

    Voxel ``i`` spans ``[i - 0.5, i + 0.5)`` in voxel coordinates; indices are
    clipped into the array so centroids on the far border stay countable.

    Parameters
    ----------
    lc : pandas.DataFrame (LC) with columns ``z, y, x`` (the last ``len(shape)``)
    shape : sequence of int

    Returns
    -------
    numpy.ndarray, shape (len(lc), len(shape)), int64
    """
    axes = _axes(shape)
    _require(lc, axes)
    pos = lc[axes].to_numpy(dtype=np.float64).reshape(len(lc), len(axes))
    if not np.all(np.isfinite(pos)):
        raise InvalidInputError("object table has non-finite centroid coordinates")
    idx = np.floor(pos + 0.5).astype(np.int64)
    return np.clip(idx, 0, np.asarray(shape, dtype=np.int64) - 1)


def count_per_block(lc: pd.DataFrame, shape: Sequence[int], chunks, *, method: str = "centroid") -> np.ndarray:
    """Count objects per block of a (possibly irregular) block grid (CC).

    Parameters
    ----------
    lc : pandas.DataFrame (LC)
        Needs ``z, y, x`` for ``'centroid'``; ``z0, y0, x0, z1, y1, x1`` for
        ``'edge_penalized'`` (fewer axes for 2-D shapes).
    shape : sequence of int
        Shape of the volume the table was measured in.
    chunks : int, sequence of int, or dask chunks (tuple of tuples)
        The block grid, as ``dask.array`` accepts it (e.g. ``arr.chunks``).
    method : {'centroid', 'edge_penalized'}
        See the module docstring for the exact rules.

    Returns
    -------
    numpy.ndarray, shape (number of blocks per axis), int64 for ``'centroid'``,
    float64 for ``'edge_penalized'``
    """
    if method not in COUNT_METHODS:
        raise InvalidInputError(f"count method must be one of {COUNT_METHODS}, got {method!r}")
    shape = tuple(int(n) for n in shape)
    try:
        chunks = da.core.normalize_chunks(chunks, shape)
    except (ValueError, TypeError) as exc:
        raise InvalidInputError(f"chunks {chunks!r} do not fit shape {shape}: {exc}") from None
    edges = [np.cumsum(c, dtype=np.int64) for c in chunks]
    grid = tuple(len(c) for c in chunks)
    if method == "centroid":
        idx = centroid_voxels(lc, shape)
        block = np.stack([np.searchsorted(e, idx[:, k], side="right") for k, e in enumerate(edges)], axis=1)
        flat = np.ravel_multi_index(tuple(block.T), grid) if len(block) else np.zeros(0, np.int64)
        return np.bincount(flat, minlength=int(np.prod(grid))).astype(np.int64).reshape(grid)
    return _edge_penalized(lc, shape, edges, grid)


def _edge_penalized(lc, shape, edges, grid) -> np.ndarray:
    axes = _axes(shape)
    _require(lc, [f"{a}0" for a in axes] + [f"{a}1" for a in axes])
    lo = lc[[f"{a}0" for a in axes]].to_numpy(dtype=np.int64).reshape(len(lc), len(axes))
    hi = lc[[f"{a}1" for a in axes]].to_numpy(dtype=np.int64).reshape(len(lc), len(axes))
    if np.any(lo < 0) or np.any(hi > np.asarray(shape)) or np.any(hi <= lo):
        raise InvalidInputError(f"object table has bounding boxes that are empty or outside shape {shape}")
    first = np.stack([np.searchsorted(e, lo[:, k], side="right") for k, e in enumerate(edges)], axis=1)
    last = np.stack([np.searchsorted(e, hi[:, k] - 1, side="right") for k, e in enumerate(edges)], axis=1)
    span = last - first + 1
    weight = 1.0 / np.prod(span, axis=1)
    out = np.zeros(grid, dtype=np.float64)
    single = np.all(span == 1, axis=1)
    np.add.at(out, tuple(first[single].T), weight[single])
    for f, z, w in zip(first[~single], last[~single], weight[~single]):
        out[tuple(slice(a, b + 1) for a, b in zip(f, z))] += w
    return out


def count_labels_per_chunk(os_arr) -> da.Array:
    """Number of distinct non-zero labels in every chunk of an OS array.

    Parameters
    ----------
    os_arr : dask.array.Array, integer labels (0 = background)

    Returns
    -------
    dask.array.Array, shape (number of chunks per axis), int64
    """
    os_arr = da.asarray(os_arr)
    if not np.issubdtype(os_arr.dtype, np.integer):
        raise InvalidInputError(f"os_arr must hold integer labels, got dtype {os_arr.dtype}")
    ndim = os_arr.ndim
    return os_arr.map_blocks(
        _distinct_labels, chunks=tuple((1,) * len(c) for c in os_arr.chunks), dtype=np.int64, ndim=ndim
    )


def _distinct_labels(block: np.ndarray, ndim: int) -> np.ndarray:
    values = np.unique(block)
    return np.full((1,) * ndim, np.count_nonzero(values), dtype=np.int64)


def _axes(shape) -> list[str]:
    if not 1 <= len(shape) <= 3:
        raise InvalidInputError(f"object tables describe 1-D to 3-D volumes, got shape {tuple(shape)}")
    return list(_AXES[-len(shape):])


def _require(lc, columns) -> None:
    if not isinstance(lc, pd.DataFrame):
        raise InvalidInputError(f"expected an object table (pandas DataFrame), got {type(lc).__name__}")
    missing = [c for c in columns if c not in lc.columns]
    if missing:
        raise InvalidInputError(f"object table lacks columns {missing}")
