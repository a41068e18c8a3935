"""Settings of atlas registration (:func:`voxelflow.ops._register.register`)."""

from __future__ import annotations

from dataclasses import dataclass

from voxelflow.errors import InvalidInputError

__all__ = ["RegistrationParameters"]


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
