"""Ground truth for registration tests: planted objects with their atlas region, and Dice per region."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from voxelflow.errors import InvalidInputError
from voxelflow.synth_atlas.scan import SyntheticScan

__all__ = ["dice_per_region", "plant_objects"]


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
