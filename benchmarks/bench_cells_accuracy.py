"""Cell pipeline accuracy and cost over several synthetic crops, with default parameters.

For every seed, :func:`voxelflow.synth_cells.make_synthetic_cells` draws a
two-channel crop (default 40 x 256 x 256 voxels of 5 x 2 x 2 um), which is
written as OME-Zarr and run through the cell pipeline with only
``cells.diameter_um`` and the voxel size given (the voxel size comes from the
scan's metadata). The detections are scored against the planted cells with
:func:`voxelflow.synth_cells.score_cells` (one-to-one matching within half the
diameter): precision, recall, the total count error and the count error of
every atlas region, in percent and in cells. The CPU seconds of each run (all
threads of this process; ``--workers 0``, the default, runs Dask's threaded
scheduler in this process so that they are all counted) are printed next to
the 1-minute load.

Usage: ``python benchmarks/bench_cells_accuracy.py [--seeds 0 1 2 3 4] [--shape Z Y X] [--json out.json]
[--set cells.split_touching=false] [--synth axial_blur_um=3]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time

import numpy as np

from voxelflow.pipelines.cells import run_cell_pipeline
from voxelflow.pipelines.config import load_config
from voxelflow.synth_cells import make_synthetic_cells, score_cells, write_synthetic_cells


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run_seed(seed: int, shape, folder: str, workers: int, overrides=(), synth=None) -> dict:
    """Draw, write, run and score one crop; returns its figures."""
    crop = make_synthetic_cells(shape, seed, **(synth or {}))
    urls = write_synthetic_cells(crop, os.path.join(folder, f"data{seed}"))
    config = load_config(None, [
        f"input.url={urls['scan']}?slices=[0]", "input.background_channel=1",
        f"atlas.url={urls['atlas']}", f"atlas.regions={urls['regions']}",
        f"output.folder={os.path.join(folder, f'run{seed}')}", 'pipeline.kind="cells"',
        f"cells.diameter_um={crop.diameter_um}", f"compute.workers={workers}", *overrides,
    ])
    t0, c0 = time.perf_counter(), _cpu_s()
    result = run_cell_pipeline(config, progress=False)
    wall, cpu = time.perf_counter() - t0, _cpu_s() - c0
    cells = result.objects
    s = score_cells(crop, cells[["z_um", "y_um", "x_um"]].to_numpy(), detected_regions=cells.region_id.to_numpy())
    per = s["regions"]
    planted, detected = int(per.planted.sum()), int(per.detected.sum())
    return {
        "seed": seed, "precision": s["precision"], "recall": s["recall"], "planted": planted, "detected": detected,
        "total_error": (detected - planted) / planted,
        "regions": [{"acronym": r.acronym, "planted": int(r.planted), "detected": int(r.detected),
                     "error": (r.detected - r.planted) / r.planted} for r in per.itertuples()],
        "wall_s": wall, "cpu_s": cpu, "load_1min": os.getloadavg()[0],
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--shape", type=int, nargs=3, default=(40, 256, 256))
    p.add_argument("--workers", type=int, default=0, help="compute.workers (0: threads in this process)")
    p.add_argument("--json", default="", help="also write the figures to this file")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   help="a configuration override KEY=VALUE (repeatable), e.g. cells.split_touching=false")
    p.add_argument("--synth", action="append", default=[],
                   help="a make_synthetic_cells number NAME=VALUE (repeatable), e.g. axial_blur_um=3")
    args = p.parse_args(argv)
    synth = {k: float(v) for k, v in (a.split("=", 1) for a in args.synth)}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        run_seed(args.seeds[0], (16, 64, 64), os.path.join(tmp, "warm"), args.workers, args.overrides)  # compile the kernels
        for seed in args.seeds:
            rows.append(run_seed(seed, tuple(args.shape), tmp, args.workers, args.overrides, synth))
            r = rows[-1]
            regions = "  ".join(f"{g['acronym']} {g['detected']}/{g['planted']} ({100 * g['error']:+.1f} %)"
                                for g in r["regions"])
            print(f"seed {seed}: P {r['precision']:.3f} R {r['recall']:.3f} total {r['detected']}/{r['planted']} "
                  f"({100 * r['total_error']:+.1f} %)  {regions}  cpu {r['cpu_s']:.1f} s wall {r['wall_s']:.1f} s "
                  f"load {r['load_1min']:.2f}", flush=True)
    worst = max(abs(g["error"]) for r in rows for g in r["regions"])
    print(f"{len(rows)} seeds: P {min(r['precision'] for r in rows):.3f}-{max(r['precision'] for r in rows):.3f}, "
          f"R {min(r['recall'] for r in rows):.3f}-{max(r['recall'] for r in rows):.3f}, "
          f"total error {100 * min(r['total_error'] for r in rows):+.1f} .. "
          f"{100 * max(r['total_error'] for r in rows):+.1f} %, worst region {100 * worst:.1f} %, "
          f"cpu {np.mean([r['cpu_s'] for r in rows]):.1f} s per crop")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
