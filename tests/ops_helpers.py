"""Shared strategies and planted test volumes for the ops tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import strategies as st


@st.composite
def partitions(draw, n: int, max_parts: int = 4):
    """A random split of ``n`` voxels into chunk sizes, 1-voxel chunks included."""
    parts = draw(st.integers(1, min(n, max_parts)))
    if parts == 1:
        return (n,)
    cuts = sorted(draw(st.lists(st.integers(1, n - 1), min_size=parts - 1, max_size=parts - 1, unique=True)))
    bounds = [0, *cuts, n]
    return tuple(b - a for a, b in zip(bounds, bounds[1:]))


@st.composite
def chunkings(draw, shape, max_parts: int = 4):
    """Irregular dask chunks for ``shape``."""
    return tuple(draw(partitions(n, max_parts)) for n in shape)


def planted_sphere_pairs(shape, centres, radius: float, gap: int):
    """Pairs of overlapping balls along x: ball centres at ``c -/+ gap`` in x.

    Returns the binary volume and the list of ball centres.
    """
    grid = np.indices(shape)
    bs = np.zeros(shape, dtype=bool)
    balls = []
    for c in centres:
        for dx in (-gap, gap):
            centre = (c[0], c[1], c[2] + dx)
            balls.append(centre)
            d2 = sum((g - v) ** 2 for g, v in zip(grid, centre))
            bs |= d2 <= radius**2
    return bs, balls


def planted_gaussians(shape, centres, width: float, amplitude: float = 1.0, noise: float = 0.0, seed: int = 0):
    """Sum of isotropic Gaussian blobs (float64) plus optional Gaussian noise."""
    grid = np.indices(shape).astype(np.float64)
    img = np.random.default_rng(seed).normal(0.0, noise, shape) if noise else np.zeros(shape)
    for c in centres:
        d2 = sum((g - v) ** 2 for g, v in zip(grid, c))
        img += amplitude * np.exp(-d2 / (2 * width**2))
    return img


@st.composite
def object_tables(draw, shape):
    """Random LC tables (id, centroid inside a random bounding box) for a 3-D ``shape``."""
    n = draw(st.integers(0, 25))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    cols = {"id": np.arange(1, n + 1, dtype=np.int64)}
    for k, a in enumerate("zyx"):
        lo = rng.integers(0, shape[k], n)
        hi = np.minimum(lo + rng.integers(1, 6, n), shape[k])
        cols[a] = rng.uniform(lo - 0.5, hi - 0.5)  # centroid inside the box
        cols[f"{a}0"], cols[f"{a}1"] = lo, hi
    return pd.DataFrame(cols)
