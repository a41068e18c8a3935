"""Gaussian, Laplacian of Gaussian and difference of Gaussians sized in micrometres (IN -> IN), float32.

Every filter is set by a physical standard deviation ``sigma_um`` and the voxel
size ``spacing`` (um per voxel, z y x), so a 10 um nucleus gets the same filter
on 5 x 2 x 2 um voxels as on 2 x 1 x 1 um voxels. Each output chunk is one task
on its chunk plus a halo of the kernel's reach (:mod:`voxelflow.ops._filter_map`),
running compiled passes one output plane at a time
(:mod:`voxelflow.ops._plane_kernels`): the result equals the
``scipy.ndimage`` filter of the whole array for any chunking, up to float32
rounding. ``per_plane=True`` filters each z plane on its own (2-D in y, x), as
lightsheet detectors often do when planes differ in brightness.

=========================  ===============================================
function                   whole-array reference
=========================  ===============================================
``gaussian``               ``ndi.gaussian_filter(img, sigma_um / spacing)``
``log_filter``             ``-sigma_um**2 * sum_a ndi.gaussian_filter(img, s, order=e_a) / spacing[a]**2``
``dog_filter``             ``gaussian(sigma) - gaussian(ratio * sigma)``
=========================  ===============================================
"""

from __future__ import annotations

import dask.array as da
import numpy as np

from voxelflow.errors import InvalidInputError
from voxelflow.ops._filter_args import as_image, as_length, as_mode, as_spacing, voxel_lengths
from voxelflow.ops._filter_map import as3, map_filter
from voxelflow.ops._plane_kernels import gaussian_core, log_core

__all__ = ["gaussian", "log_filter", "dog_filter"]


def _radius(sigma: float, truncate: float) -> int:
    return int(truncate * float(sigma) + 0.5) if sigma > 0 else 0


def _sigmas(sigma_um, spacing, ndim, per_plane) -> np.ndarray:
    s = as_spacing(spacing, ndim)
    return voxel_lengths(as_length(sigma_um, "sigma_um"), s, per_plane)


def gaussian(img, sigma_um: float, spacing, *, per_plane: bool = False, truncate: float = 4.0,
             mode: str = "reflect") -> da.Array:
    """Gaussian smoothing with a physical standard deviation.

    Parameters
    ----------
    img : dask.array.Array or numpy.ndarray, shape (Z, Y, X) or (Y, X), numeric
        Intensity image (IN).
    sigma_um : float
        Standard deviation in micrometres, the same along every axis.
    spacing : sequence of float
        Voxel size in um per axis (z, y, x).
    per_plane : bool
        Smooth each z plane in (y, x) only.
    truncate : float
        Kernels reach ``int(truncate * sigma_voxels + 0.5)`` voxels, as in scipy.
    mode : {'reflect', 'mirror', 'nearest', 'wrap'}
        Boundary mode at the array border (scipy's meaning).

    Returns
    -------
    dask.array.Array, shape and chunks of ``img``, float32
        ``scipy.ndimage.gaussian_filter(img, sigma_um / spacing, truncate=truncate, mode=mode)``.
    """
    img = as_image(img)
    sig = _sigmas(sigma_um, spacing, img.ndim, per_plane)
    depth = [_radius(s, truncate) for s in sig]
    return map_filter(img, depth, gaussian_core, (as3(sig, img.ndim), truncate, as_mode(mode)), "vf-gaussian",
                      core_only=True)


def log_filter(img, sigma_um: float, spacing, *, per_plane: bool = False, truncate: float = 4.0,
               mode: str = "reflect") -> da.Array:
    """Scale-normalised negative Laplacian of Gaussian in physical units (bright blobs > 0).

    Parameters
    ----------
    img : dask.array.Array or numpy.ndarray, shape (Z, Y, X) or (Y, X), numeric
        Intensity image (IN).
    sigma_um : float
        Standard deviation of the Gaussian in micrometres. A ball of diameter
        ``d`` responds most at ``sigma_um = d / (2 * sqrt(ndim))``.
    spacing : sequence of float
        Voxel size in um per axis (z, y, x).
    per_plane : bool
        2-D Laplacian of Gaussian of each z plane (no smoothing or derivative along z).
    truncate, mode
        As in :func:`gaussian`.

    Returns
    -------
    dask.array.Array, shape and chunks of ``img``, float32
        ``-sigma_um**2 * sum_a gaussian_filter(img, s, order=e_a) / spacing[a]**2``
        over the filtered axes ``a`` (``e_a`` = 2 on axis ``a``, 0 elsewhere;
        ``s = sigma_um / spacing``): the Laplacian with respect to micrometres,
        so anisotropic voxels do not favour one axis.
    """
    img = as_image(img)
    sp = as_spacing(spacing, img.ndim)
    sig = _sigmas(sigma_um, sp, img.ndim, per_plane)
    depth = [_radius(s, truncate) for s in sig]
    scale = -float(sigma_um) ** 2
    args = (as3(sig, img.ndim), as3(sp, img.ndim), truncate, as_mode(mode), scale)
    return map_filter(img, depth, log_core, args, "vf-log", core_only=True)


def _dog_core(data, core, small, large, truncate, mode):
    out = gaussian_core(data, core, small, truncate, mode)
    out -= gaussian_core(data, core, large, truncate, mode)
    return out


def dog_filter(img, sigma_um: float, spacing, *, ratio: float = 1.6, per_plane: bool = False,
               truncate: float = 4.0, mode: str = "reflect") -> da.Array:
    """Difference of Gaussians ``G(sigma) - G(ratio * sigma)`` (bright blobs > 0).

    Parameters
    ----------
    img : dask.array.Array or numpy.ndarray, shape (Z, Y, X) or (Y, X), numeric
    sigma_um : float
        The smaller standard deviation in micrometres.
    spacing : sequence of float
        Voxel size in um per axis.
    ratio : float
        Larger sigma over smaller sigma (> 1).
    per_plane, truncate, mode
        As in :func:`gaussian`.

    Returns
    -------
    dask.array.Array, shape and chunks of ``img``, float32
    """
    img = as_image(img)
    if not float(ratio) > 1:
        raise InvalidInputError(f"ratio must be > 1, got {ratio!r}")
    small = _sigmas(sigma_um, spacing, img.ndim, per_plane)
    large = small * float(ratio)
    depth = [_radius(s, truncate) for s in large]
    args = (as3(small, img.ndim), as3(large, img.ndim), truncate, as_mode(mode))
    return map_filter(img, depth, _dog_core, args, "vf-dog", core_only=True)
