"""Point annotations from CSV files (ours, or a napari Points layer saved as CSV).

Accepted columns: ``z, y, x`` (or napari's ``axis-0, axis-1, axis-2``; 2-D files
``y, x`` / ``axis-0, axis-1``) and optionally a label column ``label`` or
``is_cell`` with values ``cell`` / ``not cell`` (also ``not_cell``, ``non-cell``),
``1`` / ``0`` or ``true`` / ``false``. napari saves world coordinates, which
for layers shown with the scan's scale are micrometres.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

from voxelflow.errors import InvalidInputError, InvalidPathError
from voxelflow.paths import as_vpath

__all__ = ["read_points"]

_TRUE = {"cell", "1", "true", "yes", "y", "positive"}
_FALSE = {"not cell", "not_cell", "non-cell", "non_cell", "noncell", "0", "false", "no", "n", "negative", "other"}


def read_points(path, *, voxel_size=None, unit: str = "um", label: bool | None = None):
    """Read annotated points in voxel coordinates.

    Parameters
    ----------
    path : str or os.PathLike
        CSV file (local path or fsspec URL).
    voxel_size : sequence of float, optional
        Micrometres per voxel; needed when ``unit='um'``.
    unit : {'um', 'voxel'}
        Unit of the coordinates in the file.
    label : bool, optional
        Label of every point when the file has no label column (a file of cells
        only, or of non-cells only).

    Returns
    -------
    points : ndarray of float64, shape (n, ndim)
        Voxel coordinates.
    is_cell : ndarray of bool, shape (n,)

    Raises
    ------
    voxelflow.errors.InvalidPathError
        The file cannot be read.
    voxelflow.errors.InvalidInputError
        Missing coordinate columns, unknown label values, or no labels at all.
    """
    source = as_vpath(path)
    try:
        table = pd.read_csv(io.BytesIO(source.read_bytes()))
    except (OSError, ValueError) as exc:
        raise InvalidPathError(f"cannot read the points file {source.url}: {exc}") from exc
    table.columns = [str(c).strip().lower() for c in table.columns]
    for names in (["z", "y", "x"], ["axis-0", "axis-1", "axis-2"], ["y", "x"], ["axis-0", "axis-1"]):
        if all(n in table.columns for n in names):
            coords = table[names].to_numpy(np.float64)
            break
    else:
        raise InvalidInputError(
            f"{source.url}: expected coordinate columns z, y, x (or napari's axis-0, axis-1, axis-2), "
            f"got {list(table.columns)}"
        )
    if unit not in ("um", "voxel"):
        raise InvalidInputError(f"unit must be 'um' or 'voxel', got {unit!r}")
    if unit == "um":
        if voxel_size is None:
            raise InvalidInputError(f"{source.url}: coordinates in micrometres need the voxel size")
        coords = coords / np.broadcast_to(np.asarray(voxel_size, float), (coords.shape[1],))
    column = next((c for c in ("label", "is_cell") if c in table.columns), None)
    if column is None:
        if label is None:
            raise InvalidInputError(
                f"{source.url} has no 'label' column; give the label of all its points (cells or not cells)"
            )
        return coords, np.full(len(coords), bool(label))
    values = table[column].astype(str).str.strip().str.lower()
    unknown = sorted(set(values) - _TRUE - _FALSE)
    if unknown:
        raise InvalidInputError(
            f"{source.url}: unknown values {unknown} in column {column!r}; expected cell / not cell, 1 / 0, true / false"
        )
    return coords, values.isin(_TRUE).to_numpy()
