"""Code fingerprints: what a function computes, insensitive to its docstring and comments.

A fingerprint is the hash of a function's AST with docstrings, comments and
decorators removed, the module-level constants it reads, its default values,
and the fingerprints of the functions, steps and ``voxelflow.ops`` modules it
calls by global name. Library ops are fingerprinted by their whole module, so a
change in a private helper also invalidates the results that used it.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib
import inspect
import json
import sys
import textwrap
import types
from collections.abc import Callable
from typing import Any

__all__ = ["fingerprint", "is_step"]


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
    fn = _step_function(fn)
    target = inspect.unwrap(fn)
    _seen = _seen | {target}
    if isinstance(target, functools.partial):
        from voxelflow.steps.tokens import token

        bound = json.dumps(token([list(target.args), dict(target.keywords)], "functools.partial arguments"))
        return hashlib.sha256((fingerprint(target.func) + bound).encode()).hexdigest()
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
            if value.__name__ == "voxelflow.ops":
                out.append([name, _ops_fingerprint()])
            elif value.__name__.startswith("voxelflow.ops"):
                out.append([name, _module_fingerprint(value.__name__)])
        elif is_step(value):
            out.append([name, fingerprint(value, _seen=seen)])
        elif isinstance(value, types.FunctionType) and value not in seen:
            # third-party libraries are versioned; only the user's and voxelflow's own code is followed
            mod = value.__module__ or ""
            if mod == fn.__module__ or mod.startswith("voxelflow"):
                out.append([name, fingerprint(value, _seen=seen)])
    return out


def _ops_fingerprint() -> str:
    """Fingerprint of every loaded ``voxelflow.ops`` module (a function calling ``ops.label`` through the face)."""
    names = sorted(m for m in sys.modules if m.startswith("voxelflow.ops."))
    return hashlib.sha256("|".join(_module_fingerprint(m) for m in names).encode()).hexdigest()


def is_step(value: Any) -> bool:
    """True for a :class:`voxelflow.steps.Step`."""
    from voxelflow.steps.step import Step

    return isinstance(value, Step)


def _step_function(fn):
    return fn.fn if is_step(fn) else fn
