"""Shape features of labelled objects in physical units, and shape filters (OS -> LC).

Cells are compact; vessels, fibres and plane artefacts are elongated or flat.
:func:`shape_table` measures every object of an ordinal segmentation (OS) from
its voxel count and second moments, gathered chunk by chunk and summed per id,
so objects crossing chunks are measured whole. :func:`shape_filter` keeps the
rows whose features lie in given ranges.
"""

from __future__ import annotations

import dask
import dask.array as da
import fastremap
import numpy as np
import pandas as pd

from voxelflow.errors import InvalidInputError
from voxelflow.ops._filter_args import as_spacing
from voxelflow.ops._halo import iter_blocks

__all__ = ["shape_table", "shape_filter", "SHAPE_COLUMNS"]

#: Columns of :func:`shape_table` besides ``id``.
SHAPE_COLUMNS = ("volume_um3", "equivalent_diameter_um", "axis_major_um", "axis_minor_um", "elongation",
                 "sphericity")

_PAIRS = ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))


def _block_moments(block, start, spacing):
    """ids, counts, coordinate sums (um) and sums of coordinate products (um^2) of one chunk."""
    block = np.asarray(block)
    fg = np.nonzero(block)
    if fg[0].size == 0:
        return np.zeros(0, np.int64), np.zeros((0, 10))
    labels = block[fg]
    if labels.min() < 0:
        raise InvalidInputError(f"OS labels must be >= 0, found {labels.min()}")
    dense, mapping = fastremap.renumber(labels, in_place=False, preserve_zero=False)
    ids = np.empty(len(mapping), np.int64)
    for old, new in mapping.items():
        ids[new - 1] = old
    grp = dense.astype(np.intp) - 1
    n = len(ids)
    coords = [(f.astype(np.float64) + o) * s for f, o, s in zip(fg, start, spacing)]
    out = np.empty((n, 10))
    out[:, 0] = np.bincount(grp, minlength=n)
    for a in range(3):
        out[:, 1 + a] = np.bincount(grp, weights=coords[a], minlength=n)
    for j, (a, b) in enumerate(_PAIRS):
        out[:, 4 + j] = np.bincount(grp, weights=coords[a] * coords[b], minlength=n)
    return ids, out


def shape_table(os_arr, spacing) -> pd.DataFrame:
    """Volume, equivalent diameter, principal axes, elongation and sphericity of every object.

    Parameters
    ----------
    os_arr : dask.array.Array or numpy.ndarray, shape (Z, Y, X), integer
        Ordinal segmentation (OS): 0 = background, one id per object (ids may
        be any non-negative integers; an object may span many chunks).
    spacing : sequence of 3 float
        Voxel size in um (z, y, x).

    Returns
    -------
    pandas.DataFrame
        One row per id, sorted by ``id`` (int64), with float64 columns:

        - ``volume_um3``: voxels x voxel volume (``regionprops(..., spacing).area``);
        - ``equivalent_diameter_um``: diameter of the ball of that volume
          (``equivalent_diameter_area``);
        - ``axis_major_um``, ``axis_minor_um``: ``regionprops`` ``axis_major_length``
          / ``axis_minor_length`` with ``spacing`` (full axis lengths of the
          ellipsoid with the same second moments of the voxel centres);
        - ``elongation``: longest over shortest axis of the same ellipsoid when
          every voxel is counted as a box of its size (second moments plus
          ``spacing**2 / 12`` per axis), so an object one plane thick has a
          finite elongation; 1 for a ball;
        - ``sphericity``: ``equivalent_diameter_um`` over that ellipsoid's
          longest axis: 1 for a ball, towards 0 for rods and plates.

    Raises
    ------
    voxelflow.errors.InvalidInputError
        Not a 3-D integer array, negative labels, bad spacing.
    """
    arr = os_arr if isinstance(os_arr, da.Array) else da.asarray(os_arr)
    if arr.ndim != 3 or arr.dtype.kind not in "iu":
        raise InvalidInputError(f"shape_table needs a 3-D integer OS, got {arr.ndim} axes of {arr.dtype}")
    sp = as_spacing(spacing, 3)
    parts = arr.to_delayed()  # one graph for all chunks: upstream work is shared
    tasks = [dask.delayed(_block_moments)(parts[b.index], b.start, tuple(sp)) for b in iter_blocks(arr.chunks)]
    parts = dask.compute(*tasks)
    ids = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int64)
    rows = np.concatenate([p[1] for p in parts]) if parts else np.zeros((0, 10))
    uniq, group = np.unique(ids, return_inverse=True)
    sums = np.zeros((uniq.size, 10))
    np.add.at(sums, group, rows)
    return _features(uniq, sums, sp)


def _features(ids: np.ndarray, sums: np.ndarray, spacing: np.ndarray) -> pd.DataFrame:
    n = sums[:, 0]
    mean = sums[:, 1:4] / n[:, None]
    cov = np.zeros((len(ids), 3, 3))
    for j, (a, b) in enumerate(_PAIRS):
        c = sums[:, 4 + j] / n - mean[:, a] * mean[:, b]
        cov[:, a, b] = c
        cov[:, b, a] = c
    lam = np.clip(np.linalg.eigvalsh(cov), 0.0, None) if len(ids) else np.zeros((0, 3))
    boxed = np.clip(np.linalg.eigvalsh(cov + np.diag(spacing**2 / 12.0)), 0.0, None) if len(ids) else lam
    volume = n * float(np.prod(spacing))
    diameter = np.cbrt(6.0 * volume / np.pi)
    major = np.sqrt(20.0 * lam[:, 2])
    minor = np.sqrt(20.0 * lam[:, 0])
    boxed_major = np.sqrt(20.0 * boxed[:, 2])
    boxed_minor = np.sqrt(20.0 * boxed[:, 0])
    return pd.DataFrame({
        "id": ids.astype(np.int64),
        "volume_um3": volume,
        "equivalent_diameter_um": diameter,
        "axis_major_um": major,
        "axis_minor_um": minor,
        "elongation": boxed_major / boxed_minor,
        "sphericity": diameter / boxed_major,
    })


def shape_filter(table: pd.DataFrame, *, volume_um3: tuple[float | None, float | None] = (None, None),
                 max_elongation: float | None = None, min_sphericity: float | None = None) -> pd.Series:
    """Which rows of an object table have a cell-like shape.

    Parameters
    ----------
    table : pandas.DataFrame
        With the columns of :func:`shape_table` that the given limits use.
    volume_um3 : (low, high)
        Inclusive volume range in um^3; None = open end.
    max_elongation : float, optional
        Keep ``elongation <= max_elongation``.
    min_sphericity : float, optional
        Keep ``sphericity >= min_sphericity``.

    Returns
    -------
    pandas.Series of bool, index of ``table``
    """
    keep = pd.Series(True, index=table.index)
    checks = [("volume_um3", volume_um3[0], "ge"), ("volume_um3", volume_um3[1], "le"),
              ("elongation", max_elongation, "le"), ("sphericity", min_sphericity, "ge")]
    for column, limit, op in checks:
        if limit is None:
            continue
        if column not in table.columns:
            raise InvalidInputError(f"the object table has no {column!r} column; compute it with shape_table")
        keep &= getattr(table[column], op)(float(limit))
    return keep
