"""The synthetic mouse-brain atlas: template, annotation, hemispheres and an Allen-like hierarchy.

:func:`make_synthetic_atlas` draws an ellipsoidal brain with an olfactory bulb,
a cortex with layers, a fibre-tract sheet, hippocampus, striatum, thalamus,
hypothalamus, midbrain, a foliated cerebellum and dark ventricles, each with
its own intensity and texture; the region table is a small Allen-like
hierarchy (Allen ids and acronyms), the brain is left/right symmetric with a
hemisphere image (1 left, 2 right). The arrays are in BrainGlobe's ``asr``
orientation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from voxelflow.errors import InvalidInputError
from voxelflow.io.brainglobe import LEFT, RIGHT, Atlas

__all__ = ["ATLAS_REGIONS", "BRAIN_EXTENT_UM", "make_synthetic_atlas"]

#: The hierarchy (id, acronym, name, parent) with Allen ids; leaves are painted.
ATLAS_REGIONS = pd.DataFrame(
    [
        (997, "root", "root", -1),
        (8, "grey", "Basic cell groups and regions", 997),
        (567, "CH", "Cerebrum", 8),
        (688, "CTX", "Cerebral cortex", 567),
        (315, "Isocortex", "Isocortex", 688),
        (698, "OLF", "Olfactory areas", 688),
        (1089, "HPF", "Hippocampal formation", 688),
        (623, "CNU", "Cerebral nuclei", 567),
        (477, "STR", "Striatum", 623),
        (343, "BS", "Brain stem", 8),
        (1129, "IB", "Interbrain", 343),
        (549, "TH", "Thalamus", 1129),
        (1097, "HY", "Hypothalamus", 1129),
        (313, "MB", "Midbrain", 343),
        (512, "CB", "Cerebellum", 8),
        (1009, "fiber tracts", "fiber tracts", 997),
        (73, "VS", "ventricular systems", 997),
    ],
    columns=["id", "acronym", "name", "parent"],
)

#: Mouse brain extent (um) along the ``asr`` axes, as in the Allen CCF.
BRAIN_EXTENT_UM = (13200.0, 8000.0, 11400.0)

# (base intensity, texture amplitude, texture scale in um) of every painted region
_LOOK = {
    315: (900.0, 0.20, 0.0), 698: (1150.0, 0.15, 200.0), 1089: (1300.0, 0.15, 150.0), 477: (700.0, 0.25, 120.0),
    549: (1000.0, 0.10, 300.0), 1097: (600.0, 0.15, 250.0), 313: (800.0, 0.12, 400.0), 512: (1100.0, 0.25, 0.0),
    1009: (1700.0, 0.05, 300.0), 73: (250.0, 0.05, 300.0), 343: (750.0, 0.10, 300.0),
}


def make_synthetic_atlas(resolution: float = 50.0, seed: int = 0, extent_um=BRAIN_EXTENT_UM) -> Atlas:
    """A synthetic mouse-brain atlas in BrainGlobe's ``asr`` orientation.

    Parameters
    ----------
    resolution : float
        Isotropic voxel size in micrometres (the shape follows ``extent_um``:
        50 um gives 264 x 160 x 228, about 10 MVox).
    seed : int
        Seed of the textures.
    extent_um : tuple of 3 float
        Physical size of the volume (antero-posterior, supero-inferior, left-right).

    Returns
    -------
    voxelflow.io.brainglobe.Atlas
        ``reference`` uint16, ``annotation`` uint32, ``hemispheres`` uint8,
        ``regions`` :data:`ATLAS_REGIONS`, ``symmetric`` metadata.
    """
    if not resolution > 0:
        raise InvalidInputError(f"resolution must be positive (micrometres), got {resolution!r}")
    rng = np.random.default_rng(seed)
    shape = tuple(max(8, int(round(e / resolution))) for e in extent_um)
    # normalised coordinates in [-1, 1]: u from anterior to posterior, v from superior to inferior,
    # w from right to left; the left half is drawn from the right half, so the atlas is symmetric
    u, v, w = (((np.arange(n) + 0.5) / n * 2 - 1).reshape([-1 if k == a else 1 for k in range(3)])
               for a, n in enumerate(shape))
    aw = np.abs(w)
    body = (u / 0.78) ** 2 + ((v + 0.05) / 0.72) ** 2 + (aw / 0.82) ** 2
    bulb = ((u + 0.8) / 0.16) ** 2 + ((v + 0.05) / 0.22) ** 2 + ((aw - 0.12) / 0.14) ** 2 <= 1
    brain = (body <= 1) | bulb
    depth = 1 - np.sqrt(body)  # 0 on the surface, 1 at the centre
    del body
    labels = np.zeros(shape, dtype=np.uint32)
    for rid, where in _region_masks(u, v, aw, brain, bulb, depth):
        labels[np.broadcast_to(where, shape) & np.broadcast_to(brain, shape)] = rid
    del bulb
    # cortical layers: intensity bands parallel to the surface (computed now, so depth can go)
    layers = np.sin(np.broadcast_to(depth, shape)[labels == 315] * 2 * np.pi / 0.05)
    del depth

    ref = np.zeros(shape, dtype=np.float32)
    for rid, (base, amp, tex_um) in _LOOK.items():
        where = labels == rid
        if not where.any():
            continue
        if rid == 315:
            tex = layers
        elif rid == 512:  # cerebellar folia: bands along the antero-posterior axis
            tex = np.sin(np.broadcast_to(u * 2 * np.pi / 0.06 + 3 * v, shape)[where])
        else:
            sigma = max(tex_um / resolution, 0.5)
            tex = ndi.gaussian_filter(_standard_normal_float32(rng, shape), sigma)
            tex /= max(float(max(tex.max(), -tex.min())), 1e-6)  # the largest |tex|
            tex = tex[where]
        ref[where] = base * (1 + amp * tex)
        del tex, where
    ref = ndi.gaussian_filter(ref, 0.6)
    ref = (ref + ref[:, :, ::-1]) / 2  # symmetric template
    hemi = np.where(np.broadcast_to(w > 0, shape), LEFT, RIGHT).astype(np.uint8)
    hemi[labels == 0] = 0
    meta = {"name": f"synthetic_mouse_{resolution:g}um", "symmetric": True, "species": "Mus musculus (synthetic)",
            "version": "1.0", "citation": "none (synthetic)", "atlas_link": "", "additional_references": []}
    return Atlas(np.clip(ref, 0, 65535).astype(np.uint16), labels, hemi, ATLAS_REGIONS.copy(),
                 (float(resolution),) * 3, "asr", meta["name"], meta)


def _region_masks(u, v, aw, brain, bulb, depth):
    """(id, mask) of every painted region in painting order, each mask made when it is asked for."""
    yield 343, brain
    yield 313, brain & (u > 0.15) & (v > -0.3)
    yield 1097, brain & (v > 0.3) & (u < 0.2)
    yield 549, (u > -0.15) & (u < 0.3) & (aw < 0.35) & (v > -0.2) & (v < 0.3)
    yield 477, (u > -0.6) & (u < 0.05) & (aw > 0.12) & (aw < 0.6) & (v > -0.25) & (v < 0.35)
    yield 1089, (u > -0.05) & (u < 0.45) & (aw > 0.1) & (v > -0.5) & (v < -0.2) & (depth > 0.2)
    yield 1009, (depth > 0.14) & (depth < 0.2) & (v < 0.15) & (u < 0.5)
    yield 315, (depth <= 0.14) & (v < 0.25) & (u < 0.5)
    yield 512, brain & (u > 0.5)
    yield 698, bulb
    yield 73, ((u + 0.15) / 0.22) ** 2 + ((v + 0.1) / 0.06) ** 2 + ((aw - 0.18) / 0.05) ** 2 <= 1


def _standard_normal_float32(rng, shape, slab_voxels: int = 4_000_000) -> np.ndarray:
    """``rng.standard_normal(shape).astype(np.float32)``, drawn slab by slab (the same numbers, less memory)."""
    out = np.empty(shape, dtype=np.float32)
    flat = out.reshape(-1)
    for start in range(0, flat.size, slab_voxels):
        stop = min(start + slab_voxels, flat.size)
        flat[start:stop] = rng.standard_normal(stop - start)
    return out
