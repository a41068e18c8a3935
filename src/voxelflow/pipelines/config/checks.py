"""Value checks of configuration keys and :func:`key`, the field that carries them.

A check takes the raw TOML value and returns the typed value, or raises
:class:`BadValue`; the loader turns that into a :class:`~voxelflow.errors.ConfigError`
naming the dotted key and the expected value.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import field
from typing import Any

from voxelflow.errors import InvalidInputError
from voxelflow.runtime.compute import check_memory_limit, check_scheduler_address


class BadValue(Exception):
    pass


def number(lo=None, hi=None, integer=False, allow_none=False):
    def check(v):
        if v is None and allow_none:
            return None
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (integer and not isinstance(v, int)):
            raise BadValue
        if not math.isfinite(v) or (lo is not None and v < lo) or (hi is not None and v > hi):
            raise BadValue
        return int(v) if integer else float(v)

    return check


def triple(v):
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        v = [v, v, v]
    if not isinstance(v, (list, tuple)) or len(v) != 3:
        raise BadValue
    return [number(lo=1, integer=True)(x) for x in v]


def string(allow_empty=False, choices=None):
    def check(v):
        if not isinstance(v, str) or (not allow_empty and not v) or (choices is not None and v not in choices):
            raise BadValue
        return v

    return check


def bias_choice(v):
    if v is True or v is False or v == "auto":
        return v
    if v in ("n4", "off"):
        return v == "n4"
    raise BadValue


def boolean(v):
    if not isinstance(v, bool):
        raise BadValue
    return v


def voxel_size(v):
    if v is None:
        return None
    if isinstance(v, (list, tuple)):
        if len(v) != 3:
            raise BadValue
        return [number(lo=1e-9)(x) for x in v]
    return number(lo=1e-9)(v)


def optional_triple(v):
    return None if v is None or v == "" else triple(v)


def optional_positive_int(v):
    return None if v is None or v == "" else number(lo=1, integer=True)(v)


def scheduler_address(v):
    if v == "":
        return v
    try:
        return check_scheduler_address(v)
    except InvalidInputError:
        raise BadValue from None


def memory_size(v):
    try:
        return check_memory_limit(v)
    except InvalidInputError:
        raise BadValue from None


def positive(v):
    value = number(lo=0)(v)
    if value <= 0:
        raise BadValue
    return value


SECURITY_FILES = ("tls_ca_file", "tls_client_cert", "tls_client_key")


def tls_security(v):
    if v is None or v == "" or v == {}:
        return None
    from distributed.security import Security

    if isinstance(v, Security):
        return v
    if not isinstance(v, dict) or not set(v) <= {*SECURITY_FILES, "require_encryption"}:
        raise BadValue
    if not isinstance(v.get("require_encryption", True), bool):
        raise BadValue
    if not all(isinstance(v[k], str) and os.path.isfile(v[k]) for k in SECURITY_FILES if k in v):
        raise BadValue
    return Security(**v)


def optional_index(v):
    return None if v is None or v == "" else number(lo=0, integer=True)(v)


def orientation_code(v):
    if v == "":
        return v
    from voxelflow.errors import VoxelflowError
    from voxelflow.io.orientation_code import parse_orientation

    try:
        return parse_orientation(v)
    except VoxelflowError:
        raise BadValue from None


def atlas_box(v):
    """Empty, or 6 numbers z0, z1, y0, y1, x0, x1 (micrometres) with each lower bound below its upper one."""
    if v is None or (isinstance(v, (list, tuple)) and not v):
        return []
    if not isinstance(v, (list, tuple)) or len(v) != 6:
        raise BadValue
    out = [number()(x) for x in v]
    if any(out[2 * k + 1] <= out[2 * k] for k in range(3)):
        raise BadValue
    return out


def registration_table(v):
    if not isinstance(v, Mapping):
        raise BadValue
    from voxelflow.errors import VoxelflowError
    from voxelflow.ops._register import RegistrationParameters

    try:
        RegistrationParameters.from_dict(dict(v))
    except (VoxelflowError, TypeError):
        raise BadValue from None
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


def number_or_unset(lo):
    return number(lo=lo, allow_none=True)
