"""Pipeline configuration: a typed tree read from TOML, ``--set key=value`` overrides, validation.

A configuration file has one ``[section]`` per dataclass of :class:`Config`
(``input``, ``atlas``, ``pipeline``, ``mask``, ``cells``, ``output``, ``compute``). Every key has a
type, a default and a check; errors name the dotted key and what was expected,
e.g. ``pipeline.threshold: expected a number > 0, got 'high'``. Numbers must
be finite (TOML's ``nan`` and ``inf`` are refused).

``pipeline.kind`` picks the workflow: ``"plaque"`` (parameters in
``[pipeline]``) or ``"cells"`` (parameters in ``[cells]``, every length in
micrometres with defaults from ``cells.diameter_um``). ``[mask]`` holds what
both share about the tissue mask. A workflow of another kind adds its own
section dataclass to :class:`Config` and its recipe to
:data:`voxelflow.pipelines.run.RECIPES`.

Paths
-----
Relative paths written in a configuration file (``input.url``, ``atlas.url``,
``atlas.regions``, ``pipeline.mask``, ``output.folder``, ``output.cache``) are
resolved against the folder of that file, so a configuration can be run from
any working directory. Paths given as overrides (``--set``, ``--out``) are
resolved against the working directory. URLs (``s3://...``) are kept as they are.

Examples
--------
>>> from voxelflow.pipelines.config import load_config
>>> cfg = load_config(None, overrides=["input.url=scan.ome.zarr", "output.folder=run", "pipeline.min_voxels=10"])
>>> cfg.pipeline.min_voxels, cfg.pipeline.bias
(10, 'auto')
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voxelflow.errors import ConfigError, InvalidInputError
from voxelflow.runtime.compute import DEFAULT_CONNECT_TIMEOUT, check_memory_limit, check_scheduler_address

__all__ = ["Config", "KINDS", "load_config", "parse_override", "to_toml"]

#: Workflow kinds ``pipeline.kind`` may name.
KINDS = ("plaque", "cells")


class _Bad(Exception):
    pass


def _number(lo=None, hi=None, integer=False, allow_none=False):
    def check(v):
        if v is None and allow_none:
            return None
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (integer and not isinstance(v, int)):
            raise _Bad
        if not math.isfinite(v) or (lo is not None and v < lo) or (hi is not None and v > hi):
            raise _Bad
        return int(v) if integer else float(v)

    return check


def _triple(v):
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        v = [v, v, v]
    if not isinstance(v, (list, tuple)) or len(v) != 3:
        raise _Bad
    return [_number(lo=1, integer=True)(x) for x in v]


def _string(allow_empty=False, choices=None):
    def check(v):
        if not isinstance(v, str) or (not allow_empty and not v) or (choices is not None and v not in choices):
            raise _Bad
        return v

    return check


def _bias(v):
    if v is True or v is False or v == "auto":
        return v
    if v in ("n4", "off"):
        return v == "n4"
    raise _Bad


def _bool(v):
    if not isinstance(v, bool):
        raise _Bad
    return v


def _scale_um(v):
    if v is None:
        return None
    if isinstance(v, (list, tuple)):
        if len(v) != 3:
            raise _Bad
        return [_number(lo=1e-9)(x) for x in v]
    return _number(lo=1e-9)(v)


def _maybe_triple(v):
    return None if v is None or v == "" else _triple(v)


def _maybe_positive_int(v):
    return None if v is None or v == "" else _number(lo=1, integer=True)(v)


def _scheduler(v):
    if v == "":
        return v
    try:
        return check_scheduler_address(v)
    except InvalidInputError:
        raise _Bad from None


def _memory(v):
    try:
        return check_memory_limit(v)
    except InvalidInputError:
        raise _Bad from None


def _positive(v):
    value = _number(lo=0)(v)
    if value <= 0:
        raise _Bad
    return value


_SECURITY_FILES = ("tls_ca_file", "tls_client_cert", "tls_client_key")


def _security(v):
    if v is None or v == "" or v == {}:
        return None
    from distributed.security import Security

    if isinstance(v, Security):
        return v
    if not isinstance(v, dict) or not set(v) <= {*_SECURITY_FILES, "require_encryption"}:
        raise _Bad
    if not isinstance(v.get("require_encryption", True), bool):
        raise _Bad
    if not all(isinstance(v[k], str) and os.path.isfile(v[k]) for k in _SECURITY_FILES if k in v):
        raise _Bad
    return Security(**v)


def _maybe_int(v):
    return None if v is None or v == "" else _number(lo=0, integer=True)(v)


def _orientation(v):
    if v == "":
        return v
    from voxelflow.errors import VoxelflowError
    from voxelflow.io.orientation_code import parse_orientation

    try:
        return parse_orientation(v)
    except VoxelflowError:
        raise _Bad from None


def _registration(v):
    if not isinstance(v, Mapping):
        raise _Bad
    from voxelflow.errors import VoxelflowError
    from voxelflow.ops._register import RegistrationParameters

    try:
        RegistrationParameters.from_dict(dict(v))
    except (VoxelflowError, TypeError):
        raise _Bad from None
    return dict(v)


def key(default: Any, check: Callable[[Any], Any], expected: str, help: str = "", *,
        required: bool = False, path: bool = False):
    """A configuration key: a dataclass field carrying its check and description."""
    meta = {"check": check, "expected": expected, "help": help, "required": required, "path": path}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class InputSection:
    """``[input]``: the scan."""

    url: str = key(None, _string(), "an image path or URL: OME-Zarr (optionally with ?slices=[...]), a folder or "
                   "glob of TIFF planes, a TIFF stack, an Imaris .ims, an N5 dataset or a BigStitcher dataset.xml",
                   "the scan; ?slices=[c, ...] picks the channel of an OME-Zarr", required=True, path=True)
    scale_um: float | list[float] | None = key(None, _scale_um, "a voxel size in micrometres: one number or "
                                               "[z, y, x] (or leave unset)",
                                               "required when the scan's files state no voxel size; "
                                               "overrides the file's")
    channel: int | None = key(None, _maybe_int, "a channel index >= 0 (or leave unset)",
                              "channel index when the image has a c axis and no ?slices=")
    level: int = key(0, _number(lo=0, integer=True), "an integer pyramid level >= 0")
    background_channel: int | None = key(None, _maybe_int, "a channel index >= 0 (or leave unset)",
                                         "autofluorescence channel of the same scan (cell pipeline)")
    background_url: str = key("", _string(allow_empty=True), "an OME-Zarr path or URL (or empty)",
                              "autofluorescence channel stored as its own image (cell pipeline)", path=True)


@dataclass
class AtlasSection:
    """``[atlas]``: region labels registered to the scan and their hierarchy."""

    url: str = key("", _string(allow_empty=True), "an OME-Zarr label image path or URL (or empty)",
                   "atlas labels at any resolution covering the same physical extent", path=True)
    regions: str = key("", _string(allow_empty=True), "a CSV/JSON region table or BrainGlobe folder (or empty)",
                       path=True)
    brainglobe: str = key("", _string(allow_empty=True), "a local BrainGlobe atlas folder (or empty)",
                          "an atlas voxelflow registers to the scan (instead of a pre-registered atlas.url)",
                          path=True)
    orientation: str = key("", _orientation, "a 3-letter orientation code such as 'psl' (or empty)",
                           "the scan's orientation, brainglobe-space style: each letter is where its axis starts")
    registration_channel: int | None = key(None, _maybe_int, "a channel index >= 0 (or leave unset)",
                                           "channel registered to the atlas template (autofluorescence); "
                                           "default input.channel")
    registration: dict = key({}, _registration, "a table of registration parameters (grid_spacing_um, "
                             "affine_iterations, deformable_iterations, deformable, ...)",
                             "see docs/registration.md")


@dataclass
class PlaqueSection:
    """``[pipeline]``: the workflow kind and the plaque parameters."""

    kind: str = key("plaque", _string(choices=KINDS), f"one of {', '.join(KINDS)}", "which workflow runs")
    coarse_max_voxels: int | None = key(None, _maybe_positive_int, "an integer >= 1 (voxels; or unset)",
                                        "voxel budget of the coarse grid for mask, bias field and threshold "
                                        "(unset: 8388608 = 2**23); a stored pyramid level within it is read "
                                        "as it is")
    coarse_um: float | None = key(None, _number(lo=1e-9, allow_none=True), "a number > 0 (micrometres; or unset)",
                                  "voxel size of the coarse grid, e.g. 25 (the budget still caps its size)")
    coarse_factors: list[int] | None = key(None, _maybe_triple, "three integers >= 1 (z, y, x), or unset",
                                           "old setting: max-pooling factors of level 0 for the coarse grid; "
                                           "prefer coarse_max_voxels or coarse_um, which do not grow with the scan")
    bias_max_voxels: int = key(32768, _number(lo=1, integer=True), "an integer >= 1 (voxels)",
                               "voxel budget of the N4 fit (block means of the coarse grid); N4 time grows "
                               "with it, not with the scan")
    bias: bool | str = key("auto", _bias, "'auto', true or false",
                           "N4 bias correction: auto = when SimpleITK is installed")
    mask: str = key("auto", _string(), "'auto', 'none', an OME-Zarr mask path or 'model:PATH'",
                    "negative mask: auto = outside tissue + edge shell from the coarse level; model:PATH = the "
                    "foreground of a segmentation model (.onnx, nnU-Net folder, cellpose:NAME) on the coarse level",
                    path=True)
    mask_mode: str = key("3d", _string(choices=("3d", "planes", "triplanar")), "'3d', 'planes' or 'triplanar'",
                         "how a mask model runs: 3-D, 2-D on z planes, or 2-D along z, y and x averaged")
    mask_threshold: float = key(0.5, _number(lo=0, hi=1), "a number between 0 and 1",
                                "foreground probability from which a mask model's voxel is masked")
    edge_um: float = key(20.0, _number(lo=0), "a number >= 0 (micrometres)",
                         "depth of the tissue edge shell removed by the auto mask")
    threshold: float | None = key(None, _number(lo=0, allow_none=True), "a number > 0 (or unset)",
                                  "absolute intensity threshold (after bias correction)")
    threshold_factor: float = key(2.0, _number(lo=0), "a number > 0",
                                  "threshold = factor x median tissue intensity, when threshold is unset")
    min_voxels: int = key(8, _number(lo=0, integer=True), "an integer >= 0")
    max_voxels: int | None = key(None, _maybe_int, "an integer >= 0 (or unset)")
    connectivity: int = key(1, _number(lo=1, hi=3, integer=True), "1, 2 or 3")
    split: str = key("none", _string(choices=("none", "watershed")), "'none' or 'watershed'",
                     "none = exact connected components; watershed = split touching objects")
    split_min_distance: int = key(4, _number(lo=1, integer=True), "an integer >= 1 (voxels)",
                                  "watershed: minimum distance between two seeds")
    density_factors: list[int] = key([4, 8, 8], _triple, "three integers >= 1 (z, y, x)",
                                     "voxels per density-map voxel")
    prefilter: str = key("none", _string(choices=("none", "log", "dog", "tophat", "background")),
                         "'none', 'log', 'dog', 'tophat' or 'background'",
                         "filter before the threshold; background = subtract the scaled background channel")
    prefilter_um: float = key(10.0, _number(lo=0.01), "a number > 0 (micrometres)",
                              "LoG / DoG sigma or top-hat box half-width")
    threshold_mode: str = key("factor", _string(choices=("absolute", "factor", "plane", "tile", "local")),
                              "'absolute', 'factor', 'plane', 'tile' or 'local'",
                              "factor x median tissue (or pipeline.threshold when set), an absolute value, "
                              "mean + k SD per plane / tile inside the tissue, or local mean + k SD")
    threshold_k: float = key(3.0, _number(), "a number (standard deviations)", "k of mean + k SD")
    tile_um: float = key(250.0, _number(lo=1), "a number > 0 (micrometres)", "tile edge for threshold_mode = 'tile'")
    window_um: float = key(50.0, _number(lo=0.1), "a number > 0 (micrometres)",
                           "half-width of the local threshold window")
    split_min_distance_um: float | None = key(None, _number(lo=0.01, allow_none=True),
                                              "a number > 0 (micrometres, or unset)",
                                              "watershed seed distance in micrometres (wins over split_min_distance)")


@dataclass
class MaskSection:
    """``[mask]``: how the automatic tissue mask treats the scan (both workflows)."""

    whole_brain: bool = key(False, _bool, "true or false",
                            "the scan is a whole brain: the volume border counts as a tissue edge (false: a crop "
                            "or partial brain, tissue runs on past the border)")
    warn_fraction: float = key(0.8, _number(lo=0, hi=1), "a fraction between 0 and 1",
                               "warn when the mask removes more than this fraction of the volume")


def _positive_or_unset(lo):
    return _number(lo=lo, allow_none=True)


@dataclass
class CellsSection:
    """``[cells]``: the cell pipeline; every length in micrometres, unset ones follow ``diameter_um``."""

    diameter_um: float = key(10.0, _number(lo=0.1), "a number > 0 (micrometres)",
                             "expected nucleus diameter; sets the defaults of every length below")
    prefilter: str = key("log", _string(choices=("none", "log", "dog", "tophat")),
                         "'none', 'log', 'dog' or 'tophat'", "filter before thresholding")
    per_plane: bool = key(False, _bool, "true or false", "filter each z plane in 2-D")
    sigma_um: float | None = key(None, _positive_or_unset(0.01), "a number > 0 (micrometres, or unset)",
                                 "filter scale; default 0.9 x diameter / (2 sqrt 3), per plane / (2 sqrt 2)")
    background: str = key("plane", _string(choices=("none", "plane", "tile")), "'none', 'plane' or 'tile'",
                          "divide each plane (or tile of it) by its median inside the tissue")
    tile_um: float | None = key(None, _positive_or_unset(1), "a number > 0 (micrometres, or unset)",
                                "tile size for background / threshold = 'tile'; default 25 x diameter")
    threshold: str = key("plane", _string(choices=("absolute", "plane", "tile", "local")),
                         "'absolute', 'plane', 'tile' or 'local'",
                         "absolute value, mean + k SD per plane / per tile (inside the tissue), or local mean + k SD")
    threshold_k: float = key(3.0, _number(), "a number (standard deviations)", "k of mean + k SD")
    threshold_value: float | None = key(None, _number(allow_none=True), "a number (or unset)",
                                        "threshold on the filtered image when threshold = 'absolute'")
    window_um: float | None = key(None, _positive_or_unset(0.1), "a number > 0 (micrometres, or unset)",
                                  "half-width of the local threshold window; default 2 x diameter")
    peak_radius_um: float | None = key(None, _positive_or_unset(0), "a number >= 0 (micrometres, or unset)",
                                       "box half-width in which a cell centre is the maximum; default 0.2 x diameter")
    min_distance_um: float | None = key(None, _positive_or_unset(0), "a number >= 0 (micrometres, or unset)",
                                        "a weaker maximum this close to a stronger one is dropped; default 0.5 x "
                                        "diameter (up to 0.7 x inside large objects)")
    edge_um: float = key(0.0, _number(lo=0), "a number >= 0 (micrometres)",
                         "shell along the tissue edge where no cell is kept")
    shape_filter: bool = key(True, _bool, "true or false",
                             "drop cells whose foreground object is too large or too elongated for a cell")
    min_volume_um3: float | None = key(None, _positive_or_unset(0), "a number >= 0 (um^3, or unset)",
                                       "shape filter: smallest foreground object")
    max_volume_um3: float | None = key(None, _positive_or_unset(0), "a number >= 0 (um^3, or unset)",
                                       "shape filter: largest foreground object; default 40 cell volumes")
    max_elongation: float | None = key(None, _positive_or_unset(1), "a number >= 1 (or unset)",
                                       "shape filter: most elongated foreground object (vessels, fibres); default 6")


@dataclass
class OutputSection:
    """``[output]``: the run folder and how intermediates are stored."""

    folder: str = key(None, _string(), "a folder path or URL", required=True, path=True)
    cache: str = key("", _string(allow_empty=True), "a folder path or URL (default: <folder>/cache)", path=True)
    chunks: list[int] = key([64, 128, 128], _triple, "three integers >= 1 (z, y, x)",
                            "chunk shape of stored full-resolution intermediates")
    levels: int = key(3, _number(lo=1, integer=True), "an integer >= 1",
                      "pyramid levels of stored intermediates (viewer-friendly)")
    full_res: str = key("auto", _string(choices=("auto", "all", "none")), "'auto', 'all' or 'none'",
                        "store the full-resolution foreground (BS) and labels (OS) in the cache: auto = only "
                        "for scans of at most 2**26 voxels (67 MVox); otherwise objects come from one "
                        "streaming pass that stores nothing of full resolution")
    report: bool = key(True, _bool, "true or false", "write report.html when voxelflow.report exists")


@dataclass
class ComputeSection:
    """``[compute]``: where the Dask work runs."""

    scheduler: str = key("", _scheduler, "a scheduler address like tcp://host:8786 (or empty)",
                         "a running Dask scheduler; it runs code in this process, so only use trusted ones")
    workers: int = key(0, _number(lo=0, integer=True), "an integer >= 0 (0 = threaded scheduler in-process)")
    threads_per_worker: int = key(1, _number(lo=1, integer=True), "an integer >= 1")
    memory_limit: str = key("4GB", _memory, "a memory size > 0 such as '4GB' or '512 MiB' (or 'auto')")
    connect_timeout: float = key(DEFAULT_CONNECT_TIMEOUT, _positive, "a number of seconds > 0",
                                 "how long to wait for compute.scheduler to answer")
    security: Any = key(None, _security, "a distributed.security.Security or a table with tls_ca_file, "
                        "tls_client_cert, tls_client_key (files) and require_encryption (bool)",
                        "TLS certificates for a tls:// scheduler")


@dataclass
class Config:
    """A validated configuration: ``config.input.url``, ``config.pipeline.threshold_factor``, ..."""

    input: InputSection
    atlas: AtlasSection
    pipeline: PlaqueSection
    mask: MaskSection
    cells: CellsSection
    output: OutputSection
    compute: ComputeSection

    def get(self, dotted: str) -> Any:
        """The value of ``"section.key"``."""
        section, name = _split(dotted)
        return getattr(getattr(self, section), name)

    def as_dict(self) -> dict[str, Any]:
        """Every key as ``{"section.key": value}`` (what the run record keeps)."""
        return {f"{s}.{f.name}": getattr(getattr(self, s), f.name)
                for s, cls in _SECTIONS.items() for f in dataclasses.fields(cls)}


_SECTIONS: dict[str, type] = {"input": InputSection, "atlas": AtlasSection, "pipeline": PlaqueSection,
                              "mask": MaskSection, "cells": CellsSection, "output": OutputSection,
                              "compute": ComputeSection}


def _fields(section: str) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(_SECTIONS[section])}


def _known_keys() -> str:
    return ", ".join(f"{s}.{n}" for s in _SECTIONS for n in _fields(s))


def _split(dotted: str) -> tuple[str, str]:
    section, _, name = dotted.partition(".")
    if section not in _SECTIONS or name not in _fields(section):
        raise ConfigError(f"unknown key {dotted!r}; known keys: {_known_keys()}")
    return section, name


def parse_override(text: str) -> tuple[str, Any]:
    """Split ``key=value``; the value is read as TOML (``1``, ``[2, 4, 4]``, ``true``, ``"a"``) or else kept as text.

    Raises
    ------
    ConfigError
        If there is no ``=`` or the key is unknown.
    """
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected key=value, e.g. pipeline.threshold=900")
    dotted, raw = (p.strip() for p in text.split("=", 1))
    try:
        _split(dotted)
    except ConfigError as exc:
        raise ConfigError(f"override {text!r}: {exc}") from None
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return dotted, value


def _resolve(value: Any, base: Path | None) -> Any:
    """A relative local path joined to ``base``; URLs, absolute paths and ``auto``/``none`` unchanged."""
    if base is None or not isinstance(value, str) or not value or value in ("auto", "none"):
        return value
    if value.startswith("model:") and not value.startswith("model:cellpose:"):
        return "model:" + str(_resolve(value[len("model:"):], base))
    if "://" in value or os.path.isabs(value):
        return value
    return os.path.normpath(base / value)


def _values_of(doc: Mapping, where: str, base: Path | None) -> dict[str, Any]:
    values = {}
    for section, body in doc.items():
        if not isinstance(body, dict):
            raise ConfigError(f"{where}: top-level key {section!r} must be a [section] table; "
                              f"sections are {sorted(_SECTIONS)}")
        for name, value in body.items():
            dotted = f"{section}.{name}"
            try:
                s, n = _split(dotted)
            except ConfigError as exc:
                raise ConfigError(f"{where}: {exc}") from None
            values[dotted] = _resolve(value, base) if _fields(s)[n].metadata["path"] else value
    return values


def _build(values: dict[str, Any], where: str) -> Config:
    sections = {}
    for section in _SECTIONS:
        kwargs = {}
        for name, f in _fields(section).items():
            dotted = f"{section}.{name}"
            meta = f.metadata
            raw = values.get(dotted, f.default if f.default is not dataclasses.MISSING else f.default_factory())
            if raw is None and not meta["required"]:
                kwargs[name] = None if f.default is None else meta["check"](f.default)
                continue
            if raw is None:
                raise ConfigError(f"{where}: missing required key {dotted!r}: expected {meta['expected']}")
            try:
                kwargs[name] = meta["check"](raw)
            except _Bad:
                raise ConfigError(f"{where}: key {dotted!r}: expected {meta['expected']}, got {raw!r}") from None
        sections[section] = _SECTIONS[section](**kwargs)
    p = sections["pipeline"]
    if p.coarse_factors is not None and (p.coarse_max_voxels is not None or p.coarse_um is not None):
        raise ConfigError(
            f"{where}: pipeline.coarse_factors (the old fixed max-pooling factors of level 0) cannot be "
            "combined with pipeline.coarse_max_voxels or pipeline.coarse_um; drop coarse_factors: the "
            "coarse grid is now chosen by a voxel budget or a voxel size in micrometres, so its cost "
            "does not grow with the scan"
        )
    return Config(**sections)


def load_config(
    path: str | os.PathLike | None,
    overrides: Iterable[str] = (),
    defaults: Mapping[str, Any] | None = None,
    values: Mapping[str, Any] | None = None,
) -> Config:
    """Read a TOML configuration, apply overrides and validate.

    Parameters
    ----------
    path : path, optional
        TOML file; relative paths in it resolve against its folder. ``None``
        starts from ``defaults`` only.
    overrides : iterable of str
        ``"section.key=value"`` strings applied after the file (``--set``).
    defaults : mapping, optional
        ``{"section.key": value}`` applied before the file (e.g. by ``voxelflow demo``).
    values : mapping, optional
        ``{"section.key": value}`` typed values applied last (``--out``,
        ``--workers``): no text parsing, so any string (quotes, spaces) is kept as is.

    Returns
    -------
    Config

    Raises
    ------
    ConfigError
        If the file is missing or not TOML, or a key is unknown, missing, not
        finite or otherwise bad; the message names the key.
    """
    merged: dict[str, Any] = {}
    for dotted, value in (defaults or {}).items():
        _split(dotted)
        merged[dotted] = value
    where = "config"
    if path is not None:
        where = os.fspath(path)
        try:
            with open(path, "rb") as f:
                doc = tomllib.load(f)
        except FileNotFoundError:
            raise ConfigError(f"config file {where!r} does not exist") from None
        except IsADirectoryError:
            raise ConfigError(f"config file {where!r} is a folder; expected a TOML file") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {where!r} is not valid TOML: {exc}") from None
        except OSError as exc:
            raise ConfigError(f"config file {where!r} cannot be read: {exc}") from None
        merged.update(_values_of(doc, where, Path(os.path.abspath(where)).parent))
    for text in overrides:
        dotted, value = parse_override(text)
        merged[dotted] = value
    for dotted, value in (values or {}).items():
        _split(dotted)
        merged[dotted] = value
    return _build(merged, where)


def to_toml(config: Config) -> str:
    """Render a configuration as TOML (unset keys are left out); ``load_config`` reads it back equal."""
    lines = []
    for section in _SECTIONS:
        body = [f"{name} = {_toml_value(v)}" for name in _fields(section)
                if (v := getattr(getattr(config, section), name)) is not None]
        lines.append(f"[{section}]\n" + "\n".join(body) + "\n")
    return "\n".join(lines)


def _toml_value(v) -> str:
    if type(v).__name__ == "Security":
        v = {k: getattr(v, k) for k in (*_SECURITY_FILES, "require_encryption") if getattr(v, k, None) is not None}
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + "}"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, Mapping):
        return "{" + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + "}"
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'
