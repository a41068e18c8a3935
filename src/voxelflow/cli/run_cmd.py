"""``voxelflow run CONFIG.toml``: the plaque or cell pipeline (``pipeline.kind``) on a scan, as a configuration says.

Settings come from the TOML file (see ``examples/plaque.toml`` and
``docs/pipeline.md``), then ``--set section.key=value`` overrides, then the
``--scheduler`` / ``--workers`` / ``--out`` shortcuts. Finished steps are read
from the cache, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import sys
import time


def register(subparsers) -> None:
    p = subparsers.add_parser("run", help="run the plaque or cell pipeline from a TOML configuration", description=__doc__)
    p.add_argument("config", help="TOML configuration file")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting, e.g. pipeline.threshold=900 (repeatable)")
    p.add_argument("--scheduler", default=None, help="Dask scheduler address, e.g. tcp://host:8786")
    p.add_argument("--workers", type=int, default=None, help="local Dask worker processes (0: threads)")
    p.add_argument("--out", default=None, help="run folder (overrides output.folder)")
    p.add_argument("--no-report", action="store_true", help="do not write report.html")
    p.add_argument("--quiet", action="store_true", help="no per-step progress")
    p.set_defaults(func=run)


def run(args) -> int:
    from voxelflow.pipelines.config import load_config

    t0 = time.perf_counter()
    overrides = list(args.overrides)
    if args.scheduler is not None:
        overrides.append(f'compute.scheduler="{args.scheduler}"')
    if args.workers is not None:
        overrides.append(f"compute.workers={args.workers}")
    if args.out is not None:
        overrides.append(f'output.folder="{args.out}"')
    config = load_config(args.config, overrides)
    from voxelflow.runtime.compute import compute_context

    with compute_context(config["compute.scheduler"], config["compute.workers"],
                         config["compute.threads_per_worker"], config["compute.memory_limit"]):
        if config["pipeline.kind"] == "cells":
            from voxelflow.pipelines.cells import run_cell_pipeline

            result = run_cell_pipeline(config, progress=not args.quiet, stream=sys.stderr)
        else:
            from voxelflow.pipelines.plaque import run_plaque_pipeline

            result = run_plaque_pipeline(config, progress=not args.quiet, stream=sys.stderr)
    all_cached = all(r.cached for r in result.records)
    if not args.no_report and config["output.report"] and result.out_dir.is_local:
        if not (all_cached and (result.out_dir / "report.html").exists()):
            try:
                from voxelflow.report import make_report
            except ImportError:
                make_report = None
            if make_report is not None:
                make_report(result.out_dir.path)
    n_regions = 0 if result.regions is None else int((result.regions["count_self"] > 0).sum())
    n_cached = sum(r.cached for r in result.records)
    what = "cells" if config["pipeline.kind"] == "cells" else "objects"
    masked = result.run.get("masked_fraction")
    mask_note = "" if masked is None else f", {100 * masked:.1f} % masked"
    print(
        f"voxelflow run: {len(result.objects)} {what} in {n_regions} regions{mask_note}, "
        f"{n_cached}/{len(result.records)} steps cached, {time.perf_counter() - t0:.1f} s -> {result.out_dir.url}"
    )
    return 0
