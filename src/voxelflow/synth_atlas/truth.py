"""Ground truth for registration tests: planted objects with their atlas region, and Dice per region."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from voxelflow.errors import InvalidInputError
from voxelflow.synth_atlas.scan import SyntheticScan

__all__ = ["dice_per_region", "plant_cells", "plant_objects"]


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
    truth = _pick_centres(scan, n, rng, 4 * radius_vox, radius_vox + 1, margin_vox)
    img = rng.normal(100.0, 10.0, size=scan.image.shape).astype(np.float32)
    r = int(np.ceil(radius_vox))
    offs = np.argwhere(np.ones((2 * r + 1,) * 3, dtype=bool)) - r
    ball = offs[np.linalg.norm(offs, axis=1) <= radius_vox]
    for c in truth[["z", "y", "x"]].to_numpy(dtype=np.int64):
        pts = c + ball
        img[tuple(pts.T)] += amplitude
    return np.clip(img, 0, 65535).astype(np.uint16), truth


def plant_cells(scan: SyntheticScan, n: int, seed: int = 0, *, diameter_um: float, margin_vox: float = 2.0,
                contrast=(1.0, 2.5), autofluorescence: float = 0.6, noise: float = 0.04):
    """A cell (nucleus) channel for ``scan``: soft ellipsoids over the scan's autofluorescence, with their truth.

    The channel is what a lightsheet records in the signal channel: the
    autofluorescence of ``scan.image`` (its bias, plane steps, stripes and
    vessels included) times ``autofluorescence``, plus nuclei of ``diameter_um``
    (each 0.8-1.2 x, slightly ellipsoidal, soft edges, drawn with
    :func:`voxelflow.synth_cells._draw.add_ball`) as bright as ``contrast`` x the
    median tissue level, plus noise. ``scan.image`` is the autofluorescence
    (background) channel that removes the shared structures. Centres are drawn
    as in :func:`plant_objects`: inside the brain, at least ``margin_vox``
    atlas voxels from any region or hemisphere boundary, at least 1.5
    diameters apart (so no two touch).

    Returns
    -------
    image : numpy.ndarray, shape of ``scan.image``, uint16
    truth : pandas.DataFrame
        As :func:`plant_objects`, plus ``diameter_um`` (float64).
    """
    from voxelflow.synth_cells._draw import add_ball

    rng = np.random.default_rng(seed)
    spacing = np.asarray(scan.scale, dtype=np.float64)
    apart_vox = 1.5 * diameter_um / float(spacing.min())
    truth = _pick_centres(scan, n, rng, apart_vox, diameter_um / 2 / spacing + 1, margin_vox)
    auto = scan.image.astype(np.float32)
    level = float(np.median(auto[auto > np.percentile(auto, 40)]))
    img = autofluorescence * auto
    diameters = rng.uniform(0.8, 1.2, len(truth)) * diameter_um
    for c, d in zip(truth[["z", "y", "x"]].to_numpy(dtype=np.float64), diameters):
        semi = d / 2 * rng.uniform(0.9, 1.1, 3)
        add_ball(img, tuple(spacing), c * spacing, semi, rng.uniform(*contrast) * level, 0.1 * d)
    img += rng.normal(0.0, noise * level, size=img.shape).astype(np.float32)
    return np.clip(img, 0, 65535).astype(np.uint16), truth.assign(diameter_um=diameters)


def _pick_centres(scan: SyntheticScan, n: int, rng, spacing_vox: float, border_vox, margin_vox: float):
    """Up to ``n`` scan voxels inside the brain, ``margin_vox`` atlas voxels from any region or hemisphere
    boundary, ``spacing_vox`` apart and ``border_vox`` (per axis, or one number) from the volume border.

    Returns
    -------
    pandas.DataFrame
        ``z, y, x`` (float64 voxel indices), ``region_id``, ``hemisphere``,
        ``atlas_z_um, atlas_y_um, atlas_x_um``.
    """
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
    border = np.broadcast_to(np.asarray(border_vox, dtype=np.float64), (3,))
    picked: list[np.ndarray] = []
    rows = []
    for _ in range(200):
        cand = rng.uniform(border, shape - border, size=(4 * n, 3)).round()
        a_um = scan.scan_to_atlas((cand + 0.5) * np.asarray(scan.scale))
        vox = np.floor(a_um / res).astype(np.int64)
        ok = np.all((vox >= 0) & (vox < np.asarray(atlas.shape)), axis=1)
        cand, a_um, vox = cand[ok], a_um[ok], vox[ok]
        keep = (atlas.annotation[tuple(vox.T)] != 0) & (depth[tuple(vox.T)] >= margin_vox)
        for c, a, v in zip(cand[keep], a_um[keep], vox[keep]):
            if picked and np.min(np.linalg.norm(np.asarray(picked) - c, axis=1)) < spacing_vox:
                continue
            picked.append(c)
            rows.append((*c, int(atlas.annotation[tuple(v)]), int(atlas.hemispheres[tuple(v)]), *a))
            if len(rows) == n:
                break
        if len(rows) == n:
            break
    return pd.DataFrame(rows, columns=["z", "y", "x", "region_id", "hemisphere",
                                       "atlas_z_um", "atlas_y_um", "atlas_x_um"])
