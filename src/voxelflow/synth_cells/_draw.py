"""Soft-edged structures drawn into a float32 field: ellipsoids (nuclei, granules) and tubes (vessels, fibres)."""

from __future__ import annotations

import numpy as np
from scipy.special import erfc

from voxelflow.synth_cells._layout import grid_um

__all__ = ["add_ball", "add_tube", "random_path"]


def add_ball(field, spacing, centre_um, semi_um, amplitude, soft_um):
    """Add a soft-edged ellipsoid, integrated over each voxel's z extent (three sub-planes)."""
    shape = np.asarray(field.shape)
    sp = np.asarray(spacing)
    reach = (np.asarray(semi_um) + 3 * soft_um + sp) / sp
    c = np.asarray(centre_um) / sp
    lo = np.maximum(np.floor(c - reach).astype(int), 0)
    hi = np.minimum(np.ceil(c + reach).astype(int) + 1, shape)
    if (hi <= lo).any():
        return
    z, y, x = grid_um(tuple(hi - lo), spacing)
    z, y, x = z + lo[0] * sp[0], y + lo[1] * sp[1], x + lo[2] * sp[2]
    r_mean = float(np.mean(semi_um))
    acc = 0.0
    for dz in (-sp[0] / 3, 0.0, sp[0] / 3):
        q = np.sqrt(((z + dz - centre_um[0]) / semi_um[0]) ** 2 + ((y - centre_um[1]) / semi_um[1]) ** 2
                    + ((x - centre_um[2]) / semi_um[2]) ** 2)
        acc = acc + 0.5 * erfc((q - 1.0) * r_mean / (np.sqrt(2.0) * soft_um))
    box = field[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    box += (amplitude / 3.0 * acc).astype(np.float32)


def add_tube(field, spacing, points_um, radius_um, amplitude, soft_um):
    """Add a soft-edged tube along a polyline (distance to the nearest segment)."""
    sp = np.asarray(spacing)
    shape = np.asarray(field.shape)
    for a, b in zip(points_um[:-1], points_um[1:]):
        lo = np.maximum(np.floor((np.minimum(a, b) - radius_um - 3 * soft_um) / sp).astype(int), 0)
        hi = np.minimum(np.ceil((np.maximum(a, b) + radius_um + 3 * soft_um) / sp).astype(int) + 1, shape)
        if (hi <= lo).any():
            continue
        z, y, x = grid_um(tuple(hi - lo), spacing)
        p = [z + lo[0] * sp[0], y + lo[1] * sp[1], x + lo[2] * sp[2]]
        ab = b - a
        t = sum((p[k] - a[k]) * ab[k] for k in range(3)) / max(float(ab @ ab), 1e-9)
        t = np.clip(t, 0.0, 1.0)
        d = np.sqrt(sum((p[k] - (a[k] + t * ab[k])) ** 2 for k in range(3)))
        prof = amplitude * 0.5 * erfc((d - radius_um) / (np.sqrt(2.0) * soft_um))
        box = field[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        np.maximum(box, prof.astype(np.float32), out=box)


def random_path(rng, extent, n_points, step_um, wiggle):
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
