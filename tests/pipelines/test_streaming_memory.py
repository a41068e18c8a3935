"""The streaming objects pass stays within a worker's memory on a volume larger than that memory.

A 537 MB uint16 volume (noise plus planted cubes whose count is the truth, drawn
chunk by chunk on the worker) is counted by the cached ``foreground_objects`` step
on a one-worker cluster whose memory limit (450 MB, about 250 MB of which the
worker's own libraries take) is smaller than the volume: the worker is never
restarted, its peak RSS stays below the limit, and the count and voxels are exact.
"""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from voxelflow.ops import foreground_objects
from voxelflow.runtime.compute import process_peak_memory_mb
from voxelflow.steps import Step

SHAPE = (128, 1024, 2048)  # 268 M voxels, 537 MB of uint16
CHUNKS = (32, 256, 256)
SPACING = 64  # one cube per 64^3 block, 6 voxels a side
LIMIT_MB = 450


def _draw(block_info=None):
    loc = block_info[None]["array-location"]
    start = np.array([a for a, _ in loc])
    shape = tuple(b - a for a, b in loc)
    rng = np.random.default_rng(list(block_info[None]["chunk-location"]))
    out = rng.integers(0, 300, size=shape, dtype=np.uint16)
    for z in range(0, SHAPE[0], SPACING // 2):
        for y in range(16, SHAPE[1], SPACING):
            for x in range(16, SHAPE[2], SPACING):
                lo = np.array([z + 8, y, x]) - start
                hi = lo + 6
                if np.all(hi > 0) and np.all(lo < shape) and z + 14 <= SHAPE[0]:
                    sl = tuple(slice(max(0, a), min(n, b)) for a, b, n in zip(lo, hi, shape))
                    out[sl] = 1000
    return out


def _truth() -> int:
    nz = len([z for z in range(0, SHAPE[0], SPACING // 2) if z + 14 <= SHAPE[0]])
    return nz * len(range(16, SHAPE[1], SPACING)) * len(range(16, SHAPE[2], SPACING))


@pytest.mark.timeout(900)
def test_pass_on_a_volume_larger_than_the_worker_memory(tmp_path):
    distributed = pytest.importorskip("distributed")
    img = da.map_blocks(_draw, dtype=np.uint16, chunks=da.core.normalize_chunks(CHUNKS, SHAPE),
                        name="planted-cubes")
    assert img.nbytes > LIMIT_MB * 2**20
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, memory_limit=f"{LIMIT_MB}MB",
                                  processes=True, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        before = set(client.scheduler_info()["workers"])
        table = Step(foreground_objects, kind="IN->LC", name="objects")(
            img, 500.0, None, None, 1, cache_url=str(tmp_path / "cache" / "objects"))
        after = set(client.scheduler_info()["workers"])
        peaks = client.run(process_peak_memory_mb)
    assert before == after  # no worker was restarted
    assert max(peaks.values()) < LIMIT_MB
    assert len(table) == _truth()
    assert (table["voxels"] == 6 * 6 * 6).all()
