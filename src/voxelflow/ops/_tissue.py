"""Where the tissue is, on a coarse level of a scan (IN -> BS)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.ndimage as ndi

from voxelflow.errors import InvalidInputError

__all__ = ["auto_negative_mask"]


def auto_negative_mask(coarse, scale: Sequence[float], edge_um: float) -> np.ndarray:
    """Negative mask of a coarse level: outside the tissue, plus a shell of ``edge_um`` along its edge.

    The tissue is the largest bright component of the coarse image after an
    Otsu threshold on log intensity (holes filled); the shell is every coarse
    tissue voxel closer than ``edge_um`` plus one coarse voxel size to the
    outside, so every full-resolution voxel shallower than ``edge_um`` is
    removed even though the coarse grid is max-pooled. Lightsheet scans show
    bright artefacts right at the tissue edge, so they fall in the shell. The
    volume border counts as outside when the tissue touches it.

    Parameters
    ----------
    coarse : numpy.ndarray or dask.array.Array, shape (Z, Y, X), numeric
        A coarse (max-pooled) level of the scan (IN); small enough to hold in memory.
    scale : sequence of 3 float
        Physical voxel size of ``coarse`` in micrometres (z, y, x).
    edge_um : float
        Shell depth in micrometres (>= 0).

    Returns
    -------
    numpy.ndarray of bool, shape (Z, Y, X)
        True where objects must be discarded (BS).
    """
    from skimage.filters import threshold_otsu

    img = np.log1p(np.asarray(coarse, dtype=np.float32))
    if img.ndim != 3 or len(scale) != 3:
        raise InvalidInputError(f"auto_negative_mask needs a 3-D image and 3 voxel sizes, got {img.shape}, {scale}")
    if not edge_um >= 0:
        raise InvalidInputError(f"edge_um must be a number >= 0, got {edge_um!r}")
    if img.size == 0 or float(img.max()) == float(img.min()):
        return np.zeros(img.shape, dtype=bool)
    tissue = img > threshold_otsu(img)
    lab, n = ndi.label(tissue)
    if n > 1:
        tissue = lab == (np.argmax(np.bincount(lab.ravel())[1:]) + 1)
    tissue = ndi.binary_fill_holes(tissue)
    if edge_um > 0:
        # pad so the volume border counts as outside when the tissue touches it
        depth = ndi.distance_transform_edt(np.pad(tissue, 1), sampling=scale)[1:-1, 1:-1, 1:-1]
        # one coarse voxel of slack: max pooling widens the tissue and a coarse
        # voxel spans full-resolution voxels of many depths
        tissue &= depth > edge_um + max(scale)
    return ~tissue
