"""Anatomical orientation codes: reorder and flip volumes and points between them.

An orientation is a 3-letter code, one letter per array axis (axis 0 first), as
brainglobe-space defines it: each letter names the anatomical side where the
axis *starts*, i.e. where index 0 lies; the axis increases towards the opposite
side. ``"asr"`` (the BrainGlobe/Allen atlases) means axis 0 runs from anterior
to posterior, axis 1 from superior to inferior and axis 2 from right to left.
The letters are ``a``/``p`` (anterior/posterior), ``s``/``i``
(superior/inferior) and ``l``/``r`` (left/right); every code uses each of the
three pairs once, which gives 6 axis orders x 8 flips = 48 codes.

Reference: brainglobe-space, ``AnatomicalSpace`` ("to which anatomical
direction the 0 of the stack corresponds along each of the 3 dimensions";
README: "it is sufficient to give the directions of the stack origin
position"), https://github.com/brainglobe/brainglobe-space.

Point conventions. Voxel coordinates put voxel centres on integers, so a flip
maps ``c -> n - 1 - c``. Physical coordinates (micrometres) follow
:mod:`voxelflow.ops.atlas`: voxel ``i`` of size ``s`` spans ``[i s, (i + 1) s)``,
so a flip maps ``p -> n s - p`` (brainglobe-space's ``map_points_to`` flips
with ``n - c``, which is the physical rule with ``s = 1``).

Examples
--------
>>> import numpy as np
>>> vol = np.arange(24).reshape(2, 3, 4)
>>> out = reorient_volume(vol, "asr", "psl")       # axis 0 and 2 flipped
>>> bool((out == vol[::-1, :, ::-1]).all())
True
>>> reorient_shape((2, 3, 4), "asr", "rsa")
(4, 3, 2)
>>> reorient_points([[0, 0, 0]], "asr", "psl", shape=(2, 3, 4)).tolist()
[[1.0, 0.0, 3.0]]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from voxelflow.errors import OrientationError
from voxelflow.io.orientation_code import ORIENTATION_CODES, PAIR_OF, parse_orientation

__all__ = [
    "ORIENTATION_CODES",
    "parse_orientation",
    "orientation_map",
    "reorient_shape",
    "reorient_scale",
    "reorient_volume",
    "reorient_points",
    "orientation_matrix",
]

def orientation_map(source: str, target: str) -> tuple[tuple[int, ...], tuple[bool, ...]]:
    """Axis order and flips taking an array in ``source`` orientation to ``target``.

    Returns
    -------
    order : tuple of 3 int
        ``order[k]`` is the source axis that becomes target axis ``k``
        (the argument of ``numpy.transpose``).
    flips : tuple of 3 bool
        Whether target axis ``k`` is reversed after the transpose.
    """
    src = parse_orientation(source, "source orientation")
    tgt = parse_orientation(target, "target orientation")
    src_axis = {PAIR_OF[c]: k for k, c in enumerate(src)}
    order = tuple(src_axis[PAIR_OF[c]] for c in tgt)
    flips = tuple(src[order[k]] != tgt[k] for k in range(3))
    return order, flips


def reorient_shape(shape: Sequence[int], source: str, target: str) -> tuple[int, ...]:
    """Shape of a ``source``-oriented array after :func:`reorient_volume`."""
    shape = _three(shape, "shape")
    order, _ = orientation_map(source, target)
    return tuple(int(shape[o]) for o in order)


def reorient_scale(scale: Sequence[float], source: str, target: str) -> tuple[float, ...]:
    """Voxel size per axis (micrometres) after reorienting: the same numbers, permuted."""
    scale = _three(scale, "scale")
    order, _ = orientation_map(source, target)
    return tuple(float(scale[o]) for o in order)


def reorient_volume(arr, source: str, target: str):
    """Transpose and flip a volume from ``source`` to ``target`` orientation.

    Parameters
    ----------
    arr : numpy.ndarray or dask.array.Array, shape (N0, N1, N2), any dtype
    source, target : str
        Orientation codes.

    Returns
    -------
    Array of the same type and dtype, shape :func:`reorient_shape`; a view
    (numpy) or a lazy graph (dask), no voxel is interpolated.
    """
    if getattr(arr, "ndim", None) != 3:
        raise OrientationError(f"reorienting needs a 3-D volume, got shape {getattr(arr, 'shape', None)}")
    order, flips = orientation_map(source, target)
    out = arr.transpose(order)
    index = tuple(slice(None, None, -1) if f else slice(None) for f in flips)
    return out[index]


def reorient_points(points, source: str, target: str, shape: Sequence[int], scale: Sequence[float] | None = None):
    """Map point coordinates from ``source`` to ``target`` orientation.

    Parameters
    ----------
    points : array_like, shape (N, 3), float
        Coordinates along the source axes.
    source, target : str
        Orientation codes.
    shape : sequence of 3 int
        Shape of the source volume (flips need it).
    scale : sequence of 3 float, optional
        Source voxel size (micrometres). Without it the points are voxel
        coordinates (flip ``c -> n - 1 - c``); with it they are physical
        coordinates (flip ``p -> n s - p``).

    Returns
    -------
    numpy.ndarray, shape (N, 3), float64
        Coordinates along the target axes, in the same units.
    """
    m = orientation_matrix(source, target, shape, scale)
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise OrientationError(f"points must have shape (N, 3), got {pts.shape}")
    return pts @ m[:3, :3].T + m[:3, 3]


def orientation_matrix(source: str, target: str, shape: Sequence[int], scale: Sequence[float] | None = None):
    """Homogeneous 4 x 4 matrix of :func:`reorient_points` (``target = M @ [source, 1]``).

    Returns
    -------
    numpy.ndarray, shape (4, 4), float64
    """
    shape = _three(shape, "shape")
    order, flips = orientation_map(source, target)
    if scale is None:
        extent = np.asarray(shape, dtype=np.float64) - 1.0
    else:
        scale = _three(scale, "scale")
        extent = np.asarray(shape, dtype=np.float64) * np.asarray(scale, dtype=np.float64)
    m = np.zeros((4, 4))
    m[3, 3] = 1.0
    for k, (o, f) in enumerate(zip(order, flips)):
        m[k, o] = -1.0 if f else 1.0
        m[k, 3] = extent[o] if f else 0.0
    return m


def _three(values, name: str) -> tuple:
    try:
        out = tuple(values)
    except TypeError:
        raise OrientationError(f"{name} must have 3 entries, got {values!r}") from None
    if len(out) != 3:
        raise OrientationError(f"{name} must have 3 entries, got {values!r}")
    return out
