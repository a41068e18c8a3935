"""Lightsheet autofluorescence artefacts painted onto a rendered synthetic scan.

The volume is worked on in slabs along axis 0 (float64 within a slab), so a
scan of a few hundred megavoxels needs its own buffer plus a few slabs, not
several float64 copies. Random numbers are drawn in the same order as over the
whole volume at once (NumPy's ``Generator`` draws element by element), so the
result does not depend on the slab size.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

__all__ = ["lightsheet_artefacts"]

# the 6 face neighbours: binary_dilation(iterations=1) with its default structure
_FACES = np.array([[0, 0, 0], [-1, 0, 0], [1, 0, 0], [0, -1, 0], [0, 1, 0], [0, 0, -1], [0, 0, 1]])


def lightsheet_artefacts(img: np.ndarray, scale, rng, noise: float, slab_voxels: int = 4_000_000) -> np.ndarray:
    """Bias field, plane steps, stripes, tile seams, vessels, background and noise.

    Parameters
    ----------
    img : numpy.ndarray, shape (Z, Y, X), float32
        Rendered template intensity; used as work space (overwritten).
    scale : sequence of 3 float
        Voxel size (micrometres); unused by the artefacts drawn in voxels.
    rng : numpy.random.Generator
    noise : float
        Read-noise standard deviation relative to the mean tissue intensity.
    slab_voxels : int
        Voxels worked on per step.

    Returns
    -------
    numpy.ndarray, shape (Z, Y, X), uint16
    """
    shape = img.shape
    tissue_mean = float(img[img > 0].mean()) if (img > 0).any() else 1.0
    # smooth multiplicative bias: 0.6 .. 1.4 over the volume (trilinear, as ndi.zoom of a 3 x 3 x 3 grid)
    coarse = rng.uniform(0.6, 1.4, size=(3, 3, 3))
    weights = [_zoom_weights(n) for n in shape]
    # bright vessels: a few random tubes inside the tissue (flat indices of each dilated tube)
    vessels = []
    for _ in range(6):
        p0 = np.array([rng.uniform(0, n) for n in shape])
        d = rng.standard_normal(3)
        d /= np.linalg.norm(d)
        t = np.arange(-max(shape), max(shape), 0.5)
        pts = np.round(p0 + t[:, None] * d).astype(int)
        ok = np.all((pts >= 0) & (pts < shape), axis=1)
        pts = pts[ok]
        biased = img[tuple(pts.T)] * np.einsum("ni,nj,nk,ijk->n", weights[0][pts[:, 0]], weights[1][pts[:, 1]],
                                               weights[2][pts[:, 2]], coarse)
        keep = biased > 0.2 * tissue_mean
        grown = (pts[keep][:, None, :] + _FACES[None]).reshape(-1, 3)
        grown = grown[np.all((grown >= 0) & (grown < shape), axis=1)]
        vessels.append(np.unique(np.ravel_multi_index(tuple(grown.T), shape)))
    # per-plane brightness steps along axis 0 and stripes along the last axis
    planes = rng.uniform(0.9, 1.1, size=shape[0])
    stripes = 1 + 0.15 * (rng.random(shape[2]) < 0.08)[None, None, :].astype(np.float32)
    stripes = ndi.gaussian_filter1d(stripes, 1.0, axis=2)
    # a tile seam: the two halves of axis 1 differ in brightness
    half = shape[1] // 2
    seam = rng.uniform(0.85, 1.15)
    plane = shape[1] * shape[2]
    step = max(1, slab_voxels // max(1, plane))
    slabs = [(z0, min(z0 + step, shape[0])) for z0 in range(0, shape[0], step)]
    plane_bias = np.einsum("bj,ijx->ibx", weights[1], np.tensordot(coarse, weights[2], axes=(2, 1)))  # (3, Y, X)
    for z0, z1 in slabs:  # everything up to the shot noise, drawn slab after slab
        bias = np.tensordot(weights[0][z0:z1], plane_bias, axes=(1, 0))
        slab = img[z0:z1] * bias
        flat = slab.reshape(-1)
        for where in vessels:
            inside = where[(where >= z0 * plane) & (where < z1 * plane)]
            flat[inside - z0 * plane] += 0.6 * tissue_mean
        slab *= planes[z0:z1, None, None]
        slab *= stripes
        slab[:, half:, :] *= seam
        slab = slab + 0.08 * tissue_mean  # autofluorescence background
        img[z0:z1] = rng.poisson(np.maximum(slab, 0) / 4.0).astype(np.float32) * 4.0
    out = np.empty(shape, dtype=np.uint16)
    for z0, z1 in slabs:  # read noise, drawn after all the shot noise
        img[z0:z1] += rng.normal(0, noise * tissue_mean, size=(z1 - z0, *shape[1:])).astype(np.float32)
        out[z0:z1] = np.clip(img[z0:z1], 0, 65535)
    return out


def _zoom_weights(n: int) -> np.ndarray:
    """Weights (n, 3) of ``ndi.zoom(v, n / 3, order=1, mode="nearest")`` for a length-3 ``v``, per output."""
    return np.stack([ndi.zoom(e, n / 3, order=1, mode="nearest")[:n] for e in np.eye(3)], axis=1)
