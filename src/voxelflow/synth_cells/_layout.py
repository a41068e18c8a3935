"""Where things are in a synthetic cell crop: the tissue, the atlas regions and the planted cells.

Every position is in micrometres; voxel ``i`` is centred at ``i * spacing``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["CELL_REGIONS", "grid_um", "place_cells", "region_map", "tissue_of"]

#: Leaf regions painted into the atlas, and their cell densities (cells per mm^3).
CELL_REGIONS = {315: 24000.0, 1089: 14000.0, 477: 9000.0, 549: 18000.0}


def region_map(z_um, y_um, x_um, extent, tissue):
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


def tissue_of(z_um, y_um, x_um, centre, radius):
    """Tissue = inside a large sphere whose centre lies outside the crop (one curved edge)."""
    return (z_um - centre[0]) ** 2 + (y_um - centre[1]) ** 2 + (x_um - centre[2]) ** 2 <= radius**2


def grid_um(shape, spacing, factors=(1, 1, 1)):
    """Physical centres of the voxels of a grid whose voxel ``j`` spans image voxels ``j*f .. (j+1)*f-1``."""
    out = []
    for ax, (n, s, f) in enumerate(zip(shape, spacing, factors)):
        pos = (np.arange(n, dtype=np.float64) * f + (f - 1) / 2.0) * s
        sh = [1, 1, 1]
        sh[ax] = n
        out.append(pos.reshape(sh))
    return out


def place_cells(rng, shape, spacing, tissue_of, region_of, diameter_range, touching_fraction, rim_um):
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
