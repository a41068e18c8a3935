"""Object tables (LC): size filter and physical coordinates."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from voxelflow.errors import InvalidInputError

__all__ = ["filter_by_size", "physical_coordinates"]


def filter_by_size(table: pd.DataFrame, min_voxels: int = 0, max_voxels: int | None = None) -> pd.DataFrame:
    """The objects of ``min_voxels <= voxels <= max_voxels``, renumbered rows 0..n-1.

    Parameters
    ----------
    table : pandas.DataFrame
        Object table (LC) with a ``voxels`` column.
    min_voxels : int
    max_voxels : int, optional
        No upper bound when None.

    Returns
    -------
    pandas.DataFrame
        The kept rows in their order, index reset; columns unchanged.
    """
    if "voxels" not in table.columns:
        raise InvalidInputError(f"filter_by_size needs a 'voxels' column; the table has {list(table.columns)}")
    keep = table["voxels"] >= min_voxels
    if max_voxels is not None:
        keep &= table["voxels"] <= max_voxels
    return table.loc[keep].reset_index(drop=True)


def physical_coordinates(table: pd.DataFrame, scale: Sequence[float],
                         translation: Sequence[float] = (0.0, 0.0, 0.0)) -> pd.DataFrame:
    """The table with ``z_um, y_um, x_um`` (centroid position) and ``volume_um3`` added.

    Parameters
    ----------
    table : pandas.DataFrame
        Object table (LC) with voxel centroids ``z, y, x`` and ``voxels``.
    scale : sequence of 3 float
        Voxel size in micrometres (z, y, x).
    translation : sequence of 3 float
        Physical position of voxel 0.

    Returns
    -------
    pandas.DataFrame
        A copy: ``<axis>_um = <axis> * scale + translation``, ``volume_um3 = voxels * prod(scale)``.
    """
    if len(scale) != 3 or len(translation) != 3:
        raise InvalidInputError(f"scale and translation need 3 values (z, y, x), got {scale!r}, {translation!r}")
    out = table.copy()
    for axis, s, t in zip("zyx", scale, translation):
        out[f"{axis}_um"] = out[axis] * s + t
    out["volume_um3"] = out["voxels"] * float(np.prod(scale))
    return out
