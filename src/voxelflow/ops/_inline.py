"""Inline single-use upstream tasks into the per-chunk tasks that consume them.

A chunk pass reads each input block exactly once. Leaving the block's
producers (read, threshold, ...) as separate tasks costs one scheduler round
trip per producer and chunk, which on the threaded scheduler is paid under the
GIL and competes with the compiled kernels. ``dask.optimize`` would fuse them
into sub-graph tasks, but each sub-graph is re-ordered on every call, which
costs about as much. Nesting the producer tasks as arguments of the consumer
(dask's own ``Task.substitute``) removes both costs. Only tasks with exactly
one consumer are nested, so nothing is computed twice.
"""

from __future__ import annotations

from collections import Counter

from dask._task_spec import GraphNode, Task, convert_legacy_graph
from dask.highlevelgraph import HighLevelGraph
from dask.utils import ensure_dict


def inline_into(graph: HighLevelGraph, targets: list) -> dict:
    """Return ``graph`` as a flat dict with single-use producers nested into ``targets``.

    Parameters
    ----------
    graph : HighLevelGraph or dict
        The whole graph to compute.
    targets : list of keys
        Tasks that may absorb their producers (the chunk tasks).

    Returns
    -------
    dict
        Key -> GraphNode. Every nested task is removed as a key; all other
        keys are kept.
    """
    dsk: dict = convert_legacy_graph(ensure_dict(graph))
    uses = Counter(dep for node in dsk.values() for dep in node.dependencies)
    nested: set = set()

    def absorb(node: GraphNode) -> GraphNode:
        subs = {}
        for dep in node.dependencies:
            child = dsk.get(dep)
            if isinstance(child, Task) and uses[dep] == 1 and not child.block_fusion:
                subs[dep] = absorb(child)
                nested.add(dep)
        return node.substitute(subs) if subs else node

    for key in targets:
        dsk[key] = absorb(dsk[key])
    return {k: v for k, v in dsk.items() if k not in nested}
