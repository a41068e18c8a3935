"""Settings of atlas registration (:func:`voxelflow.ops._register.register`).

Resolution levels are voxel sizes in micrometres, so the same settings fit a
200 um and a 25 um atlas: each level's images are the fixed and moving images
block-averaged towards that voxel size (integer factors, never finer than the
images themselves). Registration never works finer than the finest level, so
the cost is set by the levels and by ``metric_samples``, not by the atlas size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from voxelflow.errors import InvalidInputError

__all__ = ["RegistrationParameters", "level_factors", "finest_level_um"]


@dataclass(frozen=True)
class RegistrationParameters:
    """Settings of :func:`register`.

    The defaults were measured on synthetic mouse-brain pairs (docs/registration.md).

    Attributes
    ----------
    affine_iterations : int
        Gradient-descent iterations per resolution level of the affine stage.
    deformable_iterations : int
        L-BFGS-B iterations per resolution level of the B-spline stage.
    deformable_evaluations : int
        L-BFGS-B metric evaluations per level (line searches included).
    affine_levels_um : tuple of float
        Voxel size (micrometres) of each affine level, coarse to fine.
    deformable_levels_um : tuple of float
        Voxel size of each B-spline level, coarse to fine. Levels finer than
        half the atlas voxel size are not used (:func:`finest_level_um`): the
        default's 50 um level works on 50 and 25 um atlases (and on the scan
        at 50 um against a 100 um atlas), not on coarser ones.
    grid_spacing_um : float
        Control-point spacing of the B-spline mesh, in micrometres (at least
        one interval per axis); a coarse mesh follows smooth deformations
        without bending to the bias field.
    histogram_bins : int
        Mattes mutual-information bins.
    flatten_um : float
        Standard deviation (micrometres) of the Gaussian local mean each image
        is divided by before registering (both alike; normalised convolution
        over the tissue, :func:`voxelflow.ops._register_images.flatten_brightness`),
        so a smooth brightness field of the scan (illumination falling off
        across the sample) does not pull region boundaries. 0 registers the
        brightness as it is.
    metric_samples : int
        Fixed voxels sampled (randomly, seeded) for the metric on each level
        (all voxels where a level has fewer).
    metric_mask_um : float
        The metric (optimised and QC) is measured on the scan's tissue and up
        to this distance (micrometres) around it
        (:func:`voxelflow.ops._register_metric.metric_mask`), not on the
        background of the field of view; ``inf`` measures it on every voxel.
        Keep it at least about five voxels of the working grid (the finest
        level, or the atlas voxel size where that is coarser): narrower, the
        coarse levels lose the brain's outline. The default fits atlases of
        10-200 um (working voxels of 50-100 um).
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

    affine_iterations: int = 400
    deformable_iterations: int = 30
    deformable_evaluations: int = 120
    affine_levels_um: tuple[float, ...] = (800.0, 400.0, 200.0)
    deformable_levels_um: tuple[float, ...] = (400.0, 200.0, 100.0, 50.0)
    grid_spacing_um: float = 4000.0
    histogram_bins: int = 32
    flatten_um: float = 1000.0
    metric_samples: int = 50_000
    metric_mask_um: float = 500.0
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
        for key in ("affine_levels_um", "deformable_levels_um"):
            if key in values:
                values[key] = tuple(float(v) for v in values[key])
        out = cls(**values)
        out.validate()
        return out

    def validate(self) -> None:
        """Raise InvalidInputError on values registration cannot use."""
        for name in ("affine_levels_um", "deformable_levels_um"):
            levels = getattr(self, name)
            if not levels or not all(np.isfinite(v) and v > 0 for v in levels):
                raise InvalidInputError(f"{name} must be one or more positive voxel sizes (micrometres), "
                                        f"got {levels!r}")
            if list(levels) != sorted(levels, reverse=True):
                raise InvalidInputError(f"{name} must go from coarse to fine (decreasing), got {levels!r}")
        if min(self.affine_iterations, self.deformable_iterations, self.deformable_evaluations) < 1:
            raise InvalidInputError("iterations must be >= 1")
        if self.metric_samples < 1000:
            raise InvalidInputError(f"metric_samples must be >= 1000, got {self.metric_samples}")
        if not self.grid_spacing_um > 0 or self.histogram_bins < 4:
            raise InvalidInputError("grid_spacing_um must be > 0 and histogram_bins >= 4")
        if not self.metric_mask_um >= 0:  # also refuses NaN
            raise InvalidInputError(f"metric_mask_um must be >= 0 (micrometres; inf: every voxel), "
                                    f"got {self.metric_mask_um!r}")
        if not (np.isfinite(self.flatten_um) and self.flatten_um >= 0):
            raise InvalidInputError(f"flatten_um must be >= 0 (micrometres; 0 turns flattening off), "
                                    f"got {self.flatten_um!r}")
        if not 0 <= self.max_folded_fraction < 1:
            raise InvalidInputError("max_folded_fraction must be in [0, 1)")


def level_factors(levels_um, spacing) -> list[int]:
    """Integer down-sampling factor of each level for images of voxel size ``spacing``.

    Parameters
    ----------
    levels_um : sequence of float
        Level voxel sizes (micrometres), coarse to fine.
    spacing : sequence of 3 float
        Voxel size of the images the factors apply to.

    Returns
    -------
    list of int
        ``max(1, round(level / mean spacing))`` per level, repeated factors
        dropped (a level no finer than the one before adds nothing).
    """
    mean = float(np.exp(np.mean(np.log(np.asarray(spacing, dtype=np.float64)))))
    out: list[int] = []
    for level in levels_um:
        f = max(1, int(round(level / mean)))
        if not out or f < out[-1]:
            out.append(f)
    return out


def finest_level_um(params: RegistrationParameters, atlas_voxel_um: float) -> float:
    """The voxel size registration works at: the finest level, but no finer than half an atlas voxel.

    The template holds no detail below its own voxel size, so working the scan
    finer than half of it (sampling the template's finest detail twice) costs
    time without adding information.

    Parameters
    ----------
    params : RegistrationParameters
    atlas_voxel_um : float
        The atlas (template) voxel size, micrometres (the smallest axis).

    Returns
    -------
    float
        ``max(finest level, atlas_voxel_um / 2)``, where the finest level is the
        smaller of the last affine and (if enabled) the last B-spline level.
    """
    finest = min(params.affine_levels_um[-1], params.deformable_levels_um[-1] if params.deformable else np.inf)
    return max(float(finest), float(atlas_voxel_um) / 2.0)
