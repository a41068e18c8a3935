"""``voxelflow sweep CONFIG --vary KEY=V1,V2,...``: one run per setting, sharing the cache of every upstream step.

Every combination of the ``--vary`` values (several ``--vary`` multiply) runs
the configuration with those overrides into ``<output.folder>/sweep/<name>``,
with the cache of the base run (``output.cache`` or ``<output.folder>/cache``),
so the steps a varied key does not reach are read, not recomputed: varying
``cells.threshold_k`` recomputes only the maxima and what follows. With
``--points`` each run is scored against reference points (``voxelflow
evaluate``). The table goes to ``<output.folder>/sweep.csv`` and is printed;
when that folder holds the base run, its ``report.html`` is rewritten with the
sweep (a table and a plot of the settings against objects and scores).
"""

from __future__ import annotations

import itertools
import sys
import time

from voxelflow.errors import ConfigError


def register(subparsers) -> None:
    p = subparsers.add_parser("sweep", help="run a configuration over several values of its keys, reusing the cache",
                              description=__doc__)
    p.add_argument("config", help="TOML configuration file")
    p.add_argument("--vary", action="append", required=True, metavar="KEY=V1,V2,...",
                   help="a key and its values, e.g. cells.threshold_k=2,3,4 (repeatable)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="a fixed override for every run")
    p.add_argument("--points", default=None, help="reference points CSV to score every run against")
    p.add_argument("--units", choices=("voxels", "um"), default="voxels", help="units of --points")
    p.add_argument("--quiet", action="store_true", help="no per-step progress")
    p.set_defaults(func=run)


def parse_vary(texts) -> list[tuple[str, list[str]]]:
    """``["k=1,2"]`` -> ``[("k", ["1", "2"])]``; raises ConfigError on a malformed entry."""
    out = []
    for text in texts:
        key, sep, values = text.partition("=")
        items = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not key.strip() or not items:
            raise ConfigError(f"--vary {text!r}: expected KEY=V1,V2,... e.g. cells.threshold_k=2,3,4")
        out.append((key.strip(), items))
    return out


def sweep(config_path: str, vary, overrides=(), points=None, units: str = "voxels", progress: bool = False):
    """Run every combination; return the result table (pandas.DataFrame, one row per run)."""
    import pandas as pd

    from voxelflow.cli._pipeline import run_and_report
    from voxelflow.cli.evaluate_cmd import evaluate_run, read_points
    from voxelflow.paths import VPath
    from voxelflow.pipelines.config import load_config
    from voxelflow.steps.node import CACHE_FOLDER

    base = load_config(config_path, overrides)
    folder = VPath(base.output.folder)
    cache = base.output.cache or (folder / CACHE_FOLDER).url
    ref = read_points(points) if points else None
    rows = []
    keys = [k for k, _ in vary]
    for combo in itertools.product(*(values for _, values in vary)):
        name = ",".join(f"{k}={v}" for k, v in zip(keys, combo))
        sets = [*overrides, *(f"{k}={v}" for k, v in zip(keys, combo))]
        config = load_config(config_path, sets, values={"output.folder": (folder / "sweep" / name).url,
                                                         "output.cache": cache})
        t0 = time.perf_counter()
        done = run_and_report(config, progress=progress, report=False, stream=sys.stderr)
        row = {k: config.get(k) for k in keys}
        row.update({"objects": len(done.result.objects), "steps_cached": done.cached, "steps": done.steps,
                    "seconds": round(time.perf_counter() - t0, 2),
                    "masked_fraction": done.result.run.get("masked_fraction"), "run": done.result.out_dir.url})
        if ref is not None:
            scores = evaluate_run(done.result.out_dir.url, ref, units)
            row.update({k: scores[k] for k in ("precision", "recall", "f1")})
        rows.append(row)
    table = pd.DataFrame(rows)
    folder.mkdirs()
    (folder / "sweep.csv").write_text(table.to_csv(index=False))
    _refresh_report(base, folder)
    return table


def _refresh_report(base, folder) -> None:
    """Rewrite the base run's ``report.html`` (which shows ``sweep.csv``) when the folder holds a run."""
    from voxelflow.steps.node import OBJECTS_TABLE

    if not (base.output.report and folder.is_local and (folder / OBJECTS_TABLE).exists()):
        return
    try:
        from voxelflow.report import make_report
    except ImportError:  # the report's plotting extra is not installed
        return
    make_report(folder.path)


def run(args) -> int:
    table = sweep(args.config, parse_vary(args.vary), args.overrides, args.points, args.units,
                  progress=not args.quiet)
    print(table.drop(columns=["run"]).to_string(index=False))
    return 0
