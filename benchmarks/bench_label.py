"""Benchmark: threshold -> label -> object_table, from an OME-Zarr on disk to a DataFrame.

Prints, with the goals of the kernels issue:

1. end-to-end speed of the chain on a 256x512x512 float32 volume with ~3,000
   blob-like objects stored as OME-Zarr with 64^3 chunks (goal >= 100 MVox/s),
   and its ratio to single-threaded in-memory ``cc3d.connected_components`` +
   ``cc3d.statistics`` on the whole array (goal >= 0.8x);
2. peak RSS of a fresh process running the chain on a ~2 GVox volume that is
   generated chunk by chunk and stored first (goal < 1.5 GB);
3. time to build the label graph of 10,000 chunks from synthetic per-chunk
   contact pairs with the real merge code (goal < 2 s).

Run ``python benchmarks/bench_label.py --quick`` for a short check, or with no
flags for the full figures; ``--profile`` prints wall and CPU time per stage
and a cProfile of the chain instead. Volumes are cached under ``benchmarks/.data/label``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import cc3d
import dask
import dask.array as da
import numpy as np
import psutil

from voxelflow.io.ome_zarr import open_ome_zarr, write_ome_zarr
from voxelflow.ops._ccpass import plan_from_chunk_results
from voxelflow.ops._label import label
from voxelflow.ops._merge import remap_specs
from voxelflow.ops._objects import object_table
from voxelflow.ops._threshold import threshold

THRESHOLD = 0.5
DATA = Path(__file__).resolve().parent / ".data" / "label"


# --- deterministic blob volume, generated chunk by chunk ------------------------------


def blob_catalogue(shape, n_objects: int, seed: int = 0):
    """Ellipsoid centres (n, 3) and semi-axes (n, 3) in voxels, from one seed."""
    rng = np.random.default_rng(seed)
    centres = rng.random((n_objects, 3)) * np.asarray(shape)
    axes = rng.uniform(2.0, 6.0, size=(n_objects, 3))
    return centres, axes


def render_block(centres, axes, seed, block_info=None):
    """One float32 chunk: noise below the threshold plus the blobs that reach into it."""
    info = block_info[None]
    (z0, z1), (y0, y1), (x0, x1) = info["array-location"]
    rng = np.random.default_rng([seed, *info["chunk-location"]])
    # 32 noise levels keep the stored chunks compressible
    out = (rng.integers(0, 32, size=(z1 - z0, y1 - y0, x1 - x0)) * (0.4 / 32)).astype(np.float32)
    lo = np.floor(centres - axes).astype(int)
    hi = np.ceil(centres + axes).astype(int) + 1
    start, stop = np.array([z0, y0, x0]), np.array([z1, y1, x1])
    near = np.flatnonzero(((lo < stop) & (hi > start)).all(axis=1))
    for i in near:
        a, b = np.maximum(lo[i], start), np.minimum(hi[i], stop)
        grid = np.ogrid[a[0] : b[0], a[1] : b[1], a[2] : b[2]]
        d2 = sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centres[i], axes[i]))
        view = out[a[0] - z0 : b[0] - z0, a[1] - y0 : b[1] - y0, a[2] - x0 : b[2] - x0]
        np.maximum(view, np.where(d2 <= 1.0, 1.0 - 0.4 * d2, 0.0).astype(np.float32), out=view)
    return out


def make_volume(shape, chunk: int, n_objects: int, seed: int = 0) -> Path:
    """Write (once) the blob volume as OME-Zarr and return its path."""
    path = DATA / f"blobs_{'x'.join(map(str, shape))}_c{chunk}_n{n_objects}_s{seed}.ome.zarr"
    if (path / ".complete").exists():
        return path
    centres, axes = blob_catalogue(shape, n_objects, seed)
    lazy = da.map_blocks(
        render_block, centres, axes, seed,
        chunks=tuple((chunk,) * (s // chunk) + ((s % chunk,) if s % chunk else ()) for s in shape),
        dtype=np.float32, meta=np.empty((0, 0, 0), np.float32),
    )
    t = time.perf_counter()
    write_ome_zarr(lazy, str(path), chunks=chunk, overwrite=True)
    (path / ".complete").write_text("")
    print(f"  wrote {path.name} in {time.perf_counter() - t:.1f} s")
    return path


# --- measurements ---------------------------------------------------------------------


def chain(url: str, intensity: bool, connectivity: int = 1):
    """The measured chain: open -> threshold -> label + object table (one pass)."""
    img, _ = open_ome_zarr(url)
    bs = threshold(img, THRESHOLD)
    return object_table(bs, img if intensity else None, connectivity)


def cpu_seconds() -> float:
    """User + system CPU time of this process (all threads)."""
    t = os.times()
    return t.user + t.system


def best_time(fn, repeat: int, with_cpu: bool = False):
    """Fastest wall time of ``repeat`` runs (and that run's CPU time if ``with_cpu``)."""
    best, result = None, None
    for _ in range(repeat):
        c, t = cpu_seconds(), time.perf_counter()
        result = fn()
        run = (time.perf_counter() - t, cpu_seconds() - c)
        best = run if best is None or run[0] < best[0] else best
    return (best, result) if with_cpu else (best[0], result)


def read_blocks(url: str):
    """Read (decode) every chunk without assembling the array."""
    img, _ = open_ome_zarr(url)
    return img.map_blocks(lambda b: np.zeros((1,) * b.ndim), chunks=(1,) * img.ndim).sum().compute()


def bench_profile(shape, chunk, n_objects, repeat):
    """Wall and CPU time per stage, then a cProfile of the chain (synchronous scheduler)."""
    import cProfile
    import pstats

    url = str(make_volume(shape, chunk, n_objects))
    nvox = int(np.prod(shape))
    stages = {
        "read all chunks (no assembly)": lambda: read_blocks(url),
        "read + threshold + label()": lambda: label(threshold(open_ome_zarr(url)[0], THRESHOLD)),
        "chain (read .. object_table)": lambda: chain(url, False),
    }
    print(f"profile, load average {os.getloadavg()[0]:.2f} (wall vs CPU: CPU > wall means parallel)")
    for name, fn in stages.items():
        (wall, cpu), _ = best_time(fn, repeat, with_cpu=True)
        print(f"  {name:32s} wall {wall:6.3f} s  CPU {cpu:6.3f} s  {nvox / wall / 1e6:7.1f} MVox/s")
    profiler = cProfile.Profile()
    with dask.config.set(scheduler="synchronous"):
        profiler.runcall(chain, url, False)
    pstats.Stats(profiler).sort_stats("tottime").print_stats(15)


def bench_speed(shape, chunk, n_objects, repeat):
    url = str(make_volume(shape, chunk, n_objects))
    nvox = int(np.prod(shape))
    load = os.getloadavg()[0]
    (t_chain, cpu_chain), table = best_time(lambda: chain(url, False), repeat, with_cpu=True)
    t_int, _ = best_time(lambda: chain(url, True), repeat)
    img, _ = open_ome_zarr(url)
    t_label, (_, n) = best_time(lambda: label(threshold(img, THRESHOLD)), repeat)

    whole = img.compute()
    binary = (whole > THRESHOLD).view(np.uint8)
    del whole

    def reference():
        labels = cc3d.connected_components(binary, connectivity=6)
        return cc3d.statistics(labels, no_slice_conversion=True)

    (t_ref, cpu_ref), stats = best_time(reference, repeat, with_cpu=True)
    n_ref = len(stats["voxel_counts"]) - 1
    assert len(table) == n == n_ref, (len(table), n, n_ref)
    print(f"volume {shape} float32, {chunk}^3 chunks, {n_ref} objects, "
          f"scheduler={dask.config.get('scheduler', 'threads')}, {os.cpu_count()} cores, "
          f"load average {load:.2f}")
    print(f"  chain threshold->label->object_table  {t_chain:7.3f} s  "
          f"{nvox / t_chain / 1e6:7.1f} MVox/s  (goal >= 100)  CPU {cpu_chain:.3f} s")
    print(f"  same with intensity statistics        {t_int:7.3f} s  "
          f"{nvox / t_int / 1e6:7.1f} MVox/s")
    print(f"  label() (computes the merge, lazy OS) {t_label:7.3f} s  "
          f"{nvox / t_label / 1e6:7.1f} MVox/s")
    print(f"  reference cc3d CC + statistics, 1 thread, in memory, no I/O "
          f"{t_ref:7.3f} s  {nvox / t_ref / 1e6:7.1f} MVox/s  CPU {cpu_ref:.3f} s")
    print(f"  ratio chain / reference speed: {t_ref / t_chain:5.2f}x  (goal >= 0.8x)")


def rss_sampler(stop: threading.Event, peak: list, every: float = 0.02):
    proc = psutil.Process()
    while not stop.is_set():
        peak[0] = max(peak[0], proc.memory_info().rss)
        stop.wait(every)


def measure_big(url: str) -> dict:
    """Run the chain on ``url`` in this process while sampling RSS (child-process mode)."""
    peak = [psutil.Process().memory_info().rss]
    stop = threading.Event()
    sampler = threading.Thread(target=rss_sampler, args=(stop, peak), daemon=True)
    baseline = peak[0]
    sampler.start()
    t = time.perf_counter()
    table = chain(url, intensity=True)
    elapsed = time.perf_counter() - t
    stop.set()
    sampler.join()
    return {"seconds": elapsed, "objects": len(table), "peak_rss": peak[0], "baseline_rss": baseline}


def bench_memory(shape, chunk, n_objects):
    url = str(make_volume(shape, chunk, n_objects))
    out = subprocess.run(
        [sys.executable, __file__, "--measure-big", url],
        check=True, capture_output=True, text=True,
    )
    res = json.loads(out.stdout.strip().splitlines()[-1])
    nvox = int(np.prod(shape))
    print(f"out-of-core volume {shape} ({nvox / 1e9:.2f} GVox float32, {chunk}^3 chunks)")
    print(f"  chain with intensity: {res['seconds']:.1f} s, {nvox / res['seconds'] / 1e6:.1f} MVox/s, "
          f"{res['objects']} objects")
    print(f"  peak RSS {res['peak_rss'] / 2**30:.2f} GiB (process start "
          f"{res['baseline_rss'] / 2**30:.2f} GiB; goal < 1.5 GB)")


def synthetic_chunk_results(grid, labels_per_chunk: int, contacts: int, seed: int = 0):
    """Per-chunk (n, stats, la, lb, kb) as the pair tasks return them, for a 6-connected grid."""
    rng = np.random.default_rng(seed)
    nchunks = int(np.prod(grid))
    results = []
    for idx in np.ndindex(*grid):
        la, lb, kb = [], [], []
        for ax in range(3):
            if idx[ax] + 1 < grid[ax]:
                other = list(idx)
                other[ax] += 1
                la.append(rng.integers(1, labels_per_chunk + 1, contacts, dtype=np.uint64))
                lb.append(rng.integers(1, labels_per_chunk + 1, contacts, dtype=np.uint64))
                kb.append(np.full(contacts, np.ravel_multi_index(other, grid), dtype=np.int64))
        empty = [np.empty(0, np.uint64)]
        results.append((
            labels_per_chunk, None,
            np.concatenate(la or empty), np.concatenate(lb or empty),
            np.concatenate(kb or [np.empty(0, np.int64)]),
        ))
    assert len(results) == nchunks
    return results


def bench_graph(nchunks: int, repeat: int):
    side = round(nchunks ** (1 / 3))
    grid = (-(-nchunks // (side * side)), side, side)
    results = synthetic_chunk_results(grid, labels_per_chunk=60, contacts=40)
    npairs = sum(r[2].size for r in results)

    def build():
        plan = plan_from_chunk_results(results)
        return plan, remap_specs(plan)

    t, (plan, _) = best_time(build, repeat)
    print(f"label graph: {int(np.prod(grid))} chunks {grid}, {npairs} face pairs, "
          f"{plan.total} provisional ids -> {plan.n} objects")
    print(f"  merge + per-chunk remap specs: {t:.3f} s  (goal < 2 s)")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shape", type=int, nargs=3, default=(256, 512, 512))
    p.add_argument("--chunk", type=int, default=64)
    p.add_argument("--objects", type=int, default=3000)
    p.add_argument("--big-shape", type=int, nargs=3, default=(1024, 1408, 1408))
    p.add_argument("--graph-chunks", type=int, default=10_000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--quick", action="store_true",
                   help="small volumes, one repeat: checks that everything runs")
    p.add_argument("--skip", nargs="*", default=(), choices=("speed", "memory", "graph"))
    p.add_argument("--profile", action="store_true",
                   help="wall and CPU time per stage of the chain, then a cProfile of it")
    p.add_argument("--measure-big", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.measure_big:
        print(json.dumps(measure_big(args.measure_big)))
        return
    if args.quick:
        args.shape, args.big_shape, args.repeat = (128, 256, 256), (256, 512, 512), 1
        args.objects = 3000 * int(np.prod(args.shape)) // (256 * 512 * 512)
    big_objects = args.objects * int(np.prod(args.big_shape)) // int(np.prod(args.shape))
    if args.profile:
        bench_profile(tuple(args.shape), args.chunk, args.objects, args.repeat)
        return
    if "speed" not in args.skip:
        bench_speed(tuple(args.shape), args.chunk, args.objects, args.repeat)
    if "graph" not in args.skip:
        bench_graph(args.graph_chunks, args.repeat)
    if "memory" not in args.skip:
        bench_memory(tuple(args.big_shape), args.chunk, big_objects)


if __name__ == "__main__":
    main()
