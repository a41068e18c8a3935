"""The ``@cached`` decorator: a function whose result is saved in a node and always loaded from it."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from voxelflow.cache._node import cdir_init, load, save
from voxelflow.paths import VPath

__all__ = ["cached"]


def cached(
    url: str | VPath | Callable[..., str],
    key: Any = None,
    *,
    storage_options: dict | None = None,
    timeout: float | None = None,
) -> Callable[[Callable], Callable]:
    """Decorator caching a function's result in a node.

    Parameters
    ----------
    url : str, VPath or callable
        The node, or a function of the call's arguments returning it.
    key : JSON value or callable, optional
        The key, or a function of the call's arguments returning it.

    Returns
    -------
    decorator
        The wrapped function computes and saves only when the node is not
        committed, and always returns :func:`load` of the node (so a dask result
        comes back lazily from storage and is never computed twice).

    Examples
    --------
    >>> import numpy as np, tempfile
    >>> root = tempfile.mkdtemp()
    >>> @cached(lambda n: f"{root}/squares-{n}", key=lambda n: {"n": n})
    ... def squares(n):
    ...     return np.arange(n) ** 2
    >>> squares(4)
    array([0, 1, 4, 9])
    """

    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            node_url = url(*args, **kwargs) if callable(url) else url
            node_key = key(*args, **kwargs) if callable(key) else key
            node = cdir_init(node_url, node_key, storage_options=storage_options, timeout=timeout)
            if node.commit is None:
                save(node.path, fn(*args, **kwargs), key=node_key)
            return load(node.path)

        return wrapper

    return decorate
