"""Scale behaviour of voxelflow's chain: throughput, memory, workers, label graph, out-of-core.

* sizes: threshold -> label -> object table -> count from OME-Zarr (uint16, 64^3 chunks) to a
  DataFrame for 64 MVox, 512 MVox and 2 GVox volumes, on one worker process with
  2 threads and a worker memory limit (default 1.5 GB): MVox/s and peak memory
  of the whole process tree should stay flat as the volume grows;
* workers: the 512 MVox volume with 1 and with 2 single-threaded worker processes;
* out-of-core: the 2 GVox run itself, whose volume (4.3 GB) is larger than the
  worker memory limit: it must finish with no worker restarted;
* label graph: voxelflow's merge plan (``plan_labels`` + per-chunk ``remap_specs``)
  and relabelling task graph for 10^4 and 10^5 chunks, simulated with realistic
  per-chunk label counts and face contacts: time and client memory.

Each case runs in its own subprocess. Usage::

    python benchmarks/bench_scale.py                   # everything, as in run_all
    python benchmarks/bench_scale.py --sizes 256,512,512 --skip-workers --graph-chunks 10000
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit, ensure_volume, local_cluster, run_measured, threshold_for

SIZES = ((256, 512, 512), (512, 1024, 1024), (1024, 1024, 2048))
WORKER_SIZE = (512, 1024, 1024)
GRAPH_CHUNKS = (10_000, 100_000)
MEMORY_LIMIT = "1.5GB"


# --- cases (inside a subprocess) -----------------------------------------------------


def _case_chain(url, threshold, workers, threads, memory_limit):
    from voxelflow.io.ome_zarr import open_ome_zarr
    from voxelflow.ops._counts import count_objects
    from voxelflow.ops._objects import object_table
    from voxelflow.ops._threshold import threshold as vf_threshold

    cluster, client = local_cluster(workers, threads, memory_limit=memory_limit)
    try:
        client.wait_for_workers(workers)
        before = set(client.scheduler_info()["workers"])
        img, _ = open_ome_zarr(url)
        t0 = time.perf_counter()
        lc = object_table(vf_threshold(img, threshold), connectivity=1)
        count = count_objects(lc)
        seconds = time.perf_counter() - t0
        after = set(client.scheduler_info()["workers"])
        spilled = client.run(lambda dask_worker: getattr(dask_worker.data, "spilled_total", (0, 0))[1])
        nanny_logs = client.get_worker_logs(nanny=True)
        kills = sum("restart" in msg.lower() or "exceeded" in msg.lower()
                    for logs in nanny_logs.values() for _, msg in logs)
    finally:
        client.close()
        cluster.close()
    return {"seconds": seconds, "n_objects": int(count),
            "object_voxels": int(lc["voxels"].sum()), "workers_replaced": len(before - after),
            "restart_messages": kills, "spilled_mb": round(sum(spilled.values()) / 2**20, 1)}


def _simulated_chunk_results(n_chunks: int, seed: int = 0) -> list:
    """Per-chunk results as the label pass returns them, for a cubic grid of ``n_chunks`` chunks.

    One ``(n, stats, la, lb, kb)`` per chunk (see ``voxelflow.ops._ccpass``): ~50
    labels per chunk (a 64^3 chunk of the benchmark volume holds ~12: denser on
    purpose), and ~3 objects crossing each face into the next chunk.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    side = round(n_chunks ** (1 / 3))
    grid = (side, side, math.ceil(n_chunks / side**2))
    counts = rng.poisson(50, size=math.prod(grid)).astype(np.int64) + 5
    index = np.arange(counts.size).reshape(grid)
    ka, kb = [], []
    for axis in range(3):
        a = np.take(index, range(grid[axis] - 1), axis=axis).ravel()
        b = np.take(index, range(1, grid[axis]), axis=axis).ravel()
        ka += [a] * 3
        kb += [b] * 3
    ka, kb = np.concatenate(ka), np.concatenate(kb)
    la = 1 + rng.integers(0, counts[ka])
    lb = 1 + rng.integers(0, counts[kb])
    order = np.argsort(ka, kind="stable")
    ka, la, lb, kb = ka[order], la[order], lb[order], kb[order]
    cuts = np.searchsorted(ka, np.arange(1, counts.size))
    return [(int(n), None, a, b, k)
            for n, a, b, k in zip(counts, np.split(la, cuts), np.split(lb, cuts), np.split(kb, cuts))]


def _case_graph(n_chunks):
    import pickle
    import tracemalloc

    from voxelflow.ops._ccpass import plan_from_chunk_results
    from voxelflow.ops._merge import remap_specs

    results = _simulated_chunk_results(n_chunks)

    def build():
        plan = plan_from_chunk_results(results)
        specs = remap_specs(plan)
        # The relabelling layer holds one task per chunk carrying that chunk's spec.
        graph = {("relabel", k): ("f", ("bs", k), 1, spec, plan.dtype) for k, spec in enumerate(specs)}
        return plan, specs, graph

    t0 = time.perf_counter()
    plan, specs, graph = build()
    seconds = time.perf_counter() - t0
    del plan, specs, graph
    # Client memory in a second, traced build: tracing slows the build several-fold.
    tracemalloc.start()
    plan, specs, graph = build()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    spec_bytes = [len(pickle.dumps(s)) for s in specs]
    return {"seconds": seconds, "chunks": len(results), "provisional_labels": plan.total,
            "contacts": int(sum(r[2].size for r in results)), "objects": plan.n,
            "client_peak_mb": round(peak / 2**20, 1), "graph_pickled_mb": round(len(pickle.dumps(graph)) / 2**20, 1),
            "max_spec_bytes": max(spec_bytes), "tasks": len(graph)}


# --- orchestration ---------------------------------------------------------------------


def _run_case(argv_tail, timeout=1800):
    return run_measured([sys.executable, str(Path(__file__).resolve()), *argv_tail], timeout=timeout)


def measure_chain(volume, workers=1, threads=2, memory_limit=MEMORY_LIMIT) -> dict:
    res = _run_case(["--case", "chain", "--volume", str(volume.path), "--workers", str(workers),
                     "--threads", str(threads), "--memory-limit", memory_limit,
                     "--threshold", str(threshold_for(volume.dtype))])
    row = {"shape": "x".join(map(str, volume.shape)), "mvox": round(volume.mvox, 1),
           "volume_gb": round(volume.mvox * 1e6 * 2 / 1e9, 2), "workers": workers, "threads": threads,
           "memory_limit": memory_limit, "truth": volume.n_objects, "peak_rss_mb": res["peak_rss_mb"],
           "client_mb": res["peak_main_mb"]}
    if "error" in res:
        row["error"] = res["error"].splitlines()[-1][:160]
        return row
    row.update(seconds=round(res["seconds"], 2), mvox_s=round(volume.mvox / res["seconds"], 1),
               objects=res["n_objects"], exact=res["n_objects"] == volume.n_objects
               and res["object_voxels"] == volume.object_voxels,
               workers_replaced=res["workers_replaced"], restart_messages=res["restart_messages"],
               spilled_mb=res["spilled_mb"])
    return row


def measure_graph(n_chunks) -> dict:
    res = _run_case(["--case", "graph", "--chunks", str(n_chunks)])
    if "error" in res:
        return {"chunks": n_chunks, "error": res["error"].splitlines()[-1][:160]}
    res.pop("wall_s_process")
    res.pop("peak_main_mb")
    res["seconds"] = round(res["seconds"], 3)
    return res


def run(sizes=SIZES, worker_size=WORKER_SIZE, graph_chunks=GRAPH_CHUNKS, memory_limit=MEMORY_LIMIT,
        log=print) -> dict:
    """All scale measurements; returns {'sizes': rows, 'workers': rows, 'graph': rows}."""
    out = {"sizes": [], "workers": [], "graph": []}
    for shape in sizes:
        t0 = time.perf_counter()
        volume = ensure_volume(shape, kind="ome", dtype="uint16")
        log(f"   volume {volume.shape} ready ({time.perf_counter() - t0:.0f} s)")
        row = measure_chain(volume, 1, 2, memory_limit)
        log("   " + json.dumps(row))
        out["sizes"].append(row)
    if worker_size:
        volume = ensure_volume(worker_size, kind="ome", dtype="uint16")
        for workers in (1, 2):
            row = measure_chain(volume, workers, 1, memory_limit)
            log("   " + json.dumps(row))
            out["workers"].append(row)
    for n in graph_chunks:
        row = measure_graph(n)
        log("   " + json.dumps(row))
        out["graph"].append(row)
    return out


def _shape(text):
    return tuple(int(s) for s in text.split(","))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="*", type=_shape, default=list(SIZES), help="shapes z,y,x")
    parser.add_argument("--worker-size", type=_shape, default=WORKER_SIZE, help="shape for the 1-vs-2 workers run")
    parser.add_argument("--skip-workers", action="store_true")
    parser.add_argument("--graph-chunks", nargs="*", type=int, default=list(GRAPH_CHUNKS))
    parser.add_argument("--memory-limit", default=MEMORY_LIMIT, help="per-worker Dask memory limit")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--case", choices=["chain", "graph"], help=argparse.SUPPRESS)
    parser.add_argument("--volume", help=argparse.SUPPRESS)
    parser.add_argument("--threshold", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=2, help=argparse.SUPPRESS)
    parser.add_argument("--chunks", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.case == "chain":
        emit(_case_chain(args.volume, args.threshold, args.workers, args.threads, args.memory_limit))
        return 0
    if args.case == "graph":
        emit(_case_graph(args.chunks))
        return 0
    out = run(args.sizes, None if args.skip_workers else args.worker_size, args.graph_chunks, args.memory_limit)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    rows = out["sizes"] + out["workers"] + out["graph"]
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
