"""Compiled 1-D passes along one axis of a 3-D float32 block (weighted sums, running max/min).

Every pass reads its neighbours through an *index map* ``idx`` of shape
``(n, 2 * radius + 1)``: ``idx[i, k]`` is the input position that stands for
position ``i + k - radius`` (inside the array it is that position; outside, the
boundary mode decides). So one kernel serves every ``scipy.ndimage`` boundary
mode, and a block padded with a halo sees exactly what the whole array sees.

Passes along z and y add whole rows/planes scaled by one weight at a time, so
the inner loop runs over contiguous memory; the pass along x copies each row
into a padded buffer first. Sums are accumulated in float32 (results agree
with scipy's float64 accumulation to float32 rounding).
"""

from __future__ import annotations

import logging

import numba
import numpy as np

__all__ = ["index_map", "gaussian_weights", "correlate_axis", "extremum_axis", "MODES", "by_tile"]

MODES = ("reflect", "mirror", "nearest")

_on_disk_cache = True


#: Compiler freedoms of the arithmetic kernels: multiply-adds may be fused and sums reordered (so loops
#: vectorise); NaN and infinity keep their meaning.
FAST_MATH = {"contract", "reassoc"}


def _compile(fn=None, *, fast: bool = False):
    """``numba.njit(nogil=True)`` with an on-disk cache where a cache folder is writable.

    Used as ``@_compile`` or ``@_compile(fast=True)`` (with :data:`FAST_MATH`).
    """
    if fn is None:
        return lambda f: _compile(f, fast=fast)
    global _on_disk_cache
    opts = {"nogil": True, "fastmath": FAST_MATH} if fast else {"nogil": True}
    if _on_disk_cache:
        try:
            return numba.njit(cache=True, **opts)(fn)
        except RuntimeError as exc:  # no writable cache location (read-only install and home)
            _on_disk_cache = False
            logging.getLogger(__name__).warning(
                "%s; the filter kernels compile in every process (set NUMBA_CACHE_DIR to a writable folder)", exc
            )
    return numba.njit(**opts)(fn)


def index_map(n: int, radius: int, mode: str) -> np.ndarray:
    """Input position read for every output position and kernel tap, shape (n, 2 * radius + 1), int64.

    Modes follow ``scipy.ndimage``: ``reflect`` (d c b a | a b c d | d c b a),
    ``mirror`` (d c b | a b c d | c b a), ``nearest`` (a a a | a b c d | d d d). (``wrap`` is not offered: a block's
    halo cannot see the far side of the array.)
    """
    j = np.arange(n, dtype=np.int64)[:, None] + np.arange(-radius, radius + 1, dtype=np.int64)[None, :]
    if mode == "reflect":
        j = np.mod(j, 2 * n)
        j = np.where(j >= n, 2 * n - 1 - j, j)
    elif mode == "mirror":
        if n == 1:
            return np.zeros_like(j)
        j = np.mod(j, 2 * n - 2)
        j = np.where(j >= n, 2 * n - 2 - j, j)
    elif mode == "nearest":
        j = np.clip(j, 0, n - 1)
    else:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return np.ascontiguousarray(j)


def gaussian_weights(sigma: float, order: int, truncate: float) -> np.ndarray:
    """Sampled Gaussian (order 0) or its second derivative (order 2), as ``scipy.ndimage.gaussian_filter1d``.

    The radius is ``int(truncate * sigma + 0.5)``; the order-0 kernel sums to 1
    and the order-2 kernel is ``(x**2 / sigma**4 - 1 / sigma**2)`` times it.
    Returns float64 weights of length ``2 * radius + 1``.
    """
    radius = int(truncate * float(sigma) + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    s2 = float(sigma) ** 2
    phi = np.exp(-0.5 / s2 * x * x)
    phi /= phi.sum()
    if order == 0:
        return phi
    if order == 2:
        return phi * (x * x / (s2 * s2) - 1.0 / s2)
    raise ValueError(f"order must be 0 or 2, got {order}")


@_compile
def _sum_z(src, dst, w, idx, accumulate):
    nz, ny, nx = dst.shape
    for z in range(nz):
        out = dst[z]
        if not accumulate:
            out[:, :] = 0.0
        for k in range(w.size):
            wk = np.float32(w[k])
            plane = src[idx[z, k]]
            for y in range(ny):
                for x in range(nx):
                    out[y, x] += wk * plane[y, x]


@_compile
def _sum_y(src, dst, w, idx, accumulate):
    nz, ny, nx = dst.shape
    for z in range(nz):
        for y in range(ny):
            out = dst[z, y]
            if not accumulate:
                out[:] = 0.0
            for k in range(w.size):
                wk = np.float32(w[k])
                row = src[z, idx[y, k]]
                for x in range(nx):
                    out[x] += wk * row[x]


@_compile
def _sum_x(src, dst, w, idx, accumulate):
    nz, ny, nx = dst.shape
    taps = w.size
    buf = np.empty(nx + taps - 1, dtype=np.float32)
    for z in range(nz):
        for y in range(ny):
            row = src[z, y]
            # idx[i, 0] .. idx[nx-1, taps-1] cover positions -radius .. nx-1+radius in order
            for i in range(nx):
                buf[i] = row[idx[i, 0]]
            for k in range(1, taps):
                buf[nx - 1 + k] = row[idx[nx - 1, k]]
            out = dst[z, y]
            if not accumulate:
                out[:] = 0.0
            for k in range(taps):
                wk = np.float32(w[k])
                for x in range(nx):
                    out[x] += wk * buf[x + k]


@_compile
def _ext_z(src, dst, idx, is_max):
    nz, ny, nx = dst.shape
    for z in range(nz):
        out = dst[z]
        out[:, :] = src[idx[z, 0]]
        for k in range(1, idx.shape[1]):
            plane = src[idx[z, k]]
            for y in range(ny):
                for x in range(nx):
                    v = plane[y, x]
                    if is_max:
                        if v > out[y, x]:
                            out[y, x] = v
                    elif v < out[y, x]:
                        out[y, x] = v


@_compile
def _ext_y(src, dst, idx, is_max):
    nz, ny, nx = dst.shape
    for z in range(nz):
        for y in range(ny):
            out = dst[z, y]
            out[:] = src[z, idx[y, 0]]
            for k in range(1, idx.shape[1]):
                row = src[z, idx[y, k]]
                for x in range(nx):
                    v = row[x]
                    if is_max:
                        if v > out[x]:
                            out[x] = v
                    elif v < out[x]:
                        out[x] = v


@_compile
def _ext_x(src, dst, idx, is_max):
    nz, ny, nx = dst.shape
    taps = idx.shape[1]
    buf = np.empty(nx + taps - 1, dtype=np.float32)
    for z in range(nz):
        for y in range(ny):
            row = src[z, y]
            for i in range(nx):
                buf[i] = row[idx[i, 0]]
            for k in range(1, taps):
                buf[nx - 1 + k] = row[idx[nx - 1, k]]
            out = dst[z, y]
            out[:] = buf[:nx]
            for k in range(1, taps):
                for x in range(nx):
                    v = buf[x + k]
                    if is_max:
                        if v > out[x]:
                            out[x] = v
                    elif v < out[x]:
                        out[x] = v


_SUM = (_sum_z, _sum_y, _sum_x)
_EXT = (_ext_z, _ext_y, _ext_x)


def correlate_axis(src: np.ndarray, weights: np.ndarray, axis: int, mode: str,
                   out: np.ndarray | None = None, accumulate: bool = False) -> np.ndarray:
    """``scipy.ndimage.correlate1d`` of a 3-D float32 array with an odd-length kernel, in float32.

    Parameters
    ----------
    src : numpy.ndarray, shape (Z, Y, X), float32, C-contiguous
    weights : numpy.ndarray, shape (2 * r + 1,)
        Kernel; ``out[i] = sum_k weights[k] * src[i + k - r]`` along ``axis``.
    axis : {0, 1, 2}
    mode : str
        Boundary mode (see :func:`index_map`).
    out : numpy.ndarray, optional
        Output buffer (float32, shape of ``src``, not ``src`` itself).
    accumulate : bool
        Add into ``out`` instead of overwriting it.

    Returns
    -------
    numpy.ndarray, shape of ``src``, float32
    """
    if out is None:
        out = np.empty(src.shape, dtype=np.float32)
        accumulate = False
    radius = (len(weights) - 1) // 2
    idx = index_map(src.shape[axis], radius, mode)
    _SUM[axis](src, out, np.ascontiguousarray(weights, dtype=np.float32), idx, accumulate)
    return out


def extremum_axis(src: np.ndarray, radius: int, axis: int, mode: str, is_max: bool) -> np.ndarray:
    """``scipy.ndimage.maximum_filter1d`` / ``minimum_filter1d`` of size ``2 * radius + 1`` along ``axis``.

    Parameters
    ----------
    src : numpy.ndarray, shape (Z, Y, X), float32, C-contiguous
    radius : int
    axis : {0, 1, 2}
    mode : str
    is_max : bool
        Maximum (True) or minimum (False).

    Returns
    -------
    numpy.ndarray, shape of ``src``, float32
    """
    if radius == 0:
        return src.copy()
    out = np.empty(src.shape, dtype=np.float32)
    _EXT[axis](src, out, index_map(src.shape[axis], radius, mode), is_max)
    return out


@_compile
def _by_tile(data, levels, z0, y0, x0, ty, tx, op, floor, out):
    nz, ny, nx = data.shape
    for z in range(nz):
        for y in range(ny):
            lv_row = levels[z0 + z, (y0 + y) // ty]
            src, dst = data[z, y], out[z, y]
            # the row in runs of constant tile: [x, stop) lies in tile column (x0 + x) // tx
            x = 0
            while x < nx:
                b = (x0 + x) // tx
                stop = min(nx, (b + 1) * tx - x0)
                lv = lv_row[b]
                if op == 0:
                    d = max(lv, floor)
                    for i in range(x, stop):
                        dst[i] = np.float32(src[i]) / d
                elif op == 1:
                    for i in range(x, stop):
                        dst[i] = np.float32(src[i]) - lv
                else:
                    for i in range(x, stop):
                        dst[i] = np.float32(src[i]) > lv
                x = stop


def by_tile(data: np.ndarray, levels: np.ndarray, start, tile, op: str, floor: float = 1.0) -> np.ndarray:
    """Combine a 3-D block with one level per (plane, tile): ``divide``, ``subtract`` (float32) or ``greater`` (bool).

    Parameters
    ----------
    data : numpy.ndarray, shape (Z, Y, X), any real dtype
        A chunk whose first voxel sits at ``start`` in the whole array.
    levels : numpy.ndarray, shape (Z_all, n_tiles_y, n_tiles_x)
        One value per plane and tile of the whole array.
    start : tuple of 3 int
    tile : tuple of 2 int
        Tile size (y, x) in voxels.
    op : {'divide', 'subtract', 'greater'}
    floor : float
        Levels below it are raised to it before dividing.
    """
    code = {"divide": 0, "subtract": 1, "greater": 2}[op]
    lv = np.ascontiguousarray(levels, dtype=np.float32)
    out = np.empty(data.shape, dtype=bool if code == 2 else np.float32)
    _by_tile(np.ascontiguousarray(data), lv, int(start[0]), int(start[1]), int(start[2]), int(tile[0]),
             int(tile[1]), code, np.float32(floor), out)
    return out
