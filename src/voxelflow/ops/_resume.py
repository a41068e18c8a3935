"""A hook through which long chunk passes keep finished results and resume after a kill.

Ops do no I/O. A caller that can store things (a cached step) opens a
:func:`resumable_passes` block with a factory; inside it every chunk pass asks
:func:`pass_results` for a :class:`ChunkResults` keyed by the pass's token (a
hash of its input graph and parameters, stable across processes). The pass then
computes only the chunk groups the store does not hold, hands each finished
group's result to the store as soon as it exists, and reads the others back.
A token that differs (another input, another parameter) finds nothing, so a
stored result is never reused for different work.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["ChunkResults", "resumable_passes", "pass_results"]


class ChunkResults(Protocol):
    """Finished results of one pass, by group index (``0 .. total - 1``).

    Implementations must be picklable (they travel to Dask workers) and make
    :meth:`save` atomic: a group is either fully stored or absent.
    """

    def done(self) -> set[int]:
        """Indices of the groups already stored."""

    def load(self, group: int) -> Any:
        """The stored result of ``group``."""

    def save(self, group: int, value: Any) -> None:
        """Store the result of ``group``."""


_FACTORY: contextvars.ContextVar[Callable[[str, int], ChunkResults] | None] = contextvars.ContextVar(
    "voxelflow_chunk_results", default=None
)


@contextlib.contextmanager
def resumable_passes(factory: Callable[[str, int], ChunkResults]):
    """Make chunk passes inside the block keep and reuse per-group results.

    Parameters
    ----------
    factory : callable
        ``factory(token, total) -> ChunkResults`` for a pass of ``total`` groups.
    """
    reset = _FACTORY.set(factory)
    try:
        yield
    finally:
        _FACTORY.reset(reset)


def pass_results(token: str, total: int) -> ChunkResults | None:
    """The store for the pass ``token`` of ``total`` groups, or None outside :func:`resumable_passes`."""
    factory = _FACTORY.get()
    return None if factory is None else factory(token, total)


def saved(store: ChunkResults, group: int, value):
    """Store ``value`` as the result of ``group`` and return it (a task wrapper)."""
    store.save(group, value)
    return value
