"""The :class:`Step` class and the ``@step`` decorator: cached, viewable pipeline steps (the original tool's ``SegProcess`` idea).

A *step* is an op (``voxelflow.ops``) or a user function, called the usual way,
plus three context arguments:

``cache_url``
    A cache node URL. When given, the result is written there once (images as
    OME-Zarr, tables as parquet, small values as JSON) and read back lazily on
    every later call with the same key. When absent nothing is cached.
``storage_options``
    How image results are stored: ``chunks``, ``levels`` (pyramid levels for
    viewer-friendly output), ``factors``, ``method``, ``scale``, ``units``,
    ``axes``, ``shards``, ``version``. These never change the values, so they are
    not part of the key.
``viewer_args``
    ``viewer`` (a napari viewer; nothing is displayed without one), ``is_label``,
    ``name`` and any napari layer options. They travel with the
    :class:`~voxelflow.steps.runner.StepResult` every call announces; the
    viewer package shows results that carry a viewer (see
    :mod:`voxelflow.steps.runner`), so napari is never imported otherwise.

The cache key of a call is a hash of the step name, a fingerprint of its code
(the AST with docstrings, comments and decorators removed, so editing those
does not invalidate), the bound parameters, and the keys of its inputs. A dask
array read from a step is named after that step's key, so any array derived
from it (``arr[0]``, ``arr > 3``) has a name, hence a token, that changes
exactly when an upstream key changes. Changing one threshold therefore
recomputes that step and everything downstream of it, and nothing upstream.

``cache_url`` is the step's node (layout: :mod:`voxelflow.steps.node`); it
loads with :func:`voxelflow.load` like any cache node. A node committed under
another key is wiped and recomputed, so only the latest result is kept. An
interrupted call resumes: outputs already committed under the same key are
not written again.

Examples
--------
>>> import numpy as np, dask.array as da
>>> from voxelflow.steps import step
>>> @step(kind="IN->BS")
... def bright(img, value=10):
...     return img > value
>>> out = bright(da.arange(20, chunks=5), value=12, cache_url=None)
>>> int(out.sum().compute())
7
"""

from __future__ import annotations

import functools
import importlib
import inspect
import time
from collections.abc import Callable
from typing import Any

from voxelflow.cache import cdir_init
from voxelflow.errors import InvalidInputError
from voxelflow.paths import VPath
from voxelflow.steps.keys import step_key
from voxelflow.steps.node import part_factory, read_step, read_step_result, write_step
from voxelflow.steps.runner import StepRecord, StepResult, emit

__all__ = ["Step", "step"]

_STORAGE_KEYS = ("chunks", "levels", "factors", "method", "scale", "translation", "units", "axes", "shards",
                 "version")


class Step:
    """A function made cacheable and viewable; call it like the function.

    Parameters
    ----------
    fn : callable or str
        The function, or ``"module:function"`` imported on first use (so the
        built-in steps do not import every op at ``import voxelflow.steps``).
    kind : str, optional
        Data types in and out, e.g. ``"IN->BS"``, ``"BS->OS"``, ``"OS->LC"``
        (DESIGN.md names). Sets defaults: ``OS`` outputs are shown as labels and
        their pyramid uses nearest sampling; ``BS`` uses max.
    name : str, optional
        Step name used in the key, the node description and the viewer layer;
        default the function name.

    Notes
    -----
    Call with the function's own arguments plus ``cache_url``,
    ``storage_options`` and ``viewer_args`` (or all three in one
    ``context_args`` dict, as in the original tool).
    """

    def __init__(self, fn: Callable | str, kind: str | None = None, name: str | None = None):
        self._fn = fn
        self.kind = kind
        self.kind_in, self.kind_out = _parse_kind(kind)
        if name is None:
            name = fn.rsplit(":", 1)[1] if isinstance(fn, str) else getattr(fn, "__name__", "step")
        self.name = name
        if not isinstance(fn, str):
            functools.update_wrapper(self, fn)

    @property
    def fn(self) -> Callable:
        """The wrapped function (imported on first use for ``"module:function"``)."""
        if isinstance(self._fn, str):
            module, attr = self._fn.split(":")
            self._fn = getattr(importlib.import_module(module), attr)
        return self._fn

    def __repr__(self) -> str:
        return f"Step({self.name!r}, kind={self.kind!r})"

    def bind(self, *args, **kwargs) -> dict[str, Any]:
        """The call's arguments by parameter name, defaults filled in."""
        try:
            bound = inspect.signature(self.fn).bind(*args, **kwargs)
        except TypeError as exc:
            raise InvalidInputError(f"step {self.name!r}: {exc}") from exc
        bound.apply_defaults()
        return dict(bound.arguments)

    def key(self, *args, **kwargs) -> str:
        """The cache key of calling this step with these arguments."""
        return step_key(self.name, self.fn, self.bind(*args, **kwargs))

    def __call__(
        self,
        *args,
        cache_url: str | VPath | None = None,
        storage_options: dict | None = None,
        viewer_args: dict | None = None,
        context_args: dict | None = None,
        **kwargs,
    ):
        if context_args:
            unknown = set(context_args) - {"cache_url", "storage_options", "viewer_args"}
            if unknown:
                raise InvalidInputError(
                    f"context_args has unknown keys {sorted(unknown)}; expected cache_url, "
                    "storage_options, viewer_args"
                )
            cache_url = context_args.get("cache_url", cache_url)
            storage_options = context_args.get("storage_options", storage_options)
            viewer_args = context_args.get("viewer_args", viewer_args)
        storage = _storage_kwargs(storage_options, self.kind_out)
        t0 = time.perf_counter()
        if cache_url is None:
            result = self.fn(*args, **kwargs)
            record = StepRecord(self.name, None, False, time.perf_counter() - t0)
        else:
            arguments = self.bind(*args, **kwargs)
            key = step_key(self.name, self.fn, arguments)
            result, record = self._cached(key, arguments, str(VPath(cache_url).url), storage, t0)
        emit(StepResult(record, result, self.kind, storage, dict(viewer_args or {})))
        return result

    def _cached(self, key: str, arguments: dict, node_url: str, storage: dict, t0: float):
        # a node committed under another key is wiped by cdir_init and recomputed
        cached = cdir_init(node_url, key=key).commit is not None
        if not cached:
            # chunk passes inside the step keep finished chunk groups in the pending node,
            # so a run killed mid-pass recomputes only the unfinished ones
            from voxelflow.ops import resumable_passes  # ops are imported on first computed step

            with resumable_passes(part_factory(node_url, key)):
                result = self.fn(**arguments)
            desc = {"step": self.name, "kind": self.kind, "key": key, "seconds": time.perf_counter() - t0}
            write_step(node_url, desc, result, storage)
        desc = read_step(node_url)
        result = read_step_result(node_url, desc)
        record = StepRecord(self.name, key, cached, time.perf_counter() - t0, node_url, desc["outputs"])
        return result, record


def _storage_kwargs(storage_options: dict | None, kind_out: str | None) -> dict:
    opts = dict(storage_options or {})
    unknown = set(opts) - set(_STORAGE_KEYS)
    if unknown:
        raise InvalidInputError(
            f"storage_options has unknown keys {sorted(unknown)}; expected some of {list(_STORAGE_KEYS)}"
        )
    if "method" not in opts:
        # pyramid levels must never invent label ids, and sparse masks should stay visible
        opts["method"] = {"OS": "nearest", "BS": "max", "CD": "mean"}.get(kind_out or "", "mean")
    return opts


def _parse_kind(kind: str | None) -> tuple[str | None, str | None]:
    if kind is None:
        return None, None
    parts = [p.strip() for p in kind.replace("→", "->").split("->")]
    if len(parts) != 2 or not all(parts):
        raise InvalidInputError(f"step kind must look like 'IN->BS', got {kind!r}")
    return parts[0], parts[1]


def step(fn: Callable | None = None, *, kind: str | None = None, name: str | None = None):
    """Decorator turning a function into a :class:`Step`.

    Parameters
    ----------
    fn : callable
        The function; its arguments may be dask/numpy arrays, DataFrames, JSON
        values or other steps' results. It may return an array, a DataFrame, a
        JSON value or a tuple of those.
    kind : str, optional
        ``"IN->BS"`` style data types, see :class:`Step`.
    name : str, optional
        Step name (default: the function name).

    Returns
    -------
    Step
        Usable as ``@step`` or ``@step(kind="BS->OS")``.
    """
    if fn is None:
        return lambda f: Step(f, kind=kind, name=name)
    return Step(fn, kind=kind, name=name)
