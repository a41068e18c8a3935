"""Check and expand the arguments of the OME-Zarr writers, before anything is written.

Axes, per-axis scale/translation/units, pyramid factors, chunk and shard shapes are
checked and expanded to one value per axis; the level geometry (scale and translation
of every pyramid level) follows from them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import dask.array as da
import numpy as np

from voxelflow.errors import InvalidInputError
from voxelflow.io.blockreduce import normalize_factors
from voxelflow.io.ome_zarr import metadata as md

__all__ = ["as_dask", "check_axes", "check_chunks", "check_factors", "check_shards", "default_chunks", "finite_float",
           "level_geometry", "per_axis", "positive_float", "unit_name"]

DEFAULT_CHUNK_BYTES = 8 * 2**20
_DEFAULT_AXES = {2: ("y", "x"), 3: ("z", "y", "x"), 4: ("c", "z", "y", "x"), 5: ("t", "c", "z", "y", "x")}
_ORDER = {"t": 0, "c": 1, "z": 2, "y": 2, "x": 2}


def as_dask(arr) -> da.Array:
    """``arr`` as a dask array (numpy input becomes one chunk); refuses what is not an array."""
    if isinstance(arr, da.Array):
        return arr
    if not hasattr(arr, "shape") or not hasattr(arr, "dtype"):
        raise InvalidInputError(f"expected a numpy or dask array, got {type(arr).__name__}")
    return da.from_array(np.asarray(arr), chunks=-1)


def check_axes(axes, ndim: int) -> tuple[str, ...]:
    if not 2 <= ndim <= 5:
        raise InvalidInputError(f"OME-Zarr images have 2 to 5 dimensions, got an array with {ndim}")
    if axes is None:
        return _DEFAULT_AXES[ndim]
    axes = tuple(axes)
    if len(axes) != ndim:
        raise InvalidInputError(f"axes {axes} has {len(axes)} names but the array has {ndim} dimensions")
    if any(a not in _ORDER for a in axes) or len(set(axes)) != ndim:
        raise InvalidInputError(f"axes {axes} must be distinct names from 't', 'c', 'z', 'y', 'x'")
    if [_ORDER[a] for a in axes] != sorted(_ORDER[a] for a in axes):
        raise InvalidInputError(f"axes {axes} must be ordered time, channel, then space axes (NGFF)")
    n_space = sum(_ORDER[a] == 2 for a in axes)
    if not 2 <= n_space <= 3:
        raise InvalidInputError(f"axes {axes} must contain 2 or 3 space axes (z, y, x)")
    return axes


def per_axis(value, axes: tuple[str, ...], what: str, default, cast):
    """Expand a scalar / per-axis sequence / {axis: value} dict to one value per axis."""
    if value is None:
        return tuple(default(a) for a in axes)
    if isinstance(value, dict):
        unknown = set(value) - set(axes)
        if unknown:
            raise InvalidInputError(f"{what} names axes {sorted(unknown)} that are not in {axes}")
        return tuple(cast(value[a]) if a in value else default(a) for a in axes)
    if isinstance(value, (str, int, float, np.number)):
        return tuple(cast(value) if md.axis_type(a) == "space" else default(a) for a in axes)
    value = tuple(value)
    if len(value) != len(axes):
        raise InvalidInputError(f"{what} {value} has {len(value)} entries but the axes are {axes}")
    return tuple(default(a) if v is None else cast(v) for v, a in zip(value, axes))


def positive_float(v) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise InvalidInputError(f"scale values must be numbers, got {v!r}") from None
    if not math.isfinite(f) or f <= 0:
        raise InvalidInputError(f"scale values must be positive and finite, got {v!r}")
    return f


def finite_float(v) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise InvalidInputError(f"translation values must be numbers, got {v!r}") from None
    if not math.isfinite(f):
        raise InvalidInputError(f"translation values must be finite, got {v!r}")
    return f


def unit_name(v) -> str:
    if not isinstance(v, str) or not v:
        raise InvalidInputError(f"units must be unit names such as 'micrometer', got {v!r}")
    return v


def check_factors(factors, levels: int, axes: tuple[str, ...]) -> list[tuple[int, ...]]:
    """Factors from each level to the next: an int applies to the space axes only."""
    if isinstance(levels, bool) or not isinstance(levels, (int, np.integer)) or levels < 1:
        raise InvalidInputError(f"levels must be an int >= 1, got {levels!r}")
    if isinstance(factors, (int, np.integer)) and not isinstance(factors, bool):
        one = tuple(int(factors) if md.axis_type(a) == "space" else 1 for a in axes)
        return [normalize_factors(one, len(axes))] * (levels - 1)
    if isinstance(factors, Sequence) and factors and all(isinstance(f, Sequence) for f in factors):
        if len(factors) != levels - 1:
            raise InvalidInputError(
                f"{len(factors)} per-level factors given for {levels} levels; expected {levels - 1}"
            )
        return [normalize_factors(f, len(axes)) for f in factors]
    return [normalize_factors(factors, len(axes))] * (levels - 1)


def default_chunks(shape: tuple[int, ...], dtype, axes: tuple[str, ...]) -> tuple[int, ...]:
    """Chunks of about ``DEFAULT_CHUNK_BYTES``: one channel/time plane, space axes halved from the largest."""
    chunk = [1 if md.axis_type(a) != "space" else max(1, s) for a, s in zip(axes, shape)]
    space = [i for i, a in enumerate(axes) if md.axis_type(a) == "space"]
    itemsize = np.dtype(dtype).itemsize
    while math.prod(chunk) * itemsize > DEFAULT_CHUNK_BYTES:
        big = max(space, key=lambda i: chunk[i])
        if chunk[big] == 1:
            break
        chunk[big] = -(-chunk[big] // 2)
    return tuple(chunk)


def check_chunks(chunks, arr: da.Array, axes: tuple[str, ...], from_dask: bool) -> tuple[int, ...]:
    """Stored chunk shape of level 0: ``chunks`` checked and clipped to the array, or the default."""
    if chunks is None:
        if from_dask:
            return tuple(max(1, c[0]) for c in arr.chunks)
        return default_chunks(arr.shape, arr.dtype, axes)
    if isinstance(chunks, (int, np.integer)):
        chunks = tuple(1 if md.axis_type(a) != "space" else int(chunks) for a in axes)
    chunks = tuple(chunks)
    if len(chunks) != len(axes) or any(not isinstance(c, (int, np.integer)) or c < 1 for c in chunks):
        raise InvalidInputError(f"chunks {chunks} must be {len(axes)} positive ints (axes {axes})")
    return tuple(min(int(c), max(1, s)) for c, s in zip(chunks, arr.shape))


def check_shards(shards, chunks: tuple[int, ...], axes, version: str) -> tuple[int, ...] | None:
    """Shard shape (multiples of ``chunks``, zarr v3 only), or None for an unsharded image."""
    if shards is None:
        return None
    if version != "0.5":
        raise InvalidInputError("sharding needs zarr v3, i.e. version='0.5' (NGFF 0.4 uses zarr v2)")
    if isinstance(shards, (int, np.integer)):
        shards = tuple(c * int(shards) if md.axis_type(a) == "space" else c for c, a in zip(chunks, axes))
    shards = tuple(shards)
    if len(shards) != len(chunks) or any(
        not isinstance(s, (int, np.integer)) or s < 1 or s % c for s, c in zip(shards, chunks)
    ):
        raise InvalidInputError(f"shards {shards} must be positive multiples of the chunk shape {chunks}")
    return tuple(int(s) for s in shards)


def level_geometry(scale0, translation0, factors, method):
    """Scale and translation of every pyramid level (lists of per-axis tuples, level 0 first)."""
    scales, translations = [tuple(scale0)], [tuple(translation0)]
    for f in factors:
        prev_s, prev_t = scales[-1], translations[-1]
        # A block's value sits at the block centre, except 'nearest' which keeps its first voxel.
        shift = (0.0,) * len(f) if method == "nearest" else tuple((g - 1) / 2 * s for g, s in zip(f, prev_s))
        scales.append(tuple(s * g for s, g in zip(prev_s, f)))
        translations.append(tuple(t + d for t, d in zip(prev_t, shift)))
    return scales, translations

