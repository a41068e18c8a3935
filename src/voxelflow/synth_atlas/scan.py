"""A synthetic scan of an atlas: a known affine plus a smooth deformation, another orientation, finer voxels.

:func:`make_synthetic_scan` warps an atlas into a "scan": a known affine
(rotation up to ``max_rotation_deg``, per-axis scaling, translation) plus a
smooth deformation (at most ``max_deformation_vox`` atlas voxels), sampled at
a finer, anisotropic resolution, reoriented to another orientation code, then
degraded like a lightsheet autofluorescence channel
(:func:`voxelflow.synth_atlas.artefacts.lightsheet_artefacts`).
:class:`SyntheticScan` keeps the ground truth: :meth:`SyntheticScan.scan_to_atlas`
maps any scan point to the atlas, :meth:`SyntheticScan.truth_on_grid` gives the
true annotation and hemispheres on any grid over the scan.

Geometry: voxel ``i`` of size ``s`` spans ``[i s, (i + 1) s)`` micrometres, its
centre is ``(i + 0.5) s`` (as in :mod:`voxelflow.ops.atlas`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from voxelflow.errors import InvalidInputError
from voxelflow.io.brainglobe import Atlas
from voxelflow.ops._orientation import (
    ORIENTATION_CODES,
    orientation_matrix,
    parse_orientation,
    reorient_points,
    reorient_scale,
    reorient_shape,
    reorient_volume,
)
from voxelflow.synth_atlas.artefacts import lightsheet_artefacts

__all__ = ["SyntheticScan", "make_synthetic_scan", "partial_atlas"]


@dataclass
class SyntheticScan:
    """A synthetic autofluorescence scan with its true relation to the atlas.

    Attributes
    ----------
    image : numpy.ndarray, shape (Z, Y, X), uint16
        The scan, in ``orientation``.
    scale : tuple of 3 float
        Scan voxel size (micrometres) per axis of ``image``.
    orientation : str
        Orientation code of ``image``.
    atlas : Atlas
        The atlas it was made from.
    matrix, offset : numpy.ndarray, shapes (3, 3) and (3,)
        Affine part of the truth in the atlas-oriented scan frame:
        ``atlas_um = matrix @ q + offset + displacement(q)``.
    displacement_grid : numpy.ndarray, shape (3, gz, gy, gx)
        Control values (um) of the smooth deformation, interpolated cubically
        over the scan box.
    max_displacement_vox : float
        Largest deformation length, in atlas voxels.
    """

    image: np.ndarray
    scale: tuple[float, float, float]
    orientation: str
    atlas: Atlas
    matrix: np.ndarray
    offset: np.ndarray
    displacement_grid: np.ndarray
    max_displacement_vox: float

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        """Scan shape in the atlas orientation."""
        return reorient_shape(self.image.shape, self.orientation, self.atlas.orientation)

    @property
    def frame_scale(self) -> tuple[float, float, float]:
        return reorient_scale(self.scale, self.orientation, self.atlas.orientation)

    def scan_to_atlas(self, points_um) -> np.ndarray:
        """True atlas position (um, atlas axes) of scan points (um, scan axes), shape (N, 3)."""
        q = reorient_points(points_um, self.orientation, self.atlas.orientation, self.image.shape, self.scale)
        return self._frame_to_atlas(q)

    def truth_on_grid(self, shape, scale, slab_voxels: int = 4_000_000) -> tuple[np.ndarray, np.ndarray]:
        """True annotation and hemispheres at the voxel centres of a grid over the scan box.

        Parameters
        ----------
        shape, scale : sequences of 3
            A grid in the scan orientation starting at the scan corner (e.g. a
            down-sampled level: ``shape = ceil(scan.shape / f)``, ``scale = f * scan.scale``).
        slab_voxels : int
            Grid voxels mapped per step (bounds memory on large grids).

        Returns
        -------
        labels : numpy.ndarray, shape ``shape``, annotation dtype
        hemispheres : numpy.ndarray, shape ``shape``, uint8
        """
        shape = tuple(int(n) for n in shape)
        res = np.asarray(self.atlas.resolution, dtype=np.float64)
        lab = np.zeros(shape, dtype=self.atlas.annotation.dtype)
        hem = np.zeros(shape, dtype=np.uint8)
        step = max(1, slab_voxels // max(1, shape[1] * shape[2]))
        for z0 in range(0, shape[0], step):
            z1 = min(z0 + step, shape[0])
            atlas_um = self._grid_to_atlas(shape, scale, z0, z1).reshape(3, -1).T
            vox = np.floor(atlas_um / res).astype(np.int64)
            inside = np.all((vox >= 0) & (vox < np.asarray(self.atlas.shape)), axis=1)
            lab[z0:z1].reshape(-1)[inside] = self.atlas.annotation[tuple(vox[inside].T)]
            hem[z0:z1].reshape(-1)[inside] = self.atlas.hemispheres[tuple(vox[inside].T)]
        return lab, hem

    def _grid_to_atlas(self, shape, scale, z0: int, z1: int) -> np.ndarray:
        """True atlas positions (um) of the voxel centres of rows ``z0:z1`` of a grid in the scan orientation.

        Returns
        -------
        numpy.ndarray, shape (3, z1 - z0, shape[1], shape[2]), float64
            Atlas z, y, x (atlas axes) of every grid voxel, in the scan's axis order.
        """
        scale = np.asarray(scale, dtype=np.float64)
        m = orientation_matrix(self.orientation, self.atlas.orientation, self.image.shape, self.scale)
        rows = [np.arange(z0, z1), np.arange(shape[1]), np.arange(shape[2])]
        frame_axis = [int(np.flatnonzero(m[:3, k])[0]) for k in range(3)]  # scan axis k -> frame axis
        frame = [None, None, None]
        for k in range(3):
            t = frame_axis[k]
            # the scan coordinate reoriented as reorient_points does it (+-p + extent), one axis at a time
            frame[t] = ((rows[k] + 0.5) * scale[k]) * m[t, k] + m[t, 3]
        out = self._frame_grid_to_atlas(frame)
        return out.transpose(0, *(1 + t for t in frame_axis))

    def _frame_grid_to_atlas(self, axes) -> np.ndarray:
        """True atlas positions (um) of the grid spanned by frame coordinates ``axes`` (3 1-D arrays, um).

        The truth is separable on a grid: the affine part is a sum of one
        term per axis and the cubic deformation a tensor product of per-axis
        spline weights, so no (N, 3) point list is built.

        Returns
        -------
        numpy.ndarray, shape (3, len(axes[0]), len(axes[1]), len(axes[2])), float64
        """
        axes = [np.asarray(a, dtype=np.float64) for a in axes]
        box = np.asarray(self.frame_shape) * np.asarray(self.frame_scale)
        g = self.displacement_grid.shape[1:]
        weights = [_spline_weights(a / box[k] * (g[k] - 1), g[k]) for k, a in enumerate(axes)]
        shape = tuple(len(a) for a in axes)
        out = np.empty((3, *shape), dtype=np.float64)
        for c in range(3):
            affine = (self.matrix[c, 0] * axes[0][:, None, None] + self.matrix[c, 1] * axes[1][None, :, None]
                      + self.matrix[c, 2] * axes[2][None, None, :]) + self.offset[c]
            coeff = np.tensordot(self.displacement_grid[c], weights[2], axes=(2, 1))  # (gz, gy, X)
            coeff = np.einsum("bj,ijx->ibx", weights[1], coeff)  # (gz, Y, X)
            disp = np.tensordot(weights[0], coeff, axes=(1, 0))  # (Z, Y, X)
            out[c] = affine + disp
        return out

    def _frame_to_atlas(self, q) -> np.ndarray:
        q = np.asarray(q, dtype=np.float64)
        return q @ self.matrix.T + self.offset + self._displacement(q)

    def _displacement(self, q) -> np.ndarray:
        box = np.asarray(self.frame_shape) * np.asarray(self.frame_scale)
        g = np.asarray(self.displacement_grid.shape[1:], dtype=np.float64)
        coords = (q / box * (g - 1)).T
        return np.stack([ndi.map_coordinates(c, coords, order=3, mode="nearest", prefilter=False)
                         for c in self.displacement_grid], axis=1)


def make_synthetic_scan(
    atlas: Atlas,
    seed: int = 0,
    *,
    orientation: str | None = None,
    factors=None,
    max_rotation_deg: float = 15.0,
    scale_range=(0.85, 1.15),
    max_translation_um: float | None = None,
    max_deformation_vox: float = 4.0,
    noise: float = 0.05,
    margin: float = 0.12,
    slab_voxels: int = 4_000_000,
    box_um=None,
) -> SyntheticScan:
    """Warp ``atlas`` into a realistic, differently oriented, finer scan with known truth.

    Parameters
    ----------
    atlas : Atlas
        From :func:`make_synthetic_atlas` (any :class:`Atlas` works).
    seed : int
        Draws the transform, the orientation (if not given), the resolution
        factors (if not given) and the artefacts.
    orientation : str, optional
        Scan orientation code; default a random code other than the atlas's.
    factors : sequence of 3 float, optional
        Atlas voxel size / scan voxel size along the atlas axes; default random
        in [2, 4] (a coarser first axis, as lightsheet z steps are).
    max_rotation_deg : float
        Rotation angle about a random axis is uniform in ``[-max, max]``.
    scale_range : (float, float)
        Per-axis scaling of the brain in the scan.
    max_translation_um : float, optional
        Per-axis shift; default 4 % of the brain extent.
    max_deformation_vox : float
        Length of the largest deformation vector, in atlas voxels (the drawn
        maximum is uniform in ``[0.5, 1] * max``).
    noise : float
        Read-noise standard deviation relative to the mean tissue intensity.
    margin : float
        Extra field of view around the brain, as a fraction of its extent.
    slab_voxels : int
        Voxels sampled per step (bounds memory for large scans).
    box_um : sequence of 6 float, optional
        ``z0, z1, y0, y1, x0, x1``: the atlas box (micrometres, atlas axes) the
        field of view is framed on (default the whole atlas); with
        :func:`partial_atlas` it makes a scan of part of a brain.

    Returns
    -------
    SyntheticScan
    """
    rng = np.random.default_rng(seed)
    target = atlas.orientation
    if orientation is None:
        orientation = str(rng.choice([c for c in ORIENTATION_CODES if c != target]))
    orientation = parse_orientation(orientation, "scan orientation")
    res = np.asarray(atlas.resolution, dtype=np.float64)
    if factors is None:
        factors = (rng.uniform(2.0, 2.5), rng.uniform(2.5, 4.0), rng.uniform(2.5, 4.0))
    factors = np.asarray(factors, dtype=np.float64)
    if factors.shape != (3,) or np.any(factors <= 0):
        raise InvalidInputError(f"factors must be 3 positive numbers, got {factors!r}")
    frame_scale = res / factors
    atlas_box = np.asarray(atlas.shape) * res
    lo, hi = (np.zeros(3), atlas_box) if box_um is None else (np.asarray(box_um[0::2], dtype=np.float64),
                                                             np.asarray(box_um[1::2], dtype=np.float64))

    angle = np.deg2rad(rng.uniform(-max_rotation_deg, max_rotation_deg))
    axis = rng.standard_normal(3)
    axis /= np.linalg.norm(axis)
    kx = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    rot = np.eye(3) + np.sin(angle) * kx + (1 - np.cos(angle)) * kx @ kx
    scaling = rng.uniform(*scale_range, size=3)
    # scan = brain scaled by `scaling` then rotated; the truth maps scan -> atlas, so it inverts that
    brain_to_scan = rot @ np.diag(scaling)
    matrix = np.linalg.inv(brain_to_scan)
    if max_translation_um is None:
        max_translation_um = 0.04 * float(atlas_box.max())
    shift = rng.uniform(-max_translation_um, max_translation_um, size=3)
    # field of view: the transformed atlas box plus a margin, so the brain lies inside
    corners = np.array(np.meshgrid(*[[a, b] for a, b in zip(lo, hi)], indexing="ij")).reshape(3, -1).T
    centred = (corners - (lo + hi) / 2) @ brain_to_scan.T
    span = centred.max(axis=0) - centred.min(axis=0)
    frame_box = span * (1 + margin)
    frame_shape = tuple(int(np.ceil(b / s)) for b, s in zip(frame_box, frame_scale))
    frame_box = np.asarray(frame_shape) * frame_scale
    offset = (lo + hi) / 2 + shift - matrix @ (frame_box / 2)

    grid = rng.standard_normal((3, 4, 4, 4))
    amplitude = rng.uniform(0.5, 1.0) * max_deformation_vox * float(res.min())
    probe = SyntheticScan(np.zeros(reorient_shape(frame_shape, target, orientation), np.uint16),
                          reorient_scale(frame_scale, target, orientation), orientation, atlas,
                          matrix, offset, grid, 0.0)
    sample = np.indices((12, 12, 12)).reshape(3, -1).T / 11.0 * frame_box
    longest = float(np.linalg.norm(probe._displacement(sample), axis=1).max())
    probe.displacement_grid = grid * (amplitude / longest)
    probe.max_displacement_vox = amplitude / float(res.min())

    image = _render(probe, frame_shape, frame_scale, slab_voxels)
    image = lightsheet_artefacts(image, frame_scale, rng, noise)
    probe.image = np.ascontiguousarray(reorient_volume(image, target, orientation))
    return probe


def _render(scan: SyntheticScan, frame_shape, frame_scale, slab_voxels: int) -> np.ndarray:
    """Template intensity (float32) at every frame voxel, through the true transform, slab by slab."""
    out = np.zeros(frame_shape, dtype=np.float32)
    ref = scan.atlas.reference.astype(np.float32)
    res = np.asarray(scan.atlas.resolution, dtype=np.float64)[:, None, None, None]
    step = max(1, slab_voxels // (frame_shape[1] * frame_shape[2]))
    yx = [(np.arange(n) + 0.5) * s for n, s in zip(frame_shape[1:], frame_scale[1:])]
    for z0 in range(0, frame_shape[0], step):
        z1 = min(z0 + step, frame_shape[0])
        a = scan._frame_grid_to_atlas([(np.arange(z0, z1) + 0.5) * frame_scale[0], *yx])
        a /= res
        a -= 0.5
        out[z0:z1] = ndi.map_coordinates(ref, a, order=1, mode="constant", cval=0.0)
    return out


def _spline_weights(coords: np.ndarray, n: int) -> np.ndarray:
    """Weights (len(coords), n) of the cubic spline of :meth:`SyntheticScan._displacement` along one axis.

    Row ``i`` holds what ``map_coordinates(values, [coords], order=3, mode="nearest",
    prefilter=False)`` multiplies ``values`` (length ``n``) by at ``coords[i]``.
    """
    eye = np.eye(n)
    return np.stack([ndi.map_coordinates(e, coords[None], order=3, mode="nearest", prefilter=False) for e in eye],
                    axis=1)


def partial_atlas(atlas: Atlas, box_um=None, side: str = "whole") -> tuple[Atlas, tuple[float, ...]]:
    """The atlas with only the tissue of a partial scan left: a box and/or one hemisphere.

    Parameters
    ----------
    atlas : Atlas
    box_um : sequence of 6 float, optional
        ``z0, z1, y0, y1, x0, x1`` in micrometres (atlas axes): tissue whose voxel
        centre lies outside is removed (as if cut away).
    side : {'whole', 'left', 'right'}
        Keep one hemisphere (hemisphere value 1 left, 2 right).

    Returns
    -------
    part : Atlas
        Same shapes; template, annotation and hemispheres are 0 outside the part.
    box_um : tuple of 6 float
        The bounding box of the part's tissue (for ``make_synthetic_scan(box_um=...)``).
    """
    res = np.asarray(atlas.resolution, dtype=np.float64)
    keep = np.ones(atlas.shape, dtype=bool)
    if box_um is not None:
        centres = [(np.arange(n) + 0.5) * r for n, r in zip(atlas.shape, res)]
        for axis in range(3):
            inside = (centres[axis] >= box_um[2 * axis]) & (centres[axis] < box_um[2 * axis + 1])
            keep &= inside.reshape([-1 if k == axis else 1 for k in range(3)])
    if side != "whole":
        keep &= atlas.hemispheres == {"left": 1, "right": 2}[side]
    else:
        keep &= atlas.annotation != 0
    where = np.argwhere(keep)
    if not len(where):
        raise InvalidInputError(f"the part (box {box_um}, side {side!r}) holds no tissue")
    lo, hi = where.min(axis=0) * res, (where.max(axis=0) + 1) * res
    ref, ann, hem = atlas.reference.copy(), atlas.annotation.copy(), atlas.hemispheres.copy()
    for arr in (ref, ann, hem):
        arr[~keep] = 0
    part = Atlas(ref, ann, hem, atlas.regions, atlas.resolution, atlas.orientation, atlas.name, dict(atlas.metadata))
    return part, tuple(float(v) for pair in zip(lo, hi) for v in pair)
