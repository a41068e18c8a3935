"""The chunked driver of the filters: each output chunk is one task on its chunk plus a halo, in float32.

The halo is clipped at the array border (:mod:`voxelflow.ops._halo`), where the
filter's boundary mode then applies exactly as on the whole array, so the
result does not depend on the chunking.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import dask.array as da
import numpy as np

from voxelflow.ops._halo import iter_blocks, map_regions, padded_region

__all__ = ["map_filter", "as3", "FilterRecipe", "filter_recipe", "filter_region"]


class FilterRecipe(NamedTuple):
    """How a :func:`map_filter` output is computed, so a consumer that reads it with a halo (a peak search) can
    filter the larger region itself instead of holding the neighbouring output chunks."""

    img: da.Array
    depth: tuple[int, ...]
    func: object
    args: tuple
    core_only: bool


#: The attribute of a :func:`map_filter` output that holds its :class:`FilterRecipe`.
_RECIPE = "_voxelflow_filter_recipe"


def map_filter(img: da.Array, depth: Sequence[int], func, args, name: str, *, core_only: bool = False) -> da.Array:
    """float32 array whose every chunk is computed from the chunk's padded block (as 3-D float32).

    Parameters
    ----------
    img : dask.array.Array, shape (Z, Y, X) or (Y, X)
    depth : sequence of int
        Halo width per axis of ``img``.
    func : callable
        ``func(block, *args)`` returns the filtered padded block, which is cropped
        to the chunk; with ``core_only``, ``func(block, core, *args)`` returns the
        chunk itself (``core``: the chunk's 3 slices inside the block).
    args : tuple
    name : str
        Prefix of the task names.
    core_only : bool

    Returns
    -------
    dask.array.Array, shape and chunks of ``img``, float32
    """
    depth = tuple(int(d) for d in depth)
    plan = []
    for block in iter_blocks(img.chunks):
        lo, hi = padded_region(block, depth, img.shape)
        core = tuple(slice(a - p, b - p) for a, b, p in zip(block.start, block.stop, lo))
        plan.append((block.index, (lo, hi), _run_block, (func, core, args, core_only)))
    out = map_regions(img, img.chunks, plan, np.float32, name)
    setattr(out, _RECIPE, FilterRecipe(img, depth, func, tuple(args), core_only))
    return out


def filter_recipe(arr) -> FilterRecipe | None:
    """The recipe of a 3-D :func:`map_filter` output (None for any other array, including one derived from it)."""
    recipe = getattr(arr, _RECIPE, None)
    return recipe if recipe is not None and arr.ndim == 3 else None


def filter_region(padded: np.ndarray, recipe: FilterRecipe, core) -> np.ndarray:
    """The filter of ``recipe`` on the region ``core`` (3 slices) of ``padded``, a region of ``recipe.img`` that
    extends ``recipe.depth`` past it (clipped at the array border): float32, equal to the same voxels of the
    :func:`map_filter` output."""
    return _run_block(padded, recipe.func, core, recipe.args, recipe.core_only)


def _run_block(padded, func, core, args, core_only):
    data = np.ascontiguousarray(padded, dtype=np.float32)
    flat = data.ndim == 2
    if flat:
        data = data[None]
        core = (slice(0, 1),) + tuple(core)
    out = func(data, core, *args) if core_only else func(data, *args)[core]
    return np.ascontiguousarray(out[0] if flat else out)


def as3(values, ndim: int) -> list:
    """Per-axis settings of a 2-D image padded to 3 axes (a dummy z axis that is never filtered)."""
    values = list(values)
    return values if ndim == 3 else [0] + values

