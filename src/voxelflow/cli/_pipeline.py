"""The run / report / summary sequence shared by ``voxelflow run`` and ``voxelflow demo``."""

from __future__ import annotations

import sys
from dataclasses import dataclass

from voxelflow.pipelines.config import Config
from voxelflow.pipelines.run import PipelineResult


@dataclass
class Finished:
    """A finished run: its result, and how many of its steps were read from the cache."""

    result: PipelineResult
    cached: int
    steps: int

    def steps_line(self) -> str:
        return f"{self.cached}/{self.steps} steps cached"


def run_and_report(config: Config, *, progress: bool, report: bool, truth=None, title: str | None = None,
                   stream=None) -> Finished:
    """Run ``config`` on its compute context, then write ``report.html`` unless nothing changed.

    Parameters
    ----------
    config : Config
    progress : bool
        Per-step progress lines and bars on ``stream``.
    report : bool
        Write the report (also needs ``output.report`` and a local run folder).
        A fully cached run keeps an existing report.
    truth : pandas.DataFrame, optional
        Planted counts per region, drawn next to the detected ones.
    title : str, optional
        Report title.
    """
    from voxelflow.pipelines.run import run_pipeline
    from voxelflow.runtime.compute import compute_context

    stream = stream or sys.stderr
    c = config.compute
    with compute_context(c.scheduler, c.workers, c.threads_per_worker, c.memory_limit,
                         connect_timeout=c.connect_timeout, security=c.security):
        result = run_pipeline(config, progress=progress, stream=stream)
    done = Finished(result, sum(r.cached for r in result.records), len(result.records))
    out = result.out_dir
    stale = not (done.cached == done.steps and (out / "report.html").exists())
    if report and config.output.report and out.is_local and stale:
        try:
            from voxelflow.report import make_report
        except ImportError:
            return done
        kwargs = {"truth": truth} if truth is not None else {}
        make_report(out.path, **kwargs, **({"title": title} if title else {}))
    return done
