"""The start of registration: tissue centres of mass, principal axes and extents matched.

The orientation codes already put the anatomical axes in place, so only a
moderate rotation is left to find; :func:`moments_start` therefore picks the
eigenvector signs closest to the identity and falls back to matching the
centres of mass alone when the principal axes would rotate by more than
:data:`MAX_START_ROTATION_DEG` or fit worse.
"""

from __future__ import annotations

import itertools

import numpy as np

from voxelflow.errors import RegistrationError
from voxelflow.ops._register_images import as_spacing, as_volume, load_simpleitk, working_image
from voxelflow.ops._register_metric import full_metric
from voxelflow.ops._register_params import RegistrationParameters

__all__ = ["MAX_START_ROTATION_DEG", "moments_start", "rotation_angle_deg", "start_metric"]

#: Largest rotation (degrees) accepted from the principal-axes start: the orientation codes
#: already align the anatomical axes, so a larger one means two axes were paired wrongly.
MAX_START_ROTATION_DEG = 30.0


def moments_start(sitk, f_img, m_img, axes: bool = True):
    """Affine start from the tissue masks (Otsu): centres of mass matched, and, when it fits better,
    the principal axes and extents matched too (rotation and per-axis scale).

    The eigenvector signs are chosen closest to the identity: the orientation
    codes already put the anatomical axes in place, so only a moderate rotation
    is left to find.
    """
    f_mask = sitk.OtsuThreshold(f_img, 0, 1)
    m_mask = sitk.OtsuThreshold(m_img, 0, 1)
    for what, mask in (("fixed image (the scan's registration channel)", f_mask),
                       ("moving image (the atlas template)", m_mask)):
        if sitk.GetArrayViewFromImage(mask).max() == 0:
            raise RegistrationError(f"{what} has no tissue above its Otsu threshold")
    centred = sitk.CenteredTransformInitializer(
        sitk.Cast(f_mask, sitk.sitkFloat32), sitk.Cast(m_mask, sitk.sitkFloat32), sitk.AffineTransform(3),
        sitk.CenteredTransformInitializerFilter.MOMENTS)
    if not axes:
        return centred, centred
    (cf, vf, lf), (cm, vm, lm) = principal_axes(sitk, f_mask), principal_axes(sitk, m_mask)
    # pair the axes by direction, not by length: scaling can reorder the lengths
    best = max(itertools.permutations(range(3)), key=lambda p: sum(abs(vf[:, i] @ vm[:, p[i]]) for i in range(3)))
    vm, lm = vm[:, list(best)], lm[list(best)]
    for i in range(3):
        if np.dot(vm[:, i], vf[:, i]) < 0:
            vm[:, i] = -vm[:, i]
    a = vm @ np.diag(np.sqrt(lm / np.maximum(lf, 1e-12))) @ vf.T
    if rotation_angle_deg(a) > MAX_START_ROTATION_DEG:
        return centred, centred
    matched = sitk.AffineTransform(3)
    matched.SetCenter(tuple(float(v) for v in cf))
    matched.SetMatrix(tuple(float(v) for v in a.ravel()))
    matched.SetTranslation(tuple(float(v) for v in cm - cf))
    params = RegistrationParameters()
    m_small = sitk.Shrink(m_img, [2, 2, 2])
    f_small = sitk.Shrink(f_img, [2, 2, 2])
    if full_metric(sitk, f_small, m_small, matched, params) < full_metric(sitk, f_small, m_small, centred, params):
        return matched, centred
    return centred, centred


def rotation_angle_deg(matrix) -> float:
    """Angle (degrees) of the rotation part of a 3 x 3 matrix (polar decomposition)."""
    u, _, vt = np.linalg.svd(np.asarray(matrix, dtype=np.float64).reshape(3, 3))
    r = u @ vt
    return float(np.degrees(np.arccos(np.clip((np.trace(r) - 1) / 2, -1.0, 1.0))))


def principal_axes(sitk, mask):
    """Centre (x, y, z um), eigenvectors (columns) and eigenvalues of a mask's physical second moments."""
    arr = sitk.GetArrayViewFromImage(mask)
    idx = np.argwhere(arr > 0)[:, ::-1].astype(np.float64)  # x, y, z voxel indices
    if len(idx) > 200_000:
        idx = idx[np.random.default_rng(0).choice(len(idx), 200_000, replace=False)]
    pts = idx * np.asarray(mask.GetSpacing()) + np.asarray(mask.GetOrigin())
    centre = pts.mean(axis=0)
    values, vectors = np.linalg.eigh(np.cov((pts - centre).T))
    return centre, vectors, values


def start_metric(fixed, moving, fixed_spacing, moving_spacing, level_um: float = 400.0, bins: int = 32) -> float:
    """Mattes MI after matching the tissue centres of mass only, on images block-averaged towards ``level_um``.

    Cheap (one metric evaluation on small images): used to compare candidate
    orientations of the fixed image.

    Parameters
    ----------
    fixed, moving : numpy.ndarray, shape (Z, Y, X), numeric
    fixed_spacing, moving_spacing : sequence of 3 float
        Voxel sizes (um).
    level_um : float
        Voxel size the images are averaged towards (never finer than they are).
    bins : int
        Histogram bins.

    Returns
    -------
    float
        Lower is better.
    """
    sitk = load_simpleitk()
    f_img = working_image(sitk, as_volume(fixed, "fixed image"), as_spacing(fixed_spacing, "fixed_spacing"),
                          level_um, "fixed image")
    m_img = working_image(sitk, as_volume(moving, "moving image"), as_spacing(moving_spacing, "moving_spacing"),
                          level_um, "moving image")
    _, centred = moments_start(sitk, f_img, m_img, axes=False)
    return full_metric(sitk, f_img, m_img, centred, RegistrationParameters(histogram_bins=bins))
