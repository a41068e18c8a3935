"""``voxelflow demo``: synthetic brain in, plaque pipeline run, scored against the planted truth.

The first run draws a synthetic lightsheet brain (:mod:`voxelflow.synth`),
writes it as OME-Zarr with its atlas and region table under ``OUT/data``, runs
the plaque pipeline with its cache in ``OUT/cache``, and prints the detected
objects per atlas region next to the planted ones with the detection precision
and recall. A second run with the same options reads everything from the cache.
"""

from __future__ import annotations

import json
import sys
import time

from voxelflow.paths import VPath

DEFAULT_OUT = "voxelflow-demo"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "demo",
        help="run the plaque pipeline on a synthetic brain and score it against the planted truth",
        description=__doc__,
    )
    p.add_argument("--out", default=DEFAULT_OUT, help=f"run folder (default ./{DEFAULT_OUT})")
    p.add_argument("--shape", type=int, nargs=3, default=None, metavar=("Z", "Y", "X"),
                   help="image shape in voxels (default 128 256 256; with --cells 40 256 256)")
    p.add_argument("--cells", action="store_true",
                   help="the cell pipeline on a synthetic two-channel crop (voxelflow.synth_cells) instead")
    p.add_argument("--seed", type=int, default=0, help="random seed of the synthetic brain")
    p.add_argument("--plaques", type=int, default=400, help="number of plaques to plant")
    p.add_argument("--scheduler", default="", help="Dask scheduler address (tcp://host:port)")
    p.add_argument("--workers", type=int, default=0, help="local worker processes (0: threads in-process)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a pipeline setting, e.g. pipeline.bias=false (repeatable)")
    p.add_argument("--no-report", action="store_true", help="do not write report.html")
    p.add_argument("--quiet", action="store_true", help="no per-step progress")
    p.set_defaults(func=run)


def _write_data(data: VPath, shape, seed: int, plaques: int, stream):
    """Draw the brain and write it, unless ``data/params.json`` says it is there already.

    Returns the planted truth and the region table (read back from ``data``).
    """
    import pandas as pd

    from voxelflow.io.ome_zarr import write_ome_zarr
    from voxelflow.synth import make_synthetic_brain

    params = {"shape": list(shape), "seed": seed, "plaques": plaques, "format": 1}
    stamp = data / "params.json"
    if not (stamp.exists() and json.loads(stamp.read_text()) == params):
        print(f"voxelflow demo: writing a synthetic brain {tuple(shape)} to {data.url}", file=stream)
        stamp.rm()
        brain = make_synthetic_brain(tuple(shape), seed, n_plaques=plaques)
        chunks = tuple(min(c, s) for c, s in zip((64, 128, 128), shape))
        write_ome_zarr(brain.image, (data / "brain.ome.zarr").url, scale=brain.scale, units="micrometer",
                       levels=3, factors=(1, 2, 2), chunks=chunks, overwrite=True)
        write_ome_zarr(brain.atlas, (data / "atlas.ome.zarr").url, scale=brain.atlas_scale, units="micrometer",
                       levels=1, method="nearest", overwrite=True)
        (data / "regions.csv").write_text(brain.regions.to_csv(index=False))
        (data / "truth.csv").write_text(brain.truth.to_csv(index=False))
        stamp.write_text(json.dumps(params))
    with (data / "truth.csv").open("rb") as f:
        truth = pd.read_csv(f)
    with (data / "regions.csv").open("rb") as f:
        regions = pd.read_csv(f)
    return truth, regions


def _rolled_up_truth(truth, regions, level: str):
    """Planted objects (or plaques) per region including descendants (what RC ``count`` holds)."""
    import pandas as pd

    from voxelflow.synth import truth_counts

    per_leaf = truth_counts(truth, regions).set_index("id")[level]
    parent = dict(zip(regions.id, regions.parent))
    total = dict.fromkeys(regions.id, 0)
    for rid, n in per_leaf.items():
        while rid != -1 and rid in total:
            total[rid] += int(n)
            rid = parent[rid]
    return pd.DataFrame({"id": list(total), "count": list(total.values())})


def run(args) -> int:
    from voxelflow.cli._pipeline import run_and_report
    from voxelflow.pipelines.config import load_config
    from voxelflow.synth import score_detections

    if args.cells:
        return _run_cells(args)
    stream = sys.stderr
    t0 = time.perf_counter()
    out = VPath(args.out)
    data = out / "data"
    truth, regions_table = _write_data(data, args.shape or (128, 256, 256), args.seed, args.plaques, stream)
    defaults = {
        "input.url": (data / "brain.ome.zarr").url,
        "atlas.url": (data / "atlas.ome.zarr").url,
        "atlas.regions": (data / "regions.csv").url,
        "output.folder": out.url,
        "compute.scheduler": args.scheduler,
        "compute.workers": args.workers,
    }
    config = load_config(None, overrides=args.overrides, defaults=defaults)
    level = "plaques" if config.pipeline.split == "watershed" else "objects"
    done = run_and_report(config, progress=not args.quiet, report=not args.no_report,
                          truth=_rolled_up_truth(truth, regions_table, level), title="voxelflow demo", stream=stream)
    score = score_detections(done.result.objects, truth, regions_table, level=level)
    _print_scores(score)
    regions = score.pop("regions")
    evaluation = {**score, "level": level, "max_count_error": _max_error(regions),
                  "regions": regions.to_dict(orient="records")}
    (out / "evaluation.json").write_text(json.dumps(evaluation, indent=1, default=float))
    print(
        f"voxelflow demo: {len(done.result.objects)} objects, precision {score['precision']:.3f}, "
        f"recall {score['recall']:.3f}, max region count error {100 * _max_error(regions):.1f} %, "
        f"{done.steps_line()}, {time.perf_counter() - t0:.1f} s -> {out.url}"
    )
    return 0


def _max_error(regions) -> float:
    err = regions["error"].dropna()
    return float(err.max()) if len(err) else 0.0


def _print_scores(score) -> None:
    r = score["regions"]
    print(f"{'region':<12}{'planted':>9}{'detected':>10}{'error':>9}")
    for row in r.itertuples():
        err = "-" if row.error != row.error else f"{100 * row.error:.1f}%"
        print(f"{row.acronym:<12}{row.planted:>9}{row.detected:>10}{err:>9}")
    print(f"{'total':<12}{int(r.planted.sum()):>9}{int(r.detected.sum()):>10}")
    print(f"detection: {score['matched']} of {score['planted']} planted items matched by "
          f"{score['detected']} detections: precision {score['precision']:.3f}, recall {score['recall']:.3f}")


def _run_cells(args) -> int:
    """``voxelflow demo --cells``: a synthetic crop, the cell pipeline, scores against the planted cells."""
    import numpy as np

    from voxelflow.cli._pipeline import run_and_report
    from voxelflow.pipelines.config import load_config
    from voxelflow.synth_cells import make_synthetic_cells, score_cells, write_synthetic_cells

    stream = sys.stderr
    t0 = time.perf_counter()
    out = VPath(args.out)
    data = out / "data"
    shape = tuple(args.shape or (40, 256, 256))
    crop = make_synthetic_cells(shape, args.seed)
    params = {"shape": list(shape), "seed": args.seed, "format": "cells-1"}
    stamp = data / "params.json"
    if not (stamp.exists() and json.loads(stamp.read_text()) == params):
        print(f"voxelflow demo: writing a synthetic two-channel crop {shape} to {data.url}", file=stream)
        stamp.rm()
        write_synthetic_cells(crop, data)
        stamp.write_text(json.dumps(params))
    defaults = {
        "pipeline.kind": "cells",
        "input.url": (data / "scan.ome.zarr").url + "?slices=[0]",
        "input.background_channel": 1,
        "atlas.url": (data / "atlas.ome.zarr").url,
        "atlas.regions": (data / "regions.csv").url,
        "cells.diameter_um": crop.diameter_um,
        "output.folder": out.url,
        "compute.scheduler": args.scheduler,
        "compute.workers": args.workers,
    }
    config = load_config(None, overrides=args.overrides, defaults=defaults)
    done = run_and_report(config, progress=not args.quiet, report=not args.no_report, title="voxelflow demo --cells",
                          stream=stream)
    found = done.result.objects
    regions = found["region_id"].to_numpy() if "region_id" in found.columns else np.zeros(len(found), np.int64)
    score = score_cells(crop, found[["z_um", "y_um", "x_um"]].to_numpy(), detected_regions=regions)
    _print_scores(score)
    per = score.pop("regions")
    evaluation = {**score, "level": "cells", "max_count_error": _max_error(per), "regions": per.to_dict(orient="records")}
    (out / "evaluation.json").write_text(json.dumps(evaluation, indent=1, default=float))
    print(
        f"voxelflow demo: {len(found)} cells, precision {score['precision']:.3f}, recall {score['recall']:.3f}, "
        f"max region count error {100 * _max_error(per):.1f} %, "
        f"{100 * done.result.run['masked_fraction']:.1f} % of the volume masked, "
        f"{done.steps_line()}, {time.perf_counter() - t0:.1f} s -> {out.url}"
    )
    return 0
