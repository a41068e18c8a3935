"""The synthetic crop: its data class and :func:`make_synthetic_cells`, which draws one from a seed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter1d

from voxelflow.errors import InvalidInputError
from voxelflow.synth import REGIONS
from voxelflow.synth_cells._draw import add_ball, add_tube, random_path
from voxelflow.synth_cells._layout import CELL_REGIONS, grid_um, place_cells, region_map, tissue_of
from voxelflow.synth_cells._optics import gain_field

__all__ = ["SyntheticCells", "make_synthetic_cells"]


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
    spectral_spread: float = 0.0,
    axial_blur_um: float = 0.0,
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
    spectral_spread : float
        Relative SD of the signal / background ratio of each vessel, fibre and
        granule around the crop's ratio (autofluorescent structures differ in
        spectrum, so one factor does not remove them all); 0 gives one ratio.
    axial_blur_um : float
        SD in um of a Gaussian blur along z of the recorded light (light-sheet
        thickness, axial resolution); 0 gives none beyond the voxel's own extent.

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
    if not (spectral_spread >= 0 and axial_blur_um >= 0):
        raise InvalidInputError(f"spectral_spread and axial_blur_um must be >= 0, got {spectral_spread}, {axial_blur_um}")
    rng = np.random.default_rng(seed)
    # the optional effects draw from their own stream, so that without them a seed gives the same crop as ever
    rng_spread = np.random.default_rng([seed, 1])
    sp = np.asarray(spacing)
    extent = np.asarray(shape) * sp
    # tissue edge: a sphere much larger than the crop, entering from one corner of the (y, x) plane
    radius = 3.0 * float(extent[1:].max())
    corner = rng.choice([-1.0, 1.0], size=2)
    direction = np.array([0.0, corner[0], corner[1]]) / np.sqrt(2)
    centre = extent / 2 - direction * (radius - 0.25 * float(np.linalg.norm(extent[1:])))
    z_um, y_um, x_um = grid_um(shape, spacing)
    tissue = tissue_of(z_um, y_um, x_um, centre, radius)

    def tissue_depth_ok(p, depth):
        return float(np.linalg.norm(p - centre)) <= radius - depth

    def region_at(p):
        # voxel i spans [i - 0.5, i + 0.5) in voxel units, atlas voxel j spans [j f - 0.5, (j + 1) f - 0.5):
        # the convention of voxelflow.ops.assign_regions
        j = np.floor((np.asarray(p) / sp + 0.5) / np.asarray(atlas_factors)).astype(int)
        j = np.clip(j, 0, np.asarray(ashape) - 1)
        return atlas[j[0], j[1], j[2]]

    fa = tuple(int(f) for f in atlas_factors)
    ashape = tuple(-(-s // f) for s, f in zip(shape, fa))
    az, ay, ax = grid_um(ashape, spacing, fa)
    atlas = region_map(az, ay, ax, extent, tissue_of(az, ay, ax, centre, radius)).astype(np.uint32)

    rim_um = 12.0
    centres, diams, groups = place_cells(rng, shape, spacing, tissue_depth_ok, region_at, diameter_range,
                                          touching_fraction, rim_um)

    auto = np.zeros(shape, np.float32)  # autofluorescent structures, counts in the background channel
    auto_sig = np.zeros(shape, np.float32) if spectral_spread else auto  # the same, as the signal channel sees them

    def spectrum():
        return max(0.2, 1.0 + spectral_spread * rng_spread.normal()) if spectral_spread else 1.0
    vol_mm3 = float(np.prod(extent)) * 1e-9
    n_vessels = int(round(120 * vol_mm3)) + 2 if n_vessels is None else int(n_vessels)
    n_fibres = int(round(150 * vol_mm3)) + 2 if n_fibres is None else int(n_fibres)
    n_granules = int(round(3000 * vol_mm3)) if n_granules is None else int(n_granules)
    for _ in range(n_vessels):
        path = random_path(rng, extent, 40, 12.0, 0.25)
        radius_um, amp = rng.uniform(2.5, 6.0), rng.uniform(1.5, 3.0) * background_level
        add_tube(auto, spacing, path, radius_um, amp, 1.0)
        if spectral_spread:
            add_tube(auto_sig, spacing, path, radius_um, amp * spectrum(), 1.0)
    for _ in range(n_fibres):
        path = random_path(rng, extent, 60, 10.0, 0.08)
        radius_um, amp = rng.uniform(1.0, 1.5), rng.uniform(2.0, 4.0) * background_level
        add_tube(auto, spacing, path, radius_um, amp, 0.7)
        if spectral_spread:
            add_tube(auto_sig, spacing, path, radius_um, amp * spectrum(), 0.7)
    for _ in range(n_granules):
        p = rng.uniform(0, 1, 3) * extent
        r = rng.uniform(1.0, 2.0)
        amp = rng.uniform(3.0, 6.0) * background_level
        add_ball(auto, spacing, p, (r, r, r), amp, 0.7)
        if spectral_spread:
            add_ball(auto_sig, spacing, p, (r, r, r), amp * spectrum(), 0.7)
    # bright tissue rim (cut surface), in both channels
    dist_in = radius - np.sqrt((z_um - centre[0]) ** 2 + (y_um - centre[1]) ** 2 + (x_um - centre[2]) ** 2)
    rim = (2.0 * background_level * np.exp(-np.maximum(dist_in, 0) / 6.0) * tissue).astype(np.float32)
    for field in {id(auto): auto, id(auto_sig): auto_sig}.values():
        field += rim
        field *= tissue

    cells = np.zeros(shape, np.float32)
    amps = rng.uniform(*cell_contrast, size=len(diams)) * tissue_level
    for c, d, a in zip(centres, diams, amps):
        semi = d / 2 * rng.uniform(0.88, 1.12, size=3)
        semi *= (d / 2) / np.cbrt(np.prod(semi))  # keep the volume of a ball of diameter d
        add_ball(cells, spacing, c, semi, a, 0.8)

    # texture: slow variations of the tissue autofluorescence
    texture = 1.0 + 0.15 * np.sin(y_um / 37.0 + 0.7 * np.sin(x_um / 53.0)) * np.cos(x_um / 41.0 + z_um / 60.0)
    base_s = (tissue_level * texture * tissue).astype(np.float32)
    base_b = (background_level * texture * tissue).astype(np.float32)
    ratio = rng.uniform(0.5, 0.8)  # autofluorescence seen in the signal channel per unit of background channel

    plane_s, yx_s = gain_field(rng, shape, spacing, tile_um, n_stripes)
    # the background channel shares the mosaic and stripes, with its own plane-to-plane steps
    plane_b = plane_s * rng.uniform(0.9, 1.1, size=shape[0]).astype(np.float32)
    signal = (base_s + ratio * auto_sig + cells) * plane_s[:, None, None] * yx_s[None]
    backgr = (base_b + auto) * plane_b[:, None, None] * yx_s[None]
    if axial_blur_um:
        signal = gaussian_filter1d(signal, axial_blur_um / sp[0], axis=0, mode="nearest")
        backgr = gaussian_filter1d(backgr, axial_blur_um / sp[0], axis=0, mode="nearest")
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
