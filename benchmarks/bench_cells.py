"""Cell detection front end: MVox/s on the local threaded scheduler, peak RSS, accuracy; references in the same run.

Besides wall-clock MVox/s (which on a shared machine depends on its load,
printed next to it), the script reports the CPU seconds the front end used and
the throughput that work would have on ``--workers`` idle cores.

The scan is tiled from synthetic two-channel crops (:mod:`voxelflow.synth_cells`,
different seeds, flipped) into ``--shape`` voxels (default 128 x 2048 x 2048 =
0.54 GVox, 5 x 2 x 2 um), held in memory as uint16 and chunked like a stored
scan, so the figures are compute, not disk reads. The front end is what the
cell recipe computes: per-plane levels of both channels, the autofluorescence
factor, the response (normalise, subtract, LoG), per-plane threshold
statistics, and the maxima in the thresholded foreground (the response is
computed twice, once per pass, as no intermediate is stored here).

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

import dask
import dask.array as da
import numpy as np

from voxelflow import ops
from voxelflow.synth_cells import make_synthetic_cells, score_cells

TILE = (64, 512, 512)
SPACING = (5.0, 2.0, 2.0)
DIAMETER = 10.0


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
                sx.append(da.from_array(c.image[flip], chunks=(32, 256, 256)))
                bx.append(da.from_array(c.background[flip], chunks=(32, 256, 256)))
            sy.append(sx)
            by.append(bx)
        sig_rows.append(sy)
        bg_rows.append(by)
    sl = tuple(slice(0, s) for s in shape)
    return da.block(sig_rows)[sl].rechunk((32, 256, 256)), da.block(bg_rows)[sl].rechunk((32, 256, 256))


def front_end(sig, bg, spacing, diameter):
    """The detection front end of the cell recipe, without a tissue mask (the tiled scan is all tissue)."""
    sigma = 0.9 * diameter / (2 * np.sqrt(3))
    t = {}
    t0 = time.perf_counter()
    lev_s = ops.plane_tile_median(sig, spacing)
    lev_b = ops.plane_tile_median(bg, spacing)
    t["levels"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    s_n = ops.remove_plane_background(sig, lev_s, spacing)
    b_n = ops.remove_plane_background(bg, lev_b, spacing)
    factor = ops.estimate_channel_factor(s_n, b_n)
    t["factor"] = time.perf_counter() - t0
    response = ops.log_filter(ops.channel_background(s_n, b_n, factor=factor), sigma, spacing)
    t0 = time.perf_counter()
    stats = ops.tile_stats(response, spacing)
    t["threshold_stats"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    fg = ops.tile_threshold(response, stats, 3.0)
    peaks = ops.find_peaks(response, spacing, 0.2 * diameter, foreground=fg)
    peaks = ops.thin_peaks(peaks, spacing, 0.5 * diameter)
    t["maxima"] = time.perf_counter() - t0
    return peaks, t


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
    args = p.parse_args(argv)

    crops = [make_synthetic_cells(TILE, seed) for seed in range(args.seeds)]
    sig, bg = _tiled_scan(tuple(args.shape), crops)
    gvox = sig.size / 1e9
    print(f"scan {tuple(sig.shape)} = {gvox:.2f} GVox, chunks {sig.chunksize}, {args.workers} threads, "
          f"load {os.getloadavg()[0]:.2f}", flush=True)
    # warm-up: compile the kernels on one tile
    front_end(da.from_array(crops[0].image[:32, :256, :256]), da.from_array(crops[0].background[:32, :256, :256]),
              SPACING, DIAMETER)
    rss0 = _rss_mb()
    with dask.config.set(scheduler="threads", num_workers=args.workers):
        t0, c0 = time.perf_counter(), _cpu_s()
        peaks, stages = front_end(sig, bg, SPACING, DIAMETER)
        total, cpu = time.perf_counter() - t0, _cpu_s() - c0
    result = {
        "shape": list(sig.shape), "gvox": round(gvox, 3), "workers": args.workers, "seconds": round(total, 2),
        "mvox_per_s": round(sig.size / 1e6 / total, 1),
        "cpu_seconds": round(cpu, 1),
        # what the work would take on the given number of otherwise idle cores
        "mvox_per_s_from_cpu_time": round(sig.size / 1e6 / cpu * args.workers, 1),
        "stages_s": {k: round(v, 2) for k, v in stages.items()},
        "peak_rss_mb": round(_rss_mb(), 1), "rss_before_mb": round(rss0, 1),
        "cells_found": int(len(peaks)), "load_1min": os.getloadavg()[0],
    }
    result.update({k: round(v, 1) for k, v in _references(crops[0]).items()})
    # accuracy of the same front end on one whole tile, against its planted cells
    one = crops[0]
    with dask.config.set(scheduler="threads", num_workers=args.workers):
        t0 = time.perf_counter()
        tile_peaks, _ = front_end(da.from_array(one.image, chunks=(32, 256, 256)),
                                  da.from_array(one.background, chunks=(32, 256, 256)), SPACING, DIAMETER)
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
