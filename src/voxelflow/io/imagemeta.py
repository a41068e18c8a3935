"""Metadata of an opened image for every input format, in the one shape consumers know.

Every reader (TIFF planes, TIFF stacks, Imaris, N5) describes what it found as an
:class:`ImageFacts`; :func:`build_meta` turns it into the same
:class:`~voxelflow.io.ome_zarr.metadata.OmeMeta` that OME-Zarr images get, after
resolving the voxel size: from the file, overridden by the caller's ``scale_um``,
and an error (never a silent 1 um) when neither gives it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from voxelflow.errors import InvalidInputError
from voxelflow.io.ome_zarr.metadata import OmeMeta, axis_type

__all__ = ["ImageFacts", "build_meta", "length_in_um", "level_index", "override_scale"]

MICROMETER = "micrometer"

_UM_PER_UNIT = {
    "pm": 1e-6, "picometer": 1e-6,
    "a": 1e-4, "å": 1e-4, "angstrom": 1e-4,
    "nm": 1e-3, "nanometer": 1e-3, "nanometre": 1e-3,
    "um": 1.0, "µm": 1.0, "μm": 1.0, "\\u00b5m": 1.0, "micron": 1.0, "microns": 1.0,
    "micrometer": 1.0, "micrometre": 1.0,
    "mm": 1e3, "millimeter": 1e3, "millimetre": 1e3,
    "cm": 1e4, "centimeter": 1e4, "centimetre": 1e4,
    "m": 1e6, "meter": 1e6, "metre": 1e6,
    "inch": 25400.0, "in": 25400.0,
}


def length_in_um(value, unit: str | None, where: str) -> float | None:
    """A length in micrometres, or None when ``unit`` says the image is uncalibrated.

    Parameters
    ----------
    value : float
        The length in ``unit``.
    unit : str or None
        Unit name as files write it (``'um'``, ``'µm'``, ``'micron'``, ``'nm'``,
        ``'mm'``...). None or ``'pixel'`` mean no physical calibration.
    where : str
        The file and field, for the error message.

    Raises
    ------
    InvalidInputError
        If the unit is unknown or the value is not a positive finite number.
    """
    if unit is None or str(unit).strip().lower() in ("", "pixel", "pixels", "px"):
        return None
    factor = _UM_PER_UNIT.get(str(unit).strip().lower())
    if factor is None:
        raise InvalidInputError(f"{where}: unknown length unit {unit!r}; expected one of nm, um, mm, cm, m")
    v = float(value)
    if not math.isfinite(v) or v <= 0:
        raise InvalidInputError(f"{where}: voxel size must be positive and finite, got {value!r} {unit}")
    return v * factor


@dataclass(frozen=True)
class ImageFacts:
    """What a reader found in a file, before the voxel size is resolved.

    Attributes
    ----------
    url : str
        The input location.
    format : str
        ``'tiff-planes'``, ``'tiff'``, ``'imaris'``, ``'n5'``.
    version : str
        The format's own version, ``''`` if it has none.
    name : str or None
        Image name stored in the file.
    axes : tuple of str
        Names from ``t, c, z, y, x`` in that order.
    levels : tuple of str
        Names of the pyramid levels, finest first.
    shapes : tuple of tuple of int
        Array shape of every level.
    scale0 : tuple of (float or None)
        Voxel size of level 0 per axis in micrometres for space axes (None where the
        file does not give it), 1.0 for ``t``/``c``.
    translation0 : tuple of float
        Physical position of voxel 0 of level 0 (micrometres for space axes).
    level_factors : tuple of tuple of float
        Voxel size of each level relative to level 0, per axis (all 1 for level 0).
    channel_names : tuple of str or None
        One name per entry of the ``c`` axis.
    scale_source : str
        Where ``scale0`` came from, for error messages (e.g. ``'ImageJ metadata'``).
    """

    url: str
    format: str
    version: str
    name: str | None
    axes: tuple[str, ...]
    levels: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    scale0: tuple[float | None, ...]
    translation0: tuple[float, ...]
    level_factors: tuple[tuple[float, ...], ...]
    channel_names: tuple[str, ...] | None = None
    scale_source: str = "the file's metadata"


def _space(axes: Sequence[str]) -> list[int]:
    return [i for i, a in enumerate(axes) if axis_type(a) == "space"]


def override_scale(scale: Sequence[float | None], axes: Sequence[str], scale_um, where: str) -> tuple:
    """Replace the space-axis voxel sizes by the caller's ``scale_um``.

    Parameters
    ----------
    scale : sequence of float or None
        One value per axis (None where unknown).
    axes : sequence of str
        Axis names.
    scale_um : None, float, sequence of float or mapping
        None keeps ``scale``; a number sets every space axis; a sequence gives one
        value per space axis (``z, y, x``) or per axis; a mapping sets the axes it names.
    where : str
        Input name for the error message.

    Returns
    -------
    tuple
        The new per-axis scale (None entries may remain).

    Raises
    ------
    InvalidInputError
        If ``scale_um`` has the wrong length, names unknown axes or holds a
        non-positive value.
    """
    out = list(scale)
    if scale_um is None:
        return tuple(out)
    space = _space(axes)

    def positive(v):
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise InvalidInputError(f"{where}: scale_um values must be numbers in micrometres, got {v!r}") from None
        if not math.isfinite(f) or f <= 0:
            raise InvalidInputError(f"{where}: scale_um values must be positive micrometres, got {v!r}")
        return f

    if isinstance(scale_um, Mapping):
        unknown = set(scale_um) - {axes[i] for i in space}
        if unknown:
            raise InvalidInputError(f"{where}: scale_um names axes {sorted(unknown)}; the space axes are "
                                    f"{tuple(axes[i] for i in space)}")
        for i in space:
            if axes[i] in scale_um:
                out[i] = positive(scale_um[axes[i]])
        return tuple(out)
    if isinstance(scale_um, (int, float, np.number)) and not isinstance(scale_um, bool):
        for i in space:
            out[i] = positive(scale_um)
        return tuple(out)
    values = list(scale_um)
    if len(values) == len(axes) and len(axes) != len(space):
        values = [values[i] for i in space]
    elif len(values) != len(space):
        raise InvalidInputError(f"{where}: scale_um {tuple(scale_um)} must give one value per space axis "
                                f"{tuple(axes[i] for i in space)}")
    for i, v in zip(space, values):
        if v is not None:
            out[i] = positive(v)
    return tuple(out)


def build_meta(facts: ImageFacts, level: int, scale_um=None) -> OmeMeta:
    """The :class:`OmeMeta` of level ``level`` of the image ``facts`` describes.

    Parameters
    ----------
    facts : ImageFacts
        What the reader found.
    level : int
        Index of the opened level (already checked).
    scale_um : optional
        Voxel size override, see :func:`override_scale`.

    Returns
    -------
    OmeMeta
        Units ``'micrometer'`` on space axes; per-level scales are the level-0
        voxel size times ``level_factors``; level translations put each coarse
        voxel at the centre of the fine voxels it covers.

    Raises
    ------
    InvalidInputError
        If a space axis has no voxel size in the file and none is given.
    """
    axes = facts.axes
    scale0 = override_scale(facts.scale0, axes, scale_um, facts.url)
    missing = [a for a, s in zip(axes, scale0) if s is None]
    if missing:
        space = "".join(a for a in axes if axis_type(a) == "space")
        raise InvalidInputError(
            f"{facts.url}: {facts.scale_source} gives no voxel size along {', '.join(missing)}; give it in "
            f"micrometres with input.scale_um: [{', '.join(space)}] in the pipeline config, "
            f"--scale-um on the command line, or open_image(..., scale_um=(...))"
        )
    scales, translations = [], []
    for rel in facts.level_factors:
        scales.append(tuple(s * r for s, r in zip(scale0, rel)))
        translations.append(tuple(t + (r - 1) / 2 * s if axis_type(a) == "space" else t
                                  for t, r, s, a in zip(facts.translation0, rel, scale0, axes)))
    return OmeMeta(
        url=facts.url,
        version=facts.version,
        name=facts.name,
        axes=axes,
        axis_types=tuple(axis_type(a) for a in axes),
        units=tuple(MICROMETER if axis_type(a) == "space" else None for a in axes),
        levels=facts.levels,
        level=level,
        scales=tuple(scales),
        translations=tuple(translations),
        shapes=facts.shapes,
        scale=scales[level],
        translation=translations[level],
        channel_names=facts.channel_names,
        format=facts.format,
    )


def level_index(level, levels: Sequence[str], url: str) -> int:
    """Index of ``level`` (int, negative from the coarsest, or a level name) in ``levels``."""
    if isinstance(level, str) and not level.lstrip("-").isdigit():
        if level not in levels:
            raise InvalidInputError(f"{url}: no pyramid level named {level!r}; levels are {list(levels)}")
        return list(levels).index(level)
    try:
        index = int(level)
    except (TypeError, ValueError):
        raise InvalidInputError(f"level must be an int or a level name, got {level!r}") from None
    if not -len(levels) <= index < len(levels):
        raise InvalidInputError(f"{url}: level {index} is out of range; the image has {len(levels)} "
                                f"level(s) (0..{len(levels) - 1})")
    return index % len(levels)
