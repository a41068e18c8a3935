"""What the report reads from a run folder: the object table, the image and density map (coarse levels)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from voxelflow.errors import InvalidInputError, InvalidPathError, OmeZarrError
from voxelflow.steps.node import DENSITY_IMAGE, OBJECTS_TABLE

#: Names tried, in order, for the input image OME-Zarr in a run folder. A run description
#: ``outputs`` mapping with an ``image`` entry (a path relative to the folder) wins.
DEFAULT_IMAGE_NAMES = ("image.ome.zarr", "input.ome.zarr")
#: Names tried, in order, for the density map OME-Zarr; the run description's ``outputs.density`` wins.
DEFAULT_DENSITY_NAMES = (DENSITY_IMAGE,)


SPATIAL = ("z", "y", "x")
# The coarse level for projections is the smallest whose largest side still has
# this many voxels: enough to see plaques, small enough to read in a second.
_MIP_TARGET_SIDE = 256


def optional(load, discovered: bool, what: str, notes: list, missing):
    """Run ``load``; an output found through the run description that cannot be read becomes a note.

    A run folder that was moved can name an input image that no longer exists; the
    report is still worth writing, and says what it left out and why. Arrays or URLs
    passed explicitly must load, so their errors propagate.
    """
    if not discovered:
        return load()
    try:
        return load()
    except (OmeZarrError, InvalidPathError, InvalidInputError, OSError) as exc:
        notes.append(f"{what} not shown: {exc}")
        return missing


def read_objects(run: Path) -> pd.DataFrame:
    path = run / OBJECTS_TABLE
    if not path.is_file():
        raise InvalidPathError(
            f"no object table: {str(path)!r} is missing and no `objects` DataFrame was given"
        )
    return pd.read_parquet(path)


def require_columns(df: pd.DataFrame, columns, what: str) -> None:
    if not isinstance(df, pd.DataFrame):
        raise InvalidInputError(f"{what} must be a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InvalidInputError(f"{what} table lacks column(s) {missing}; has {list(df.columns)}")


def _named_output(run: Path, meta: dict, key: str, names):
    """The run description's ``outputs[key]`` (relative to ``run``, or an absolute path/URL), else a default name."""
    outputs = meta.get("outputs") if isinstance(meta.get("outputs"), dict) else {}
    value = outputs.get(key)
    if isinstance(value, str) and value:
        if "://" in value or Path(value.split("?")[0]).is_absolute():
            return value
        return str(run / value)
    for name in names:
        if (run / name).exists():
            return str(run / name)
    return None


def resolve_image(run, meta, image, image_factors, channel):
    if image is None:
        image = _named_output(run, meta, "image", DEFAULT_IMAGE_NAMES)
        if image is None:
            return None, None
    if isinstance(image, (str, Path)):
        arr, factors = _open_coarse(str(image), channel)
        return arr, factors if image_factors is None else np.asarray(image_factors, float)
    arr = _as_3d(np.asarray(image) if not hasattr(image, "compute") else image, "image", channel)
    factors = np.ones(3) if image_factors is None else np.asarray(image_factors, float)
    if factors.shape != (3,) or np.any(factors <= 0):
        raise InvalidInputError(f"image_factors must be 3 positive numbers, got {image_factors!r}")
    return arr, factors


def resolve_density(run, meta, density):
    if density is None:
        density = _named_output(run, meta, "density", DEFAULT_DENSITY_NAMES)
        if density is None:
            return None
    if isinstance(density, (str, Path)):
        from voxelflow.io.ome_zarr import open_ome_zarr

        arr, ome = open_ome_zarr(str(density), level=0)
        return _as_3d(arr, "density", 0, ome.axes)
    return _as_3d(density, "density", 0)


def _open_coarse(url: str, channel: int):
    """Open the coarsest pyramid level of ``url`` with a side >= the display target."""
    from voxelflow.io.ome_zarr import open_ome_zarr

    full, meta = open_ome_zarr(url, level=0)
    full3 = _as_3d(full, "image", channel, meta.axes)
    chosen, chosen_meta = full3, meta
    for level in range(len(meta.levels) - 1, 0, -1):
        arr, lmeta = open_ome_zarr(url, level=level)
        arr3 = _as_3d(arr, "image", channel, lmeta.axes)
        if max(arr3.shape) >= min(_MIP_TARGET_SIDE, max(full3.shape)):
            chosen, chosen_meta = arr3, lmeta
            break
    # Voxel-size ratios, not shape ratios: odd sides make the latter slightly off.
    return chosen, _spatial_scale(chosen_meta) / _spatial_scale(meta)


def _spatial_scale(meta) -> np.ndarray:
    axes = [a.lower() for a in meta.axes]
    return np.array([meta.scale[axes.index(a)] for a in SPATIAL], dtype=float)


def _as_3d(arr, what: str, channel: int, axes=None):
    """Reduce ``arr`` to its (z, y, x) axes, taking ``channel`` on ``c`` and 0 elsewhere."""
    if axes is None:
        axes = tuple(f"dim{i}" for i in range(arr.ndim - 3)) + SPATIAL
    axes = tuple(a.lower() for a in axes)
    if arr.ndim != len(axes) or not set(SPATIAL) <= set(axes):
        raise InvalidInputError(
            f"{what} must have z, y, x axes (plus optional leading axes); got shape {arr.shape}"
            + (f" with axes {axes}" if axes else "")
        )
    index = []
    for name, size in zip(axes, arr.shape):
        if name in SPATIAL:
            index.append(slice(None))
        elif name == "c":
            if not 0 <= channel < size:
                raise InvalidInputError(f"channel {channel} out of range for {what} with {size} channels")
            index.append(channel)
        else:
            index.append(0)
    sub = arr[tuple(index)]
    kept = [a for a in axes if a in SPATIAL]
    return sub.transpose([kept.index(a) for a in SPATIAL])
