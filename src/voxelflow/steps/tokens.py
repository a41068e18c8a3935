"""Deterministic tokens of step arguments, computed without touching the arguments.

A step's cache key holds a token of every argument. ``dask.base.tokenize``
cannot be used for arbitrary objects: for a type it has no rule for, it pickles
the object with cloudpickle, which pickles a class defined in ``__main__`` (or
inside a function) by value and, doing so, replaces the class's methods by
copies bound to other globals. Tokenizing a user's model then silently changes
the user's class. Here every token is built by voxelflow's own rules, which only
read:

* numbers, strings, None, dates; numpy dtypes, scalars and arrays (dtype, shape,
  SHA-256 of the bytes); bytes; slices and ranges; pandas tables (columns,
  dtypes, index and a hash of every row);
* containers (list, tuple, dict, set) element by element;
* dask arrays by their graph name (which carries the key of the step that made them);
* functions, ``functools.partial`` and steps by their code fingerprint, bound
  methods by theirs and their object's token, numpy ufuncs by name;
* paths (:class:`~voxelflow.paths.VPath`, :class:`os.PathLike`) by their location, modules by name;
* objects that name their own identity with ``__dask_tokenize__`` (the model
  adapters hash their file) by what it returns;
* enums by class and member; classes by name and the fingerprint of their methods;
* instances of Python classes (dataclasses included) by their class and their
  state (``__getstate__``, else their attributes).

Anything else (a lock, an open file, an object implemented in C without one of
the rules above) raises :class:`~voxelflow.errors.CacheKeyError`.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import functools
import hashlib
import os
import types
import weakref
from typing import Any

import dask.array as da
import numpy as np
import pandas as pd

from voxelflow.errors import CacheKeyError
from voxelflow.paths import VPath
from voxelflow.steps.fingerprint import fingerprint, is_step

__all__ = ["token"]

#: Nesting depth beyond which an argument is refused (a cycle, or a structure no step needs).
MAX_DEPTH = 50

_CLASS_TOKENS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def token(value: Any, where: str = "argument") -> Any:
    """JSON-able token of ``value``; equal values give equal tokens in any process.

    Parameters
    ----------
    value : any
        A step argument.
    where : str
        Name of the argument, for error messages.

    Returns
    -------
    JSON-able value (None, bool, number, str, list or dict)

    Raises
    ------
    voxelflow.errors.CacheKeyError
        If ``value`` (or something inside it) has no deterministic token.
    """
    return _token(value, where, 0)


def _token(value: Any, where: str, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise CacheKeyError(f"argument {where} is nested deeper than {MAX_DEPTH} levels (a cycle?)")
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return ["numpy", value.dtype.str, value.item()] if value.dtype.kind != "O" else _token(value.item(), where, depth)
    if isinstance(value, complex):
        return ["complex", value.real, value.imag]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return ["bytes", hashlib.sha256(bytes(value)).hexdigest()]
    if isinstance(value, np.dtype):
        return ["dtype", value.str, str(value)]
    if isinstance(value, slice):
        return ["slice", _token([value.start, value.stop, value.step], where, depth + 1)]
    if isinstance(value, range):
        return ["range", value.start, value.stop, value.step]
    if isinstance(value, (datetime.date, datetime.time, datetime.timedelta)):
        return [type(value).__name__, str(value)]
    if isinstance(value, da.Array):
        return ["dask", value.name]
    if is_step(value) or isinstance(value, (types.FunctionType, types.BuiltinFunctionType, functools.partial)):
        return ["fn", fingerprint(value)]
    if isinstance(value, types.MethodType):
        return ["method", fingerprint(value.__func__), _token(value.__self__, where, depth + 1)]
    if isinstance(value, np.ufunc):
        return ["ufunc", value.__name__]
    if isinstance(value, types.ModuleType):
        return ["module", value.__name__]
    if isinstance(value, VPath):
        return ["path", value.url]
    if isinstance(value, os.PathLike):
        return ["path", os.fspath(value)]
    if isinstance(value, (list, tuple)):
        return [_token(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda kv: str(kv[0]))
        return {str(k): _token(v, f"{where}[{k!r}]", depth + 1) for k, v in items}
    if isinstance(value, (set, frozenset)):
        return ["set", sorted((_token(v, f"{where}{{}}", depth + 1) for v in value), key=repr)]
    if isinstance(value, np.ndarray):
        return _array_token(value, where, depth)
    if isinstance(value, (pd.DataFrame, pd.Series, pd.Index)):
        return _table_token(value, where)
    tokenize_self = getattr(type(value), "__dask_tokenize__", None)
    if tokenize_self is not None and not isinstance(value, type):
        return ["self", _qualname(type(value)), _token(value.__dask_tokenize__(), where, depth + 1)]
    if isinstance(value, enum.Enum):
        return ["enum", _qualname(type(value)), value.name]
    if isinstance(value, type):
        return ["class", _class_token(value)]
    if dataclasses.is_dataclass(value):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return ["dataclass", _class_token(type(value)), _token(fields, where, depth + 1)]
    if hasattr(value, "__dict__") or hasattr(type(value), "__slots__"):
        return ["object", _class_token(type(value)), _token(_state(value, where), where, depth + 1)]
    raise CacheKeyError(
        f"argument {where} of type {type(value).__name__} has no deterministic cache key; "
        "pass a number, string, array or table, or wrap it with voxelflow.steps.keyed"
    )


def _array_token(arr: np.ndarray, where: str, depth: int) -> list:
    if arr.dtype.hasobject:
        return ["ndarray", "object", list(arr.shape),
                [_token(v, f"{where}[...]", depth + 1) for v in arr.ravel(order="C")]]
    digest = hashlib.sha256(np.ascontiguousarray(arr).reshape(-1).view(np.uint8)).hexdigest()
    return ["ndarray", arr.dtype.str, list(arr.shape), digest]


def _table_token(table, where: str) -> list:
    frame = table.to_frame() if isinstance(table, (pd.Series, pd.Index)) else table
    try:
        rows = pd.util.hash_pandas_object(frame, index=not isinstance(table, pd.Index)).to_numpy()
    except TypeError as exc:  # cells pandas cannot hash (lists, arbitrary objects)
        raise CacheKeyError(f"argument {where} is a table whose cells cannot be hashed: {exc}") from exc
    return ["table", type(table).__name__, [str(c) for c in frame.columns], [str(t) for t in frame.dtypes],
            [str(n) for n in frame.index.names], hashlib.sha256(rows.tobytes()).hexdigest()]


def _state(value, where: str):
    """What pickling would save of ``value``: its own ``__getstate__``, else its attributes and slots.

    The default ``object.__getstate__`` is not called: it caches ``__slotnames__`` on the class.
    """
    if type(value).__getstate__ is not object.__getstate__:
        try:
            return value.__getstate__()
        except TypeError as exc:  # a type that refuses to be pickled
            raise CacheKeyError(f"argument {where} of type {type(value).__name__} has no state to key: {exc}") \
                from exc
    state = dict(vars(value)) if hasattr(value, "__dict__") else {}
    for klass in type(value).__mro__:
        slots = vars(klass).get("__slots__", ())
        for name in (slots,) if isinstance(slots, str) else slots:
            if name not in ("__dict__", "__weakref__") and hasattr(value, name):
                state[f"{klass.__qualname__}.{name}"] = getattr(value, name)
    return state


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _class_token(cls: type) -> list:
    """A class's name and the fingerprints of the methods it and its Python bases define."""
    try:
        return _CLASS_TOKENS[cls]
    except (KeyError, TypeError):
        pass
    code = []
    for klass in cls.__mro__:
        if klass.__module__ == "builtins":
            continue
        for name, attr in sorted(vars(klass).items()):
            fn = attr.__func__ if isinstance(attr, (staticmethod, classmethod)) else attr
            if isinstance(fn, property):
                fn = fn.fget
            if isinstance(fn, types.FunctionType):
                code.append([klass.__qualname__, name, fingerprint(fn)])
    out = [_qualname(cls), hashlib.sha256(repr(code).encode()).hexdigest()]
    try:
        _CLASS_TOKENS[cls] = out
    except TypeError:
        pass
    return out
