"""Compiled separable Gaussian and Laplacian-of-Gaussian of a padded 3-D block, one output plane at a time.

Each output plane is produced while its data is in cache: the pass along z
writes one (Y, X) plane buffer, the pass along y one row buffer per output row,
and the pass along x the output row. Only the *core* of the block (the chunk
without its halo) is computed. Neighbours are read through index maps
(:func:`voxelflow.ops._kernels.index_map`) of the padded block, so at an array
border the boundary mode applies exactly as ``scipy.ndimage`` applies it.

Sums are accumulated in float32 and may be reordered and fused into
multiply-adds by the compiler (results agree with scipy's float64 sums to
float32 rounding).
"""

from __future__ import annotations

import numpy as np

from voxelflow.ops._kernels import _compile, gaussian_weights, index_map

__all__ = ["gaussian_core", "log_core"]


@_compile(fast=True)
def _x_pass(row_a, row_b, wa, wb, ix, x0, x1, buf_a, buf_b, out):
    """``out[i] = sum_k wa[k] row_a[pos] + wb[k] row_b[pos]`` for core positions ``x0 .. x1`` (row_b unused if wb empty)."""
    n = x1 - x0
    taps = wa.size
    two = wb.size > 0
    lo = x0 - (taps - 1) // 2
    if lo >= 0 and lo + n + taps - 1 <= row_a.size:
        # the kernel's reach lies inside the row (a block with its whole halo): read it in place
        src_a, src_b = row_a[lo:], row_b[lo:]
    else:  # the boundary mode decides what lies beyond the array's edge: gather through the index map
        for i in range(n):
            buf_a[i] = row_a[ix[x0 + i, 0]]
        for k in range(1, taps):
            buf_a[n - 1 + k] = row_a[ix[x1 - 1, k]]
        if two:
            for i in range(n):
                buf_b[i] = row_b[ix[x0 + i, 0]]
            for k in range(1, taps):
                buf_b[n - 1 + k] = row_b[ix[x1 - 1, k]]
        src_a, src_b = buf_a[0:], buf_b[0:]
    out[:] = 0.0
    for k in range(taps):
        w = wa[k]
        if two:
            v = wb[k]
            for i in range(n):
                out[i] += w * src_a[i + k] + v * src_b[i + k]
        else:
            for i in range(n):
                out[i] += w * src_a[i + k]


@_compile(fast=True)
def _gaussian_planes(data, z0, z1, y0, y1, x0, x1, wz, iz, wy, iy, wx, ix, out):
    nz, ny, nx = data.shape
    plane = np.empty((ny, nx), np.float32)
    row = np.empty(nx, np.float32)
    buf = np.empty(x1 - x0 + wx.size - 1, np.float32)
    none = np.empty(0, np.float32)
    for z in range(z0, z1):
        plane[:, :] = 0.0
        for k in range(wz.size):
            w = wz[k]
            src = data[iz[z, k]]
            for y in range(ny):
                s, p = src[y], plane[y]
                for x in range(nx):
                    p[x] += w * s[x]
        for y in range(y0, y1):
            row[:] = 0.0
            for k in range(wy.size):
                w = wy[k]
                s = plane[iy[y, k]]
                for x in range(nx):
                    row[x] += w * s[x]
            _x_pass(row, row, wx, none, ix, x0, x1, buf, buf, out[z - z0, y - y0])


@_compile(fast=True)
def _log_planes(data, z0, z1, y0, y1, x0, x1, gz, dz, iz, gy, dy, iy, gx, dx, ix, out):
    """``sum_a d2_a (x) g_others`` per output plane: z gives S = g_z * data and L = d2_z * data, then
    A = g_y L + d2_y S and B = g_y S along y, and the output g_x A + d2_x B along x."""
    nz, ny, nx = data.shape
    smooth = np.empty((ny, nx), np.float32)
    lap = np.empty((ny, nx), np.float32)
    row_a = np.empty(nx, np.float32)
    row_b = np.empty(nx, np.float32)
    buf_a = np.empty(x1 - x0 + gx.size - 1, np.float32)
    buf_b = np.empty(x1 - x0 + gx.size - 1, np.float32)
    has_z = dz.size > 0
    for z in range(z0, z1):
        smooth[:, :] = 0.0
        lap[:, :] = 0.0
        for k in range(gz.size):
            g = gz[k]
            src = data[iz[z, k]]
            if has_z:
                d = dz[k]
                for y in range(ny):
                    s, ps, pl = src[y], smooth[y], lap[y]
                    for x in range(nx):
                        v = s[x]
                        ps[x] += g * v
                        pl[x] += d * v
            else:
                for y in range(ny):
                    s, ps = src[y], smooth[y]
                    for x in range(nx):
                        ps[x] += g * s[x]
        for y in range(y0, y1):
            row_a[:] = 0.0
            row_b[:] = 0.0
            for k in range(gy.size):
                g, d = gy[k], dy[k]
                r = iy[y, k]
                s, l2 = smooth[r], lap[r]
                for x in range(nx):
                    row_a[x] += g * l2[x] + d * s[x]
                    row_b[x] += g * s[x]
            _x_pass(row_a, row_b, gx, dx, ix, x0, x1, buf_a, buf_b, out[z - z0, y - y0])


def _axis(sigma: float, truncate: float, n: int, mode: str, order: int = 0):
    w = gaussian_weights(sigma, order, truncate) if sigma > 0 else np.ones(1)
    return np.ascontiguousarray(w, dtype=np.float32), index_map(n, (len(w) - 1) // 2, mode)


def _bounds(core) -> tuple[int, ...]:
    return tuple(v for s in core for v in (int(s.start), int(s.stop)))


def gaussian_core(data: np.ndarray, core, sigmas, truncate: float, mode: str) -> np.ndarray:
    """``scipy.ndimage.gaussian_filter`` of a padded block, evaluated on its core only.

    Parameters
    ----------
    data : numpy.ndarray, shape (Z, Y, X), float32, C-contiguous
        The chunk plus its halo (clipped at the array border).
    core : tuple of 3 slice
        The chunk inside ``data``.
    sigmas : sequence of 3 float
        Standard deviation in voxels per axis (0: that axis is not smoothed).
    truncate : float
    mode : str
        Boundary mode (:data:`voxelflow.ops._kernels.MODES`).

    Returns
    -------
    numpy.ndarray, shape of the core, float32
    """
    (wz, iz), (wy, iy), (wx, ix) = (_axis(s, truncate, n, mode) for s, n in zip(sigmas, data.shape))
    out = np.empty(tuple(s.stop - s.start for s in core), np.float32)
    _gaussian_planes(data, *_bounds(core), wz, iz, wy, iy, wx, ix, out)
    return out


def log_core(data: np.ndarray, core, sigmas, spacing, truncate: float, mode: str, scale: float) -> np.ndarray:
    """``scale * sum_a gaussian_filter(data, sigmas, order=e_a) / spacing[a]**2`` on the core of a padded block.

    Parameters
    ----------
    data : numpy.ndarray, shape (Z, Y, X), float32, C-contiguous
    core : tuple of 3 slice
    sigmas : sequence of 3 float
        Standard deviation in voxels; a 0 along z filters every plane on its own
        (no term and no smoothing along z). y and x must be > 0.
    spacing : sequence of 3 float
        Voxel size (the derivative along axis ``a`` is divided by ``spacing[a]**2``).
    truncate : float
    mode : str
    scale : float
        Factor of the whole sum (``-sigma_um**2`` for the scale-normalised negative LoG).

    Returns
    -------
    numpy.ndarray, shape of the core, float32
    """
    parts = []
    for a in range(3):
        g, idx = _axis(sigmas[a], truncate, data.shape[a], mode)
        d = (gaussian_weights(sigmas[a], 2, truncate) * (scale / spacing[a] ** 2) if sigmas[a] > 0
             else np.zeros(0))
        parts += [g, np.ascontiguousarray(d, dtype=np.float32), idx]
    out = np.empty(tuple(s.stop - s.start for s in core), np.float32)
    _log_planes(data, *_bounds(core), *parts, out)
    return out
