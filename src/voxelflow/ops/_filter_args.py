"""Argument checks and unit conversion shared by the chunked filters: images, voxel sizes, lengths in um."""

from __future__ import annotations

import dask.array as da
import numpy as np

from voxelflow.errors import InvalidInputError
from voxelflow.ops._kernels import MODES

__all__ = ["as_image", "as_spacing", "as_length", "as_mode", "voxel_lengths", "tile_shape"]


def as_image(img, name: str = "img") -> da.Array:
    """A 2-D or 3-D numeric image as a dask array; :class:`InvalidInputError` naming ``name`` otherwise."""
    arr = img if isinstance(img, da.Array) else da.asarray(img)
    if arr.ndim not in (2, 3):
        raise InvalidInputError(f"{name} must be a 2-D (y, x) or 3-D (z, y, x) image, got {arr.ndim} axes")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise InvalidInputError(f"{name} must be numeric, got dtype {arr.dtype}")
    return arr


def as_spacing(spacing, ndim: int) -> np.ndarray:
    """Voxel size in um, one positive value per axis (a scalar is broadcast): array (ndim,), float64."""
    s = np.broadcast_to(np.asarray(spacing, dtype=np.float64), (ndim,)) if np.ndim(spacing) == 0 else np.asarray(
        spacing, dtype=np.float64
    )
    if s.shape != (ndim,) or not np.all(np.isfinite(s)) or (s <= 0).any():
        raise InvalidInputError(f"spacing must be {ndim} positive voxel sizes in um (z, y, x), got {spacing!r}")
    return s


def as_length(value, name: str, allow_zero: bool = False) -> float:
    """A finite positive (or, with ``allow_zero``, non-negative) length in um, named ``name`` in errors."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name} must be a length in um, got {value!r}") from None
    if not np.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise InvalidInputError(f"{name} must be a {'non-negative' if allow_zero else 'positive'} length in um, "
                                f"got {value!r}")
    return v


def as_mode(mode: str) -> str:
    """A boundary mode the compiled passes offer (:data:`voxelflow.ops._kernels.MODES`)."""
    if mode not in MODES:
        raise InvalidInputError(f"mode must be one of {MODES}, got {mode!r}")
    return mode


def voxel_lengths(length_um: float, spacing, per_plane: bool = False) -> np.ndarray:
    """A physical length in voxels along each axis (z first); 0 along z when ``per_plane``.

    Parameters
    ----------
    length_um : float
    spacing : sequence of float, (z, y, x) or (y, x)
    per_plane : bool

    Returns
    -------
    numpy.ndarray of float64, one value per axis
    """
    s = np.asarray(spacing, dtype=np.float64)
    out = float(length_um) / s
    if per_plane and out.size == 3:
        out[0] = 0.0
    return out


def tile_shape(tile_um, spacing, shape) -> tuple[int, int]:
    """Tile size in voxels (y, x); the whole plane when ``tile_um`` is None."""
    if tile_um is None:
        return int(shape[-2]), int(shape[-1])
    t = as_length(tile_um, "tile_um")
    return tuple(max(1, int(round(t / s))) for s in np.asarray(spacing, dtype=np.float64)[-2:])

