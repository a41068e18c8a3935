"""Running a workflow: the run folder, the step runner, progress, outputs and the run record.

The run folder holds the outputs of one run, or of none: a finished run is
written into a staging folder beside it and swapped in as a whole
(:mod:`voxelflow.pipelines.publish`); what an interrupted swap left is resolved
at the start of the next run. A failed run leaves the folder's previous run whole
and describes itself in ``run-failed.json`` (its registration QC pictures, if it got
that far, in ``run-failed-registration/``).

:func:`run_pipeline` is the same for every workflow kind: it opens the scan
(and atlas), makes a :class:`~voxelflow.steps.Runner` on the run's cache with
progress and viewer hooks, calls the recipe that ``pipeline.kind`` names in
:data:`RECIPES`, writes the outputs the recipe returns into the run folder
and records the run (also when it fails: finished steps resume from the cache).
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import dask.array as da
import numpy as np
import pandas as pd

from voxelflow.errors import ConfigError, InvalidPathError, VoxelflowError
from voxelflow.io.ome_zarr.replace import write_beside
from voxelflow.paths import VPath
from voxelflow.pipelines.config import Config
from voxelflow.pipelines.inputs import Atlas, Scan, open_atlas, open_scan
from voxelflow.pipelines.progress import PartsProgress, progress_bar, progress_printer
from voxelflow.pipelines.publish import (
    FAILED_REGISTRATION_FOLDER,
    REGISTRATION_FOLDER,
    new_run_id,
    publish,
    publish_per_file,
    recover,
    staging_folder,
    tidy_run_folder,
    write_files,
)
from voxelflow.pipelines.run_lock import run_folder_lock
from voxelflow.runtime.compute import process_peak_memory_mb, worker_peak_memory_mb
from voxelflow.steps import Runner, StepRecord
from voxelflow.steps import node as layout

__all__ = ["OBJECT_COLUMNS", "RECIPES", "Outputs", "PipelineResult", "run_pipeline"]

#: Recipe of every ``pipeline.kind``: ``"module:function"`` taking ``(run, config, inputs)``, returning Outputs.
RECIPES = {"plaque": "voxelflow.pipelines.plaque:plaque", "cells": "voxelflow.pipelines.cells:cells"}

#: Columns of ``objects.csv`` (those present; intensity stats need the scan).
OBJECT_COLUMNS = (
    "id", "z", "y", "x", "z_um", "y_um", "x_um", "voxels", "volume_um3",
    "intensity_mean", "intensity_max", "intensity_sum", "region_id", "region_acronym",
    "touches_border", "z0", "y0", "x0", "z1", "y1", "x1",
    "response", "component_volume_um3", "component_elongation",
    "hemisphere", "atlas_z_um", "atlas_y_um", "atlas_x_um",
)


@dataclass
class Inputs:
    """What a recipe gets besides the runner and the configuration."""

    scan: Scan
    atlas: Atlas | None
    mask: Any
    stream: Any
    progress: bool


@dataclass
class Outputs:
    """What a recipe returns: the tables and maps written into the run folder, and facts for the run record."""

    objects: pd.DataFrame
    density: da.Array
    regions: pd.DataFrame | None = None
    density_node: VPath | None = None
    facts: dict = field(default_factory=dict)
    atlas_density_node: VPath | None = None


@dataclass
class PipelineResult:
    """Everything a run produced.

    Attributes
    ----------
    objects : pandas.DataFrame
        The object table (LC) with physical coordinates and regions.
    regions : pandas.DataFrame or None
        Region counts (RC), None without an atlas.
    density : dask.array.Array
        Density map (CD): objects per coarse voxel.
    run : dict
        The run record (written by :func:`voxelflow.steps.node.write_run`).
    out_dir : VPath
        The run folder.
    records : list of StepRecord
        What each step did (cached or computed, seconds).
    """

    objects: pd.DataFrame
    regions: pd.DataFrame | None
    density: da.Array
    run: dict
    out_dir: VPath
    records: list[StepRecord] = field(default_factory=list)


def run_pipeline(
    config: Config,
    *,
    mask: str | Callable | None = None,
    viewer=None,
    progress: bool = True,
    stream=None,
) -> PipelineResult:
    """Run the workflow ``config.pipeline.kind`` of a validated configuration.

    Parameters
    ----------
    config : Config
        As returned by :func:`voxelflow.pipelines.config.load_config`.
    mask : str or callable, optional
        Overrides ``pipeline.mask``: ``'auto'``, ``'none'``, an OME-Zarr path,
        or ``fn(coarse: ndarray, scale: tuple) -> bool ndarray`` (True = discard).
    viewer : napari.Viewer, optional
        Every step result is shown in it (through the steps' result hook).
    progress : bool
        Print one line per step and dask progress bars.
    stream : file, optional
        Where progress goes (default ``sys.stderr``).

    Returns
    -------
    PipelineResult
    """
    stream = stream or sys.stderr
    t_start = time.perf_counter()
    out_dir = VPath(config.output.folder)
    if out_dir.isfile():
        raise ConfigError(f"output.folder: {out_dir.url} is a file; expected a folder (new or of an earlier run)")
    with run_folder_lock(out_dir):
        return _run_into(out_dir, config, mask, viewer, progress, stream, t_start)


def _run_into(out_dir: VPath, config: Config, mask, viewer, progress: bool, stream, t_start: float) -> PipelineResult:
    """The body of :func:`run_pipeline`, run while this process holds the run folder."""
    tidy_run_folder(out_dir)  # a swap interrupted by a crash is finished or undone before anything reads the folder
    cache = VPath(config.output.cache or (out_dir / layout.CACHE_FOLDER).url)
    scan = open_scan(config.input.url, config.input.channel, config.input.level, scale_um=config.input.scale_um)
    if config.atlas.url and config.atlas.brainglobe:
        raise ConfigError("set atlas.url (an atlas already registered to the scan) or atlas.brainglobe (an atlas "
                          "voxelflow registers), not both")
    atlas = open_atlas(config.atlas.url, config.atlas.regions, scan.image.shape, scan.scale) \
        if config.atlas.url else None
    out_dir.mkdirs()
    bar = progress_bar(progress, stream)
    run = Runner(cache, viewer_args={"viewer": viewer} if viewer is not None else None,
                 on_result=progress_printer(stream, bar) if progress else None)
    module, attr = RECIPES[config.pipeline.kind].split(":")
    recipe = getattr(importlib.import_module(module), attr)
    inputs = Inputs(scan, atlas, config.pipeline.mask if mask is None else mask, stream, progress)
    try:
        with bar, (PartsProgress(cache, stream) if progress else contextlib.nullcontext()):
            if config.atlas.brainglobe:
                from voxelflow.pipelines.registration import register_atlas

                inputs.atlas = register_atlas(run, config, scan, out_dir, stream, progress)
            outputs = recipe(run, config, inputs)
        run_id = new_run_id()
        staging = staging_folder(out_dir, run_id) if out_dir.is_local else out_dir / f".run-staging-{run_id}"
        try:
            files = _write_outputs(staging, config, outputs)
            if inputs.atlas is not None and inputs.atlas.files:
                write_files(staging / REGISTRATION_FOLDER, inputs.atlas.files)
                files["registration"] = REGISTRATION_FOLDER
            shape, chunks = scan.image.shape, scan.image.chunks
            record = _record(
                config, run, t_start, status="ok", run_id=run_id,
                input={"url": config.input.url, "shape": list(shape), "dtype": str(scan.image.dtype),
                       "scale_um": list(scan.scale), "chunks": [list(c[:1]) for c in chunks]},
                **outputs.facts, objects=int(len(outputs.objects)), cache=cache.url, outputs=files,
            )
            if out_dir.is_local:
                layout.write_run(staging, record)
                publish(staging, out_dir, run_id)
            else:
                publish_per_file(staging, out_dir, files, record)
        except Exception:
            if out_dir.is_local:
                recover(out_dir)
            else:
                with contextlib.suppress(OSError):
                    staging.rm()
            raise
    except BaseException as exc:
        failed = _record(config, run, t_start, status="failed", error=f"{type(exc).__name__}: {exc}")
        with contextlib.suppress(OSError, VoxelflowError):  # the run's own error matters more than its record
            if out_dir.isdir():
                layout.write_run(out_dir, failed, layout.FAILED_RUN_FILE)
                if inputs.atlas is not None and inputs.atlas.files:  # registered, then failed: its QC beside the record
                    files = inputs.atlas.files
                    write_beside(out_dir / FAILED_REGISTRATION_FOLDER, lambda work: write_files(work, files))
        if isinstance(exc, OSError) and not isinstance(exc, VoxelflowError):
            raise InvalidPathError(f"cannot write the outputs of the run into {out_dir.url}: {exc}; the "
                                   "previous run there is unchanged") from exc
        raise
    return PipelineResult(outputs.objects, outputs.regions, outputs.density, record, out_dir, run.records)


def _write_outputs(folder: VPath, config: Config, outputs: Outputs) -> dict:
    """Write the output files into ``folder``; returns the ``outputs`` section of ``run.json``."""
    objects = outputs.objects
    (folder / layout.OBJECTS_TABLE).write_bytes(objects.to_parquet(index=False))
    cols = [c for c in OBJECT_COLUMNS if c in objects.columns]
    (folder / layout.OBJECTS_CSV).write_text(objects[cols].to_csv(index=False))
    base, _, query = config.input.url.partition("?")
    # absolute, so the run folder can be opened from anywhere (viewer, report)
    image = VPath(base).url + (f"?{query}" if query else "")
    files = {"objects": layout.OBJECTS_TABLE, "objects_csv": layout.OBJECTS_CSV, "image": image}
    if outputs.regions is not None:
        (folder / layout.REGIONS_CSV).write_text(outputs.regions.to_csv(index=False))
        files["regions"] = layout.REGIONS_CSV
    for key, node, name in (("density", outputs.density_node, layout.DENSITY_IMAGE),
                            ("atlas_density", outputs.atlas_density_node, layout.ATLAS_DENSITY_IMAGE)):
        if node is not None:
            src, dst = layout.output_image(node), folder / name
            if src.exists():
                src.fs.copy(src.path, dst.path, recursive=True)
                files[key] = name
    return files


def _record(config: Config, run: Runner, t_start: float, *, status: str, **facts) -> dict:
    """The run record: status, configuration, versions, steps, timings, memory, facts."""
    return {
        "status": status,
        **({"error": facts.pop("error")} if "error" in facts else {}),
        "config": config.as_dict(),
        "versions": _versions(),
        **facts,
        "steps": [r.as_dict() for r in run.records],
        "seconds_total": round(time.perf_counter() - t_start, 3),
        "peak_memory_mb": process_peak_memory_mb(),
        "peak_worker_memory_mb": worker_peak_memory_mb(),
    }


def _versions() -> dict:
    import dask
    import scipy
    import zarr

    import voxelflow

    return {
        "voxelflow": voxelflow.__version__, "python": sys.version.split()[0], "numpy": np.__version__,
        "dask": dask.__version__, "zarr": zarr.__version__, "pandas": pd.__version__, "scipy": scipy.__version__,
    }
