"""White top-hat sized in micrometres (IN -> IN): the image minus its grey opening by a box, float32.

Equals ``scipy.ndimage.white_tophat`` of the whole float32 array for any
chunking: each chunk is opened with a halo of twice the box half-width.
"""

from __future__ import annotations

import dask.array as da

from voxelflow.ops._filter_args import as_image, as_length, as_mode, as_spacing, voxel_lengths
from voxelflow.ops._filter_map import as3, map_filter
from voxelflow.ops._kernels import extremum_axis

__all__ = ["white_tophat"]


def _tophat_block(data, radii, mode):
    opened = data
    for is_max in (False, True):
        for axis, r in enumerate(radii):
            if r > 0:
                opened = extremum_axis(opened, r, axis, mode, is_max)
    return data - opened


def white_tophat(img, radius_um: float, spacing, *, per_plane: bool = False, mode: str = "reflect") -> da.Array:
    """Image minus its grey opening by a box: keeps bright details smaller than the box.

    Parameters
    ----------
    img : dask.array.Array or numpy.ndarray, shape (Z, Y, X) or (Y, X), numeric
    radius_um : float
        Half-width of the box in micrometres; it spans ``2 * round(radius_um / spacing) + 1``
        voxels per axis (objects wider than that are removed).
    spacing : sequence of float
        Voxel size in um per axis.
    per_plane : bool
        A flat (y, x) box: each plane on its own.
    mode : str
        Boundary mode (scipy's meaning).

    Returns
    -------
    dask.array.Array, shape and chunks of ``img``, float32
        ``scipy.ndimage.white_tophat(img.astype(float32), size=2 * r + 1, mode=mode)``.
    """
    img = as_image(img)
    sp = as_spacing(spacing, img.ndim)
    radii = [int(round(v)) for v in voxel_lengths(as_length(radius_um, "radius_um"), sp, per_plane)]
    depth = [2 * r for r in radii]
    return map_filter(img, depth, _tophat_block, (as3(radii, img.ndim), as_mode(mode)), "vf-tophat")
