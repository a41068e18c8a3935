"""Lightsheet autofluorescence artefacts painted onto a rendered synthetic scan."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

__all__ = ["lightsheet_artefacts"]


def lightsheet_artefacts(img: np.ndarray, scale, rng, noise: float) -> np.ndarray:
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
