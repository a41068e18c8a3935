"""Where whole-volume work runs: a coarse grid chosen by physical resolution or voxel budget.

Masks, bias fields and thresholds are computed on a coarse version of the scan.
Its size must not grow with the brain, so it is chosen by a voxel budget
(``pipeline.coarse_max_voxels``, default :data:`DEFAULT_MAX_VOXELS`) or a physical
voxel size (``pipeline.coarse_um``), never by a fixed fraction of the scan. It is
read from the input's own pyramid when a stored level fits (no level-0 read), and
otherwise produced once, out of core, by block means of the coarsest stored level
that is fine enough.

:func:`plan_coarse` only decides; it reads nothing. A :class:`CoarsePlan` says
which stored level to read and by which integer factors to reduce it.

Examples
--------
>>> shapes = [(512, 2048, 2048), (512, 1024, 1024), (256, 512, 512), (128, 256, 256)]
>>> scales = [(4, 2, 2), (4, 4, 4), (8, 8, 8), (16, 16, 16)]
>>> p = plan_coarse(shapes, scales, max_voxels=2**23)
>>> p.level, p.factors, p.shape
(3, (1, 1, 1), (128, 256, 256))
>>> p = plan_coarse(shapes, scales, coarse_um=25.0)
>>> p.level, p.factors, p.scale
(2, (3, 3, 3), (24.0, 24.0, 24.0))
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from voxelflow.errors import ConfigError, InvalidInputError
from voxelflow.ops import downsample, estimate_bias_field

__all__ = ["CoarsePlan", "plan_coarse", "DEFAULT_MAX_VOXELS", "READ_CAP", "shrink_factors", "bias_field_on_budget",
           "level_shapes"]

#: Default voxel budget of the coarse grid: 2**23 (8.4 M) voxels, e.g. 128 x 256 x 256.
DEFAULT_MAX_VOXELS = 2**23

#: A stored level is read (and reduced) only if it has at most this many times the budget.
READ_CAP = 16


@dataclass(frozen=True)
class CoarsePlan:
    """How to obtain the coarse grid.

    Attributes
    ----------
    level : int
        Index of the stored pyramid level to read.
    factors : tuple of int
        Block-reduction factors applied to that level (all 1: the level is used as stored).
    shape : tuple of int
        Shape of the coarse grid, ``ceil(level shape / factors)``.
    scale : tuple of float
        Physical voxel size of the coarse grid (micrometres).
    read_voxels : int
        Voxels read to produce it (the level's size).
    """

    level: int
    factors: tuple[int, ...]
    shape: tuple[int, ...]
    scale: tuple[float, ...]
    read_voxels: int

    def as_dict(self) -> dict:
        """JSON-able description for ``run.json``."""
        return {"level": self.level, "factors": list(self.factors), "shape": list(self.shape),
                "scale_um": list(self.scale), "voxels": math.prod(self.shape), "read_voxels": self.read_voxels}


def _reduced(shape, factors) -> tuple[int, ...]:
    return tuple(-(-n // f) for n, f in zip(shape, factors))


def shrink_factors(shape: Sequence[int], scale: Sequence[float], max_voxels: int,
                   start: Sequence[int] | None = None) -> tuple[int, ...]:
    """Smallest integer factors (from ``start``) that bring ``shape`` within ``max_voxels``.

    Grows, one step at a time, the factor of the axis whose reduced voxel is the
    smallest physically, so the result tends towards isotropic voxels.

    Parameters
    ----------
    shape : sequence of int
    scale : sequence of float
        Voxel size per axis.
    max_voxels : int
        Budget, >= 1.
    start : sequence of int, optional
        Initial factors (default all 1).

    Returns
    -------
    tuple of int
    """
    f = [int(v) for v in (start or [1] * len(shape))]
    while math.prod(_reduced(shape, f)) > max_voxels:
        growable = [i for i in range(len(shape)) if f[i] < shape[i]]
        i = min(growable, key=lambda a: (f[a] * scale[a], -shape[a] / f[a]))
        f[i] += 1
    return tuple(f)


def plan_coarse(
    shapes: Sequence[Sequence[int]],
    scales: Sequence[Sequence[float]],
    *,
    max_voxels: int | None = None,
    coarse_um: float | None = None,
) -> CoarsePlan:
    """Choose the stored level and reduction factors of the coarse grid.

    Parameters
    ----------
    shapes : sequence of tuple of int
        Shape of every stored level, finest first (level 0 = the full-resolution
        array the pipeline segments).
    scales : sequence of tuple of float
        Voxel size of every level, same order.
    max_voxels : int, optional
        Upper bound of the coarse grid's voxel count (default :data:`DEFAULT_MAX_VOXELS`).
    coarse_um : float, optional
        Wanted voxel size in micrometres: the grid's voxels are at most this
        large on every axis (an axis already coarser at level 0 keeps its size)
        unless the budget demands coarser.

    Returns
    -------
    CoarsePlan
        Without ``coarse_um``: the finest grid within the budget that some level
        gives as stored or by reduction, reading at most :data:`READ_CAP` times
        the budget when possible; ties go to the level with fewer voxels to read.
        With ``coarse_um``: voxels as close to ``coarse_um`` as integer factors
        of some level allow without exceeding it (unless the budget forces
        coarser), from the level that needs the fewest voxels read.

    Raises
    ------
    ConfigError
        If the budget or resolution is not positive, or the lists disagree.
    """
    if len(shapes) != len(scales) or not shapes:
        raise ConfigError(f"pyramid description mismatch: {len(shapes)} shapes, {len(scales)} scales")
    budget = DEFAULT_MAX_VOXELS if max_voxels is None else int(max_voxels)
    if budget < 1:
        raise ConfigError(f"pipeline.coarse_max_voxels: expected an integer >= 1, got {max_voxels!r}")
    if coarse_um is not None and not coarse_um > 0:
        raise ConfigError(f"pipeline.coarse_um: expected a number > 0 (micrometres), got {coarse_um!r}")
    candidates = []
    for level, (shape, scale) in enumerate(zip(shapes, scales)):
        shape, scale = tuple(int(n) for n in shape), tuple(float(s) for s in scale)
        start = [1] * len(shape)
        if coarse_um is not None:
            if any(s > coarse_um * (1 + 1e-6) and s > s0 * (1 + 1e-6) for s, s0 in zip(scale, scales[0])):
                continue  # this level is already coarser than asked on some axis
            start = [max(1, int(coarse_um / s + 1e-6)) for s in scale]
            start = [min(f, n) for f, n in zip(start, shape)]
        factors = shrink_factors(shape, scale, budget, start)
        out = _reduced(shape, factors)
        candidates.append(CoarsePlan(level, factors, out, tuple(f * s for f, s in zip(factors, scale)),
                                     math.prod(shape)))
    if not candidates:  # every stored level is coarser than coarse_um on some axis
        return plan_coarse(shapes[:1], scales[:1], max_voxels=budget, coarse_um=None)
    if coarse_um is not None:
        # closest to the wanted size from below (the budget may force coarser), then fewest reads
        return max(candidates, key=lambda c: (round(max(c.scale), 6), -c.read_voxels))
    cheap = [c for c in candidates if c.read_voxels <= READ_CAP * budget] or [candidates[-1]]
    return max(cheap, key=lambda c: (math.prod(c.shape), -c.read_voxels))


def level_shapes(shape: Sequence[int], scales: Sequence[Sequence[float]]) -> list[tuple[int, ...]]:
    """Shapes of the pyramid levels over the box of an opened (possibly cropped) level-0 array.

    Parameters
    ----------
    shape : tuple of int
        Shape of the full-resolution array the pipeline segments.
    scales : sequence of tuple of float
        Voxel size of that array's level and of every coarser level, finest first.

    Returns
    -------
    list of tuple of int
        ``ceil(shape * scale0 / scale_L)`` for every level.
    """
    s0 = scales[0]
    return [tuple(max(1, math.ceil(n * a / b - 1e-9)) for n, a, b in zip(shape, s0, s)) for s in scales]


def bias_field_on_budget(coarse, keep, spacing: Sequence[float], max_voxels: int) -> np.ndarray:
    """N4 bias field of the coarse grid, fitted on block means within a voxel budget.

    N4 fits a smooth B-spline field (a few control points per axis), which a
    few ten thousand voxels determine; its time grows with the voxels it is
    given, so the coarse grid is reduced by block means (factors from
    :func:`shrink_factors`) before the fit. With the coarse grid already within
    the budget this is exactly :func:`voxelflow.ops.estimate_bias_field`.

    Parameters
    ----------
    coarse : array, shape (Z, Y, X), numeric
        Coarse image.
    keep : array of bool, shape of ``coarse``
        Voxels to fit on (the tissue). A reduced voxel is kept when its whole
        block is (or, if that leaves nothing, when any of it is).
    spacing : tuple of 3 float
        Voxel size of ``coarse``.
    max_voxels : int
        Budget of the fit.

    Returns
    -------
    numpy.ndarray, shape ``ceil(coarse.shape / factors)``, float32
        Multiplicative field, mean 1 inside the fitted mask, covering the same
        box as ``coarse``.

    Raises
    ------
    InvalidInputError
        If ``keep`` has another shape or is empty.
    """
    keep_np = np.asarray(keep, dtype=bool)
    if keep_np.shape != tuple(coarse.shape):
        raise InvalidInputError(f"bias mask shape {keep_np.shape} differs from the coarse shape {tuple(coarse.shape)}")
    if not keep_np.any():
        raise InvalidInputError("the bias-field mask is empty: the negative mask removes the whole coarse grid")
    factors = shrink_factors(coarse.shape, spacing, int(max_voxels))
    if all(f == 1 for f in factors):
        return estimate_bias_field(np.asarray(coarse), mask=keep_np, spacing=spacing)
    small = np.asarray(downsample(np.asarray(coarse, dtype=np.float32), factors, method="mean"))
    mask = np.asarray(downsample(keep_np, factors, method="min"))
    if not mask.any():
        mask = np.asarray(downsample(keep_np, factors, method="max"))
    return estimate_bias_field(small, mask=mask, spacing=tuple(s * f for s, f in zip(spacing, factors)))
