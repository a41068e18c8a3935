"""A small synthetic lightsheet cell scan with planted false candidates, for the classifier tests.

Two channels at anisotropic voxels (5 x 2 x 2 um): cells (round, bright in the
signal channel only), autofluorescent debris (round, bright in both channels),
vessel segments (tubes, 3 um radius, moderately bright in both) and fibres
(thin lines), over smooth autofluorescence, per-plane and per-tile brightness
steps and noise; objects may be cut by the volume border. ``truth`` labels
every planted object (id > 0) and ``kind`` maps its id to what it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

VOXEL = np.array([5.0, 2.0, 2.0])


@dataclass
class CellScan:
    signal: np.ndarray
    background: np.ndarray
    truth: np.ndarray
    kind: dict


def _draw(truth, sig, bg, obj_id, inside, box, s, b):
    region = truth[box]
    free = inside & (region == 0)
    region[free] = obj_id
    sig[box][free] += s
    bg[box][free] += b


def _ball(shape, centre, radius_um, rng):
    r = radius_um / VOXEL
    lo = np.maximum(np.floor(centre - r).astype(int), 0)
    hi = np.minimum(np.ceil(centre + r).astype(int) + 1, shape)
    if np.any(hi <= lo):
        return None, None
    grid = np.ogrid[tuple(slice(a, b) for a, b in zip(lo, hi))]
    d2 = sum(((g - c) / rr) ** 2 for g, c, rr in zip(grid, centre, r))
    return d2 <= 1, tuple(slice(a, b) for a, b in zip(lo, hi))


def _tube(shape, start, direction, length_um, radius_um):
    end = start + direction * length_um / VOXEL
    lo = np.maximum(np.floor(np.minimum(start, end) - radius_um / VOXEL - 1).astype(int), 0)
    hi = np.minimum(np.ceil(np.maximum(start, end) + radius_um / VOXEL + 1).astype(int) + 1, shape)
    if np.any(hi <= lo):
        return None, None
    grid = np.stack(np.meshgrid(*[np.arange(a, b) for a, b in zip(lo, hi)], indexing="ij"), axis=-1) * VOXEL
    p0, p1 = start * VOXEL, end * VOXEL
    seg = p1 - p0
    t = np.clip(((grid - p0) @ seg) / (seg @ seg), 0, 1)
    dist = np.linalg.norm(grid - (p0 + t[..., None] * seg), axis=-1)
    return dist <= radius_um, tuple(slice(a, b) for a, b in zip(lo, hi))


def make_cell_scan(shape=(40, 200, 200), n_cells=300, n_debris=80, n_vessels=50, n_fibres=50, seed=0) -> CellScan:
    rng = np.random.default_rng(seed)
    shape = np.asarray(shape)
    truth = np.zeros(tuple(shape), np.int32)
    sig = np.zeros(truth.shape, np.float32)
    bg = np.zeros(truth.shape, np.float32)
    kind = {}
    obj = 0

    def random_direction():
        v = rng.normal(size=3) / VOXEL  # isotropic in micrometres
        v[0] *= 0.5  # vessels and fibres lie mostly in the sectioning plane
        return v / np.linalg.norm(v * VOXEL) * 1.0

    for what, n in (("vessel", n_vessels), ("fibre", n_fibres), ("cell", n_cells), ("debris", n_debris)):
        for _ in range(n):
            centre = rng.uniform(0, 1, 3) * (shape - 1)
            if what in ("cell", "debris"):
                mask, box = _ball(shape, centre, rng.uniform(4.0, 7.0), rng)
                s = rng.uniform(0.7, 1.3)
                b = 0.08 * s if what == "cell" else rng.uniform(0.6, 1.0) * s
            elif what == "vessel":
                mask, box = _tube(shape, centre, random_direction(), rng.uniform(40, 90), rng.uniform(2.5, 3.5))
                s, b = rng.uniform(0.6, 1.0), rng.uniform(0.2, 0.35)
            else:
                mask, box = _tube(shape, centre, random_direction(), rng.uniform(30, 60), 1.2)
                s, b = rng.uniform(0.8, 1.2), 0.05
            if mask is None or not mask.any():
                continue
            obj += 1
            _draw(truth, sig, bg, obj, mask, box, s, b)
            kind[obj] = what
    # smooth objects a little (optics), then tissue autofluorescence, brightness steps and noise
    sig = ndi.gaussian_filter(sig, (0.4, 0.8, 0.8))
    bg = ndi.gaussian_filter(bg, (0.4, 0.8, 0.8))
    tissue = ndi.gaussian_filter(rng.random(truth.shape).astype(np.float32), (2, 12, 12))
    tissue = 0.08 + 0.1 * (tissue - tissue.min()) / (np.ptp(tissue) + 1e-9)
    plane = rng.uniform(0.8, 1.2, (shape[0], 1, 1)).astype(np.float32)
    tiles = np.ones(truth.shape, np.float32)
    tiles[:, :, shape[2] // 2 :] = 1.15  # a stitching step between two tiles
    sig = (sig + tissue) * plane * tiles + rng.normal(0, 0.02, truth.shape).astype(np.float32)
    bg = (bg + tissue) * plane * tiles + rng.normal(0, 0.02, truth.shape).astype(np.float32)
    return CellScan(sig.astype(np.float32), bg.astype(np.float32), truth, kind)


def candidate_truth(os_arr: np.ndarray, table, scan: CellScan) -> np.ndarray:
    """Whether each candidate of ``table`` is a cell: most of its voxels lie in a planted cell."""
    fg = os_arr != 0
    cells = np.array([k for k, v in scan.kind.items() if v == "cell"])
    in_cell = np.isin(scan.truth, cells)
    n = int(os_arr.max()) + 1
    cell_voxels = np.bincount(os_arr[fg], weights=in_cell[fg], minlength=n)
    all_voxels = np.bincount(os_arr[fg], minlength=n)
    ids = table["id"].to_numpy()
    return cell_voxels[ids] > 0.5 * all_voxels[ids]
