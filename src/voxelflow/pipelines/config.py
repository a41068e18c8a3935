"""Pipeline configuration: TOML files, ``--set key=value`` overrides, validation.

A configuration is a two-level TOML document (sections ``input``, ``atlas``,
``pipeline``, ``output``, ``compute``); every key has a type, a default and a
check, listed in :data:`SCHEMA`. Errors name the dotted key and the value that
was expected, e.g. ``pipeline.threshold: expected a number > 0, got 'high'``.

Examples
--------
>>> from voxelflow.pipelines.config import load_config
>>> cfg = load_config(None, overrides=["input.url=scan.ome.zarr", "output.folder=run", "pipeline.min_voxels=10"])
>>> cfg["pipeline.min_voxels"], cfg["pipeline.bias"]
(10, 'auto')
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from voxelflow.errors import ConfigError

__all__ = ["SCHEMA", "Key", "load_config", "parse_override", "validate", "to_toml"]


@dataclass(frozen=True)
class Key:
    """One configuration key: default, a check returning the cleaned value, and its description."""

    default: Any
    check: Callable[[Any], Any]
    expected: str
    help: str = ""


class _Bad(Exception):
    pass


def _number(lo=None, hi=None, integer=False, allow_none=False):
    def check(v):
        if v is None and allow_none:
            return None
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (integer and not isinstance(v, int)):
            raise _Bad
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise _Bad
        return int(v) if integer else float(v)

    return check


def _triple(integer=True, lo=1):
    def check(v):
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            v = [v, v, v]
        if not isinstance(v, (list, tuple)) or len(v) != 3:
            raise _Bad
        return [_number(lo=lo, integer=integer)(x) for x in v]

    return check


def _string(allow_empty=False, choices=None):
    def check(v):
        if not isinstance(v, str) or (not allow_empty and not v):
            raise _Bad
        if choices is not None and v not in choices:
            raise _Bad
        return v

    return check


def _bias(v):
    if v is True or v is False:
        return v
    if v in ("auto", "n4", "off"):
        return {"n4": True, "off": False}.get(v, v)
    raise _Bad


def _bool(v):
    if not isinstance(v, bool):
        raise _Bad
    return v


def _maybe_int(v):
    if v is None or v == "":
        return None
    return _number(lo=0, integer=True)(v)


SCHEMA: dict[str, Key] = {
    "input.url": Key(None, _string(), "an OME-Zarr path or URL (optionally with ?slices=[...])",
                     "the scan; ?slices=[c, ...] picks the channel"),
    "input.channel": Key(None, _maybe_int, "a channel index >= 0 (or leave unset)",
                         "channel index when the image has a c axis and no ?slices="),
    "input.level": Key(0, _number(lo=0, integer=True), "an integer pyramid level >= 0"),
    "atlas.url": Key("", _string(allow_empty=True), "an OME-Zarr label image path or URL (or empty)",
                     "atlas labels at any resolution covering the same physical extent"),
    "atlas.regions": Key("", _string(allow_empty=True), "a CSV/JSON region table or BrainGlobe folder (or empty)"),
    "pipeline.coarse_factors": Key([2, 4, 4], _triple(), "three integers >= 1 (z, y, x)",
                                   "max-pooling factors of the coarse level used for mask and bias"),
    "pipeline.bias": Key("auto", _bias, "'auto', true or false",
                         "N4 bias correction: auto = when SimpleITK is installed"),
    "pipeline.mask": Key("auto", _string(), "'auto', 'none' or an OME-Zarr mask path",
                         "negative mask: auto = outside tissue + edge shell from the coarse level"),
    "pipeline.edge_um": Key(20.0, _number(lo=0), "a number >= 0 (micrometres)",
                            "depth of the tissue edge shell removed by the auto mask"),
    "pipeline.threshold": Key(None, _number(lo=0, allow_none=True), "a number > 0 (or unset)",
                              "absolute intensity threshold (after bias correction)"),
    "pipeline.threshold_factor": Key(2.0, _number(lo=0), "a number > 0",
                                     "threshold = factor x median tissue intensity, when threshold is unset"),
    "pipeline.min_voxels": Key(8, _number(lo=0, integer=True), "an integer >= 0"),
    "pipeline.max_voxels": Key(None, _maybe_int, "an integer >= 0 (or unset)"),
    "pipeline.connectivity": Key(1, _number(lo=1, hi=3, integer=True), "1, 2 or 3"),
    "pipeline.split": Key("none", _string(choices=("none", "watershed")), "'none' or 'watershed'",
                          "none = exact connected components; watershed = split touching objects"),
    "pipeline.split_min_distance": Key(4, _number(lo=1, integer=True), "an integer >= 1 (voxels)",
                                       "watershed: minimum distance between two seeds"),
    "pipeline.density_factors": Key([4, 8, 8], _triple(), "three integers >= 1 (z, y, x)",
                                    "voxels per density-map voxel"),
    "pipeline.kind": Key("plaque", _string(choices=("plaque", "cells")), "'plaque' or 'cells'",
                         "which workflow: the plaque pipeline or the cell pipeline ([cells] section)"),
    "input.background_channel": Key(None, _maybe_int, "a channel index >= 0 (or leave unset)",
                                    "autofluorescence channel of the same scan (cell pipeline)"),
    "input.background_url": Key("", _string(allow_empty=True), "an OME-Zarr path or URL (or empty)",
                                "autofluorescence channel stored as its own image (cell pipeline)"),
    "mask.whole_brain": Key(False, _bool, "true or false",
                            "the scan is a whole brain: the volume border counts as tissue edge"),
    "mask.warn_fraction": Key(0.5, _number(lo=0, hi=1), "a fraction between 0 and 1",
                              "warn when the mask removes more than this fraction of the volume"),
    "cells.diameter_um": Key(10.0, _number(lo=0.1), "a number > 0 (micrometres)",
                             "expected cell (nucleus) diameter; sets the defaults of every length below"),
    "cells.prefilter": Key("log", _string(choices=("none", "log", "dog", "tophat")), "'none', 'log', 'dog' or 'tophat'",
                           "filter before thresholding"),
    "cells.per_plane": Key(False, _bool, "true or false", "filter each z plane in 2-D"),
    "cells.sigma_um": Key(None, _number(lo=0.01, allow_none=True), "a number > 0 (micrometres, or unset)",
                          "filter scale; default 0.9 x diameter / (2 sqrt(3)) (3-D) or / (2 sqrt(2)) (per plane)"),
    "cells.background": Key("plane", _string(choices=("none", "plane", "tile")), "'none', 'plane' or 'tile'",
                            "divide each plane (or tile of it) by its median inside the tissue"),
    "cells.tile_um": Key(None, _number(lo=1, allow_none=True), "a number > 0 (micrometres, or unset)",
                         "tile size for background = 'tile' and threshold = 'tile'; default 25 x diameter"),
    "cells.threshold": Key("plane", _string(choices=("absolute", "plane", "tile", "local")),
                           "'absolute', 'plane', 'tile' or 'local'",
                           "absolute value, mean + k SD per plane / per tile, or local mean + k SD"),
    "cells.threshold_k": Key(3.0, _number(), "a number (standard deviations)", "k of mean + k SD"),
    "cells.threshold_value": Key(None, _number(allow_none=True), "a number (or unset)",
                                 "threshold on the filtered image when threshold = 'absolute'"),
    "cells.window_um": Key(None, _number(lo=0.1, allow_none=True), "a number > 0 (micrometres, or unset)",
                           "half-width of the local threshold window; default 2 x diameter"),
    "cells.peak_radius_um": Key(None, _number(lo=0, allow_none=True), "a number >= 0 (micrometres, or unset)",
                                "two cells are separate maxima this far apart; default 0.2 x diameter"),
    "cells.min_distance_um": Key(None, _number(lo=0, allow_none=True), "a number >= 0 (micrometres, or unset)",
                                 "a weaker maximum closer than this to a stronger one is dropped; default 0.5 x diameter"),
    "cells.edge_um": Key(0.0, _number(lo=0), "a number >= 0 (micrometres)",
                         "shell along the tissue edge where no cell is kept"),
    "cells.min_volume_um3": Key(None, _number(lo=0, allow_none=True), "a number >= 0 (um^3, or unset)",
                                "shape filter: smallest foreground object around a cell"),
    "cells.max_volume_um3": Key(None, _number(lo=0, allow_none=True), "a number >= 0 (um^3, or unset)",
                                "shape filter: largest foreground object; default 40 cell volumes"),
    "cells.max_elongation": Key(None, _number(lo=1, allow_none=True), "a number >= 1 (or unset)",
                                "shape filter: most elongated foreground object (vessels, fibres); default 6"),
    "cells.shape_filter": Key(True, _bool, "true or false",
                              "drop cells whose foreground object fails the volume / elongation limits"),
    "output.folder": Key(None, _string(), "a folder path or URL"),
    "output.cache": Key("", _string(allow_empty=True), "a folder path or URL (default: <folder>/cache)"),
    "output.chunks": Key([64, 128, 128], _triple(), "three integers >= 1 (z, y, x)",
                         "chunk shape of stored full-resolution intermediates"),
    "output.levels": Key(3, _number(lo=1, integer=True), "an integer >= 1",
                         "pyramid levels of stored intermediates (viewer-friendly)"),
    "output.report": Key(True, _bool, "true or false", "write report.html when voxelflow.report exists"),
    "compute.scheduler": Key("", _string(allow_empty=True), "a scheduler address like tcp://host:8786 (or empty)"),
    "compute.workers": Key(0, _number(lo=0, integer=True), "an integer >= 0 (0 = threaded scheduler in-process)"),
    "compute.threads_per_worker": Key(1, _number(lo=1, integer=True), "an integer >= 1"),
    "compute.memory_limit": Key("4GB", _string(), "a memory size such as '4GB'"),
}

_REQUIRED = ("input.url", "output.folder")


def parse_override(text: str) -> tuple[str, Any]:
    """Split ``key=value``; the value is read as TOML (``1``, ``[2, 4, 4]``, ``true``) or else kept as text.

    Raises
    ------
    ConfigError
        If there is no ``=`` or the key is unknown.
    """
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected key=value, e.g. pipeline.threshold=900")
    key, raw = (p.strip() for p in text.split("=", 1))
    if key not in SCHEMA:
        raise ConfigError(f"override {text!r}: unknown key {key!r}; known keys: {', '.join(SCHEMA)}")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key, value


def _flatten(doc: dict, where: str) -> dict[str, Any]:
    flat = {}
    for section, body in doc.items():
        if not isinstance(body, dict):
            raise ConfigError(f"{where}: top-level key {section!r} must be a [section] table; "
                              f"sections are {sorted({k.split('.')[0] for k in SCHEMA})}")
        for name, value in body.items():
            flat[f"{section}.{name}"] = value
    return flat


def validate(values: dict[str, Any], where: str = "config") -> dict[str, Any]:
    """Check every key and fill defaults.

    Parameters
    ----------
    values : dict
        Dotted keys (``"pipeline.threshold"``) to raw values.
    where : str
        Name of the source, used in messages.

    Returns
    -------
    dict
        Every key of :data:`SCHEMA`, cleaned.

    Raises
    ------
    ConfigError
        Naming the first unknown key, bad value or missing required key.
    """
    unknown = sorted(set(values) - set(SCHEMA))
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; known keys: {', '.join(SCHEMA)}")
    out = {}
    for name, spec in SCHEMA.items():
        raw = values.get(name, spec.default)
        if raw is None and spec.default is None and name not in _REQUIRED:
            out[name] = None
            continue
        if raw is None:
            raise ConfigError(f"{where}: missing required key {name!r}: expected {spec.expected}")
        try:
            out[name] = spec.check(raw)
        except _Bad:
            raise ConfigError(f"{where}: key {name!r}: expected {spec.expected}, got {raw!r}") from None
    return out


def load_config(path: str | os.PathLike | None, overrides: Iterable[str] = (), defaults: dict | None = None) -> dict:
    """Read a TOML configuration, apply ``key=value`` overrides and validate.

    Parameters
    ----------
    path : path, optional
        TOML file; ``None`` starts from ``defaults`` only.
    overrides : iterable of str
        ``"section.key=value"`` strings applied after the file.
    defaults : dict, optional
        Dotted keys applied before the file (e.g. by ``voxelflow demo``).

    Returns
    -------
    dict
        Dotted key -> cleaned value for every key of :data:`SCHEMA`.

    Raises
    ------
    ConfigError
        If the file is missing or not TOML, or a key is unknown, missing or bad.
    """
    values = dict(defaults or {})
    where = "config"
    if path is not None:
        where = os.fspath(path)
        try:
            with open(path, "rb") as f:
                doc = tomllib.load(f)
        except FileNotFoundError:
            raise ConfigError(f"config file {where!r} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {where!r} is not valid TOML: {exc}") from None
        values.update(_flatten(doc, where))
    for text in overrides:
        key, value = parse_override(text)
        values[key] = value
    return validate(values, where)


def to_toml(config: dict[str, Any]) -> str:
    """Render a validated configuration as TOML (unset keys are left out)."""
    sections: dict[str, list[str]] = {}
    for key, value in config.items():
        if value is None:
            continue
        section, name = key.split(".", 1)
        sections.setdefault(section, []).append(f"{name} = {_toml_value(value)}")
    return "\n".join(f"[{s}]\n" + "\n".join(lines) + "\n" for s, lines in sections.items())


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'
