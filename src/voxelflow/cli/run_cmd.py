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
    from voxelflow.cli._pipeline import run_and_report
    from voxelflow.pipelines.config import load_config

    t0 = time.perf_counter()
    shortcuts = {"compute.scheduler": args.scheduler, "compute.workers": args.workers, "output.folder": args.out}
    config = load_config(args.config, args.overrides, values={k: v for k, v in shortcuts.items() if v is not None})
    done = run_and_report(config, progress=not args.quiet, report=not args.no_report, stream=sys.stderr)
    result = done.result
    n_regions = 0 if result.regions is None else int((result.regions["count_self"] > 0).sum())
    what = "cells" if config.pipeline.kind == "cells" else "objects"
    masked = result.run.get("masked_fraction")
    masked_note = "" if masked is None else f", {100 * masked:.1f} % of the volume masked"
    print(
        f"voxelflow run: {len(result.objects)} {what} in {n_regions} regions{masked_note}, "
        f"{done.steps_line()}, {time.perf_counter() - t0:.1f} s -> {result.out_dir.url}"
    )
    return 0
