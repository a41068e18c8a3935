"""Registration QC pictures: checkerboard and edge overlays of the warped template on the scan.

Both images are on the same coarse grid (the registered atlas template warped
into scan space, and the scan's registration channel). For each axis the middle
plane is drawn as a checkerboard (squares alternate scan / template) and as an
edge overlay (template edges in magenta over the grey scan), so a mis-warp
shows as broken boundaries between squares or edges off the anatomy.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from voxelflow.errors import InvalidInputError

__all__ = ["qc_planes"]


def qc_planes(scan, template=None, squares: int = 8, min_size: int = 256) -> dict[str, np.ndarray]:
    """Checkerboard and edge overlays of the middle plane along each axis.

    Parameters
    ----------
    scan : numpy.ndarray, shape (Z, Y, X), numeric
        The registration channel on the coarse grid.
    template : numpy.ndarray, same shape, numeric, optional
        The warped template; without it only the scan planes are drawn (e.g.
        when registration could not start).
    squares : int
        Checkerboard squares along the longer side of a plane.
    min_size : int
        Planes are enlarged (nearest) so their longer side has at least this many pixels.

    Returns
    -------
    dict of str -> numpy.ndarray (H, W, 3) uint8
        Keys ``checker_axis0``, ``edges_axis0``, ... (``scan_axis0``... without a template).
    """
    scan = np.asarray(scan, dtype=np.float32)
    if scan.ndim != 3:
        raise InvalidInputError(f"QC needs a 3-D scan, got shape {scan.shape}")
    if template is not None:
        template = np.asarray(template, dtype=np.float32)
        if template.shape != scan.shape:
            raise InvalidInputError(f"template shape {template.shape} differs from the scan shape {scan.shape}")
    out = {}
    for axis in range(3):
        s = _grey(np.take(scan, scan.shape[axis] // 2, axis=axis))
        zoom = max(1, int(np.ceil(min_size / max(s.shape))))
        s = np.kron(s, np.ones((zoom, zoom), np.float32))
        if template is None:
            out[f"scan_axis{axis}"] = _rgb(s, s, s)
            continue
        t = np.kron(_grey(np.take(template, template.shape[axis] // 2, axis=axis)), np.ones((zoom, zoom), np.float32))
        side = max(1, max(s.shape) // squares)
        yy, xx = np.indices(s.shape)
        board = ((yy // side) + (xx // side)) % 2 == 0
        checker = np.where(board, s, t)
        out[f"checker_axis{axis}"] = _rgb(checker, checker, checker)
        edges = ndi.gaussian_gradient_magnitude(t, 1.0)
        e = edges > np.percentile(edges, 90) if edges.max() > 0 else np.zeros_like(s, dtype=bool)
        out[f"edges_axis{axis}"] = _rgb(np.where(e, 1.0, s), np.where(e, 0.0, s), np.where(e, 1.0, s))
    return out


def _grey(plane: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(plane, [1, 99.5]) if plane.size else (0.0, 1.0)
    return np.clip((plane - lo) / (hi - lo), 0, 1).astype(np.float32) if hi > lo else np.zeros_like(plane)


def _rgb(r, g, b) -> np.ndarray:
    return (np.stack([r, g, b], axis=-1) * 255).round().astype(np.uint8)
