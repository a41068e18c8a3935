"""Where the tissue is, on a coarse level of a scan (IN -> BS)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.ndimage as ndi

from voxelflow.errors import InvalidInputError

__all__ = ["auto_negative_mask"]


def auto_negative_mask(coarse, scale: Sequence[float], edge_um: float, *, whole_brain: bool = False,
                       min_contrast: float = 1.6) -> np.ndarray:
    """Negative mask of a coarse level: outside the tissue, plus a shell of ``edge_um`` along its edge.

    The tissue is the largest bright component of the coarse image after an
    Otsu threshold on log intensity (holes filled); the shell is every coarse
    tissue voxel closer than ``edge_um`` plus two coarse voxel sizes to the
    outside, so every full-resolution voxel shallower than ``edge_um`` is
    removed even though a pooled coarse grid widens the tissue by up to a voxel. Lightsheet scans show
    bright artefacts right at the tissue edge, so they fall in the shell.

    On a crop or a partial brain the tissue runs on past the volume border, so
    by default the border is not a tissue edge: only the tissue's edges inside
    the volume get a shell. With ``whole_brain=True`` the volume border counts as
    outside (a whole brain that touches the border was cut there). When the
    voxels above the Otsu threshold are less than ``min_contrast`` times
    brighter (mean) than those below, the scan has no dark outside (a crop
    inside the tissue) and everything is tissue.

    Parameters
    ----------
    coarse : numpy.ndarray or dask.array.Array, shape (Z, Y, X), numeric
        A coarse (max-pooled) level of the scan (IN); small enough to hold in memory.
    scale : sequence of 3 float
        Physical voxel size of ``coarse`` in micrometres (z, y, x).
    edge_um : float
        Shell depth in micrometres (>= 0).
    whole_brain : bool
        Treat the volume border as the tissue's edge.
    min_contrast : float
        Smallest ratio of mean tissue to mean outside intensity that counts as a
        tissue edge.

    Returns
    -------
    numpy.ndarray of bool, shape (Z, Y, X)
        True where objects must be discarded (BS).
    """
    from skimage.filters import threshold_otsu

    img = np.asarray(coarse, dtype=np.float32)
    if img.size and float(img.min()) < 0:
        img = img - float(img.min())  # signed scans (background-subtracted): log of a non-negative shift
    img = np.log1p(img)
    if img.ndim != 3 or len(scale) != 3:
        raise InvalidInputError(f"auto_negative_mask needs a 3-D image and 3 voxel sizes, got {img.shape}, {scale}")
    if not edge_um >= 0:
        raise InvalidInputError(f"edge_um must be a number >= 0, got {edge_um!r}")
    if img.size == 0 or float(img.max()) == float(img.min()):
        return np.zeros(img.shape, dtype=bool)
    tissue = img > threshold_otsu(img)
    linear = np.asarray(coarse, dtype=np.float64)
    if (~tissue).any() and linear[tissue].mean() < min_contrast * max(linear[~tissue].mean(), 1e-12):
        tissue = np.ones(img.shape, dtype=bool)
    lab, n = ndi.label(tissue)
    if n > 1:
        tissue = lab == (np.argmax(np.bincount(lab.ravel())[1:]) + 1)
    tissue = ndi.binary_fill_holes(tissue)
    if edge_um > 0 and (whole_brain or not tissue.all()):
        # padding with outside makes the volume border an edge; without it the
        # distance runs to the nearest outside voxel inside the volume
        pad = 1 if whole_brain else 0
        padded = np.pad(tissue, pad, constant_values=False) if pad else tissue
        depth = ndi.distance_transform_edt(padded, sampling=scale)
        if pad:
            depth = depth[1:-1, 1:-1, 1:-1]
        # two coarse voxels of slack: a coarse voxel straddling the tissue edge may
        # count as tissue (pooling widens the tissue by up to one voxel), and a kept
        # voxel's full-resolution voxels lie up to half a voxel nearer the edge than
        # its centre, whose distance is measured to the centre of an outside voxel
        tissue &= depth > edge_um + 2 * max(scale)
    return ~tissue
