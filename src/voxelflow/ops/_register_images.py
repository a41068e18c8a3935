"""Numpy volumes as SimpleITK images for registration: checks, intensity scaling, geometry.

Geometry: arrays are (z, y, x); voxel ``i`` of size ``s`` micrometres spans
``[i s, (i + 1) s)`` and its centre is at ``(i + 0.5) s``. SimpleITK images get
``origin = s / 2`` and reversed axes (x first).

SimpleITK is an optional extra; :func:`load_simpleitk` imports it on first use.
"""

from __future__ import annotations

import numpy as np

from voxelflow.errors import InvalidInputError, OptionalDependencyError, RegistrationError
from voxelflow.io.blockmean import block_mean

__all__ = ["load_simpleitk", "as_volume", "as_spacing", "normalise", "working_factors", "working_image", "to_sitk",
           "reference_image"]


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
    """Float32 scaled to [0, 1] between the 0.5th and 99.5th percentiles; raises on an image without contrast.

    The percentiles are taken on at most about 2 million evenly strided voxels.

    Parameters
    ----------
    arr : numpy.ndarray, any shape, numeric
    what : str
        Names the image in errors.

    Returns
    -------
    numpy.ndarray, shape of ``arr``, float32
    """
    a = np.array(arr, dtype=np.float32, copy=True)
    if not np.all(np.isfinite(a)):
        raise RegistrationError(f"{what} holds NaN or infinite values")
    flat = a.reshape(-1)
    lo, hi = np.percentile(flat[:: max(1, flat.size // 2_000_000)], [0.5, 99.5])
    if not hi > lo:
        raise RegistrationError(f"{what} has no contrast (all voxels about {float(lo):.6g}): nothing to register; "
                                "is the channel empty or the wrong one?")
    a -= np.float32(lo)
    a /= np.float32(hi - lo)
    np.clip(a, 0.0, 1.0, out=a)
    return a


def working_factors(spacing, finest_um: float) -> tuple[int, int, int]:
    """Integer block sizes taking voxels of ``spacing`` (um) to at most ``finest_um``: ``max(1, floor(finest / s))``."""
    return tuple(max(1, int(np.floor(finest_um / float(s) + 1e-9))) for s in spacing)


def working_image(sitk, arr: np.ndarray, spacing, finest_um: float, what: str):
    """The image registration works on: block-averaged towards ``finest_um``, scaled to [0, 1], float32.

    Block ``j`` of ``k`` voxels spans ``[j k s, (j + 1) k s)``, so the averaged
    image keeps the voxel convention with voxel size ``k s`` and the physical
    frame is unchanged; border blocks average the voxels that exist.

    Parameters
    ----------
    sitk : module
        SimpleITK.
    arr : numpy.ndarray, shape (Z, Y, X), numeric
    spacing : tuple of 3 float
        Voxel size (um, z y x).
    finest_um : float
        The finest registration level: no detail below it is used.
    what : str
        Names the image in errors.

    Returns
    -------
    SimpleITK.Image, float32, voxel size ``k * spacing``
    """
    factors = working_factors(spacing, finest_um)
    if any(k > 1 for k in factors):
        averaged = block_mean(arr, factors)
        arr = averaged if averaged is not None else block_mean(arr.astype(np.float32), factors)
    return to_sitk(sitk, normalise(arr, what), tuple(s * k for s, k in zip(spacing, factors)))


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
