"""Numpy volumes as SimpleITK images for registration: checks, intensity scaling, geometry.

Geometry: arrays are (z, y, x); voxel ``i`` of size ``s`` micrometres spans
``[i s, (i + 1) s)`` and its centre is at ``(i + 0.5) s``. SimpleITK images get
``origin = s / 2`` and reversed axes (x first).

SimpleITK is an optional extra; :func:`load_simpleitk` imports it on first use.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.filters import threshold_otsu

from voxelflow.errors import InvalidInputError, OptionalDependencyError, RegistrationError
from voxelflow.io.blockmean import block_mean

__all__ = ["load_simpleitk", "as_volume", "as_spacing", "intensity_range", "normalise", "flatten_brightness", "working_factors",
           "working_image", "to_sitk", "reference_image"]


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


def intensity_range(arr: np.ndarray, what: str) -> tuple[float, float]:
    """The 0.5th and 99.5th percentiles of ``arr``; raises on an image without contrast or with non-finite values.

    The percentiles are taken (in float32) on at most about 2 million evenly
    strided voxels; no full-size copy is made.

    Parameters
    ----------
    arr : numpy.ndarray, any shape, numeric
    what : str
        Names the image in errors.

    Returns
    -------
    lo, hi : float
        ``hi > lo``.
    """
    arr = np.asarray(arr)
    if np.issubdtype(arr.dtype, np.inexact) and not np.all(np.isfinite(arr)):
        raise RegistrationError(f"{what} holds NaN or infinite values")
    flat = arr.reshape(-1)
    lo, hi = np.percentile(flat[:: max(1, flat.size // 2_000_000)].astype(np.float32), [0.5, 99.5])
    if not hi > lo:
        raise RegistrationError(f"{what} has no contrast (all voxels about {float(lo):.6g}): nothing to register; "
                                "is the channel empty or the wrong one?")
    return lo, hi


def normalise(arr: np.ndarray, what: str) -> np.ndarray:
    """Float32 scaled to [0, 1] between the 0.5th and 99.5th percentiles (:func:`intensity_range`).

    Parameters
    ----------
    arr : numpy.ndarray, any shape, numeric
    what : str
        Names the image in errors.

    Returns
    -------
    numpy.ndarray, shape of ``arr``, float32
    """
    lo, hi = intensity_range(arr, what)
    a = np.array(arr, dtype=np.float32, copy=True)
    a -= np.float32(lo)
    a /= np.float32(hi - lo)
    np.clip(a, 0.0, 1.0, out=a)
    return a


#: Weight (relative to a voxel deep in the tissue) of the global tissue mean in the local mean of
#: :func:`flatten_brightness`: keeps the division finite far outside the tissue.
FLATTEN_PRIOR = 0.05


def flatten_brightness(arr: np.ndarray, spacing, sigma_um: float) -> np.ndarray:
    """``arr`` above its background, divided by its local mean brightness in the tissue.

    A smooth multiplicative brightness field (illumination falling off across
    the sample, a bias field) changes the joint histogram mutual information is
    measured on from place to place, and pulls region boundaries where the
    field changes. Dividing each image by its own local mean removes such a
    field: with ``b`` the background level (the 1st percentile), ``T`` the
    tissue (voxels above the Otsu threshold) and ``G`` a Gaussian of standard
    deviation ``sigma_um`` micrometres, the local mean is
    ``(G * ((arr - b) T) + p m) / (G * T + p)`` (normalised convolution over
    the tissue, so the dark outside does not lower it near the surface; ``m``
    the mean of ``arr - b`` in the tissue, ``p`` = :data:`FLATTEN_PRIOR`).
    Contrast between regions on scales below ``sigma_um`` is kept; both images
    of a registration are treated alike.

    Parameters
    ----------
    arr : numpy.ndarray, shape (Z, Y, X), numeric
    spacing : sequence of 3 float
        Voxel size (micrometres, z y x).
    sigma_um : float
        Standard deviation of the Gaussian (micrometres), > 0.

    Returns
    -------
    numpy.ndarray, shape of ``arr``, float32
        About 1 in the tissue, 0 in the background.
    """
    a = np.asarray(arr, dtype=np.float32)
    flat = a.reshape(-1)[:: max(1, a.size // 2_000_000)]
    background = np.float32(np.percentile(flat, 1.0))
    above = a - background
    if not np.all(np.isfinite(above)) or float(flat.max()) <= float(background):
        return above  # no contrast or not finite: normalise() names the problem
    tissue = a > np.float32(threshold_otsu(flat))
    sigma = [float(sigma_um) / float(s) for s in spacing]
    prior = np.float32(FLATTEN_PRIOR)
    mean_inside = np.float32(above[tissue].mean())
    # in place where it can be: a few copies of the image at once, not eight
    local = above * tissue
    ndi.gaussian_filter(local, sigma, mode="constant", output=local)
    den = tissue.astype(np.float32)
    del tissue
    ndi.gaussian_filter(den, sigma, mode="constant", output=den)
    local += prior * mean_inside
    den += prior
    local /= den
    del den
    above /= local
    return above


def working_factors(spacing, finest_um: float) -> tuple[int, int, int]:
    """Integer block sizes taking voxels of ``spacing`` (um) to at most ``finest_um``: ``max(1, floor(finest / s))``."""
    return tuple(max(1, int(np.floor(finest_um / float(s) + 1e-9))) for s in spacing)


def working_image(sitk, arr: np.ndarray, spacing, finest_um: float, what: str, flatten_um: float = 0.0):
    """The image registration works on: block-averaged towards ``finest_um``, flattened, scaled to [0, 1], float32.

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
    flatten_um : float
        With a value > 0, the averaged image is divided by its local mean
        brightness over a Gaussian of this standard deviation (micrometres):
        :func:`flatten_brightness`. 0 keeps the brightness as it is.

    Returns
    -------
    SimpleITK.Image, float32, voxel size ``k * spacing``
    """
    factors = working_factors(spacing, finest_um)
    if any(k > 1 for k in factors):
        averaged = block_mean(arr, factors)
        arr = averaged if averaged is not None else block_mean(arr.astype(np.float32), factors)
    work_spacing = tuple(s * k for s, k in zip(spacing, factors))
    if flatten_um > 0:
        intensity_range(arr, what)  # names an image without contrast before flattening divides by it
        arr = flatten_brightness(arr, work_spacing, flatten_um)
    return to_sitk(sitk, normalise(arr, what), work_spacing)


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
