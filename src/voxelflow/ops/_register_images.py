"""Numpy volumes as SimpleITK images for registration: checks, intensity scaling, geometry.

Geometry: arrays are (z, y, x); voxel ``i`` of size ``s`` micrometres spans
``[i s, (i + 1) s)`` and its centre is at ``(i + 0.5) s``. SimpleITK images get
``origin = s / 2`` and reversed axes (x first).

SimpleITK is an optional extra; :func:`load_simpleitk` imports it on first use.
"""

from __future__ import annotations

import numpy as np

from voxelflow.errors import InvalidInputError, OptionalDependencyError, RegistrationError

__all__ = ["load_simpleitk", "as_volume", "as_spacing", "normalise", "to_sitk", "reference_image"]


def load_simpleitk():
    """The SimpleITK module; OptionalDependencyError naming the extra without it."""
    try:
        import SimpleITK
    except ImportError as exc:
        raise OptionalDependencyError("atlas registration needs SimpleITK: pip install 'voxelflow[registration]'") from exc
    return SimpleITK


def as_volume(arr, what: str) -> np.ndarray:
    """``arr`` as a numeric 3-D array with at least 4 voxels per axis; InvalidInputError naming ``what`` else."""
    out = np.asarray(arr)
    if out.ndim != 3 or min(out.shape) < 4:
        raise InvalidInputError(f"{what} must be 3-D with at least 4 voxels per axis, got shape {out.shape}")
    if not (np.issubdtype(out.dtype, np.number) or out.dtype == bool):
        raise InvalidInputError(f"{what} must be numeric, got {out.dtype}")
    return out


def as_spacing(values, name: str) -> tuple[float, float, float]:
    """Three positive finite voxel sizes (micrometres, z y x) as floats; InvalidInputError naming ``name`` else."""
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name} must be 3 positive numbers (micrometres), got {values!r}") from None
    if len(out) != 3 or not all(np.isfinite(v) and v > 0 for v in out):
        raise InvalidInputError(f"{name} must be 3 positive numbers (micrometres), got {values!r}")
    return out


def normalise(arr: np.ndarray, what: str) -> np.ndarray:
    """Float32 scaled to [0, 1] between the 0.5th and 99.5th percentiles; raises on an image without contrast."""
    a = arr.astype(np.float32, copy=False)
    if not np.all(np.isfinite(a)):
        raise RegistrationError(f"{what} holds NaN or infinite values")
    lo, hi = np.percentile(a, [0.5, 99.5])
    if not hi > lo:
        raise RegistrationError(f"{what} has no contrast (all voxels about {float(lo):.6g}): nothing to register; "
                                "is the channel empty or the wrong one?")
    return np.clip((a - np.float32(lo)) / np.float32(hi - lo), 0.0, 1.0).astype(np.float32)


def to_sitk(sitk, arr: np.ndarray, spacing):
    """A SimpleITK image of a (z, y, x) array with voxel size ``spacing`` (um, z y x) and origin at half a voxel."""
    img = sitk.GetImageFromArray(np.ascontiguousarray(arr))
    sp = tuple(float(s) for s in reversed(spacing))
    img.SetSpacing(sp)
    img.SetOrigin(tuple(s / 2 for s in sp))
    return img


def reference_image(sitk, shape, spacing):
    """An empty uint8 SimpleITK image with the geometry of a (z, y, x) grid: the target of resampling."""
    img = sitk.Image([int(n) for n in reversed(shape)], sitk.sitkUInt8)
    sp = tuple(float(s) for s in reversed(spacing))
    img.SetSpacing(sp)
    img.SetOrigin(tuple(s / 2 for s in sp))
    return img
