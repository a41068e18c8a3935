"""Affine then B-spline registration of two in-memory 3-D images (SimpleITK).

The *fixed* image is the scan (down-sampled to about the atlas resolution and
reoriented to the atlas orientation); the *moving* image is the atlas template.
ITK transforms map fixed points to moving points, so the one transform this
module finds serves both directions the pipeline needs: resampling the atlas
annotation onto the scan grid (a pull through the transform) and carrying scan
points into the atlas (a push of the points through the same transform).

Both images are first block-averaged towards the finest registration level
(:func:`voxelflow.ops._register_images.working_image`; levels are voxel sizes
in micrometres, see :class:`RegistrationParameters`), so time and memory follow
the levels, not the atlas resolution; each is then divided by its own local
mean brightness (``flatten_um``, :func:`voxelflow.ops._register_images.flatten_brightness`),
so a smooth brightness field of the scan does not pull region boundaries. The
metric is measured on the scan's tissue and a margin around it
(``metric_mask_um``, :func:`voxelflow.ops._register_metric.metric_mask`), the
same voxels for optimising and for QC. Stages: (1) a start from the two tissue
masks (:mod:`voxelflow.ops._register_start`); (2) an affine transform,
multi-resolution, Mattes mutual information on a fixed number of random
samples per level, gradient descent with scales from physical shifts; (3) a
cubic B-spline on top of the affine (``CompositeTransform([affine, bspline])``:
the B-spline acts first), L-BFGS-B. QC: the metric of the start, of the affine
and of the final transform (all on every masked voxel of the fixed working image,
so they are comparable), the range of the Jacobian determinant of the full transform on
the working grid, and the fraction of folded voxels (determinant <= 0). When
the fixed image is coarser than the finest level (an atlas coarser than that
level: the fixed grid follows the atlas voxel size), a finer copy of the scan
in the same frame (``detail``) is what the stages optimise on, so the finest
level is not dropped; the QC metrics and the Jacobian stay on the fixed grid. A final
metric worse than the affine one, or too much folding, raises
:class:`voxelflow.errors.RegistrationError`, which carries the result so
callers can still draw QC images.

The pieces live in their own modules (parameters, images, metric, start,
result); their public names are re-exported here.
"""

from __future__ import annotations

import time
from dataclasses import asdict

import numpy as np

from voxelflow.errors import InvalidInputError, RegistrationError
from voxelflow.ops._register_images import as_spacing, as_volume, load_simpleitk, working_image
from voxelflow.ops._register_metric import full_metric, metric_mask, registration_method
from voxelflow.ops._register_params import RegistrationParameters, finest_level_um, level_factors
from voxelflow.ops._register_result import (
    Registration,
    jacobian_determinant,
    jacobian_on_grid,
    transform_points,
    warp_image,
    warp_labels,
)
from voxelflow.ops._register_start import MAX_START_ROTATION_DEG, moments_start, rotation_angle_deg, start_metric

__all__ = [
    "DIVERGENCE_TOLERANCE",
    "MAX_START_ROTATION_DEG",
    "RegistrationParameters",
    "start_metric",
    "check_registration",
    "Registration",
    "register",
    "rotation_angle_deg",
    "warp_labels",
    "warp_image",
    "transform_points",
    "jacobian_determinant",
]


def register(
    fixed,
    moving,
    fixed_spacing,
    moving_spacing,
    parameters: RegistrationParameters | None = None,
    *,
    check: bool = True,
    detail=None,
) -> Registration:
    """Register ``moving`` (atlas template) onto ``fixed`` (scan): affine, then B-spline.

    Parameters
    ----------
    fixed : numpy.ndarray, shape (Z, Y, X), numeric
        The scan at about the atlas resolution, in the atlas orientation.
    moving : numpy.ndarray, shape (Za, Ya, Xa), numeric
        The atlas template.
    fixed_spacing, moving_spacing : sequence of 3 float
        Voxel sizes in micrometres.
    parameters : RegistrationParameters, optional
    check : bool
        Raise :class:`RegistrationError` when the result fails the QC checks.
    detail : tuple (numpy.ndarray, sequence of 3 float, sequence of 3 float), optional
        ``(image, spacing, offset_um)``: the scan at a finer voxel size than
        ``fixed`` (shape (Zd, Yd, Xd), same orientation), its voxel size, and
        the position of its corner in the frame of ``fixed`` (um, z y x; its
        voxel ``i`` is centred at ``offset + (i + 0.5) spacing``). The start,
        affine and B-spline stages optimise on it (block-averaged towards the
        finest level like ``fixed``); the result is still a transform of the
        frame of ``fixed``, and the QC figures are measured on ``fixed``.

    Returns
    -------
    Registration

    Raises
    ------
    OptionalDependencyError
        Without SimpleITK.
    InvalidInputError
        On arrays that are not 3-D or spacings that are not positive.
    RegistrationError
        If an image has no tissue (constant or empty), or, with ``check``, if
        the final metric is worse than the affine one or more than
        ``max_folded_fraction`` of the voxels fold. The exception's ``result``
        holds the :class:`Registration`.
    """
    sitk = load_simpleitk()
    params = parameters or RegistrationParameters()
    params.validate()
    fixed = as_volume(fixed, "fixed image")
    moving = as_volume(moving, "moving image")
    fixed_spacing = as_spacing(fixed_spacing, "fixed_spacing")
    moving_spacing = as_spacing(moving_spacing, "moving_spacing")
    finest = finest_level_um(params, min(moving_spacing))
    f_img = working_image(sitk, fixed, fixed_spacing, finest, "fixed image (the scan's registration channel)",
                          params.flatten_um)
    m_img = working_image(sitk, moving, moving_spacing, finest, "moving image (the atlas template)", params.flatten_um)
    o_img = f_img if detail is None else detail_image(sitk, detail, finest, params.flatten_um)

    f_mask = metric_mask(sitk, f_img, params.metric_mask_um)
    o_mask = f_mask if detail is None else metric_mask(sitk, o_img, params.metric_mask_um)

    start, baseline = moments_start(sitk, o_img, m_img)
    metric_start = full_metric(sitk, f_img, m_img, baseline, params, f_mask)
    t0 = time.perf_counter()
    affine, stop_affine = _affine_stage(sitk, o_img, m_img, start, params, o_mask)
    seconds_affine = time.perf_counter() - t0
    metric_affine = full_metric(sitk, f_img, m_img, affine, params, f_mask)

    bspline, stop_def, metric_final = None, "", metric_affine
    t0 = time.perf_counter()
    if params.deformable:
        bspline, stop_def = _bspline_stage(sitk, o_img, m_img, affine, params, o_mask, mesh_domain=f_img)
        metric_final = full_metric(sitk, f_img, m_img, sitk.CompositeTransform([affine, bspline]), params, f_mask)
    seconds_def = time.perf_counter() - t0

    result = Registration(affine, bspline, tuple(fixed.shape), fixed_spacing, tuple(moving.shape), moving_spacing,
                          {}, asdict(params))
    det = jacobian_on_grid(result.transform(), tuple(reversed(f_img.GetSize())),
                           tuple(reversed(f_img.GetSpacing())))
    result.qc = {
        "metric_start": metric_start, "metric_affine": metric_affine, "metric_final": metric_final,
        "jacobian_min": float(det.min()), "jacobian_max": float(det.max()),
        "folded_fraction": float(np.count_nonzero(det <= 0) / det.size),
        "rotation_deg": rotation_angle_deg(affine.GetMatrix()),
        "seconds_affine": round(seconds_affine, 3), "seconds_deformable": round(seconds_def, 3),
        "stop_affine": stop_affine, "stop_deformable": stop_def,
        "working_spacing_um": [float(s) for s in reversed(f_img.GetSpacing())],
        "optimised_spacing_um": [float(s) for s in reversed(o_img.GetSpacing())],
    }
    if check:
        check_registration(result)
    return result


def _affine_stage(sitk, f_img, m_img, start, params: RegistrationParameters, mask=None):
    """Affine transform from ``start``: regular-step gradient descent over the affine levels.

    Returns
    -------
    affine : SimpleITK.AffineTransform
    stop : str
        The optimizer's stop condition.
    """
    affine = sitk.AffineTransform(start)
    shrink = level_factors(params.affine_levels_um, tuple(reversed(f_img.GetSpacing())))
    reg = registration_method(sitk, params, f_img, shrink, mask)
    reg.SetOptimizerAsRegularStepGradientDescent(learningRate=1.0, minStep=1e-4,
                                                 numberOfIterations=params.affine_iterations,
                                                 relaxationFactor=0.7, gradientMagnitudeTolerance=1e-8)
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetInitialTransform(affine, inPlace=True)
    reg.Execute(f_img, m_img)
    return affine, reg.GetOptimizerStopConditionDescription()


def detail_image(sitk, detail, finest_um: float, flatten_um: float = 0.0):
    """The working image of a finer copy of the fixed image, placed in the fixed image's frame.

    Parameters
    ----------
    sitk : module
        SimpleITK.
    detail : tuple (numpy.ndarray, sequence of 3 float, sequence of 3 float)
        ``(image, spacing, offset_um)`` as :func:`register` takes it.
    finest_um : float
        The finest registration level (the image is block-averaged towards it).
    flatten_um : float
        See :func:`voxelflow.ops._register_images.working_image`.

    Returns
    -------
    SimpleITK.Image, float32
        Its origin shifted by ``offset_um``.

    Raises
    ------
    InvalidInputError
        On a malformed tuple, image or spacing.
    """
    try:
        image, spacing, offset = detail
    except (TypeError, ValueError):
        raise InvalidInputError("detail must be (image, spacing, offset_um)") from None
    img = working_image(sitk, as_volume(image, "detail image"), as_spacing(spacing, "detail spacing"), finest_um,
                        "detail image (the scan's registration channel, finer)", flatten_um)
    shift = np.asarray([float(v) for v in offset], dtype=np.float64)
    if shift.shape != (3,) or not np.all(np.isfinite(shift)):
        raise InvalidInputError(f"detail offset must be 3 finite numbers (um, z y x), got {offset!r}")
    img.SetOrigin(tuple(float(o + d) for o, d in zip(img.GetOrigin(), shift[::-1])))
    return img


def _bspline_stage(sitk, f_img, m_img, affine, params: RegistrationParameters, mask=None, mesh_domain=None):
    """Cubic B-spline on top of ``affine``: L-BFGS-B over the deformable levels, one mesh for all of them.

    The mesh has about ``grid_spacing_um`` between control points (at least
    one interval per axis) and spans ``mesh_domain`` (default ``f_img``), the
    fixed grid the transform is used on.

    Returns
    -------
    bspline : SimpleITK.BSplineTransform
    stop : str
        The optimizer's stop condition.
    """
    domain = f_img if mesh_domain is None else mesh_domain
    shrink = level_factors(params.deformable_levels_um, tuple(reversed(f_img.GetSpacing())))
    extent = np.asarray(domain.GetSize()) * np.asarray(domain.GetSpacing())
    mesh = np.maximum(1, np.round(extent / params.grid_spacing_um)).astype(int)
    bspline = sitk.BSplineTransformInitializer(domain, [int(n) for n in mesh], order=3)
    reg = registration_method(sitk, params, f_img, shrink, mask)
    reg.SetOptimizerAsLBFGSB(gradientConvergenceTolerance=1e-7, numberOfIterations=params.deformable_iterations,
                             maximumNumberOfCorrections=5,
                             maximumNumberOfFunctionEvaluations=params.deformable_evaluations,
                             costFunctionConvergenceFactor=1e7)
    reg.SetMovingInitialTransform(affine)
    reg.SetInitialTransform(bspline, inPlace=True)
    reg.Execute(f_img, m_img)
    return bspline, reg.GetOptimizerStopConditionDescription()


#: How much worse (relative to the magnitude of the earlier metric) a stage may end before it counts as
#: diverged. Each stage optimises a sampled metric, on the detail image where there is one, while the QC
#: metric is measured on every masked voxel of the fixed grid; from a start that is already aligned (a scan that
#: differs from the atlas by a shift alone) a stage can end a few percent worse on the QC metric while
#: mapping better. Divergence (a wrong optimum, a run-off deformation) costs far more than this.
DIVERGENCE_TOLERANCE = 0.1


def check_registration(result: Registration) -> None:
    """Raise :class:`RegistrationError` if the QC figures of ``result`` show divergence or folding.

    Divergence: the affine metric is worse (higher) than the start, or the
    final metric is worse than the affine one, by more than
    :data:`DIVERGENCE_TOLERANCE` of the earlier metric's magnitude. Implausible:
    the affine rotation exceeds ``max_rotation_deg``. Folding: more than
    ``max_folded_fraction`` of the fixed voxels have a Jacobian determinant <= 0.
    """
    qc = result.qc
    limit = float(result.parameters.get("max_folded_fraction", RegistrationParameters.max_folded_fraction))

    def worse(later: float, earlier: float) -> bool:
        return later > earlier + DIVERGENCE_TOLERANCE * abs(earlier)

    if worse(qc["metric_affine"], qc["metric_start"]):
        raise RegistrationError(
            f"affine registration diverged: Mattes MI went from {qc['metric_start']:.4f} (centres of mass matched) "
            f"to {qc['metric_affine']:.4f} (lower is better); check the scan orientation code and the "
            "registration channel", result)
    if worse(qc["metric_final"], qc["metric_affine"]):
        raise RegistrationError(
            f"deformable registration diverged: Mattes MI {qc['metric_final']:.4f} is worse than the affine "
            f"result {qc['metric_affine']:.4f}; try a larger grid_spacing_um or fewer deformable_iterations",
            result)
    max_rot = float(result.parameters.get("max_rotation_deg", RegistrationParameters.max_rotation_deg))
    if qc.get("rotation_deg", 0.0) > max_rot:
        raise RegistrationError(
            f"the affine transform rotates the atlas by {qc['rotation_deg']:.0f} degrees (more than "
            f"max_rotation_deg = {max_rot:.0f}): the orientation code is wrong or registration found a wrong "
            "optimum; check atlas.orientation and the QC pictures", result)
    if qc["folded_fraction"] > limit:
        raise RegistrationError(
            f"the deformation folds {qc['folded_fraction']:.2%} of the voxels (Jacobian determinant <= 0, "
            f"range {qc['jacobian_min']:.3g} .. {qc['jacobian_max']:.3g}); the limit is {limit:.2%}; "
            "use a larger grid_spacing_um", result)
