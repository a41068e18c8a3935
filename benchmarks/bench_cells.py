"""Cell detection front end: MVox/s on the local threaded scheduler, peak RSS, accuracy; references in the same run.

Besides wall-clock MVox/s (which on a shared machine depends on its load,
printed next to it), the script reports the CPU seconds the front end used and
the throughput that work would have on ``--workers`` idle cores.

The scan is a two-channel OME-Zarr (signal, autofluorescence; uint16, chunks
32 x 256 x 256, written by voxelflow's own writer, so Blosc lz4 as ``voxelflow
convert`` stores scans) of ``--shape`` voxels (default 128 x 2048 x 2048 = 0.54
GVox, 5 x 2 x 2 um), tiled from synthetic crops (:mod:`voxelflow.synth_cells`,
different seeds, flipped). It is generated once, chunk by chunk, in a child
process into ``benchmarks/.data/`` and reused, so the peak RSS printed is that
of the pipeline (the generator's own peak is printed apart). The front end reads
the scan from disk in three passes over both channels, with no intermediate
stored: per-plane levels of both channels and the autofluorescence factor
(:func:`voxelflow.ops.channel_levels`, one read); the response (normalise,
subtract, LoG) and its per-plane threshold statistics; and the maxima above
the threshold, each block's response filtered again with the peak box's halo
inside its own task. The response is computed twice because the per-plane
thresholds need every chunk of a plane before any maximum can be kept, and
holding the response until then would cost its whole size in memory (the cell
recipe stores it as a step instead). ``read_mvox_s`` is one plain read of both
channels, for scale. The 1-, 5- and 15-minute load averages before and after
the front end are printed with the figures.

References measured in the same run, on one 64 x 256 x 256 block:
``scipy.ndimage.gaussian_laplace`` (float32, one thread) against
:func:`voxelflow.ops.log_filter`, and :func:`voxelflow.ops.blob_detect`.
With ``--cellfinder PYTHON`` (a Python with cellfinder installed), cellfinder's
``detect`` runs on one tile in that interpreter, and both tools are scored
against the planted cells of that tile.

Usage: ``python benchmarks/bench_cells.py [--shape Z Y X] [--workers 2] [--cellfinder /tmp/cf-venv/bin/python
[--cellfinder-k 10 4]]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dask
import dask.array as da
import numpy as np

from voxelflow import ops
from voxelflow.io import open_image, write_ome_zarr
from voxelflow.synth_cells import make_synthetic_cells, score_cells

TILE = (64, 512, 512)
CHUNKS = (32, 256, 256)
SPACING = (5.0, 2.0, 2.0)
DIAMETER = 10.0
DATA = Path(__file__).resolve().parent / ".data"
FORMAT = 1  # bump when the generated scan changes, so a stale one is rewritten


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _cpu_s() -> float:
    """CPU seconds of this process (all threads): the work done, whatever else the machine runs."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _tiled_scan(shape, crops):
    """A (signal, background) pair of dask arrays tiled from crops (flipped by position)."""
    reps = [int(np.ceil(s / t)) for s, t in zip(shape, TILE)]
    sig_rows, bg_rows = [], []
    for iz in range(reps[0]):
        sy, by = [], []
        for iy in range(reps[1]):
            sx, bx = [], []
            for ix in range(reps[2]):
                c = crops[(iz + iy + ix) % len(crops)]
                flip = (slice(None), slice(None, None, -1 if iy % 2 else 1), slice(None, None, -1 if ix % 2 else 1))
                sx.append(da.from_array(c.image[flip], chunks=CHUNKS))
                bx.append(da.from_array(c.background[flip], chunks=CHUNKS))
            sy.append(sx)
            by.append(bx)
        sig_rows.append(sy)
        bg_rows.append(by)
    sl = tuple(slice(0, s) for s in shape)
    return da.block(sig_rows)[sl].rechunk(CHUNKS), da.block(bg_rows)[sl].rechunk(CHUNKS)


def _generate(folder: Path, shape, seeds: int) -> None:
    """Write the tiled two-channel scan to ``folder/scan.ome.zarr`` chunk by chunk (run in a child process)."""
    crops = [make_synthetic_cells(TILE, seed) for seed in range(seeds)]
    sig, bg = _tiled_scan(shape, crops)
    with dask.config.set(scheduler="threads", num_workers=2):
        write_ome_zarr(da.stack([sig, bg]), str(folder / "scan.ome.zarr"), axes="czyx", scale=(1.0,) + SPACING,
                       units="micrometer", chunks=(1,) + CHUNKS, channel_names=["signal", "autofluorescence"],
                       overwrite=True)
    (folder / "done.json").write_text(json.dumps({"generator_peak_rss_mb": round(_rss_mb(), 1)}))


def ensure_scan(shape, seeds: int) -> tuple[Path, dict]:
    """The cached scan of this shape and seed count (generated in a child process if missing) and its record."""
    folder = DATA / f"cells-scan-{'x'.join(map(str, shape))}-s{seeds}-f{FORMAT}"
    done = folder / "done.json"
    if not done.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        print(f"generating {folder} ...", flush=True)
        subprocess.run([sys.executable, __file__, "--generate", str(folder), "--shape", *map(str, shape),
                        "--seeds", str(seeds)], check=True)
    return folder / "scan.ome.zarr", json.loads(done.read_text())


def front_end(sig, bg, spacing, diameter):
    """The detection front end of the cell recipe, without a tissue mask (the tiled scan is all tissue).

    Returns the peak table and, per stage, its wall and CPU seconds.
    """
    sigma = 0.9 * diameter / (2 * np.sqrt(3))
    t = {}

    def stage(name, fn):
        t0, c0 = time.perf_counter(), _cpu_s()
        out = fn()
        t[name] = {"wall": time.perf_counter() - t0, "cpu": _cpu_s() - c0}
        return out

    lev_s, lev_b, factor = stage("levels_factor", lambda: ops.channel_levels(sig, bg, spacing))
    response = ops.log_filter(ops.channel_background(sig, bg, factor=factor, levels=lev_s, bg_levels=lev_b,
                                                     spacing=spacing), sigma, spacing)
    stats = stage("threshold_stats", lambda: ops.tile_stats(response, spacing))

    def maxima():
        return ops.thin_peaks(ops.find_peaks(response, spacing, 0.2 * diameter, threshold=(stats, 3.0)), spacing,
                              0.5 * diameter)

    return stage("maxima", maxima), t


def _references(crop):
    from scipy import ndimage as ndi

    block = crop.image[:64, :256, :256].astype(np.float32)
    n = block.size / 1e6
    sigma_vox = np.array([0.9 * DIAMETER / (2 * np.sqrt(3)) / s for s in SPACING])
    out = {}
    t0 = time.perf_counter()
    ndi.gaussian_laplace(block, sigma_vox)
    out["scipy_gaussian_laplace_float32_1thread_mvox_s"] = n / (time.perf_counter() - t0)
    with dask.config.set(scheduler="single-threaded"):
        ops.log_filter(block, 0.9 * DIAMETER / (2 * np.sqrt(3)), SPACING).compute()  # compile
        t0 = time.perf_counter()
        ops.log_filter(block, 0.9 * DIAMETER / (2 * np.sqrt(3)), SPACING).compute()
        out["voxelflow_log_filter_1thread_mvox_s"] = n / (time.perf_counter() - t0)
        small = block[:32, :128, :128]
        t0 = time.perf_counter()
        ops.blob_detect(small, 1.0, 3.0, 3, threshold=50.0)
        out["blob_detect_1thread_mvox_s"] = small.size / 1e6 / (time.perf_counter() - t0)
    return out


def _cellfinder(python, crop, k):
    """Time cellfinder's detect on one crop in another interpreter; returns its seconds and detected points."""
    with tempfile.TemporaryDirectory() as tmp:
        np.save(os.path.join(tmp, "signal.npy"), crop.image)
        script = os.path.join(tmp, "detect.py")
        # cellfinder starts worker processes: the script needs a main guard
        with open(script, "w") as f:
            f.write(f"""
import json, time, numpy as np
from cellfinder.core.detect import detect

if __name__ == "__main__":
    sig = np.load({os.path.join(tmp, 'signal.npy')!r})
    t0 = time.perf_counter()
    cells = detect.main(sig, voxel_sizes={tuple(SPACING)}, soma_diameter={DIAMETER}, n_free_cpus=0,
                        n_sds_above_mean_thresh={k}, n_sds_above_mean_tiled_thresh={k}, torch_device="cpu")
    print(json.dumps({{"seconds": time.perf_counter() - t0, "points": [[c.z, c.y, c.x] for c in cells]}}))
""")
        done = subprocess.run([python, script], capture_output=True, text=True, timeout=3600, cwd=tmp)
        if done.returncode != 0:
            return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
        return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--shape", type=int, nargs=3, default=(128, 2048, 2048))
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--cellfinder", default="", help="python of an environment with cellfinder installed")
    p.add_argument("--cellfinder-k", type=float, nargs="+", default=[10.0],
                   help="cellfinder's n_sds_above_mean_thresh values to run (its default is 10)")
    p.add_argument("--generate", default="", help=argparse.SUPPRESS)  # the child process that writes the scan
    args = p.parse_args(argv)
    if args.generate:
        _generate(Path(args.generate), tuple(args.shape), args.seeds)
        return 0

    url, record = ensure_scan(tuple(args.shape), args.seeds)
    sig, _ = open_image(str(url), channel=0)
    bg, _ = open_image(str(url), channel=1)
    gvox = sig.size / 1e9
    print(f"scan {tuple(sig.shape)} = {gvox:.2f} GVox, chunks {sig.chunksize}, {args.workers} threads, "
          f"load {os.getloadavg()[0]:.2f}", flush=True)
    # warm-up: compile the kernels on one chunk
    front_end(sig[:32, :256, :256], bg[:32, :256, :256], SPACING, DIAMETER)
    rss0 = _rss_mb()
    load_before = [round(v, 2) for v in os.getloadavg()]
    with dask.config.set(scheduler="threads", num_workers=args.workers):
        t0, c0 = time.perf_counter(), _cpu_s()
        da.compute(sig.max(), bg.max())
        read, read_cpu = time.perf_counter() - t0, _cpu_s() - c0
        t0, c0 = time.perf_counter(), _cpu_s()
        peaks, stages = front_end(sig, bg, SPACING, DIAMETER)
        total, cpu = time.perf_counter() - t0, _cpu_s() - c0
    result = {
        "shape": list(sig.shape), "gvox": round(gvox, 3), "workers": args.workers, "seconds": round(total, 2),
        "mvox_per_s": round(sig.size / 1e6 / total, 1),
        "cpu_seconds": round(cpu, 1),
        # what the work would take on the given number of otherwise idle cores
        "mvox_per_s_from_cpu_time": round(sig.size / 1e6 / cpu * args.workers, 1),
        "read_mvox_s": round(sig.size / 1e6 / read, 1),
        "read_mvox_s_from_cpu_time": round(sig.size / 1e6 / read_cpu * args.workers, 1),
        "stages_s": {k: round(v["wall"], 2) for k, v in stages.items()},
        "stages_cpu_s": {k: round(v["cpu"], 2) for k, v in stages.items()},
        # the process held nothing but the opened scan before: this peak is the pipeline's
        "peak_rss_mb": round(_rss_mb(), 1), "rss_before_mb": round(rss0, 1),
        "generator_peak_rss_mb": record["generator_peak_rss_mb"],
        "cells_found": int(len(peaks)), "load_1min": os.getloadavg()[0],
        "load_avg_before": load_before, "load_avg_after": [round(v, 2) for v in os.getloadavg()],
    }
    one = make_synthetic_cells(TILE, 0)
    result.update({k: round(v, 1) for k, v in _references(one).items()})
    # accuracy of the same front end on one whole tile, against its planted cells
    with dask.config.set(scheduler="threads", num_workers=args.workers):
        t0 = time.perf_counter()
        tile_peaks, _ = front_end(da.from_array(one.image, chunks=CHUNKS),
                                  da.from_array(one.background, chunks=CHUNKS), SPACING, DIAMETER)
        result["voxelflow_tile_seconds"] = round(time.perf_counter() - t0, 2)
    s = score_cells(one, tile_peaks[["z", "y", "x"]].to_numpy() * np.asarray(SPACING))
    result["voxelflow_tile_precision"], result["voxelflow_tile_recall"] = round(s["precision"], 3), round(s["recall"], 3)
    if args.cellfinder:
        for k in args.cellfinder_k:
            cf = _cellfinder(args.cellfinder, one, k)
            tag = f"cellfinder_k{k:g}"
            if "error" in cf:
                result[f"{tag}_error"] = cf["error"]
                continue
            pts = np.asarray(cf["points"], dtype=np.float64).reshape(-1, 3) * np.asarray(SPACING)
            sc = score_cells(one, pts)
            result[f"{tag}_tile_seconds"] = round(cf["seconds"], 2)
            result[f"{tag}_tile_precision"] = round(sc["precision"], 3)
            result[f"{tag}_tile_recall"] = round(sc["recall"], 3)
            result[f"{tag}_seconds_over_voxelflow"] = round(cf["seconds"] / result["voxelflow_tile_seconds"], 1)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
