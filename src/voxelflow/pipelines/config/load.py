"""Reading a configuration: TOML files, ``--set`` overrides, typed values, paths relative to the file; writing TOML."""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from voxelflow.errors import ConfigError
from voxelflow.pipelines.config.checks import SECURITY_FILES, BadValue
from voxelflow.pipelines.config.tree import SECTIONS, Config, fields_of, split_key


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
        split_key(dotted)
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
                              f"sections are {sorted(SECTIONS)}")
        for name, value in body.items():
            dotted = f"{section}.{name}"
            try:
                s, n = split_key(dotted)
            except ConfigError as exc:
                raise ConfigError(f"{where}: {exc}") from None
            values[dotted] = _resolve(value, base) if fields_of(s)[n].metadata["path"] else value
    return values


def _build(values: dict[str, Any], where: str) -> Config:
    sections = {}
    for section in SECTIONS:
        kwargs = {}
        for name, f in fields_of(section).items():
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
            except BadValue:
                raise ConfigError(f"{where}: key {dotted!r}: expected {meta['expected']}, got {raw!r}") from None
        sections[section] = SECTIONS[section](**kwargs)
    p = sections["pipeline"]
    if p.coarse_factors is not None and (p.coarse_max_voxels is not None or p.coarse_um is not None):
        raise ConfigError(
            f"{where}: pipeline.coarse_factors (the old fixed max-pooling factors of level 0) cannot be "
            "combined with pipeline.coarse_max_voxels or pipeline.coarse_um; drop coarse_factors: the "
            "coarse grid is now chosen by a voxel budget or a voxel size in micrometres, so its cost "
            "does not grow with the scan"
        )
    if p.density_factors is not None and p.density_um is not None:
        raise ConfigError(
            f"{where}: pipeline.density_factors (the old fixed factors of the density map) cannot be combined "
            "with pipeline.density_um; drop density_factors: the density map is now sized in micrometres "
            "(within the coarse voxel budget), so it does not grow with the scan"
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
        split_key(dotted)
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
        split_key(dotted)
        merged[dotted] = value
    return _build(merged, where)


def to_toml(config: Config) -> str:
    """Render a configuration as TOML (unset keys are left out); ``load_config`` reads it back equal."""
    lines = []
    for section in SECTIONS:
        body = [f"{name} = {_toml_value(v)}" for name in fields_of(section)
                if (v := getattr(getattr(config, section), name)) is not None]
        lines.append(f"[{section}]\n" + "\n".join(body) + "\n")
    return "\n".join(lines)


def _toml_value(v) -> str:
    if type(v).__name__ == "Security":
        v = {k: getattr(v, k) for k in (*SECURITY_FILES, "require_encryption") if getattr(v, k, None) is not None}
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
