"""Cache keys of step calls: argument tokens and keyed dask arrays.

The key of a call is a hash of the step name, the code fingerprint and a token
of every bound argument (see :mod:`voxelflow.steps.tokens`). A dask array is
keyed by its graph name, so an array read from a step (named after that step's
key, see :func:`keyed`) passes its key on to everything computed from it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import dask.array as da

from voxelflow.steps.fingerprint import fingerprint
from voxelflow.steps.tokens import token

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
        "args": {k: token(v, k) for k, v in arguments.items()},
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
