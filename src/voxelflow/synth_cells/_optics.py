"""How a lightsheet microscope distorts brightness: plane and tile gains, illumination fall-off, stripes."""

from __future__ import annotations

import numpy as np

__all__ = ["gain_field"]


def gain_field(rng, shape, spacing, tile_um, stripe_count):
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
