"""Nesting single-use producer tasks into chunk tasks keeps results and computes nothing twice."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
from dask.delayed import Delayed
from dask.highlevelgraph import HighLevelGraph

from voxelflow.ops._inline import inline_into


def test_single_use_producers_are_nested_and_shared_ones_kept():
    calls = []

    def counted(block):
        calls.append(1)
        return block

    x = np.arange(64, dtype=np.float32).reshape(8, 8)
    img = da.from_array(x, chunks=4).map_blocks(counted, meta=np.empty((0, 0), np.float32))
    bs = (img + 1) > 20  # two element-wise steps used only by the chunk tasks
    name = "consume"
    dsk = {(name, *idx): (np.add, (bs.name, *idx), (img.name, *idx)) for idx in np.ndindex(2, 2)}
    dsk["all"] = (list, list(dsk))
    graph = HighLevelGraph.from_collections("all", dsk, dependencies=[bs, img])
    flat = inline_into(graph, [(name, *idx) for idx in np.ndindex(2, 2)])

    # img feeds both the threshold and the consumer: it stays a task of its own
    assert all((img.name, *idx) in flat for idx in np.ndindex(2, 2))
    assert not any((bs.name, *idx) in flat for idx in np.ndindex(2, 2))
    result = dask.compute(Delayed("all", flat))[0]
    assert len(calls) == 4
    blocks = [x[i * 4 : i * 4 + 4, j * 4 : j * 4 + 4] for i, j in np.ndindex(2, 2)]
    for got, block in zip(result, blocks):
        np.testing.assert_array_equal(got, ((block + 1) > 20) + block)
