"""Left/right beyond the atlas brain: the hemisphere image extended across the midline to the whole volume.

An atlas hemisphere image is 0 outside the brain. Warped onto a scan, every
scan voxel that registration puts just outside the atlas brain (a surface
voxel off by a fraction of a voxel) would lose its side, although the side is
only a question of where the midline is. :func:`fill_hemispheres` gives every
voxel of the atlas volume the side of the nearest brain voxel along the
left-right axis; lines that miss the brain get the side of the mean midline.
Warped, the filled image splits the scan by the registered midline alone.
"""

from __future__ import annotations

import numpy as np

from voxelflow.errors import InvalidInputError
from voxelflow.ops._orientation import parse_orientation

__all__ = ["fill_hemispheres"]


def fill_hemispheres(hemispheres, orientation: str, slab: int = 16) -> np.ndarray:
    """Every voxel gets the hemisphere of the nearest labelled voxel on its left-right line.

    Parameters
    ----------
    hemispheres : numpy.ndarray, shape (Z, Y, X), integer
        Atlas hemispheres: two side values (BrainGlobe: 1 left, 2 right), 0 unknown.
    orientation : str
        Orientation code of the array (its ``l``/``r`` letter names the left-right axis).
    slab : int
        Planes along the first other axis processed at once (bounds memory).

    Returns
    -------
    numpy.ndarray, shape and dtype of ``hemispheres``
        No zeros: labelled voxels keep their value; on a line through the
        brain an unlabelled voxel takes the nearer labelled one (ties to the
        lower index); a line without labels takes the side of the mean midline.
        An image with one side only (an atlas cut to one hemisphere) is that
        side everywhere.

    Raises
    ------
    InvalidInputError
        If the image holds no side value or more than two.
    """
    hemi = np.asarray(hemispheres)
    code = parse_orientation(orientation, "atlas orientation")
    if hemi.ndim != 3:
        raise InvalidInputError(f"hemispheres must be 3-D, got shape {hemi.shape}")
    axis = next(i for i, c in enumerate(code) if c in "lr")
    lines = np.moveaxis(hemi, axis, -1)
    sides = [int(v) for v in np.unique(hemi) if v != 0]
    if len(sides) == 1:  # an atlas cut to one hemisphere: all of it is that side
        return np.full_like(hemi, sides[0])
    if len(sides) != 2:
        raise InvalidInputError(f"hemispheres must hold one or two side values besides 0, got {sides}")
    n = lines.shape[-1]
    pos = np.arange(n, dtype=np.int32)
    # the mean midline: halfway between the mean positions of the two sides along the line
    counts = np.zeros((2, n), dtype=np.int64)
    for a0 in range(0, lines.shape[0], slab):
        block = lines[a0 : a0 + slab]
        for k, v in enumerate(sides):
            counts[k] += np.count_nonzero(block == v, axis=(0, 1))
    means = counts @ pos / counts.sum(axis=1)
    low, high = (sides[0], sides[1]) if means[0] <= means[1] else (sides[1], sides[0])
    midline = float(means.mean())
    default = np.where(pos < midline, low, high).astype(hemi.dtype)
    out = np.empty_like(lines)
    for a0 in range(0, lines.shape[0], slab):
        block = lines[a0 : a0 + slab]
        labelled = block != 0
        before = np.maximum.accumulate(np.where(labelled, pos, -1), axis=-1)
        after = np.minimum.accumulate(np.where(labelled, pos, n)[..., ::-1], axis=-1)[..., ::-1]
        use_before = (before >= 0) & ((after >= n) | (pos - before <= after - pos))
        src = np.where(use_before, before, np.minimum(after, n - 1))
        filled = np.take_along_axis(block, src, axis=-1)
        empty = ~labelled.any(axis=-1, keepdims=True)
        out[a0 : a0 + slab] = np.where(empty, default, filled)
    return np.ascontiguousarray(np.moveaxis(out, -1, axis))
