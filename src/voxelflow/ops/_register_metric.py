"""Mattes mutual information for registration: the optimising method and the full-image metric."""

from __future__ import annotations

import numpy as np

from voxelflow.ops._register_params import RegistrationParameters

__all__ = ["registration_method", "full_metric"]


def registration_method(sitk, params: RegistrationParameters, f_img, shrink):
    """A SimpleITK registration method: Mattes MI on randomly sampled voxels, linear interpolation.

    Level ``l`` shrinks both images by ``shrink[l]`` after a Gaussian of sigma
    ``shrink[l] / 2`` voxels (none on an unshrunk level) and samples about
    ``params.metric_samples`` fixed voxels (all of them on a smaller level).

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

    Returns
    -------
    SimpleITK.ImageRegistrationMethod
        Without optimizer and transform: the caller sets those.
    """
    size = np.asarray(f_img.GetSize(), dtype=np.float64)
    fractions = [min(1.0, params.metric_samples / float(np.prod(np.ceil(size / s)))) for s in shrink]
    reg = sitk.ImageRegistrationMethod()
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


def full_metric(sitk, f_img, m_img, transform, params: RegistrationParameters) -> float:
    """Mattes MI of ``transform`` on every fixed voxel (deterministic, comparable between stages).

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

    Returns
    -------
    float
        Lower is better.
    """
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=params.histogram_bins)
    reg.SetMetricSamplingStrategy(reg.NONE)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetNumberOfThreads(int(params.threads))
    reg.SetInitialTransform(transform, inPlace=False)
    return float(reg.MetricEvaluate(f_img, m_img))
