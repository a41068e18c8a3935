"""Seeds for touching objects that show no maximum of their own (BS, LC -> LC).

A small or dim cell pressed against a brighter one often has no maximum in a
blob filter's response: it is a shoulder on its neighbour's flank. Its shape
still shows in a foreground mask: the mask of two touching balls narrows where
they meet. :func:`split_seeds` looks, inside every connected component of the
mask that holds at least one seed and is at most ``max_extent_um`` long on
every axis, for maxima of the Euclidean distance to the background (in um, on
anisotropic voxels) that are

- at least ``min_radius_um`` deep,
- at least ``separation`` x (sum of the two depths) from every seed of the
  component (the given ones, and those added before it, deepest first), and
- cut off from each of those seeds by a neck: along the straight segment
  between them the distance drops below ``neck`` x the smaller of the two
  depths (one ball has no neck between two of its points).

Every component is handled alone, in a crop of its bounding box plus one voxel,
so a chunk sees it whole (chunks are read with a halo of ``max_extent_um``) and
the result does not depend on the chunking: each new seed is reported by the
chunk that holds it.
"""

from __future__ import annotations

import itertools
import math

import dask.array as da
import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from voxelflow.errors import InvalidInputError
from voxelflow.ops._filter_args import as_length, as_spacing
from voxelflow.ops._halo import iter_blocks, map_regions, padded_region

__all__ = ["split_seeds"]


def split_seeds(mask, seeds: pd.DataFrame, spacing, *, min_radius_um: float, max_extent_um: float,
                separation: float = 0.7, neck: float = 0.9) -> pd.DataFrame:
    """New seeds for touching objects that the given seeds miss.

    Parameters
    ----------
    mask : dask.array.Array or numpy.ndarray, shape (Z, Y, X), bool
        Foreground whose face-connected components are the clusters of
        touching objects (e.g. a blob response above a low threshold).
    seeds : pandas.DataFrame
        Existing seeds with ``z, y, x`` in voxels (rounded to the nearest voxel).
    spacing : sequence of 3 float
        Voxel size in um.
    min_radius_um : float
        Smallest distance to the background (um) of a new seed: about the
        radius of the smallest object.
    max_extent_um : float
        Components longer than this (um) on some axis are left as they are
        (vessels, the tissue rim, clumps); it is also the halo of each chunk.
    separation : float
        A new seed lies at least ``separation`` x (its depth + the other seed's
        depth) from every seed of its component.
    neck : float
        Along the segment to every seed of its component, the distance to the
        background drops below ``neck`` x the smaller of the two depths.

    Returns
    -------
    pandas.DataFrame (LC)
        One row per new seed, sorted by position: ``z, y, x`` (float64 voxels)
        and ``depth_um`` (float64, its distance to the background).

    Raises
    ------
    InvalidInputError
        If the mask is not 3-D, the seed table lacks ``z, y, x``, or a length
        or factor is out of range.
    """
    m = mask if isinstance(mask, da.Array) else da.asarray(mask)
    if m.ndim != 3:
        raise InvalidInputError(f"mask must be a 3-D array, got {m.ndim} axes")
    if not {"z", "y", "x"} <= set(seeds.columns):
        raise InvalidInputError(f"the seed table needs columns z, y, x; it has {list(seeds.columns)}")
    sp = np.asarray(as_spacing(spacing, 3), dtype=np.float64)
    min_r = as_length(min_radius_um, "min_radius_um")
    extent = as_length(max_extent_um, "max_extent_um")
    if not 0 < separation or not 0 < neck <= 1:
        raise InvalidInputError(f"separation must be > 0 and neck in (0, 1], got {separation!r}, {neck!r}")
    lim = tuple(max(1, int(math.floor(extent / s))) for s in sp)
    pos = np.rint(seeds[["z", "y", "x"]].to_numpy(np.float64)).astype(np.int64).reshape(-1, 3)
    pos = pos[((pos >= 0) & (pos < np.asarray(m.shape))).all(axis=1)]
    by_chunk = _seeds_by_chunk(pos, m.chunks)
    bounds = [np.concatenate([[0], np.cumsum(c, dtype=np.int64)]) for c in m.chunks]
    plan = []
    for block in iter_blocks(m.chunks):
        lo, hi = padded_region(block, lim, m.shape)
        near = _seeds_in(by_chunk, bounds, lo, hi)
        args = (lo, block.start, block.stop, near, lim, tuple(sp), float(min_r), float(separation), float(neck))
        plan.append((block.index, (lo, hi), _split_block, args))
    grid = tuple((1,) * len(c) for c in m.chunks)
    parts = map_regions(m.astype(bool), grid, plan, object, "vf-split-seeds").compute()
    found = [p for p in parts.ravel() if len(p[0])]
    new = np.concatenate([p[0] for p in found]) if found else np.zeros((0, 3), np.int64)
    depth = np.concatenate([p[1] for p in found]) if found else np.zeros(0)
    order = np.lexsort(new.T[::-1]) if len(new) else np.zeros(0, np.int64)
    new, depth = new[order], depth[order]
    return pd.DataFrame({"z": new[:, 0].astype(np.float64), "y": new[:, 1].astype(np.float64),
                         "x": new[:, 2].astype(np.float64), "depth_um": depth.astype(np.float64)})


def _seeds_by_chunk(pos, chunks) -> dict:
    """Seed positions grouped by the chunk that holds them."""
    bounds = [np.cumsum(c, dtype=np.int64) for c in chunks]
    idx = np.stack([np.searchsorted(b, pos[:, a], side="right") for a, b in enumerate(bounds)], axis=1)
    out: dict = {}
    if len(pos):
        order = np.lexsort(idx.T[::-1])
        keys, first = np.unique(idx[order], axis=0, return_index=True)
        for key, part in zip(map(tuple, keys), np.split(order, first[1:])):
            out[key] = pos[part]
    return out


def _seeds_in(by_chunk, bounds, lo, hi) -> np.ndarray:
    """Seeds inside the half-open region ``lo .. hi``, from the chunks it overlaps."""
    ranges = [range(int(np.searchsorted(b, a, side="right")) - 1, int(np.searchsorted(b, z, side="left")))
              for b, a, z in zip(bounds, lo, hi)]
    found = [by_chunk[k] for k in itertools.product(*ranges) if k in by_chunk]
    pts = np.concatenate(found) if found else np.zeros((0, 3), np.int64)
    inside = ((pts >= np.asarray(lo)) & (pts < np.asarray(hi))).all(axis=1)
    return pts[inside]


def _split_block(padded, origin, start, stop, seeds, lim, spacing, min_r, separation, neck):
    fg = np.asarray(padded, dtype=bool)
    labels, _ = ndi.label(fg)
    lo = np.asarray(origin, dtype=np.int64)
    local = seeds - lo
    seed_label = labels[tuple(local.T)] if len(local) else np.zeros(0, labels.dtype)
    held = seed_label > 0
    order = np.argsort(seed_label[held], kind="stable")
    ids, first = np.unique(seed_label[held][order], return_index=True)
    new, depth = [], []
    if len(ids):
        # only the components that hold a seed, renumbered 1..n (find_objects costs per label)
        lut = np.zeros(int(labels.max()) + 1, dtype=np.int64)
        lut[ids] = np.arange(1, len(ids) + 1)
        seeded = lut[labels]
        core = tuple(slice(a - o, b - o) for a, b, o in zip(start, stop, origin))
        boxes = ndi.find_objects(seeded)
        groups = np.split(local[held][order], first[1:])
        present = np.bincount(seeded[core].ravel(), minlength=len(ids) + 1)
        for j in np.flatnonzero(present[1:]) + 1:
            box = boxes[j - 1]
            # a component longer than lim, or cut by the padded region (then longer than lim too), stays as it is
            if any(s.stop - s.start > n for s, n in zip(box, lim)):
                continue
            crop = tuple(slice(max(s.start - 1, 0), min(s.stop + 1, n)) for s, n in zip(box, fg.shape))
            corner = np.array([s.start for s in crop], dtype=np.int64)
            pts, dep = _split_component(seeded[crop] == j, groups[j - 1] - corner, spacing, min_r, separation, neck)
            pts = pts + corner + lo
            mine = ((pts >= np.asarray(start)) & (pts < np.asarray(stop))).all(axis=1)
            new.append(pts[mine])
            depth.append(dep[mine])
    out = np.empty((1, 1, 1), dtype=object)
    out.flat[0] = (np.concatenate(new) if new else np.zeros((0, 3), np.int64),
                   np.concatenate(depth) if depth else np.zeros(0))
    return out


def _split_component(mask, own, spacing, min_r, separation, neck):
    """New seeds of one component (crop coordinates) and their depths, deepest first."""
    dist = ndi.distance_transform_edt(mask, sampling=spacing)
    # a seed's depth is the deepest voxel next to it (a blob maximum may sit a voxel off the distance maximum)
    near = ndi.maximum_filter(dist, size=3)
    cand = np.argwhere((dist == near) & mask & (dist >= min_r))
    if not len(cand):
        return np.zeros((0, 3), np.int64), np.zeros(0)
    sp = np.asarray(spacing)
    r_own = near[tuple(own.T)]
    gap = np.linalg.norm((cand[:, None, :] - own[None, :, :]) * sp, axis=2)
    # too close to a given seed: rejected whatever else is accepted
    cand = cand[(gap >= separation * (dist[tuple(cand.T)][:, None] + r_own[None, :])).all(axis=1)]
    if not len(cand):
        return np.zeros((0, 3), np.int64), np.zeros(0)
    cand = cand[np.lexsort(tuple(cand.T[::-1]) + (-dist[tuple(cand.T)],))]
    kept = [tuple(p) for p in own]
    depth = [float(r) for r in r_own]
    new = []
    for p in map(tuple, cand):
        r = float(dist[p])
        if all(_apart(dist, p, q, r, rq, sp, separation, neck) for q, rq in zip(kept, depth)):
            kept.append(p)
            depth.append(r)
            new.append((p, r))
    if not new:
        return np.zeros((0, 3), np.int64), np.zeros(0)
    return np.array([p for p, _ in new], dtype=np.int64), np.array([r for _, r in new])


def _apart(dist, p, q, rp, rq, sp, separation, neck) -> bool:
    """True when ``p`` and ``q`` are far enough apart and a neck lies between them."""
    step = np.subtract(q, p)
    if float(np.linalg.norm(step * sp)) < separation * (rp + rq):
        return False
    n = 2 * int(np.abs(step).max()) + 2
    line = np.rint(np.asarray(p)[None] + np.linspace(0.0, 1.0, n)[:, None] * step[None]).astype(np.int64)
    return float(dist[tuple(line.T)].min()) < neck * min(rp, rq)
