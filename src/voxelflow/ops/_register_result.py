"""A registration result and its use: warping atlas images, mapping points, Jacobian determinant.

The transform maps fixed points (scan, in the atlas orientation) to moving
points (atlas): atlas images are pulled onto the fixed grid through it, and
fixed points are pushed to the atlas through the same transform. Point arrays
are (z, y, x) micrometres; voxel ``i`` of size ``s`` has its centre at
``(i + 0.5) s``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from voxelflow.errors import InvalidInputError
from voxelflow.ops._register_images import load_simpleitk, reference_image, to_sitk

__all__ = ["Registration", "warp_labels", "warp_image", "transform_points", "displacement_sampler",
           "jacobian_determinant", "jacobian_on_grid", "FIELD_SAMPLES_PER_KNOT"]

#: Samples of the displacement field per B-spline knot interval used by :func:`transform_points`.
FIELD_SAMPLES_PER_KNOT = 10


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
        ``stop_affine``, ``stop_deformable``, ``working_spacing_um`` (voxel size the metrics and
        Jacobian were computed at), ``optimised_spacing_um`` (voxel size of the image the stages
        optimised on: finer with a detail image).
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
        sitk = load_simpleitk()
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


def warp_labels(labels, result: Registration, origin_vox=None) -> np.ndarray:
    """Resample a label image of the moving grid onto the fixed grid (nearest neighbour).

    Parameters
    ----------
    labels : numpy.ndarray, integer
        Shape ``result.moving_shape``; or, with ``origin_vox``, a larger image
        the moving grid was cut from.
    result : Registration
    origin_vox : sequence of 3 int, optional
        Where the moving grid starts in ``labels`` (voxels): a registration to
        a part of an atlas then reads the whole atlas, so fixed points that the
        transform puts just beyond the part still get the atlas's labels there.

    Returns
    -------
    numpy.ndarray, shape ``result.fixed_shape``, dtype of ``labels``
        0 where the transformed point leaves ``labels``.
    """
    return _warp(labels, result, "nearest", origin_vox)


def warp_image(image, result: Registration, order: int = 1) -> np.ndarray:
    """Resample an intensity image of the moving grid onto the fixed grid (linear by default), float32."""
    return _warp(np.asarray(image, dtype=np.float32), result, "linear" if order == 1 else "nearest")


def transform_points(points_um, result: Registration) -> np.ndarray:
    """Map fixed-frame points (z, y, x um) to the moving frame (z, y, x um).

    The affine part is exact; the B-spline part is its displacement field
    sampled on the fixed grid (every ``k``-th voxel centre, ``k`` keeping at
    least :data:`FIELD_SAMPLES_PER_KNOT` samples between B-spline knots) and
    interpolated trilinearly (constant beyond the grid): vectorised, and within
    a small fraction of a voxel of the spline itself.

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
        pts = pts + displacement_sampler(result)(pts)
    return _apply_affine(result.affine, pts)


def displacement_sampler(result: Registration):
    """The B-spline displacement of ``result`` as a vectorised function of fixed-frame points.

    The field is sampled once on the fixed grid (every ``k``-th voxel centre,
    ``k`` keeping at least :data:`FIELD_SAMPLES_PER_KNOT` samples between
    B-spline knots, float32) and interpolated trilinearly, constant beyond the
    grid.

    Parameters
    ----------
    result : Registration
        With a deformable part.

    Returns
    -------
    callable
        ``f(points_um)``: points (N, 3) z y x um -> displacements (N, 3) z y x um, float64.
    """
    field, step = _displacement_field(result)  # (3, Z', Y', X') z y x components, um; grid step (um)
    origin = np.asarray(result.fixed_spacing, dtype=np.float64) / 2

    def sample(points_um) -> np.ndarray:
        coords = ((np.asarray(points_um, dtype=np.float64) - origin) / step).T
        return np.stack([ndi.map_coordinates(c, coords, order=1, mode="nearest") for c in field], axis=1)

    return sample


def jacobian_determinant(result: Registration) -> np.ndarray:
    """Jacobian determinant of the full transform at every fixed voxel, float32, shape ``fixed_shape``."""
    return jacobian_on_grid(result.transform(), result.fixed_shape, result.fixed_spacing)


def jacobian_on_grid(transform, shape, spacing, slab_voxels: int = 2_000_000) -> np.ndarray:
    """Jacobian determinant of a SimpleITK transform at the voxel centres of a grid.

    The displacement field is made slab by slab along z (each slab with one
    more plane on either side, so the finite differences at its faces are the
    whole grid's), which bounds its memory on large working grids.

    Parameters
    ----------
    transform : SimpleITK.Transform
    shape : tuple of 3 int
        Grid shape (z, y, x).
    spacing : tuple of 3 float
        Voxel size (um, z y x); voxel centres at ``(i + 0.5) * spacing``.
    slab_voxels : int
        Grid voxels per slab (at least one plane).

    Returns
    -------
    numpy.ndarray, shape ``shape``, float32
    """
    sitk = load_simpleitk()
    shape = tuple(int(n) for n in shape)
    out = np.empty(shape, dtype=np.float32)
    step = max(1, int(slab_voxels) // max(1, shape[1] * shape[2]))
    for z0 in range(0, shape[0], step):
        z1 = min(z0 + step, shape[0])
        lo, hi = max(0, z0 - 1), min(shape[0], z1 + 1)
        ref = reference_image(sitk, (hi - lo, *shape[1:]), spacing)
        origin = list(ref.GetOrigin())
        origin[2] += lo * float(spacing[0])
        disp = sitk.TransformToDisplacementField(transform, sitk.sitkVectorFloat32, ref.GetSize(),
                                                 tuple(origin), ref.GetSpacing(), ref.GetDirection())
        det = sitk.DisplacementFieldJacobianDeterminant(disp)  # kept alive while its array view is read
        out[z0:z1] = sitk.GetArrayViewFromImage(det)[z0 - lo:z1 - lo]
    return out


# --- internals --------------------------------------------------------------------------

def _warp(arr, result: Registration, how: str, origin_vox=None) -> np.ndarray:
    sitk = load_simpleitk()
    arr = np.asarray(arr)
    if origin_vox is None and arr.shape != tuple(result.moving_shape):
        raise InvalidInputError(f"image shape {arr.shape} differs from the moving grid {tuple(result.moving_shape)}")
    src = to_sitk(sitk, np.ascontiguousarray(arr), result.moving_spacing)
    if origin_vox is not None:  # voxel origin_vox of arr is the moving grid's first voxel
        shift = np.asarray(origin_vox, dtype=np.float64) * np.asarray(result.moving_spacing, dtype=np.float64)
        src.SetOrigin(tuple(float(o - d) for o, d in zip(src.GetOrigin(), shift[::-1])))
    ref = reference_image(sitk, result.fixed_shape, result.fixed_spacing)
    interp = sitk.sitkNearestNeighbor if how == "nearest" else sitk.sitkLinear
    out = sitk.Resample(src, ref, result.transform(), interp, 0.0, src.GetPixelID())
    return sitk.GetArrayFromImage(out)


def _displacement_field(result: Registration) -> tuple[np.ndarray, np.ndarray]:
    """B-spline displacement (3, Z', Y', X') float32, z y x components in um, on every ``k``-th fixed voxel centre.

    Returns the field and its grid step ``k * fixed_spacing`` (um, z y x); the
    grid starts at the first voxel centre and covers the last one.
    """
    sitk = load_simpleitk()
    bspline = result.deformable
    knot = np.asarray(bspline.GetTransformDomainPhysicalDimensions(), dtype=np.float64) / np.maximum(
        1, np.asarray(bspline.GetTransformDomainMeshSize()))
    spacing = np.asarray(result.fixed_spacing, dtype=np.float64)
    k = np.maximum(1, np.floor(float(knot.min()) / FIELD_SAMPLES_PER_KNOT / spacing)).astype(int)
    shape = [int(np.ceil((n - 1) / kk)) + 1 for n, kk in zip(result.fixed_shape, k)]
    step = k * spacing
    ref = reference_image(sitk, shape, step)
    ref.SetOrigin(tuple(float(s) / 2 for s in spacing[::-1]))
    disp = sitk.TransformToDisplacementField(bspline, sitk.sitkVectorFloat32, ref.GetSize(), ref.GetOrigin(),
                                             ref.GetSpacing(), ref.GetDirection())
    arr = sitk.GetArrayFromImage(disp)  # (Z', Y', X', 3) with x, y, z components
    return np.moveaxis(arr[..., ::-1], -1, 0), step


def _apply_affine(affine, pts_zyx: np.ndarray) -> np.ndarray:
    m = np.asarray(affine.GetMatrix(), dtype=np.float64).reshape(3, 3)
    centre = np.asarray(affine.GetCenter(), dtype=np.float64)
    trans = np.asarray(affine.GetTranslation(), dtype=np.float64)
    xyz = pts_zyx[:, ::-1]
    out = (xyz - centre) @ m.T + centre + trans
    return out[:, ::-1]
