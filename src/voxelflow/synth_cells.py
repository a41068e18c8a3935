"""Synthetic lightsheet crops with planted cell nuclei, two channels and ground truth.

:func:`make_synthetic_cells` draws a deterministic (given ``seed``) crop of a
cleared mouse brain as a lightsheet microscope records it, with what makes cell
detection hard on real scans:

- nuclei of 6-14 um on anisotropic voxels (5 x 2 x 2 um by default), of
  varied brightness, some touching in pairs or triples, some cut by the crop
  border;
- a signal channel and an autofluorescence (background) channel; vessels,
  fibres, small lipofuscin-like granules and the bright tissue rim shine in
  both, cells only in the signal channel;
- brightness steps and ramps between groups of planes, steps between the
  (y, x) tiles of the mosaic with an illumination fall-off across each tile,
  and lightsheet stripes (shadows along x);
- tissue touching the volume border on most sides, with one tissue edge
  (dark outside) inside the crop;
- shot noise and camera read noise on a camera offset; uint16 output.

Every length is in micrometres. The planted cells come back as a table in um
and voxels with the atlas region of each, and the atlas (a coarser label
volume over a small region hierarchy) gives counts per region.

Examples
--------
>>> from voxelflow.synth_cells import make_synthetic_cells
>>> crop = make_synthetic_cells(shape=(16, 96, 96), seed=1)
>>> crop.image.shape, crop.image.dtype.name, crop.background.dtype.name
((16, 96, 96), 'uint16', 'uint16')
>>> set(crop.truth.region_id) <= set(crop.regions.id)
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import erfc

from voxelflow.errors import InvalidInputError
from voxelflow.synth import REGIONS

__all__ = ["SyntheticCells", "make_synthetic_cells", "score_cells", "write_synthetic_cells", "CELL_REGIONS"]

#: Leaf regions painted into the atlas, and their cell densities (cells per mm^3).
CELL_REGIONS = {315: 24000.0, 1089: 14000.0, 477: 9000.0, 549: 18000.0}


@dataclass(frozen=True)
class SyntheticCells:
    """A synthetic two-channel crop, its atlas and the planted cells.

    Attributes
    ----------
    image : numpy.ndarray, shape (Z, Y, X), uint16
        Signal channel (IN): cells, plus autofluorescence.
    background : numpy.ndarray, shape (Z, Y, X), uint16
        Autofluorescence channel (IN): the same structures without the cells.
    spacing : tuple of 3 float
        Voxel size in um (z, y, x).
    truth : pandas.DataFrame
        One row per planted cell that shows in the crop: ``cell_id`` (int64), ``z_um, y_um, x_um`` (float64 centre; voxel ``i``
        is centred at ``i * spacing``), ``z, y, x`` (float64 voxels),
        ``diameter_um``, ``amplitude`` (float64, above the local tissue level,
        before gains), ``region_id`` (int64 atlas leaf under the centre),
        ``group`` (int64; cells planted touching share it), ``cut_by_border``
        (bool), ``inside`` (bool: the centre lies in the crop; cells centred
        outside show only a cap in the first or last voxels and are not counted).
    atlas : numpy.ndarray, shape (Za, Ya, Xa), uint32
        Region per atlas voxel (0 = outside the tissue); atlas voxel ``j``
        covers image voxels ``j * atlas_factors`` .. ``(j + 1) * atlas_factors - 1``.
    atlas_factors : tuple of 3 int
    regions : pandas.DataFrame
        Region hierarchy ``id, acronym, name, parent``.
    tissue : numpy.ndarray, shape (Z, Y, X), bool
        Where the crop shows tissue.
    diameter_um : float
        Mean planted nucleus diameter.
    tile_um : float
        Edge length of the mosaic tiles (brightness steps between them).
    """

    image: np.ndarray
    background: np.ndarray
    spacing: tuple[float, float, float]
    truth: pd.DataFrame
    atlas: np.ndarray
    atlas_factors: tuple[int, int, int]
    regions: pd.DataFrame
    tissue: np.ndarray
    diameter_um: float
    tile_um: float

    @property
    def atlas_spacing(self) -> tuple[float, float, float]:
        """Atlas voxel size in um."""
        return tuple(s * f for s, f in zip(self.spacing, self.atlas_factors))

    def truth_counts(self) -> pd.DataFrame:
        """Planted cells per leaf region: ``id, acronym, cells``."""
        counts = self.truth[self.truth.inside].groupby("region_id").size()
        r = self.regions[self.regions.id.isin(list(CELL_REGIONS))][["id", "acronym"]].copy()
        r["cells"] = r.id.map(counts).fillna(0).astype(np.int64)
        return r.reset_index(drop=True)


def _region_map(z_um, y_um, x_um, extent, tissue):
    """Leaf region from physical coordinates: curved layers in y, split in x (broadcast arrays)."""
    ey, ex = extent[1], extent[2]
    wave = 0.06 * ey * np.sin(2 * np.pi * x_um / max(ex, 1.0) + 0.02 * z_um)
    upper = y_um < 0.38 * ey + wave
    left = x_um < 0.5 * ex + 0.05 * ex * np.cos(2 * np.pi * y_um / max(ey, 1.0))
    shape = np.broadcast_shapes(np.shape(z_um), np.shape(y_um), np.shape(x_um))
    out = np.select([np.broadcast_to(upper & left, shape), np.broadcast_to(upper, shape),
                     np.broadcast_to(left, shape)],
                    [np.uint32(315), np.uint32(1089), np.uint32(477)], default=np.uint32(549))
    return np.where(np.broadcast_to(tissue, shape), out, np.uint32(0))


def _tissue_of(z_um, y_um, x_um, centre, radius):
    """Tissue = inside a large sphere whose centre lies outside the crop (one curved edge)."""
    return (z_um - centre[0]) ** 2 + (y_um - centre[1]) ** 2 + (x_um - centre[2]) ** 2 <= radius**2


def _grid_um(shape, spacing, factors=(1, 1, 1)):
    """Physical centres of the voxels of a grid whose voxel ``j`` spans image voxels ``j*f .. (j+1)*f-1``."""
    out = []
    for ax, (n, s, f) in enumerate(zip(shape, spacing, factors)):
        pos = (np.arange(n, dtype=np.float64) * f + (f - 1) / 2.0) * s
        sh = [1, 1, 1]
        sh[ax] = n
        out.append(pos.reshape(sh))
    return out


def _place_cells(rng, shape, spacing, tissue_of, region_of, diameter_range, touching_fraction, rim_um):
    """Centres (um), diameters and touching groups, at each region's density."""
    extent = np.asarray(shape) * np.asarray(spacing)
    # cells may be cut by the crop border: centres up to half a diameter outside are drawn,
    # and only those inside are kept as truth (the others still light up the border voxels)
    lo = -np.full(3, diameter_range[1] / 2)
    hi = extent - np.asarray(spacing) + diameter_range[1] / 2
    volume_mm3 = float(np.prod(hi - lo)) * 1e-9
    n_try = int(max(CELL_REGIONS.values()) * volume_mm3 * 1.3) + 1
    centres, diams, groups = [], [], []
    accepted = np.zeros((0, 3))
    acc_r = np.zeros(0)
    group = 0
    cand = rng.uniform(lo, hi, size=(n_try, 3))
    keep_p = rng.uniform(size=n_try)
    for c, p in zip(cand, keep_p):
        reg = int(region_of(c))
        if reg == 0 or p > CELL_REGIONS[reg] / max(CELL_REGIONS.values()):
            continue
        size = 1 if rng.uniform() > touching_fraction else int(rng.integers(2, 4))
        d = rng.uniform(*diameter_range, size=size)
        members = [c]
        for k in range(1, size):
            v = rng.normal(size=3)
            v /= np.linalg.norm(v)
            members.append(members[-1] + v * (d[k - 1] + d[k]) / 2 * rng.uniform(0.92, 1.0))
        members = np.array(members)
        if not all(tissue_of(m, rim_um + d.max() / 2) for m in members):
            continue
        inner = np.linalg.norm(members[:, None] - members[None], axis=2) + np.eye(size) * 1e9
        if (inner < (d[:, None] + d[None, :]) / 2 * 0.92).any():
            continue  # a third cell folded back onto the first
        if len(accepted):
            dist = np.linalg.norm(accepted[None, :, :] - members[:, None, :], axis=2)
            # no overlap with cells already placed (touching within a group is planted on purpose)
            if (dist < (acc_r[None, :] + d[:, None] / 2) * 1.05 + 1.0).any():
                continue
        for m, dd in zip(members, d):
            centres.append(m)
            diams.append(dd)
            groups.append(group)
        accepted = np.concatenate([accepted, members])
        acc_r = np.concatenate([acc_r, d / 2])
        group += 1
    return np.array(centres).reshape(-1, 3), np.array(diams), np.array(groups, np.int64)


def _add_ball(field, spacing, centre_um, semi_um, amplitude, soft_um):
    """Add a soft-edged ellipsoid, integrated over each voxel's z extent (three sub-planes)."""
    shape = np.asarray(field.shape)
    sp = np.asarray(spacing)
    reach = (np.asarray(semi_um) + 3 * soft_um + sp) / sp
    c = np.asarray(centre_um) / sp
    lo = np.maximum(np.floor(c - reach).astype(int), 0)
    hi = np.minimum(np.ceil(c + reach).astype(int) + 1, shape)
    if (hi <= lo).any():
        return
    z, y, x = _grid_um(tuple(hi - lo), spacing)
    z, y, x = z + lo[0] * sp[0], y + lo[1] * sp[1], x + lo[2] * sp[2]
    r_mean = float(np.mean(semi_um))
    acc = 0.0
    for dz in (-sp[0] / 3, 0.0, sp[0] / 3):
        q = np.sqrt(((z + dz - centre_um[0]) / semi_um[0]) ** 2 + ((y - centre_um[1]) / semi_um[1]) ** 2
                    + ((x - centre_um[2]) / semi_um[2]) ** 2)
        acc = acc + 0.5 * erfc((q - 1.0) * r_mean / (np.sqrt(2.0) * soft_um))
    box = field[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    box += (amplitude / 3.0 * acc).astype(np.float32)


def _add_tube(field, spacing, points_um, radius_um, amplitude, soft_um):
    """Add a soft-edged tube along a polyline (distance to the nearest segment)."""
    sp = np.asarray(spacing)
    shape = np.asarray(field.shape)
    for a, b in zip(points_um[:-1], points_um[1:]):
        lo = np.maximum(np.floor((np.minimum(a, b) - radius_um - 3 * soft_um) / sp).astype(int), 0)
        hi = np.minimum(np.ceil((np.maximum(a, b) + radius_um + 3 * soft_um) / sp).astype(int) + 1, shape)
        if (hi <= lo).any():
            continue
        z, y, x = _grid_um(tuple(hi - lo), spacing)
        p = [z + lo[0] * sp[0], y + lo[1] * sp[1], x + lo[2] * sp[2]]
        ab = b - a
        t = sum((p[k] - a[k]) * ab[k] for k in range(3)) / max(float(ab @ ab), 1e-9)
        t = np.clip(t, 0.0, 1.0)
        d = np.sqrt(sum((p[k] - (a[k] + t * ab[k])) ** 2 for k in range(3)))
        prof = amplitude * 0.5 * erfc((d - radius_um) / (np.sqrt(2.0) * soft_um))
        box = field[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        np.maximum(box, prof.astype(np.float32), out=box)


def _random_path(rng, extent, n_points, step_um, wiggle):
    """A smooth random walk crossing the crop."""
    p = rng.uniform(0, 1, 3) * extent
    v = rng.normal(size=3)
    v[0] *= 0.3  # vessels and fibres run mostly within planes of a coronal crop
    v /= np.linalg.norm(v)
    pts = [p]
    for _ in range(n_points):
        v = v + wiggle * rng.normal(size=3)
        v /= np.linalg.norm(v)
        pts.append(pts[-1] + v * step_um)
    return np.array(pts)


def _gain_field(rng, shape, spacing, tile_um, stripe_count):
    """Multiplicative brightness: plane-group steps and ramps, tile steps with fall-off, stripes."""
    nz, ny, nx = shape
    plane = np.ones(nz, np.float32)
    z = 0
    while z < nz:
        length = int(rng.integers(4, 12))
        level = rng.uniform(0.65, 1.35)
        ramp = rng.uniform(-0.12, 0.12)
        span = min(length, nz - z)
        plane[z:z + span] = level * (1 + ramp * np.linspace(-1, 1, span))
        z += span
    tile = [max(1, int(round(tile_um / s))) for s in spacing[1:]]
    ty = np.arange(ny) // tile[0]
    tx = np.arange(nx) // tile[1]
    levels = rng.uniform(0.8, 1.25, size=(ty.max() + 1, tx.max() + 1)).astype(np.float32)
    falloff = 1.0 - 0.15 * ((np.arange(nx) % tile[1]) / tile[1]) ** 2  # illumination enters each tile from x = 0
    tiles = levels[ty][:, tx] * falloff[None, :].astype(np.float32)
    stripes = np.ones((ny, nx), np.float32)
    for _ in range(stripe_count):
        y0 = rng.uniform(0, ny)
        width = rng.uniform(1.0, 4.0)
        depth = rng.uniform(0.15, 0.45) * rng.choice([-1.0, 1.0])
        x0 = rng.uniform(0, nx * 0.6)
        prof = np.exp(-0.5 * ((np.arange(ny) - y0) / width) ** 2)[:, None]
        along = (np.arange(nx) >= x0)[None, :]
        stripes *= (1.0 - depth * prof * along).astype(np.float32)
    return plane, tiles * stripes


def make_synthetic_cells(
    shape: tuple[int, int, int] = (40, 256, 256),
    seed: int = 0,
    *,
    spacing: tuple[float, float, float] = (5.0, 2.0, 2.0),
    diameter_range: tuple[float, float] = (6.0, 14.0),
    touching_fraction: float = 0.1,
    tissue_level: float = 300.0,
    background_level: float = 250.0,
    cell_contrast: tuple[float, float] = (0.8, 3.0),
    n_vessels: int | None = None,
    n_fibres: int | None = None,
    n_granules: int | None = None,
    tile_um: float = 300.0,
    n_stripes: int = 6,
    camera_offset: float = 100.0,
    read_noise: float = 4.0,
    photons_per_count: float = 1.0,
    atlas_factors: tuple[int, int, int] = (2, 5, 5),
) -> SyntheticCells:
    """Draw a synthetic two-channel lightsheet crop with planted nuclei.

    Parameters
    ----------
    shape : tuple of 3 int
        Voxels (Z, Y, X); at least 8 x 32 x 32.
    seed : int
        The same seed gives the same crop.
    spacing : tuple of 3 float
        Voxel size in um (z, y, x).
    diameter_range : (float, float)
        Nucleus diameters in um, drawn uniformly.
    touching_fraction : float
        Probability that a planted cell comes with 1-2 neighbours touching it.
    tissue_level, background_level : float
        Autofluorescence of tissue in the signal / background channel (counts
        above the camera offset, before gains).
    cell_contrast : (float, float)
        Cell amplitude as a multiple of ``tissue_level``, drawn uniformly.
    n_vessels, n_fibres, n_granules : int, optional
        Autofluorescent vessels (5-12 um wide), fibres (2-3 um) and granules
        (2-4 um); default scales with the crop's volume.
    tile_um : float
        Mosaic tile size (brightness steps between tiles).
    n_stripes : int
        Lightsheet stripes (bright or shadowed rows along x).
    camera_offset, read_noise : float
        Camera baseline and read-noise SD in counts.
    photons_per_count : float
        Shot noise: a level of ``v`` counts has SD ``sqrt(v / photons_per_count)``.
    atlas_factors : tuple of 3 int
        Image voxels per atlas voxel.

    Returns
    -------
    SyntheticCells

    Raises
    ------
    InvalidInputError
        If a size or range is out of bounds.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or shape[0] < 8 or min(shape[1:]) < 32:
        raise InvalidInputError(f"shape must be (Z >= 8, Y >= 32, X >= 32) voxels, got {shape}")
    if not 0 < diameter_range[0] <= diameter_range[1]:
        raise InvalidInputError(f"diameter_range must be (low, high) um with 0 < low <= high, got {diameter_range}")
    spacing = tuple(float(s) for s in spacing)
    if len(spacing) != 3 or min(spacing) <= 0:
        raise InvalidInputError(f"spacing must be 3 positive voxel sizes in um, got {spacing}")
    rng = np.random.default_rng(seed)
    sp = np.asarray(spacing)
    extent = np.asarray(shape) * sp
    # tissue edge: a sphere much larger than the crop, entering from one corner of the (y, x) plane
    radius = 3.0 * float(extent[1:].max())
    corner = rng.choice([-1.0, 1.0], size=2)
    direction = np.array([0.0, corner[0], corner[1]]) / np.sqrt(2)
    centre = extent / 2 - direction * (radius - 0.25 * float(np.linalg.norm(extent[1:])))
    z_um, y_um, x_um = _grid_um(shape, spacing)
    tissue = _tissue_of(z_um, y_um, x_um, centre, radius)

    def tissue_depth_ok(p, depth):
        return float(np.linalg.norm(p - centre)) <= radius - depth

    def region_at(p):
        j = np.floor(np.asarray(p) / sp / np.asarray(atlas_factors)).astype(int)
        j = np.clip(j, 0, np.asarray(ashape) - 1)
        return atlas[j[0], j[1], j[2]]

    fa = tuple(int(f) for f in atlas_factors)
    ashape = tuple(-(-s // f) for s, f in zip(shape, fa))
    az, ay, ax = _grid_um(ashape, spacing, fa)
    atlas = _region_map(az, ay, ax, extent, _tissue_of(az, ay, ax, centre, radius)).astype(np.uint32)

    rim_um = 12.0
    centres, diams, groups = _place_cells(rng, shape, spacing, tissue_depth_ok, region_at, diameter_range,
                                          touching_fraction, rim_um)

    auto = np.zeros(shape, np.float32)  # autofluorescent structures, counts in the background channel
    vol_mm3 = float(np.prod(extent)) * 1e-9
    n_vessels = int(round(120 * vol_mm3)) + 2 if n_vessels is None else int(n_vessels)
    n_fibres = int(round(150 * vol_mm3)) + 2 if n_fibres is None else int(n_fibres)
    n_granules = int(round(3000 * vol_mm3)) if n_granules is None else int(n_granules)
    for _ in range(n_vessels):
        path = _random_path(rng, extent, 40, 12.0, 0.25)
        _add_tube(auto, spacing, path, rng.uniform(2.5, 6.0), rng.uniform(1.5, 3.0) * background_level, 1.0)
    for _ in range(n_fibres):
        path = _random_path(rng, extent, 60, 10.0, 0.08)
        _add_tube(auto, spacing, path, rng.uniform(1.0, 1.5), rng.uniform(2.0, 4.0) * background_level, 0.7)
    for _ in range(n_granules):
        p = rng.uniform(0, 1, 3) * extent
        r = rng.uniform(1.0, 2.0)
        _add_ball(auto, spacing, p, (r, r, r), rng.uniform(3.0, 6.0) * background_level, 0.7)
    # bright tissue rim (cut surface), in both channels
    dist_in = radius - np.sqrt((z_um - centre[0]) ** 2 + (y_um - centre[1]) ** 2 + (x_um - centre[2]) ** 2)
    auto += (2.0 * background_level * np.exp(-np.maximum(dist_in, 0) / 6.0) * tissue).astype(np.float32)
    auto *= tissue

    cells = np.zeros(shape, np.float32)
    amps = rng.uniform(*cell_contrast, size=len(diams)) * tissue_level
    for c, d, a in zip(centres, diams, amps):
        semi = d / 2 * rng.uniform(0.88, 1.12, size=3)
        semi *= (d / 2) / np.cbrt(np.prod(semi))  # keep the volume of a ball of diameter d
        _add_ball(cells, spacing, c, semi, a, 0.8)

    # texture: slow variations of the tissue autofluorescence
    texture = 1.0 + 0.15 * np.sin(y_um / 37.0 + 0.7 * np.sin(x_um / 53.0)) * np.cos(x_um / 41.0 + z_um / 60.0)
    base_s = (tissue_level * texture * tissue).astype(np.float32)
    base_b = (background_level * texture * tissue).astype(np.float32)
    ratio = rng.uniform(0.5, 0.8)  # autofluorescence seen in the signal channel per unit of background channel

    plane_s, yx_s = _gain_field(rng, shape, spacing, tile_um, n_stripes)
    # the background channel shares the mosaic and stripes, with its own plane-to-plane steps
    plane_b = plane_s * rng.uniform(0.9, 1.1, size=shape[0]).astype(np.float32)
    signal = (base_s + ratio * auto + cells) * plane_s[:, None, None] * yx_s[None]
    backgr = (base_b + auto) * plane_b[:, None, None] * yx_s[None]
    out = []
    for level in (signal, backgr):
        shot = rng.normal(0.0, 1.0, size=shape).astype(np.float32) * np.sqrt(np.maximum(level, 0) / photons_per_count)
        noisy = camera_offset + level + shot + rng.normal(0.0, read_noise, size=shape).astype(np.float32)
        out.append(np.clip(np.rint(noisy), 0, 65535).astype(np.uint16))

    inside = ((centres >= 0) & (centres <= extent - sp)).all(axis=1) if len(centres) else np.zeros(0, bool)
    cut = ((centres - diams[:, None] / 2 < 0) | (centres + diams[:, None] / 2 > extent - sp)).any(axis=1)
    regions = np.array([region_at(c) for c in centres], dtype=np.int64) if len(centres) else np.zeros(0, np.int64)
    truth = pd.DataFrame({
        "z_um": centres[:, 0], "y_um": centres[:, 1], "x_um": centres[:, 2],
        "z": centres[:, 0] / sp[0], "y": centres[:, 1] / sp[1], "x": centres[:, 2] / sp[2],
        "diameter_um": diams.astype(np.float64), "amplitude": amps.astype(np.float64),
        "region_id": regions, "group": groups, "cut_by_border": cut.astype(bool), "inside": inside.astype(bool),
    })
    truth.insert(0, "cell_id", np.arange(1, len(truth) + 1, dtype=np.int64))
    return SyntheticCells(
        image=out[0], background=out[1], spacing=spacing, truth=truth, atlas=atlas, atlas_factors=fa,
        regions=REGIONS.copy(), tissue=np.broadcast_to(tissue, shape).copy(),
        diameter_um=float(np.mean(diameter_range)), tile_um=float(tile_um),
    )


def score_cells(crop: SyntheticCells, detected_um, *, detected_regions=None,
                max_distance_um: float | None = None) -> dict:
    """Precision, recall and counts per region of detected centres against the planted cells.

    Detections are matched one to one (:func:`voxelflow.ops.pair_points`)
    against every planted cell that shows in the crop. A detection matched to a
    cell centred outside the crop (``inside`` False), or left unmatched within
    that cell's radius plus one voxel of it, is a correct sighting of a cell
    cap at the border: counted neither as a hit nor as a false positive, and
    left out of the region counts. Recall is over the cells centred inside.

    Parameters
    ----------
    crop : SyntheticCells
    detected_um : array, shape (N, 3)
        Detected centres in um (voxel index x spacing).
    detected_regions : array of int, shape (N,), optional
        Atlas region of every detection (for the per-region counts).
    max_distance_um : float, optional
        Match radius; default half the mean planted diameter.

    Returns
    -------
    dict
        ``detected, planted, matched, precision, recall, f1`` and, with
        ``detected_regions``, ``regions``: a DataFrame ``id, acronym, planted,
        detected, error`` (``error`` = |detected - planted| / planted).
    """
    from voxelflow.ops import pair_points

    det = np.asarray(detected_um, dtype=np.float64).reshape(-1, 3)
    truth = crop.truth
    reach = crop.diameter_um / 2 if max_distance_um is None else float(max_distance_um)
    pairs = pair_points(det, truth[["z_um", "y_um", "x_um"]].to_numpy(), reach)
    inside = truth["inside"].to_numpy()
    ignored = np.zeros(len(det), bool)
    ignored[pairs[~inside[pairs[:, 1]], 0]] = True
    outside = truth[~truth["inside"]]
    free = np.ones(len(det), bool)
    free[pairs[:, 0]] = False
    if len(outside) and free.any():
        # a cap seen in the border voxels sits up to a radius (plus a voxel) from its centre outside
        from scipy.spatial import cKDTree

        dist, j = cKDTree(outside[["z_um", "y_um", "x_um"]].to_numpy()).query(det[free])
        reach_cap = outside["diameter_um"].to_numpy()[j] / 2 + max(crop.spacing)
        ignored[np.flatnonzero(free)[dist <= reach_cap]] = True
    tp = int(inside[pairs[:, 1]].sum())
    n_det = int((~ignored).sum())
    n_true = int(inside.sum())
    precision = tp / n_det if n_det else 0.0
    recall = tp / n_true if n_true else 1.0
    out = {"detected": n_det, "planted": n_true, "matched": tp, "precision": precision, "recall": recall,
           "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0}
    if detected_regions is not None:
        regs = np.asarray(detected_regions).reshape(-1)
        if len(regs) != len(det):
            raise InvalidInputError(f"{len(regs)} region ids for {len(det)} detections")
        per = crop.truth_counts().rename(columns={"cells": "planted"})
        counts = pd.Series(regs[~ignored]).value_counts()
        per["detected"] = per.id.map(counts).fillna(0).astype(np.int64)
        per["error"] = (per.detected - per.planted).abs() / per.planted.where(per.planted > 0)
        out["regions"] = per
    return out


def write_synthetic_cells(crop: SyntheticCells, folder, *, chunks=(32, 128, 128)) -> dict:
    """Write a crop as a run would read it: a two-channel OME-Zarr, the atlas, the region and truth tables.

    Parameters
    ----------
    crop : SyntheticCells
    folder : str or VPath
        Created if needed; gets ``scan.ome.zarr`` (axes c, z, y, x: channel 0
        signal, 1 background), ``atlas.ome.zarr``, ``regions.csv`` and ``truth.csv``.
    chunks : tuple of 3 int
        Chunk shape (z, y, x) of the scan.

    Returns
    -------
    dict
        URLs of what was written: ``scan``, ``atlas``, ``regions``, ``truth``.
    """
    from voxelflow.io import write_ome_zarr
    from voxelflow.paths import as_vpath

    out = as_vpath(folder)
    out.mkdirs()
    scan = np.stack([crop.image, crop.background])
    ch = (1,) + tuple(min(c, s) for c, s in zip(chunks, crop.image.shape))
    write_ome_zarr(scan, (out / "scan.ome.zarr").url, axes="czyx", scale=(1.0,) + tuple(crop.spacing),
                   units="micrometer", chunks=ch, channel_names=["signal", "autofluorescence"], overwrite=True)
    write_ome_zarr(crop.atlas, (out / "atlas.ome.zarr").url, scale=crop.atlas_spacing, units="micrometer",
                   method="nearest", overwrite=True)
    (out / "regions.csv").write_text(crop.regions.to_csv(index=False))
    (out / "truth.csv").write_text(crop.truth.to_csv(index=False))
    return {name: (out / f).url for name, f in
            (("scan", "scan.ome.zarr"), ("atlas", "atlas.ome.zarr"), ("regions", "regions.csv"),
             ("truth", "truth.csv"))}
