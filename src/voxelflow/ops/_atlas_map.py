"""Scan <-> atlas mapping: a registration plus the scan's orientation and coarse grid.

The scan's registration channel is block-averaged to about the atlas
resolution (:func:`registration_factors`, integer factors, so the coarse grid
keeps the exact physical scale ``factors * scan_scale``), reoriented to the
atlas orientation code and registered to the atlas template
(:func:`voxelflow.ops._register.register`). When that coarse grid is coarser
than the finest registration level (an atlas coarser than the level, e.g. a
200 um atlas and a 100 um level), registration optimises on a finer copy of
the scan (:func:`detail_factors`) placed in the coarse grid's frame; the
mapping stays a mapping of the coarse grid. :class:`ScanAtlasMap` then maps

- scan points (micrometres, scan axes, voxel ``i`` spanning
  ``[i s, (i + 1) s)``) to atlas points (micrometres, atlas axes);
- atlas label images (annotation, hemispheres) onto the coarse scan grid, in
  the scan's orientation; :func:`upsample_labels` takes them lazily to the
  full scan grid by nearest neighbour (coarse voxel ``floor((i + 0.5) / f)``
  for scan voxel ``i``), chunk by chunk.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import dask.array as da
import numpy as np

from voxelflow.errors import InvalidInputError, OrientationError
from voxelflow.ops._hemispheres import fill_hemispheres
from voxelflow.ops._orientation import (
    ORIENTATION_CODES,
    parse_orientation,
    reorient_points,
    reorient_scale,
    reorient_volume,
)
from voxelflow.ops._register import (
    Registration,
    RegistrationParameters,
    register,
    start_metric,
    transform_points,
    warp_image,
)
from voxelflow.ops._register import warp_labels as _warp_labels
from voxelflow.ops._register_params import finest_level_um
from voxelflow.ops._resample import affine_nearest

__all__ = ["ScanAtlasMap", "registration_factors", "detail_factors", "register_scan", "upsample_labels",
           "check_orientation"]


@dataclass
class ScanAtlasMap:
    """A registered scan: its coarse grid, its orientation and the transform to the atlas.

    Attributes
    ----------
    registration : Registration
        Fixed = coarse scan in the atlas orientation, moving = atlas.
    scan_orientation, atlas_orientation : str
    grid_shape : tuple of 3 int
        Coarse scan grid (scan orientation).
    grid_scale : tuple of 3 float
        Its voxel size in micrometres (scan orientation).
    """

    registration: Registration
    scan_orientation: str
    atlas_orientation: str
    grid_shape: tuple[int, int, int]
    grid_scale: tuple[float, float, float]

    def scan_to_atlas(self, points_um) -> np.ndarray:
        """Atlas position (um, atlas axes) of scan points (um, scan axes), shape (N, 3) float64."""
        q = reorient_points(points_um, self.scan_orientation, self.atlas_orientation, self.grid_shape, self.grid_scale)
        return transform_points(q, self.registration)

    def labels_to_scan(self, labels, origin_vox=None) -> np.ndarray:
        """An atlas label image (atlas grid) resampled onto the coarse scan grid (scan orientation), nearest.

        ``origin_vox``: where the registered atlas part starts in ``labels``
        (the whole atlas), as for :func:`voxelflow.ops._register.warp_labels`.
        """
        warped = _warp_labels(labels, self.registration, origin_vox)
        return np.ascontiguousarray(reorient_volume(warped, self.atlas_orientation, self.scan_orientation))

    def hemispheres_to_scan(self, hemispheres, origin_vox=None) -> np.ndarray:
        """The atlas hemisphere image on the coarse scan grid, split by the registered midline alone.

        The image is first extended over the whole atlas volume
        (:func:`voxelflow.ops._hemispheres.fill_hemispheres`), so a scan voxel
        registration puts just outside the atlas brain keeps its side; every
        voxel of the coarse grid gets a side (0 only where the transform
        leaves the atlas volume), shape ``grid_shape``.
        """
        return self.labels_to_scan(fill_hemispheres(hemispheres, self.atlas_orientation), origin_vox)

    def image_to_scan(self, image) -> np.ndarray:
        """An atlas intensity image resampled (linear) onto the coarse scan grid, float32."""
        warped = warp_image(image, self.registration)
        return np.ascontiguousarray(reorient_volume(warped, self.atlas_orientation, self.scan_orientation))

    def to_meta(self) -> dict:
        """JSON-ready description (the registration's plus orientation and grid)."""
        return dict(self.registration.to_meta(), scan_orientation=self.scan_orientation,
                    atlas_orientation=self.atlas_orientation, grid_shape=[int(n) for n in self.grid_shape],
                    grid_scale_um=[float(s) for s in self.grid_scale])

    @classmethod
    def from_parts(cls, affine, deformable, meta: dict) -> ScanAtlasMap:
        """Rebuild a mapping from its transforms and :meth:`to_meta`."""
        try:
            return cls(Registration.from_parts(affine, deformable, meta), meta["scan_orientation"],
                       meta["atlas_orientation"], tuple(meta["grid_shape"]), tuple(meta["grid_scale_um"]))
        except KeyError as exc:
            raise InvalidInputError(f"scan-atlas mapping description lacks {exc}") from None


def registration_factors(scan_scale: Sequence[float], scan_orientation: str, atlas_resolution: Sequence[float],
                         atlas_orientation: str) -> tuple[int, ...]:
    """Integer block sizes taking the scan (scan axes) to about the atlas voxel size.

    Returns
    -------
    tuple of 3 int, each ``max(1, round(atlas voxel size along that anatomical axis / scan voxel size))``
    """
    res_in_scan_axes = reorient_scale(atlas_resolution, atlas_orientation, scan_orientation)
    out = []
    for s, r in zip(scan_scale, res_in_scan_axes):
        if not s > 0:
            raise InvalidInputError(f"scan voxel size must be positive, got {tuple(scan_scale)}")
        out.append(max(1, int(round(r / s))))
    return tuple(out)


def detail_factors(scan_scale: Sequence[float], factors: Sequence[int], atlas_voxel_um: float,
                   parameters: RegistrationParameters | None = None) -> tuple[int, ...] | None:
    """Block sizes taking the scan to about the finest registration level, where the coarse grid is coarser.

    Per axis ``min(factor, max(1, round(finest / scan voxel size)))``, with
    ``finest`` the voxel size registration works at
    (:func:`voxelflow.ops._register_params.finest_level_um`: the finest level
    of ``parameters``, no finer than half of ``atlas_voxel_um``), as
    :func:`registration_factors` takes the scan to about the atlas voxel size,
    and never coarser than the coarse grid (``factors``). Blocks much finer
    than the level would leave fewer scan voxels averaged per metric sample, a
    noisier metric for the same samples.

    Returns
    -------
    tuple of 3 int, or None
        None when they equal ``factors`` (the coarse grid already resolves the
        finest level: nothing finer to register on).
    """
    finest = finest_level_um(parameters or RegistrationParameters(), atlas_voxel_um)
    out = tuple(int(min(int(k), max(1, int(round(finest / float(s)))))) for k, s in zip(factors, scan_scale))
    return None if out == tuple(int(k) for k in factors) else out


def check_orientation(coarse, coarse_scale, scan_orientation: str, atlas, margin: float = 0.03) -> list:
    """Raise :class:`OrientationError` if another orientation code fits the atlas clearly better.

    Every one of the 48 codes is tried: the coarse scan is reoriented from it
    to the atlas code, the tissue centres of mass are matched and Mattes MI is
    measured once (:func:`voxelflow.ops._register.start_metric`). The given
    code passes if its value is within ``margin`` (relative) of the best one,
    or if the best one differs from it only by left/right (a symmetric brain
    cannot tell those apart; the atlas hemispheres then decide left and right).

    Returns
    -------
    list of (float, str)
        ``(metric, code)`` sorted best first.

    Raises
    ------
    OrientationError
        Naming the given code and the codes that fit better.
    """
    scan_orientation = parse_orientation(scan_orientation, "scan orientation")
    coarse = np.asarray(coarse)
    scores = []
    for code in ORIENTATION_CODES:
        fixed = np.ascontiguousarray(reorient_volume(coarse, code, atlas.orientation))
        scale = reorient_scale(coarse_scale, code, atlas.orientation)
        scores.append((start_metric(fixed, atlas.reference, scale, atlas.resolution), code))
    scores.sort()
    given = dict((c, m) for m, c in scores)[scan_orientation]
    best_metric, best = scores[0]
    mirror = scan_orientation.translate(str.maketrans("lr", "rl"))
    if best not in (scan_orientation, mirror) and given > best_metric + margin * abs(best_metric):
        better = [c for m, c in scores if m < given and c != mirror][:3]
        raise OrientationError(
            f"the scan does not look like orientation {scan_orientation!r}: the atlas fits codes {better} better "
            f"(Mattes MI {best_metric:.3f} vs {given:.3f} after matching centres of mass); check atlas.orientation "
            "(each letter names where its axis starts: a/p, s/i, l/r)"
        )
    return scores


def register_scan(coarse, coarse_scale, scan_orientation: str, atlas,
                  parameters: RegistrationParameters | None = None, *, check: bool = True,
                  orientation_check: bool = True, detail=None, detail_scale=None) -> ScanAtlasMap:
    """Register a coarse scan (scan orientation) to an :class:`~voxelflow.io.brainglobe.Atlas`.

    Parameters
    ----------
    coarse : numpy.ndarray, shape (Z, Y, X), numeric
        The registration channel block-averaged by :func:`registration_factors`.
    coarse_scale : sequence of 3 float
        Its voxel size (micrometres, scan axes).
    scan_orientation : str
        Orientation code of the scan.
    atlas : Atlas
    parameters : RegistrationParameters, optional
    check : bool
        See :func:`voxelflow.ops._register.register`.
    orientation_check : bool
        Run :func:`check_orientation` first.
    detail : numpy.ndarray, shape (Zd, Yd, Xd), numeric, optional
        The same channel block-averaged by :func:`detail_factors` (scan
        orientation, from the same scan corner): registration optimises on it.
    detail_scale : sequence of 3 float, optional
        Its voxel size (micrometres, scan axes); required with ``detail``.

    Returns
    -------
    ScanAtlasMap
        Of the coarse grid, with or without ``detail``.

    Raises
    ------
    OrientationError
        If the orientation code is malformed or another code fits clearly better.
    RegistrationError
        See :func:`voxelflow.ops._register.register`.
    """
    scan_orientation = parse_orientation(scan_orientation, "scan orientation")
    coarse = np.asarray(coarse)
    if orientation_check:
        check_orientation(coarse, coarse_scale, scan_orientation, atlas)
    fixed = reorient_volume(coarse, scan_orientation, atlas.orientation)
    fixed_scale = reorient_scale(coarse_scale, scan_orientation, atlas.orientation)
    grid = (tuple(int(n) for n in coarse.shape), tuple(float(s) for s in coarse_scale))
    fine = None if detail is None else _detail_in_frame(detail, detail_scale, scan_orientation, atlas.orientation,
                                                        *grid)
    try:
        reg = register(np.ascontiguousarray(fixed), atlas.reference, fixed_scale, atlas.resolution, parameters,
                       check=check, detail=fine)
    except Exception as exc:
        result = getattr(exc, "result", None)
        if result is not None:
            exc.result = ScanAtlasMap(result, scan_orientation, atlas.orientation, *grid)
        raise
    return ScanAtlasMap(reg, scan_orientation, atlas.orientation, *grid)


def _detail_in_frame(detail, detail_scale, scan_orientation: str, atlas_orientation: str, grid_shape, grid_scale):
    """``(image, spacing, offset_um)`` of the detail image in the atlas orientation and the coarse grid's frame.

    Reorienting flips an axis about the grid's own extent, and the detail grid
    may end up to a block beyond the coarse one (both cover the scan), so its
    corner lands at ``offset_um`` in the coarse frame (non-zero on flipped axes).
    """
    detail = np.asarray(detail)
    if detail_scale is None or detail.ndim != 3:
        raise InvalidInputError(f"detail must be a 3-D image with its detail_scale, got shape {detail.shape} and "
                                f"scale {detail_scale!r}")
    scale = tuple(float(s) for s in detail_scale)
    image = np.ascontiguousarray(reorient_volume(detail, scan_orientation, atlas_orientation))
    spacing = reorient_scale(scale, scan_orientation, atlas_orientation)
    # a scan point in both frames: their difference is the detail frame's corner in the coarse frame
    probe = np.zeros((1, 3))
    offset = (reorient_points(probe, scan_orientation, atlas_orientation, grid_shape, grid_scale)
              - reorient_points(probe, scan_orientation, atlas_orientation, detail.shape, scale))[0]
    return image, spacing, tuple(float(v) for v in offset)


def upsample_labels(coarse_labels, factors: Sequence[int], shape: Sequence[int], chunks=None) -> da.Array:
    """Lazy nearest-neighbour up-sampling of a coarse label image to the scan grid.

    Scan voxel ``i`` takes coarse voxel ``floor((i + 0.5) / f)`` (the block it
    was averaged into), computed per output chunk.

    Parameters
    ----------
    coarse_labels : numpy.ndarray or dask.array.Array, shape ``ceil(shape / factors)``
    factors : sequence of 3 int
    shape : sequence of 3 int
        Full scan shape.
    chunks : dask chunks, optional
        Output chunking (default: the coarse chunk size times ``factors``).

    Returns
    -------
    dask.array.Array, shape ``shape``, dtype of ``coarse_labels``
    """
    f = np.asarray(factors, dtype=np.float64)
    shape = tuple(int(n) for n in shape)
    expect = tuple(int(np.ceil(n / k)) for n, k in zip(shape, f))
    if tuple(coarse_labels.shape) != expect:
        raise InvalidInputError(f"coarse labels of shape {tuple(coarse_labels.shape)} do not fit a scan of shape "
                                f"{shape} block-reduced by {tuple(int(k) for k in f)} (expected {expect})")
    arr = da.asarray(coarse_labels)
    if chunks is None:
        chunks = tuple(int(c * k) for c, k in zip(arr.chunksize, f))
    return affine_nearest(arr, 1.0 / f, offset=0.5 / f - 0.5, output_shape=shape, output_chunks=chunks,
                          mode="nearest")
