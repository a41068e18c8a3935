"""Mattes mutual information for registration: the optimising method and the full-image metric."""

from __future__ import annotations

from voxelflow.ops._register_params import RegistrationParameters

__all__ = ["registration_method", "full_metric"]


def registration_method(sitk, params: RegistrationParameters, shrink, smoothing):
    """A SimpleITK registration method: Mattes MI on randomly sampled voxels, linear interpolation.

    Parameters
    ----------
    sitk : module
        SimpleITK.
    params : RegistrationParameters
        Bins, sampling fraction, seed and threads.
    shrink : sequence of int
        Down-sampling factor of each resolution level (coarse to fine).
    smoothing : sequence of float
        Gaussian sigma (voxels of the full image) of each level.

    Returns
    -------
    SimpleITK.ImageRegistrationMethod
        Without optimizer and transform: the caller sets those.
    """
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=params.histogram_bins)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(params.sampling_fraction, seed=params.seed + 1)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetShrinkFactorsPerLevel([int(s) for s in shrink])
    reg.SetSmoothingSigmasPerLevel([float(s) for s in smoothing])
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
