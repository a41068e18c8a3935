"""Synthetic atlas + scan pairs with a known scan-to-atlas transform, to test registration.

:func:`make_synthetic_atlas` draws a mouse-brain-like template and annotation:
an ellipsoidal brain with an olfactory bulb, a cortex with layers, a fibre-tract
sheet, hippocampus, striatum, thalamus, hypothalamus, midbrain, a foliated
cerebellum and dark ventricles, each with its own intensity and texture; the
region table is a small Allen-like hierarchy (Allen ids and acronyms), the
brain is left/right symmetric with a hemisphere image (1 left, 2 right).
The arrays are in BrainGlobe's ``asr`` orientation.

:func:`make_synthetic_scan` warps that atlas into a "scan": a known affine
(rotation up to ``max_rotation_deg``, per-axis scaling, translation) plus a
smooth deformation (at most ``max_deformation_vox`` atlas voxels), sampled at
a finer, anisotropic resolution, reoriented to another orientation code, then
degraded like a lightsheet autofluorescence channel: a smooth bias field,
per-plane brightness steps, stripes along one axis, tile seams, bright vessels,
background autofluorescence, shot and read noise. :class:`SyntheticScan` keeps
the ground truth: :meth:`SyntheticScan.scan_to_atlas` maps any scan point to
the atlas, :meth:`SyntheticScan.truth_on_grid` gives the true annotation and
hemispheres on any grid over the scan.

Geometry: voxel ``i`` of size ``s`` spans ``[i s, (i + 1) s)`` micrometres, its
centre is ``(i + 0.5) s`` (as in :mod:`voxelflow.ops.atlas`).

Examples
--------
>>> from voxelflow.synth_atlas import make_synthetic_atlas, make_synthetic_scan
>>> atlas = make_synthetic_atlas(resolution=400.0)
>>> atlas.shape, atlas.orientation
((33, 20, 28), 'asr')
>>> scan = make_synthetic_scan(atlas, seed=1, orientation="psl", factors=(2.0, 2.0, 2.0))
>>> scan.image.dtype.name, scan.orientation
('uint16', 'psl')
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from voxelflow.errors import InvalidInputError
from voxelflow.io.brainglobe import LEFT, RIGHT, Atlas
from voxelflow.ops._orientation import (
    ORIENTATION_CODES,
    parse_orientation,
    reorient_points,
    reorient_scale,
    reorient_shape,
    reorient_volume,
)

__all__ = ["ATLAS_REGIONS", "make_synthetic_atlas", "make_synthetic_scan", "SyntheticScan", "dice_per_region",
           "plant_objects", "write_synthetic_experiment"]

#: The hierarchy (id, acronym, name, parent) with Allen ids; leaves are painted.
ATLAS_REGIONS = pd.DataFrame(
    [
        (997, "root", "root", -1),
        (8, "grey", "Basic cell groups and regions", 997),
        (567, "CH", "Cerebrum", 8),
        (688, "CTX", "Cerebral cortex", 567),
        (315, "Isocortex", "Isocortex", 688),
        (698, "OLF", "Olfactory areas", 688),
        (1089, "HPF", "Hippocampal formation", 688),
        (623, "CNU", "Cerebral nuclei", 567),
        (477, "STR", "Striatum", 623),
        (343, "BS", "Brain stem", 8),
        (1129, "IB", "Interbrain", 343),
        (549, "TH", "Thalamus", 1129),
        (1097, "HY", "Hypothalamus", 1129),
        (313, "MB", "Midbrain", 343),
        (512, "CB", "Cerebellum", 8),
        (1009, "fiber tracts", "fiber tracts", 997),
        (73, "VS", "ventricular systems", 997),
    ],
    columns=["id", "acronym", "name", "parent"],
)

#: Mouse brain extent (um) along the ``asr`` axes, as in the Allen CCF.
BRAIN_EXTENT_UM = (13200.0, 8000.0, 11400.0)

# (base intensity, texture amplitude, texture scale in um) of every painted region
_LOOK = {
    315: (900.0, 0.20, 0.0), 698: (1150.0, 0.15, 200.0), 1089: (1300.0, 0.15, 150.0), 477: (700.0, 0.25, 120.0),
    549: (1000.0, 0.10, 300.0), 1097: (600.0, 0.15, 250.0), 313: (800.0, 0.12, 400.0), 512: (1100.0, 0.25, 0.0),
    1009: (1700.0, 0.05, 300.0), 73: (250.0, 0.05, 300.0), 343: (750.0, 0.10, 300.0),
}


def make_synthetic_atlas(resolution: float = 50.0, seed: int = 0, extent_um=BRAIN_EXTENT_UM) -> Atlas:
    """A synthetic mouse-brain atlas in BrainGlobe's ``asr`` orientation.

    Parameters
    ----------
    resolution : float
        Isotropic voxel size in micrometres (the shape follows ``extent_um``:
        50 um gives 264 x 160 x 228, about 10 MVox).
    seed : int
        Seed of the textures.
    extent_um : tuple of 3 float
        Physical size of the volume (antero-posterior, supero-inferior, left-right).

    Returns
    -------
    voxelflow.io.brainglobe.Atlas
        ``reference`` uint16, ``annotation`` uint32, ``hemispheres`` uint8,
        ``regions`` :data:`ATLAS_REGIONS`, ``symmetric`` metadata.
    """
    if not resolution > 0:
        raise InvalidInputError(f"resolution must be positive (micrometres), got {resolution!r}")
    rng = np.random.default_rng(seed)
    shape = tuple(max(8, int(round(e / resolution))) for e in extent_um)
    # normalised coordinates in [-1, 1]: u from anterior to posterior, v from superior to inferior,
    # w from right to left; the left half is drawn from the right half, so the atlas is symmetric
    u, v, w = (((np.arange(n) + 0.5) / n * 2 - 1).reshape([-1 if k == a else 1 for k in range(3)])
               for a, n in enumerate(shape))
    aw = np.abs(w)
    body = (u / 0.78) ** 2 + ((v + 0.05) / 0.72) ** 2 + (aw / 0.82) ** 2
    bulb = ((u + 0.8) / 0.16) ** 2 + ((v + 0.05) / 0.22) ** 2 + ((aw - 0.12) / 0.14) ** 2
    brain = (body <= 1) | (bulb <= 1)
    depth = 1 - np.sqrt(body)  # 0 on the surface, 1 at the centre
    labels = np.zeros(shape, dtype=np.uint32)
    paint = [
        (343, brain),
        (313, brain & (u > 0.15) & (v > -0.3)),
        (1097, brain & (v > 0.3) & (u < 0.2)),
        (549, (u > -0.15) & (u < 0.3) & (aw < 0.35) & (v > -0.2) & (v < 0.3)),
        (477, (u > -0.6) & (u < 0.05) & (aw > 0.12) & (aw < 0.6) & (v > -0.25) & (v < 0.35)),
        (1089, (u > -0.05) & (u < 0.45) & (aw > 0.1) & (v > -0.5) & (v < -0.2) & (depth > 0.2)),
        (1009, (depth > 0.14) & (depth < 0.2) & (v < 0.15) & (u < 0.5)),
        (315, (depth <= 0.14) & (v < 0.25) & (u < 0.5)),
        (512, brain & (u > 0.5)),
        (698, bulb <= 1),
        (73, ((u + 0.15) / 0.22) ** 2 + ((v + 0.1) / 0.06) ** 2 + ((aw - 0.18) / 0.05) ** 2 <= 1),
    ]
    for rid, where in paint:
        labels[np.broadcast_to(where, shape) & np.broadcast_to(brain, shape)] = rid

    ref = np.zeros(shape, dtype=np.float32)
    for rid, (base, amp, tex_um) in _LOOK.items():
        where = labels == rid
        if not where.any():
            continue
        if rid == 315:  # cortical layers: intensity bands parallel to the surface
            tex = np.sin(np.broadcast_to(depth, shape) * 2 * np.pi / 0.05)
        elif rid == 512:  # cerebellar folia: bands along the antero-posterior axis
            tex = np.sin(np.broadcast_to(u * 2 * np.pi / 0.06 + 3 * v, shape))
        else:
            sigma = max(tex_um / resolution, 0.5)
            tex = ndi.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
            tex /= max(float(np.abs(tex).max()), 1e-6)
        ref[where] = base * (1 + amp * tex[where])
    ref = ndi.gaussian_filter(ref, 0.6)
    ref = (ref + ref[:, :, ::-1]) / 2  # symmetric template
    hemi = np.where(np.broadcast_to(w > 0, shape), LEFT, RIGHT).astype(np.uint8)
    hemi[labels == 0] = 0
    meta = {"name": f"synthetic_mouse_{resolution:g}um", "symmetric": True, "species": "Mus musculus (synthetic)",
            "version": "1.0", "citation": "none (synthetic)", "atlas_link": "", "additional_references": []}
    return Atlas(np.clip(ref, 0, 65535).astype(np.uint16), labels, hemi, ATLAS_REGIONS.copy(),
                 (float(resolution),) * 3, "asr", meta["name"], meta)


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

    def truth_on_grid(self, shape, scale) -> tuple[np.ndarray, np.ndarray]:
        """True annotation and hemispheres at the voxel centres of a grid over the scan box.

        Parameters
        ----------
        shape, scale : sequences of 3
            A grid in the scan orientation starting at the scan corner (e.g. a
            down-sampled level: ``shape = ceil(scan.shape / f)``, ``scale = f * scan.scale``).

        Returns
        -------
        labels : numpy.ndarray, shape ``shape``, annotation dtype
        hemispheres : numpy.ndarray, shape ``shape``, uint8
        """
        idx = np.indices(tuple(shape)).reshape(3, -1).T
        atlas_um = self.scan_to_atlas((idx + 0.5) * np.asarray(scale, dtype=np.float64))
        vox = np.floor(atlas_um / np.asarray(self.atlas.resolution)).astype(np.int64)
        inside = np.all((vox >= 0) & (vox < np.asarray(self.atlas.shape)), axis=1)
        lab = np.zeros(len(vox), dtype=self.atlas.annotation.dtype)
        hem = np.zeros(len(vox), dtype=np.uint8)
        lab[inside] = self.atlas.annotation[tuple(vox[inside].T)]
        hem[inside] = self.atlas.hemispheres[tuple(vox[inside].T)]
        return lab.reshape(tuple(shape)), hem.reshape(tuple(shape))

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
    corners = np.array(np.meshgrid(*[[0, b] for b in atlas_box], indexing="ij")).reshape(3, -1).T
    centred = (corners - atlas_box / 2) @ brain_to_scan.T
    span = centred.max(axis=0) - centred.min(axis=0)
    frame_box = span * (1 + margin)
    frame_shape = tuple(int(np.ceil(b / s)) for b, s in zip(frame_box, frame_scale))
    frame_box = np.asarray(frame_shape) * frame_scale
    offset = atlas_box / 2 + shift - matrix @ (frame_box / 2)

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
    image = _lightsheet_artefacts(image, frame_scale, rng, noise)
    probe.image = np.ascontiguousarray(reorient_volume(image, target, orientation))
    return probe


def _render(scan: SyntheticScan, frame_shape, frame_scale, slab_voxels: int) -> np.ndarray:
    """Template intensity (float32) at every frame voxel, through the true transform, slab by slab."""
    out = np.zeros(frame_shape, dtype=np.float32)
    ref = scan.atlas.reference.astype(np.float32)
    res = np.asarray(scan.atlas.resolution)
    plane = frame_shape[1] * frame_shape[2]
    step = max(1, slab_voxels // plane)
    yy, xx = np.meshgrid(np.arange(frame_shape[1]), np.arange(frame_shape[2]), indexing="ij")
    for z0 in range(0, frame_shape[0], step):
        z1 = min(z0 + step, frame_shape[0])
        zz = np.arange(z0, z1)[:, None, None]
        q = np.stack(np.broadcast_arrays(zz, yy[None], xx[None]), axis=-1).reshape(-1, 3)
        q = (q + 0.5) * frame_scale
        a = scan._frame_to_atlas(q) / res - 0.5
        out[z0:z1] = ndi.map_coordinates(ref, a.T, order=1, mode="constant", cval=0.0).reshape(z1 - z0, *yy.shape)
    return out


def _lightsheet_artefacts(img: np.ndarray, scale, rng, noise: float) -> np.ndarray:
    """Bias field, plane steps, stripes, tile seams, vessels, background and noise (uint16 out)."""
    shape = img.shape
    tissue_mean = float(img[img > 0].mean()) if (img > 0).any() else 1.0
    # smooth multiplicative bias: 0.6 .. 1.4 over the volume
    coarse = rng.uniform(0.6, 1.4, size=(3, 3, 3))
    bias = ndi.zoom(coarse, [n / 3 for n in shape], order=1, mode="nearest")[: shape[0], : shape[1], : shape[2]]
    img = img * bias
    # bright vessels: a few random tubes inside the tissue
    tissue = img > 0.2 * tissue_mean
    for _ in range(6):
        p0 = np.array([rng.uniform(0, n) for n in shape])
        d = rng.standard_normal(3)
        d /= np.linalg.norm(d)
        t = np.arange(-max(shape), max(shape), 0.5)
        pts = np.round(p0 + t[:, None] * d).astype(int)
        ok = np.all((pts >= 0) & (pts < shape), axis=1)
        pts = pts[ok]
        keep = tissue[tuple(pts.T)]
        vessel = np.zeros(shape, dtype=bool)
        vessel[tuple(pts[keep].T)] = True
        vessel = ndi.binary_dilation(vessel, iterations=1)
        img[vessel] += 0.6 * tissue_mean
    # per-plane brightness steps along axis 0 and stripes along the last axis
    img *= rng.uniform(0.9, 1.1, size=shape[0])[:, None, None]
    stripes = 1 + 0.15 * (rng.random(shape[2]) < 0.08)[None, None, :].astype(np.float32)
    img *= ndi.gaussian_filter1d(stripes, 1.0, axis=2)
    # a tile seam: the two halves of axis 1 differ in brightness
    half = shape[1] // 2
    img[:, half:, :] *= rng.uniform(0.85, 1.15)
    # autofluorescence background, shot noise and read noise
    img = img + 0.08 * tissue_mean
    img = rng.poisson(np.maximum(img, 0) / 4.0).astype(np.float32) * 4.0
    img += rng.normal(0, noise * tissue_mean, size=shape).astype(np.float32)
    return np.clip(img, 0, 65535).astype(np.uint16)


def dice_per_region(truth: np.ndarray, predicted: np.ndarray) -> pd.DataFrame:
    """Dice overlap of every non-zero id of ``truth``.

    Returns
    -------
    pandas.DataFrame with columns ``id`` (int64), ``voxels`` (truth voxels,
    int64) and ``dice`` (float64), one row per id.
    """
    truth = np.asarray(truth)
    predicted = np.asarray(predicted)
    if truth.shape != predicted.shape:
        raise InvalidInputError(f"truth shape {truth.shape} differs from predicted shape {predicted.shape}")
    ids = np.unique(truth[truth != 0])
    rows = []
    for rid in ids:
        t = truth == rid
        p = predicted == rid
        rows.append((int(rid), int(t.sum()), 2.0 * float((t & p).sum()) / float(t.sum() + p.sum())))
    return pd.DataFrame(rows, columns=["id", "voxels", "dice"])


def plant_objects(scan: SyntheticScan, n: int, seed: int = 0, *, radius_vox: float = 1.6,
                  margin_vox: float = 2.0, amplitude: float = 3000.0):
    """A plaque channel for ``scan``: bright balls with their true atlas region and hemisphere.

    Centres are drawn inside the brain, at least ``margin_vox`` atlas voxels
    (in atlas space, through the true transform) from any region or hemisphere
    boundary, and apart from each other, so the truth per region is exact.

    Returns
    -------
    image : numpy.ndarray, shape of ``scan.image``, uint16
        Dim autofluorescence-like background with noise, plus the balls.
    truth : pandas.DataFrame
        ``z, y, x`` (scan voxel centre), ``region_id``, ``hemisphere`` (1 left, 2 right),
        ``atlas_z_um, atlas_y_um, atlas_x_um`` (true atlas position).
    """
    rng = np.random.default_rng(seed)
    atlas = scan.atlas
    combined = atlas.annotation.astype(np.int64) * 4 + atlas.hemispheres
    boundary = np.zeros(combined.shape, dtype=bool)
    for axis in range(3):
        diff = np.diff(combined, axis=axis) != 0
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[axis] = slice(0, -1)
        hi[axis] = slice(1, None)
        boundary[tuple(lo)] |= diff
        boundary[tuple(hi)] |= diff
    depth = ndi.distance_transform_edt(~boundary)
    res = np.asarray(atlas.resolution)
    shape = np.asarray(scan.image.shape)
    picked: list[np.ndarray] = []
    rows = []
    spacing = 4 * radius_vox
    for _ in range(200):
        cand = rng.uniform(radius_vox + 1, shape - radius_vox - 1, size=(4 * n, 3)).round()
        a_um = scan.scan_to_atlas((cand + 0.5) * np.asarray(scan.scale))
        vox = np.floor(a_um / res).astype(np.int64)
        ok = np.all((vox >= 0) & (vox < np.asarray(atlas.shape)), axis=1)
        cand, a_um, vox = cand[ok], a_um[ok], vox[ok]
        keep = (atlas.annotation[tuple(vox.T)] != 0) & (depth[tuple(vox.T)] >= margin_vox)
        for c, a, v in zip(cand[keep], a_um[keep], vox[keep]):
            if picked and np.min(np.linalg.norm(np.asarray(picked) - c, axis=1)) < spacing:
                continue
            picked.append(c)
            rows.append((*c, int(atlas.annotation[tuple(v)]), int(atlas.hemispheres[tuple(v)]), *a))
            if len(rows) == n:
                break
        if len(rows) == n:
            break
    truth = pd.DataFrame(rows, columns=["z", "y", "x", "region_id", "hemisphere",
                                        "atlas_z_um", "atlas_y_um", "atlas_x_um"])
    img = rng.normal(100.0, 10.0, size=scan.image.shape).astype(np.float32)
    r = int(np.ceil(radius_vox))
    offs = np.argwhere(np.ones((2 * r + 1,) * 3, dtype=bool)) - r
    ball = offs[np.linalg.norm(offs, axis=1) <= radius_vox]
    for c in truth[["z", "y", "x"]].to_numpy(dtype=np.int64):
        pts = c + ball
        img[tuple(pts.T)] += amplitude
    return np.clip(img, 0, 65535).astype(np.uint16), truth


def write_synthetic_experiment(folder, *, resolution: float = 300.0, seed: int = 0, n_objects: int = 200,
                               orientation: str | None = "psl", factors=(2.0, 2.5, 2.5)) -> dict:
    """Write a BrainGlobe atlas folder, a 2-channel scan OME-Zarr, the truth and a configuration.

    Channel 0 of ``scan.ome.zarr`` is the autofluorescence (registration)
    channel, channel 1 the plaques. ``plaque.toml`` runs the plaque pipeline
    with the atlas registered by voxelflow.

    Returns
    -------
    dict with ``atlas``, ``scan``, ``config`` (paths), ``truth`` (DataFrame of
    :func:`plant_objects`), ``synthetic`` (:class:`SyntheticScan`).
    """
    from pathlib import Path

    from voxelflow.io.brainglobe import write_brainglobe_folder
    from voxelflow.io.ome_zarr import write_ome_zarr

    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    atlas = make_synthetic_atlas(resolution=resolution)
    write_brainglobe_folder(atlas, root / "atlas")
    scan = make_synthetic_scan(atlas, seed=seed, orientation=orientation, factors=factors)
    plaques, truth = plant_objects(scan, n_objects, seed=seed + 1)
    both = np.stack([scan.image, plaques])
    write_ome_zarr(both, root / "scan.ome.zarr", axes="czyx", scale=(1.0, *scan.scale),
                   chunks=(1, 32, 64, 64), overwrite=True)
    truth.to_csv(root / "truth.csv", index=False)
    config = root / "plaque.toml"
    config.write_text(
        "[input]\nurl = \"scan.ome.zarr\"\nchannel = 1\n\n"
        f"[atlas]\nbrainglobe = \"atlas\"\norientation = \"{scan.orientation}\"\nregistration_channel = 0\n\n"
        "[pipeline]\nthreshold = 1000\nmin_voxels = 3\nbias = false\nmask = \"none\"\n\n"
        "[output]\nfolder = \"run\"\n"
    )
    return {"atlas": root / "atlas", "scan": root / "scan.ome.zarr", "config": config, "truth": truth,
            "synthetic": scan}
