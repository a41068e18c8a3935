"""Affine then B-spline registration of two in-memory 3-D images (SimpleITK).

The *fixed* image is the scan (down-sampled to about the atlas resolution and
reoriented to the atlas orientation); the *moving* image is the atlas template.
ITK transforms map fixed points to moving points, so the one transform this
module finds serves both directions the pipeline needs: resampling the atlas
annotation onto the scan grid (a pull through the transform) and carrying scan
points into the atlas (a push of the points through the same transform).

Geometry: arrays are (z, y, x); voxel ``i`` of size ``s`` micrometres spans
``[i s, (i + 1) s)`` and its centre is at ``(i + 0.5) s`` (SimpleITK images get
``origin = s / 2`` and reversed axes, x first). Point arrays here are (z, y, x)
micrometres in those frames.

Stages: (1) a start from the two tissue masks (Otsu): centres of mass matched,
and principal axes and extents too when that fits better; (2) an affine transform, multi-resolution, Mattes mutual
information, gradient descent with scales from physical shifts; (3) a cubic
B-spline on top of the affine (``CompositeTransform([affine, bspline])``: the
B-spline acts first), on two resolution levels, L-BFGS-B.
QC: the metric of the start, of the affine and of the final transform (all on
every fixed voxel, so they are comparable), the range of the Jacobian
determinant of the full transform on the fixed grid, and the fraction of
folded voxels (determinant <= 0). A final metric worse than the affine one, or
too much folding, raises :class:`voxelflow.errors.RegistrationError`, which
carries the result so callers can still draw QC images.

SimpleITK is the optional ``bias`` extra; it is imported on first use.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from voxelflow.errors import InvalidInputError, OptionalDependencyError, RegistrationError

#: Largest rotation (degrees) accepted from the principal-axes start: the orientation codes
#: already align the anatomical axes, so a larger one means two axes were paired wrongly.
MAX_START_ROTATION_DEG = 30.0

__all__ = [
    "RegistrationParameters",
    "start_metric",
    "check_registration",
    "Registration",
    "register",
    "warp_labels",
    "warp_image",
    "transform_points",
    "jacobian_determinant",
]


@dataclass(frozen=True)
class RegistrationParameters:
    """Settings of :func:`register`.

    The defaults were measured on synthetic mouse-brain pairs (docs/registration.md): a
    coarse B-spline mesh (4 mm) corrects smooth deformations without bending to the bias
    field; lower ``grid_spacing_um`` for more local corrections.

    Attributes
    ----------
    affine_iterations : int
        Gradient-descent iterations per resolution level of the affine stage.
    deformable_iterations : int
        L-BFGS-B iterations per level of the B-spline stage.
    affine_shrink : tuple of int
        Down-sampling factor of each affine level (coarse to fine).
    affine_smoothing_vox : tuple of float
        Gaussian sigma (voxels) of each affine level.
    deformable_shrink, deformable_smoothing_vox : tuple
        The same for the B-spline stage.
    grid_spacing_um : float
        Control-point spacing of the finest B-spline mesh, in micrometres.
    histogram_bins : int
        Mattes mutual-information bins.
    sampling_fraction : float
        Fraction of fixed voxels sampled (randomly, seeded) per iteration.
    deformable : bool
        Run the B-spline stage (False: affine only).
    max_folded_fraction : float
        Largest accepted fraction of fixed voxels with Jacobian determinant <= 0.
    max_rotation_deg : float
        Largest accepted rotation of the affine transform: the orientation code
        already aligns the axes, so a larger one is a wrong code or a wrong optimum.
    seed : int
        Seed of the metric sampling.
    threads : int
        Threads SimpleITK may use.
    """

    affine_iterations: int = 200
    deformable_iterations: int = 30
    affine_shrink: tuple[int, ...] = (4, 2, 1)
    affine_smoothing_vox: tuple[float, ...] = (2.0, 1.0, 0.0)
    deformable_shrink: tuple[int, ...] = (2, 1)
    deformable_smoothing_vox: tuple[float, ...] = (1.0, 0.0)
    grid_spacing_um: float = 4000.0
    histogram_bins: int = 32
    sampling_fraction: float = 0.1
    deformable: bool = True
    max_folded_fraction: float = 1e-3
    max_rotation_deg: float = 45.0
    seed: int = 0
    threads: int = 2

    @classmethod
    def from_dict(cls, values: dict | None) -> RegistrationParameters:
        """Parameters from a mapping (e.g. a config table); unknown keys raise InvalidInputError."""
        values = dict(values or {})
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            raise InvalidInputError(f"unknown registration parameters {unknown}; known: {sorted(known)}")
        for key in ("affine_shrink", "affine_smoothing_vox", "deformable_shrink", "deformable_smoothing_vox"):
            if key in values:
                values[key] = tuple(values[key])
        out = cls(**values)
        out.validate()
        return out

    def validate(self) -> None:
        """Raise InvalidInputError on values registration cannot use."""
        if len(self.affine_shrink) != len(self.affine_smoothing_vox) or not self.affine_shrink:
            raise InvalidInputError("affine_shrink and affine_smoothing_vox need the same (non-zero) length")
        if len(self.deformable_shrink) != len(self.deformable_smoothing_vox) or not self.deformable_shrink:
            raise InvalidInputError("deformable_shrink and deformable_smoothing_vox need the same (non-zero) length")
        if min(self.affine_shrink + self.deformable_shrink) < 1:
            raise InvalidInputError("shrink factors must be >= 1")
        if self.affine_iterations < 1 or self.deformable_iterations < 1:
            raise InvalidInputError("iterations must be >= 1")
        if not 0 < self.sampling_fraction <= 1:
            raise InvalidInputError(f"sampling_fraction must be in (0, 1], got {self.sampling_fraction}")
        if not self.grid_spacing_um > 0 or self.histogram_bins < 4:
            raise InvalidInputError("grid_spacing_um must be > 0 and histogram_bins >= 4")
        if not 0 <= self.max_folded_fraction < 1:
            raise InvalidInputError("max_folded_fraction must be in [0, 1)")


@dataclass
class Registration:
    """The transform from a fixed grid to a moving grid, with QC figures.

    Attributes
    ----------
    affine : SimpleITK.AffineTransform
    deformable : SimpleITK.BSplineTransform or None
        Applied before ``affine`` (fixed point -> B-spline -> affine -> moving point).
    fixed_shape, moving_shape : tuple of 3 int
    fixed_spacing, moving_spacing : tuple of 3 float
        Voxel sizes (z, y, x) in micrometres.
    qc : dict
        ``metric_start`` (tissue centres of mass matched), ``metric_affine``,
        ``metric_final`` (Mattes MI on every fixed voxel, lower is better), ``jacobian_min``, ``jacobian_max``,
        ``folded_fraction``, ``seconds_affine``, ``seconds_deformable``,
        ``stop_affine``, ``stop_deformable``.
    parameters : dict
        The :class:`RegistrationParameters` used.
    """

    affine: Any
    deformable: Any
    fixed_shape: tuple[int, int, int]
    fixed_spacing: tuple[float, float, float]
    moving_shape: tuple[int, int, int]
    moving_spacing: tuple[float, float, float]
    qc: dict = field(default_factory=dict)
    parameters: dict = field(default_factory=dict)

    def transform(self):
        """The full fixed -> moving transform (a SimpleITK transform)."""
        sitk = _simpleitk()
        if self.deformable is None:
            return sitk.AffineTransform(self.affine)
        return sitk.CompositeTransform([sitk.AffineTransform(self.affine), sitk.BSplineTransform(self.deformable)])

    def to_meta(self) -> dict:
        """Everything but the transforms, as JSON-ready values (see :meth:`from_parts`)."""
        return {
            "fixed_shape": [int(n) for n in self.fixed_shape], "fixed_spacing_um": list(self.fixed_spacing),
            "moving_shape": [int(n) for n in self.moving_shape], "moving_spacing_um": list(self.moving_spacing),
            "qc": self.qc, "parameters": self.parameters,
        }

    @classmethod
    def from_parts(cls, affine, deformable, meta: dict) -> Registration:
        """Rebuild a registration from its transforms and :meth:`to_meta`."""
        try:
            return cls(affine, deformable, tuple(meta["fixed_shape"]), tuple(meta["fixed_spacing_um"]),
                       tuple(meta["moving_shape"]), tuple(meta["moving_spacing_um"]), dict(meta.get("qc", {})),
                       dict(meta.get("parameters", {})))
        except (KeyError, TypeError) as exc:
            raise InvalidInputError(f"registration description lacks {exc}") from None


def register(
    fixed,
    moving,
    fixed_spacing,
    moving_spacing,
    parameters: RegistrationParameters | None = None,
    *,
    check: bool = True,
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
    sitk = _simpleitk()
    params = parameters or RegistrationParameters()
    params.validate()
    fixed = _as_volume(fixed, "fixed image")
    moving = _as_volume(moving, "moving image")
    fixed_spacing = _spacing(fixed_spacing, "fixed_spacing")
    moving_spacing = _spacing(moving_spacing, "moving_spacing")
    f_img = _to_sitk(sitk, _normalise(fixed, "fixed image (the scan's registration channel)"), fixed_spacing)
    m_img = _to_sitk(sitk, _normalise(moving, "moving image (the atlas template)"), moving_spacing)

    start, baseline = _moments_start(sitk, f_img, m_img)
    metric_start = _metric(sitk, f_img, m_img, baseline, params)

    t0 = time.perf_counter()
    affine = sitk.AffineTransform(start)
    reg = _method(sitk, params, params.affine_shrink, params.affine_smoothing_vox)
    reg.SetOptimizerAsRegularStepGradientDescent(learningRate=1.0, minStep=1e-4,
                                                 numberOfIterations=params.affine_iterations,
                                                 relaxationFactor=0.7, gradientMagnitudeTolerance=1e-8)
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetInitialTransform(affine, inPlace=True)
    reg.Execute(f_img, m_img)
    stop_affine = reg.GetOptimizerStopConditionDescription()
    seconds_affine = time.perf_counter() - t0
    metric_affine = _metric(sitk, f_img, m_img, affine, params)

    bspline = None
    seconds_def = 0.0
    stop_def = ""
    metric_final = metric_affine
    if params.deformable:
        t0 = time.perf_counter()
        extent = np.asarray(f_img.GetSize()) * np.asarray(f_img.GetSpacing())
        final_mesh = np.maximum(1, np.round(extent / params.grid_spacing_um)).astype(int)
        bspline = sitk.BSplineTransformInitializer(f_img, [int(n) for n in final_mesh], order=3)
        reg = _method(sitk, params, params.deformable_shrink, params.deformable_smoothing_vox)
        reg.SetOptimizerAsLBFGSB(gradientConvergenceTolerance=1e-5, numberOfIterations=params.deformable_iterations,
                                 maximumNumberOfCorrections=5,
                                 maximumNumberOfFunctionEvaluations=4 * params.deformable_iterations,
                                 costFunctionConvergenceFactor=1e7)
        reg.SetMovingInitialTransform(affine)
        reg.SetInitialTransform(bspline, inPlace=True)
        reg.Execute(f_img, m_img)
        stop_def = reg.GetOptimizerStopConditionDescription()
        seconds_def = time.perf_counter() - t0
        metric_final = _metric(sitk, f_img, m_img, sitk.CompositeTransform([affine, bspline]), params)

    result = Registration(affine, bspline, tuple(fixed.shape), fixed_spacing, tuple(moving.shape), moving_spacing,
                          {}, asdict(params))
    det = jacobian_determinant(result)
    result.qc = {
        "metric_start": metric_start, "metric_affine": metric_affine, "metric_final": metric_final,
        "jacobian_min": float(det.min()), "jacobian_max": float(det.max()),
        "folded_fraction": float(np.count_nonzero(det <= 0) / det.size),
        "rotation_deg": rotation_angle_deg(affine.GetMatrix()),
        "seconds_affine": round(seconds_affine, 3), "seconds_deformable": round(seconds_def, 3),
        "stop_affine": stop_affine, "stop_deformable": stop_def,
    }
    if check:
        check_registration(result)
    return result


def start_metric(fixed, moving, fixed_spacing, moving_spacing, shrink: int = 2, bins: int = 32) -> float:
    """Mattes MI after matching the tissue centres of mass only (on images shrunk by ``shrink``).

    Cheap (one metric evaluation): used to compare candidate orientations of the fixed image.
    """
    sitk = _simpleitk()
    f_img = sitk.Shrink(_to_sitk(sitk, _normalise(_as_volume(fixed, "fixed image"), "fixed image"),
                                 _spacing(fixed_spacing, "fixed_spacing")), [shrink] * 3)
    m_img = sitk.Shrink(_to_sitk(sitk, _normalise(_as_volume(moving, "moving image"), "moving image"),
                                 _spacing(moving_spacing, "moving_spacing")), [shrink] * 3)
    _, centred = _moments_start(sitk, f_img, m_img, axes=False)
    return _metric(sitk, f_img, m_img, centred, RegistrationParameters(histogram_bins=bins))


def check_registration(result: Registration) -> None:
    """Raise :class:`RegistrationError` if the QC figures of ``result`` show divergence or folding.

    Divergence: the affine metric is worse (higher) than the start, or the
    final metric is worse than the affine one. Implausible: the affine rotation
    exceeds ``max_rotation_deg``. Folding: more than ``max_folded_fraction`` of
    the fixed voxels have a Jacobian determinant <= 0.
    """
    qc = result.qc
    limit = float(result.parameters.get("max_folded_fraction", RegistrationParameters.max_folded_fraction))
    if qc["metric_affine"] > qc["metric_start"]:
        raise RegistrationError(
            f"affine registration diverged: Mattes MI went from {qc['metric_start']:.4f} (centres of mass matched) "
            f"to {qc['metric_affine']:.4f} (lower is better); check the scan orientation code and the "
            "registration channel", result)
    if qc["metric_final"] > qc["metric_affine"]:
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


def warp_labels(labels, result: Registration) -> np.ndarray:
    """Resample a label image of the moving grid onto the fixed grid (nearest neighbour).

    Parameters
    ----------
    labels : numpy.ndarray, shape ``result.moving_shape``, integer
    result : Registration

    Returns
    -------
    numpy.ndarray, shape ``result.fixed_shape``, dtype of ``labels``
        0 where the transformed point leaves the moving grid.
    """
    return _warp(labels, result, "nearest")


def warp_image(image, result: Registration, order: int = 1) -> np.ndarray:
    """Resample an intensity image of the moving grid onto the fixed grid (linear by default), float32."""
    return _warp(np.asarray(image, dtype=np.float32), result, "linear" if order == 1 else "nearest")


def transform_points(points_um, result: Registration) -> np.ndarray:
    """Map fixed-frame points (z, y, x um) to the moving frame (z, y, x um).

    The affine part is exact; the B-spline part is the displacement field
    evaluated on the fixed grid and interpolated trilinearly (constant beyond
    the grid), which is vectorised and within a small fraction of a voxel of
    the spline itself.

    Parameters
    ----------
    points_um : array_like, shape (N, 3), float
    result : Registration

    Returns
    -------
    numpy.ndarray, shape (N, 3), float64
    """
    pts = np.asarray(points_um, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise InvalidInputError(f"points must have shape (N, 3), got {pts.shape}")
    if result.deformable is not None:
        field = _displacement_field(result, result.deformable)  # (3, Z, Y, X) in z, y, x order, um
        coords = (pts / np.asarray(result.fixed_spacing) - 0.5).T
        disp = np.stack([ndi.map_coordinates(c, coords, order=1, mode="nearest") for c in field], axis=1)
        pts = pts + disp
    return _apply_affine(result.affine, pts)


def jacobian_determinant(result: Registration) -> np.ndarray:
    """Jacobian determinant of the full transform at every fixed voxel, float32, shape ``fixed_shape``."""
    sitk = _simpleitk()
    ref = _reference(sitk, result.fixed_shape, result.fixed_spacing)
    disp = sitk.TransformToDisplacementField(result.transform(), sitk.sitkVectorFloat64, ref.GetSize(),
                                             ref.GetOrigin(), ref.GetSpacing(), ref.GetDirection())
    det = sitk.DisplacementFieldJacobianDeterminant(disp)
    return sitk.GetArrayFromImage(det).astype(np.float32)


# --- internals --------------------------------------------------------------------------


def _simpleitk():
    try:
        import SimpleITK
    except ImportError as exc:
        raise OptionalDependencyError("atlas registration needs SimpleITK: pip install 'voxelflow[registration]'") from exc
    return SimpleITK


def _as_volume(arr, what: str) -> np.ndarray:
    out = np.asarray(arr)
    if out.ndim != 3 or min(out.shape) < 4:
        raise InvalidInputError(f"{what} must be 3-D with at least 4 voxels per axis, got shape {out.shape}")
    if not (np.issubdtype(out.dtype, np.number) or out.dtype == bool):
        raise InvalidInputError(f"{what} must be numeric, got {out.dtype}")
    return out


def _spacing(values, name: str) -> tuple[float, float, float]:
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name} must be 3 positive numbers (micrometres), got {values!r}") from None
    if len(out) != 3 or not all(np.isfinite(v) and v > 0 for v in out):
        raise InvalidInputError(f"{name} must be 3 positive numbers (micrometres), got {values!r}")
    return out


def _normalise(arr: np.ndarray, what: str) -> np.ndarray:
    """Float32 scaled to [0, 1] between the 0.5th and 99.5th percentiles; raises on an image without contrast."""
    a = arr.astype(np.float32, copy=False)
    if not np.all(np.isfinite(a)):
        raise RegistrationError(f"{what} holds NaN or infinite values")
    lo, hi = np.percentile(a, [0.5, 99.5])
    if not hi > lo:
        raise RegistrationError(f"{what} has no contrast (all voxels about {float(lo):.6g}): nothing to register; "
                                "is the channel empty or the wrong one?")
    return np.clip((a - np.float32(lo)) / np.float32(hi - lo), 0.0, 1.0).astype(np.float32)


def _to_sitk(sitk, arr: np.ndarray, spacing):
    img = sitk.GetImageFromArray(np.ascontiguousarray(arr))
    sp = tuple(float(s) for s in reversed(spacing))
    img.SetSpacing(sp)
    img.SetOrigin(tuple(s / 2 for s in sp))
    return img


def _reference(sitk, shape, spacing):
    img = sitk.Image([int(n) for n in reversed(shape)], sitk.sitkUInt8)
    sp = tuple(float(s) for s in reversed(spacing))
    img.SetSpacing(sp)
    img.SetOrigin(tuple(s / 2 for s in sp))
    return img


def _moments_start(sitk, f_img, m_img, axes: bool = True):
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
    (cf, vf, lf), (cm, vm, lm) = _principal_axes(sitk, f_mask), _principal_axes(sitk, m_mask)
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
    if _metric(sitk, f_small, m_small, matched, params) < _metric(sitk, f_small, m_small, centred, params):
        return matched, centred
    return centred, centred


def rotation_angle_deg(matrix) -> float:
    """Angle (degrees) of the rotation part of a 3 x 3 matrix (polar decomposition)."""
    u, _, vt = np.linalg.svd(np.asarray(matrix, dtype=np.float64).reshape(3, 3))
    r = u @ vt
    return float(np.degrees(np.arccos(np.clip((np.trace(r) - 1) / 2, -1.0, 1.0))))


def _principal_axes(sitk, mask):
    """Centre (x, y, z um), eigenvectors (columns) and eigenvalues of a mask's physical second moments."""
    arr = sitk.GetArrayViewFromImage(mask)
    idx = np.argwhere(arr > 0)[:, ::-1].astype(np.float64)  # x, y, z voxel indices
    if len(idx) > 200_000:
        idx = idx[np.random.default_rng(0).choice(len(idx), 200_000, replace=False)]
    pts = idx * np.asarray(mask.GetSpacing()) + np.asarray(mask.GetOrigin())
    centre = pts.mean(axis=0)
    values, vectors = np.linalg.eigh(np.cov((pts - centre).T))
    return centre, vectors, values


def _method(sitk, params: RegistrationParameters, shrink, smoothing):
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


def _metric(sitk, f_img, m_img, transform, params: RegistrationParameters) -> float:
    """Mattes MI of ``transform`` on every fixed voxel (deterministic, comparable between stages)."""
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=params.histogram_bins)
    reg.SetMetricSamplingStrategy(reg.NONE)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetNumberOfThreads(int(params.threads))
    reg.SetInitialTransform(transform, inPlace=False)
    return float(reg.MetricEvaluate(f_img, m_img))


def _warp(arr, result: Registration, how: str) -> np.ndarray:
    sitk = _simpleitk()
    arr = np.asarray(arr)
    if arr.shape != tuple(result.moving_shape):
        raise InvalidInputError(f"image shape {arr.shape} differs from the moving grid {tuple(result.moving_shape)}")
    src = _to_sitk(sitk, np.ascontiguousarray(arr), result.moving_spacing)
    ref = _reference(sitk, result.fixed_shape, result.fixed_spacing)
    interp = sitk.sitkNearestNeighbor if how == "nearest" else sitk.sitkLinear
    out = sitk.Resample(src, ref, result.transform(), interp, 0.0, src.GetPixelID())
    return sitk.GetArrayFromImage(out)


def _displacement_field(result: Registration, transform) -> np.ndarray:
    sitk = _simpleitk()
    ref = _reference(sitk, result.fixed_shape, result.fixed_spacing)
    disp = sitk.TransformToDisplacementField(transform, sitk.sitkVectorFloat64, ref.GetSize(), ref.GetOrigin(),
                                             ref.GetSpacing(), ref.GetDirection())
    arr = sitk.GetArrayFromImage(disp)  # (Z, Y, X, 3) with x, y, z components
    return np.moveaxis(arr[..., ::-1], -1, 0)


def _apply_affine(affine, pts_zyx: np.ndarray) -> np.ndarray:
    m = np.asarray(affine.GetMatrix(), dtype=np.float64).reshape(3, 3)
    centre = np.asarray(affine.GetCenter(), dtype=np.float64)
    trans = np.asarray(affine.GetTranslation(), dtype=np.float64)
    xyz = pts_zyx[:, ::-1]
    out = (xyz - centre) @ m.T + centre + trans
    return out[:, ::-1]
