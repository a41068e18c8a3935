"""Cache keys of step calls: argument tokens and keyed dask arrays.

The key of a call is a hash of the step name, the code fingerprint and a token
of every bound argument. A dask array is keyed by its graph name, so an array
read from a step (named after that step's key, see :func:`keyed`) passes its
key on to everything computed from it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import types
from collections.abc import Callable
from typing import Any

import dask
import dask.array as da
import numpy as np
from dask.base import tokenize
from dask.tokenize import TokenizationError

from voxelflow.errors import CacheKeyError
from voxelflow.paths import VPath
from voxelflow.steps.fingerprint import fingerprint, is_step

__all__ = ["keyed", "step_key"]

_KEY_LEN = 24


def keyed(arr: da.Array, key: str) -> da.Array:
    """Give a dask array a name derived from ``key``, so steps key it by ``key``.

    Use it for inputs whose dask name is not deterministic across processes
    (arrays from libraries that tokenize by object identity). It adds one
    no-op task per chunk.

    Parameters
    ----------
    arr : dask.array.Array
    key : str
        Any string identifying the content (a URL plus a version, a hash).

    Returns
    -------
    dask.array.Array
        Same values and chunks, named ``vf-<hash of key>``.
    """
    name = "vf-" + hashlib.sha256(str(key).encode()).hexdigest()[:_KEY_LEN]
    if arr.name == name:
        return arr
    return arr.map_blocks(_identity, dtype=arr.dtype, name=name, meta=arr._meta)


def _identity(block):
    return block


def _token(value: Any, where: str) -> Any:
    """JSON-able token of one argument."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, da.Array):
        return ["dask", value.name]
    if is_step(value) or isinstance(value, (types.FunctionType, types.BuiltinFunctionType, functools.partial)):
        return ["fn", fingerprint(value)]
    if isinstance(value, VPath):
        return ["path", value.url]
    if isinstance(value, (list, tuple)):
        return [_token(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {str(k): _token(v, f"{where}[{k!r}]") for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    try:
        with dask.config.set({"tokenize.ensure-deterministic": True}):
            return [type(value).__name__, tokenize(value)]
    except TokenizationError as exc:
        raise CacheKeyError(
            f"argument {where} of type {type(value).__name__} has no deterministic cache key; "
            f"pass a number, string, array or table, or wrap it with voxelflow.steps.keyed ({exc})"
        ) from exc


def step_key(name: str, fn: Callable, arguments: dict[str, Any]) -> str:
    """The cache key of calling step ``name`` (function ``fn``) with ``arguments``.

    Parameters
    ----------
    name : str
    fn : callable
    arguments : dict
        Bound arguments (parameter name -> value), defaults included.

    Returns
    -------
    str
        A hex digest of the name, the code fingerprint and every argument token.
    """
    payload = {
        "step": name,
        "code": fingerprint(fn),
        "args": {k: _token(v, k) for k, v in arguments.items()},
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
