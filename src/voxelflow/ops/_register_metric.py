"""Mattes mutual information for registration: where it is measured, the optimising method, the QC metric."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from voxelflow.ops._register_params import RegistrationParameters

__all__ = ["metric_mask", "registration_method", "full_metric"]


def metric_mask(sitk, img, margin_um: float):
    """The fixed voxels the metric is measured on: the tissue and up to ``margin_um`` around it.

    Tissue is the image above its Otsu threshold; the margin is a Euclidean
    distance in micrometres (voxel size from the image). Without a mask most
    samples of a scan whose field of view is much larger than the brain fall
    in the background, and the joint histogram is dominated by background
    against background.

    Parameters
    ----------
    sitk : module
        SimpleITK.
    img : SimpleITK.Image
        A working image (:func:`voxelflow.ops._register_images.working_image`).
    margin_um : float
        Distance around the tissue (micrometres); infinite: no mask.

    Returns
    -------
    SimpleITK.Image (uint8, geometry of ``img``) or None
        None for an infinite margin (every voxel).
    """
    if not np.isfinite(margin_um):
        return None
    tissue = sitk.GetArrayFromImage(sitk.OtsuThreshold(img, 0, 1)) > 0
    if not tissue.any():
        near = np.ones(tissue.shape, dtype=np.uint8)
    else:
        near = np.zeros(tissue.shape, dtype=np.uint8)
        spacing = tuple(reversed(img.GetSpacing()))
        # voxels farther than the margin from the tissue's bounding box are farther from the tissue too:
        # the distance transform runs on the box grown by the margin, not on the whole field of view
        box = _grown_box(tissue, [int(np.ceil(margin_um / s)) + 1 for s in spacing])
        near[box] = ndi.distance_transform_edt(~tissue[box], sampling=spacing) <= margin_um
    mask = sitk.GetImageFromArray(near)
    mask.CopyInformation(img)
    return mask


def _grown_box(mask: np.ndarray, grow) -> tuple[slice, ...]:
    """Slices of the bounding box of ``mask``'s True voxels, grown by ``grow[k]`` voxels per side (clipped)."""
    box = []
    for axis in range(mask.ndim):
        hit = np.flatnonzero(mask.any(axis=tuple(k for k in range(mask.ndim) if k != axis)))
        box.append(slice(max(0, int(hit[0]) - grow[axis]), min(mask.shape[axis], int(hit[-1]) + 1 + grow[axis])))
    return tuple(box)


def registration_method(sitk, params: RegistrationParameters, f_img, shrink, mask=None):
    """A SimpleITK registration method: Mattes MI on randomly sampled voxels, linear interpolation.

    Level ``l`` shrinks both images by ``shrink[l]`` after a Gaussian of sigma
    ``shrink[l] / 2`` voxels (none on an unshrunk level) and samples about
    ``params.metric_samples`` fixed voxels (all of them on a smaller level),
    inside ``mask`` when one is given (SimpleITK draws from the whole grid and
    drops the samples outside the mask, so the drawn share is raised by the
    inverse of the mask's share of the grid).

    Parameters
    ----------
    sitk : module
        SimpleITK.
    params : RegistrationParameters
        Bins, samples, seed and threads.
    f_img : SimpleITK.Image
        The fixed image (its size sets the sampling percentage of each level).
    shrink : sequence of int
        Down-sampling factor of each resolution level (coarse to fine).
    mask : SimpleITK.Image, optional
        Fixed voxels the metric is measured on (:func:`metric_mask`).

    Returns
    -------
    SimpleITK.ImageRegistrationMethod
        Without optimizer and transform: the caller sets those.
    """
    size = np.asarray(f_img.GetSize(), dtype=np.float64)
    share = 1.0
    if mask is not None:
        share = max(float(np.count_nonzero(sitk.GetArrayViewFromImage(mask))) / float(np.prod(size)), 1e-6)
    fractions = [min(1.0, params.metric_samples / (share * float(np.prod(np.ceil(size / s))))) for s in shrink]
    reg = sitk.ImageRegistrationMethod()
    if mask is not None:
        reg.SetMetricFixedMask(mask)
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=params.histogram_bins)
    # image gradients by central differences at each sample, not from a Gaussian-smoothed gradient image:
    # the smoothed gradient is not the derivative of the metric being optimised, and the line searches stall on it
    reg.SetMetricUseFixedImageGradientFilter(False)
    reg.SetMetricUseMovingImageGradientFilter(False)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentagePerLevel(fractions, seed=params.seed + 1)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetShrinkFactorsPerLevel([int(s) for s in shrink])
    reg.SetSmoothingSigmasPerLevel([s / 2.0 if s > 1 else 0.0 for s in shrink])
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    reg.SetNumberOfThreads(int(params.threads))
    return reg


def full_metric(sitk, f_img, m_img, transform, params: RegistrationParameters, mask=None) -> float:
    """Mattes MI of ``transform`` on every fixed voxel, or every one in ``mask`` (deterministic, comparable).

    Parameters
    ----------
    sitk : module
        SimpleITK.
    f_img, m_img : SimpleITK.Image
        Fixed and moving images, float32.
    transform : SimpleITK.Transform
        Fixed -> moving.
    params : RegistrationParameters
        Bins and threads.
    mask : SimpleITK.Image, optional
        Fixed voxels to measure on (:func:`metric_mask`).

    Returns
    -------
    float
        Lower is better.
    """
    reg = sitk.ImageRegistrationMethod()
    if mask is not None:
        reg.SetMetricFixedMask(mask)
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=params.histogram_bins)
    reg.SetMetricSamplingStrategy(reg.NONE)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetNumberOfThreads(int(params.threads))
    reg.SetInitialTransform(transform, inPlace=False)
    return float(reg.MetricEvaluate(f_img, m_img))
