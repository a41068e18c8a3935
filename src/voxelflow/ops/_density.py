"""Density maps (LC -> CD): object counts per coarse voxel."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from voxelflow.io.blockreduce import normalize_factors
from voxelflow.ops._counts import count_per_block

__all__ = ["density_map"]


def density_map(lc: pd.DataFrame, shape: Sequence[int], factors: int | Sequence[int]) -> np.ndarray:
    """Count the objects whose centroid falls in each coarse voxel.

    Coarse voxel ``k`` covers fine voxels ``[k * f, (k + 1) * f)`` on every
    axis; a centroid ``c`` lies in fine voxel ``floor(c + 0.5)``. The grid is
    the one :func:`voxelflow.ops._resample.downsample` produces (last coarse
    voxel partial), so the map overlays a pyramid level of the same factors.

    Parameters
    ----------
    lc : pandas.DataFrame (LC) with columns ``z, y, x``
    shape : sequence of int
        Shape of the full-resolution volume.
    factors : int or sequence of int
        Fine voxels per coarse voxel along each axis.

    Returns
    -------
    numpy.ndarray, shape ceil(shape / factors), int64 (CD)
    """
    f = normalize_factors(factors, len(shape))
    return count_per_block(lc, shape, f, method="centroid")
