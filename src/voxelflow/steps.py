"""Cached, viewable pipeline steps (the original tool's ``SegProcess`` idea).

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
    ``name`` and any napari layer options. Display is one lazy call of
    :func:`voxelflow.viewer.add_result`, so napari is never imported otherwise.

The cache key of a call is a hash of the step name, a fingerprint of its code
(the AST with docstrings, comments and decorators removed, so editing those
does not invalidate), the bound parameters, and the keys of its inputs. A dask
array read from a step is named after that step's key, so any array derived
from it (``arr[0]``, ``arr > 3``) has a name, hence a token, that changes
exactly when an upstream key changes. Changing one threshold therefore
recomputes that step and everything downstream of it, and nothing upstream.

``cache_url`` is the step's node: it holds ``step.json`` (name, kind, key,
outputs, time) and one child node ``out<i>`` per output. A node committed
under another key is wiped and recomputed, so only the latest result is kept.
An interrupted call resumes: outputs already committed under the same key are
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

import ast
import contextlib
import contextvars
import functools
import hashlib
import importlib
import inspect
import json
import textwrap
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import dask
import dask.array as da
import numpy as np
import pandas as pd
from dask.base import tokenize
from dask.tokenize import TokenizationError

from voxelflow.errors import CacheKeyError, InvalidInputError
from voxelflow.paths import VPath

__all__ = [
    "Step",
    "step",
    "fingerprint",
    "step_key",
    "keyed",
    "StepRecord",
    "record_steps",
    "STEP_FILE",
    "threshold",
    "label",
    "object_table",
    "watershed_split",
    "blob_detect",
    "downsample",
    "estimate_bias_field",
    "apply_bias_field",
    "density_map",
    "assign_regions",
    "count_by_region",
]

#: Per-call description written into every step node (name, kind, key, outputs, timing).
STEP_FILE = "step.json"
_KEY_LEN = 24
_STORAGE_KEYS = ("chunks", "levels", "factors", "method", "scale", "units", "axes", "shards", "version")
_LABEL_KINDS = ("OS",)


# --- fingerprints ---------------------------------------------------------------


class _StripDocs(ast.NodeTransformer):
    """Remove docstrings and decorators: editing them must not change a key."""

    def _strip(self, node):
        self.generic_visit(node)
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
            if isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
        if hasattr(node, "decorator_list"):
            node.decorator_list = []
        return node

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = visit_Module = _strip


def _normalised_source(src: str) -> str:
    tree = _StripDocs().visit(ast.parse(textwrap.dedent(src)))
    return ast.dump(tree, annotate_fields=False, include_attributes=False)


def _code_digest(code: types.CodeType) -> str:
    """Source-free fallback (lambdas on one line with other code, REPL functions)."""
    parts = [code.co_code.hex(), repr(code.co_names)]
    for c in code.co_consts:
        parts.append(_code_digest(c) if isinstance(c, types.CodeType) else repr(c))
    return "|".join(parts)


def _global_constants(fn) -> list:
    """Module-level constants a function reads (``THRESHOLD = 5`` used inside it)."""
    code = getattr(fn, "__code__", None)
    glb = getattr(fn, "__globals__", {})
    if code is None:
        return []
    simple = (int, float, str, bool, bytes, type(None))
    out = []
    for name in sorted(set(code.co_names)):
        value = glb.get(name, None)
        if isinstance(value, simple) or (
            isinstance(value, tuple) and all(isinstance(v, simple) for v in value)
        ):
            out.append([name, repr(value)])
    return out


@functools.lru_cache(maxsize=256)
def _module_fingerprint(module_name: str) -> str:
    module = importlib.import_module(module_name)
    try:
        src = inspect.getsource(module)
    except (OSError, TypeError):
        return module_name
    return hashlib.sha256(_normalised_source(src).encode()).hexdigest()


def fingerprint(fn: Callable, *, _seen: frozenset = frozenset()) -> str:
    """Hash of what a function computes, insensitive to its docstring and comments.

    Library ops (``voxelflow.ops.*``) are fingerprinted by their whole module,
    so a change in a private helper also invalidates. Other functions are
    fingerprinted by their own source (AST-normalised), the module-level
    constants they read, their default values, and the fingerprints of the
    functions, steps and ``voxelflow.ops`` modules they reference by global name.

    Parameters
    ----------
    fn : callable

    Returns
    -------
    str
        A hex digest.
    """
    if isinstance(fn, Step):
        fn = fn.fn
    target = inspect.unwrap(fn)
    _seen = _seen | {target}
    if isinstance(target, functools.partial):
        return hashlib.sha256(
            (fingerprint(target.func) + tokenize(target.args, target.keywords)).encode()
        ).hexdigest()
    module = getattr(target, "__module__", "") or ""
    if module.startswith("voxelflow.ops"):
        return _module_fingerprint(module)
    code = getattr(target, "__code__", None)
    try:
        if getattr(target, "__name__", "") == "<lambda>":
            # the source of a lambda is its whole line, which may hold other lambdas
            raise TypeError
        body = _normalised_source(inspect.getsource(target))
    except (OSError, TypeError, SyntaxError):
        body = _code_digest(code) if code is not None else f"{module}.{getattr(target, '__qualname__', repr(target))}"
    extra = json.dumps(_global_constants(target))
    defaults = repr(getattr(target, "__defaults__", None)) + repr(getattr(target, "__kwdefaults__", None))
    deps = json.dumps(_dependencies(target, _seen))
    return hashlib.sha256("\n".join([body, extra, defaults, deps]).encode()).hexdigest()


def _dependencies(fn, seen: frozenset) -> list:
    """Fingerprints of the functions and voxelflow.ops modules a function calls by global name.

    A pipeline function calling a helper or an op is invalidated when that
    helper or op changes, not only when its own body does.
    """
    code = getattr(fn, "__code__", None)
    if code is None:
        return []
    glb = getattr(fn, "__globals__", {})
    out = []
    for name in sorted(set(code.co_names)):
        value = glb.get(name)
        if isinstance(value, types.ModuleType):
            if value.__name__.startswith("voxelflow.ops"):
                out.append([name, _module_fingerprint(value.__name__)])
        elif isinstance(value, Step):
            out.append([name, fingerprint(value, _seen=seen)])
        elif isinstance(value, types.FunctionType) and value not in seen:
            # third-party libraries are versioned; only the user's and voxelflow's own code is followed
            mod = value.__module__ or ""
            if mod == fn.__module__ or mod.startswith("voxelflow"):
                out.append([name, fingerprint(value, _seen=seen)])
    return out


# --- keys -----------------------------------------------------------------------


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
    if isinstance(value, (Step, types.FunctionType, types.BuiltinFunctionType, functools.partial)):
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


# --- run records ------------------------------------------------------------------


@dataclass
class StepRecord:
    """What happened in one step call: its name, key, whether it was cached, time taken."""

    name: str
    key: str | None
    cached: bool
    seconds: float
    node: str | None = None
    outputs: list[str] = field(default_factory=list)


_RECORDS: contextvars.ContextVar[list | None] = contextvars.ContextVar("voxelflow_step_records", default=None)
_LISTENER: contextvars.ContextVar[Callable | None] = contextvars.ContextVar("voxelflow_step_listener", default=None)


@contextlib.contextmanager
def record_steps(on_step: Callable[[StepRecord], None] | None = None):
    """Collect a :class:`StepRecord` for every step called inside the block.

    Parameters
    ----------
    on_step : callable, optional
        Called with each record as the step finishes (e.g. to print progress).

    Yields
    ------
    list of StepRecord
    """
    records: list[StepRecord] = []
    t1 = _RECORDS.set(records)
    t2 = _LISTENER.set(on_step)
    try:
        yield records
    finally:
        _RECORDS.reset(t1)
        _LISTENER.reset(t2)


def _emit(record: StepRecord) -> None:
    records = _RECORDS.get()
    if records is not None:
        records.append(record)
    listener = _LISTENER.get()
    if listener is not None:
        listener(record)


# --- storing results ----------------------------------------------------------------


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


def _write_output(value: Any, url: str, storage: dict) -> str:
    """Write one output into the child node ``url`` (opened by the caller); return its stored type."""
    from voxelflow.cache import cdir_commit, save

    if isinstance(value, (da.Array, np.ndarray)):
        from voxelflow.io.ome_zarr import write_ome_zarr

        write_ome_zarr(value, str(VPath(url) / "data.ome.zarr"), overwrite=True, **storage)
        cdir_commit(url)
        return "image"
    if isinstance(value, pd.DataFrame):
        save(url, value)
        return "table"
    if isinstance(value, pd.Series):
        save(url, value.to_frame(name=value.name if value.name is not None else 0))
        return "series"
    if isinstance(value, np.generic):
        value = value.item()
    try:
        json.dumps(value)
    except TypeError as exc:
        raise InvalidInputError(
            f"step output of type {type(value).__name__} cannot be cached; return arrays, "
            "pandas DataFrames, JSON values, or a tuple of those"
        ) from exc
    save(url, value)
    return "value"


def _read_output(kind: str, url: str, name: str) -> Any:
    from voxelflow.cache import load

    if kind == "image":
        from voxelflow.io.ome_zarr import open_ome_zarr

        arr, _ = open_ome_zarr(str(VPath(url) / "data.ome.zarr"))
        # a name derived from the key makes downstream keys follow upstream ones
        return keyed(arr, name)
    if kind == "series":
        return load(url).iloc[:, 0]
    return load(url)


# --- the step object ---------------------------------------------------------------------


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
        _emit(record)
        self._show(result, viewer_args, storage, record)
        return result

    def _cached(self, key: str, arguments: dict, node_url: str, storage: dict, t0: float):
        from voxelflow.cache import cdir_commit, cdir_init

        # a node committed under another key is wiped by cdir_init and recomputed
        node = cdir_init(node_url, key=key)
        cached = node.commit is not None
        if not cached:
            result = self.fn(**arguments)
            items = list(result) if isinstance(result, tuple) else [result]
            kinds = []
            for i, value in enumerate(items):
                child = (VPath(node_url) / f"out{i}").url
                # children keep their own key: a resumed node reuses only outputs of this key
                if cdir_init(child, key=f"{key}/{i}").commit is None:
                    kinds.append(_write_output(value, child, storage))
                else:
                    kinds.append(_stored_kind(value))
            desc = {
                "step": self.name,
                "kind": self.kind,
                "key": key,
                "tuple": isinstance(result, tuple),
                "outputs": kinds,
                "seconds": time.perf_counter() - t0,
            }
            (VPath(node_url) / STEP_FILE).write_text(json.dumps(desc, indent=1))
            cdir_commit(node_url)
        desc = json.loads((VPath(node_url) / STEP_FILE).read_text())
        outs = [
            _read_output(kind, (VPath(node_url) / f"out{i}").url, f"{key}/{i}")
            for i, kind in enumerate(desc["outputs"])
        ]
        result = tuple(outs) if desc["tuple"] else outs[0]
        record = StepRecord(self.name, key, cached, time.perf_counter() - t0, node_url, desc["outputs"])
        return result, record

    def _show(self, result, viewer_args: dict | None, storage: dict, record: StepRecord) -> None:
        viewer_args = dict(viewer_args or {})
        viewer = viewer_args.pop("viewer", None)
        if viewer is None:
            return
        from voxelflow.viewer import add_result

        shown = result[0] if isinstance(result, tuple) else result
        if record.node and record.outputs and record.outputs[0] == "image":
            # the stored OME-Zarr carries the pyramid napari needs for large results
            shown = VPath(record.node) / "out0" / "data.ome.zarr"
        is_label = viewer_args.pop("is_label", self.kind_out in _LABEL_KINDS)
        name = viewer_args.pop("name", self.name)
        viewer_args.setdefault("scale", storage.get("scale"))
        add_result(viewer, shown, name=name, is_label=is_label, **viewer_args)


def _stored_kind(value) -> str:
    if isinstance(value, (da.Array, np.ndarray)):
        return "image"
    if isinstance(value, pd.DataFrame):
        return "table"
    if isinstance(value, pd.Series):
        return "series"
    return "value"


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


# --- built-in steps: one per op (DESIGN.md data types) -------------------------------------

threshold = Step("voxelflow.ops._threshold:threshold", kind="IN->BS")
label = Step("voxelflow.ops._label:label", kind="BS->OS")
object_table = Step("voxelflow.ops._objects:object_table", kind="OS->LC")
watershed_split = Step("voxelflow.ops._watershed:watershed_split", kind="BS->OS")
blob_detect = Step("voxelflow.ops._blobs:blob_detect", kind="IN->LC")
downsample = Step("voxelflow.ops._resample:downsample", kind="IN->IN")
estimate_bias_field = Step("voxelflow.ops._bias:estimate_bias_field", kind="IN->IN")
apply_bias_field = Step("voxelflow.ops._bias:apply_bias_field", kind="IN->IN")
density_map = Step("voxelflow.ops._density:density_map", kind="LC->CD")
assign_regions = Step("voxelflow.ops._atlas:assign_regions", kind="LC->LC")  # returns the region_id Series
count_by_region = Step("voxelflow.ops._atlas:count_by_region", kind="LC->RC")
