"""The cell pipeline: a lightsheet scan (and its autofluorescence channel) in, cells and counts per region out.

One number sets it up: ``cells.diameter_um``, the expected nucleus diameter.
Every other length defaults from it and the scan's voxel size
(:func:`cell_parameters`). Stages, each a cached step (node name in brackets):

1. open the scan and, when given, the background (autofluorescence) channel;
   max-pool a coarse level [``coarse``];
2. tissue mask on the coarse level [``negative_mask``]; on a crop the volume
   border is not a tissue edge unless ``mask.whole_brain``; the masked
   fraction goes into ``run.json`` and the summary;
3. per-plane (or per-tile) median of each channel inside the tissue
   [``plane_levels``, ``background_levels``], and the autofluorescence
   factor [``channel_factor``];
4. the detection response [``response``]: each channel divided by its
   plane/tile level, the scaled background channel subtracted, then the
   pre-filter (LoG by default, sized from the diameter);
5. threshold statistics per plane / tile inside the tissue [``threshold_stats``];
6. cells = local maxima of the response above the threshold [``cells_raw``];
7. shape filter: the foreground objects (exact labels [``components``]) that
   are too large or too elongated for a cell (vessels, fibres, artefacts)
   lose their maxima [``component_shapes``, ``cells``];
8. atlas regions and counts per region [``objects_regions``, ``region_counts``].

:func:`run_cell_pipeline` writes ``objects.parquet``, ``objects.csv``,
``regions.csv`` (with an atlas) and ``run.json`` into the run folder.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass, field

import dask.array as da
import numpy as np
import pandas as pd

from voxelflow import ops
from voxelflow.errors import ConfigError, InvalidInputError, InvalidPathError
from voxelflow.paths import VPath
from voxelflow.steps import Runner, StepRecord, keyed
from voxelflow.steps.node import CACHE_FOLDER, write_run

__all__ = ["CellResult", "cell_parameters", "run_cell_pipeline", "CELL_COLUMNS"]

#: Columns of ``objects.csv`` for cells (those present).
CELL_COLUMNS = ("id", "z", "y", "x", "z_um", "y_um", "x_um", "response", "threshold", "region_id",
                "region_acronym", "component", "component_volume_um3", "component_elongation", "touches_border")


@dataclass
class CellResult:
    """Everything a cell run produced.

    Attributes
    ----------
    objects : pandas.DataFrame
        The cells (LC): voxel and physical centres, response, atlas region.
    regions : pandas.DataFrame or None
        Counts per region (RC), None without an atlas.
    run : dict
        The contents of ``run.json``.
    out_dir : VPath
    records : list of StepRecord
    """

    objects: pd.DataFrame
    regions: pd.DataFrame | None
    run: dict
    out_dir: VPath
    records: list[StepRecord] = field(default_factory=list)


def cell_parameters(config: dict, spacing) -> dict:
    """Every length of the detector, from ``cells.diameter_um`` unless set explicitly.

    Parameters
    ----------
    config : dict
        Validated configuration (dotted keys).
    spacing : sequence of 3 float
        Voxel size in um.

    Returns
    -------
    dict
        ``diameter_um``, ``sigma_um`` (LoG: 0.9 d / (2 sqrt 3), or 0.9 d / (2 sqrt 2)
        per plane: a little below the scale at which a ball of diameter d
        responds most, so touching cells keep separate maxima; DoG: that / 1.25
        with ratio 1.6; top-hat: box half-width d), ``peak_radius_um`` (0.2 d),
        ``min_distance_um`` (0.5 d) and ``max_thin_um`` (0.7 d): a weaker maximum
        closer to a stronger one than half its foreground object's equivalent
        diameter, clipped to that range, is dropped (:func:`filter_cells`),
        ``tile_um`` (25 d), ``window_um`` (2 d), ``min_volume_um3`` (none),
        ``max_volume_um3`` (40 cell volumes), ``max_elongation`` (6),
        ``match_um`` (d / 2).
    """
    d = float(config["cells.diameter_um"])
    per_plane = bool(config["cells.per_plane"])
    prefilter = config["cells.prefilter"]
    sigma = config["cells.sigma_um"]
    if sigma is None:
        sigma = 0.9 * d / (2 * math.sqrt(2 if per_plane else 3))
        if prefilter == "dog":
            sigma /= 1.25
        elif prefilter == "tophat":
            sigma = d
    cell_volume = math.pi / 6 * d**3

    def pick(key, default):
        return default if config[key] is None else float(config[key])

    return {
        "diameter_um": d,
        "sigma_um": float(sigma),
        "peak_radius_um": pick("cells.peak_radius_um", 0.2 * d),
        "min_distance_um": pick("cells.min_distance_um", 0.5 * d),
        "max_thin_um": 0.7 * d,
        "tile_um": pick("cells.tile_um", 25.0 * d),
        "window_um": pick("cells.window_um", 2.0 * d),
        "min_volume_um3": config["cells.min_volume_um3"],
        "max_volume_um3": pick("cells.max_volume_um3", 40.0 * cell_volume),
        "max_elongation": pick("cells.max_elongation", 6.0),
        "match_um": d / 2,
        "spacing_um": [float(s) for s in spacing],
    }


# --- stage functions (each one cached step) ------------------------------------------------


def tissue_mask(negative, factors, shape, chunks) -> da.Array:
    """The tissue (not masked) at full resolution from a coarse negative mask, lazily."""
    neg = ops.scale_nearest(da.asarray(negative), factors, output_shape=shape, output_chunks=chunks)
    return ~neg.astype(bool)


def plane_levels(img, spacing, tile_um, negative, factors) -> np.ndarray:
    """Median of every plane (tile) inside the tissue: array (Z, n_tiles_y, n_tiles_x), float64."""
    mask = tissue_mask(negative, factors, img.shape, img.chunks)
    return ops.plane_tile_median(img, spacing, tile_um=tile_um, mask=mask)


def channel_factor(img, levels, bg, bg_levels, spacing, tile_um, negative, factors) -> float:
    """Autofluorescence in the level-normalised signal per unit of the level-normalised background channel."""
    s = ops.remove_plane_background(img, np.asarray(levels), spacing, tile_um=tile_um)
    b = ops.remove_plane_background(bg, np.asarray(bg_levels), spacing, tile_um=tile_um)
    mask = tissue_mask(negative, factors, img.shape, img.chunks)
    return ops.estimate_channel_factor(s, b, mask=mask)


def detection_response(img, levels, bg, bg_levels, factor, spacing, tile_um, prefilter: str, sigma_um: float,
                       per_plane: bool) -> da.Array:
    """The filtered, background-free image the cells are found in (float32, chunks of ``img``)."""
    x = img.astype(np.float32)
    if levels is not None:
        x = ops.remove_plane_background(img, np.asarray(levels), spacing, tile_um=tile_um)
    if bg is not None:
        b = bg.astype(np.float32)
        if bg_levels is not None:
            b = ops.remove_plane_background(bg, np.asarray(bg_levels), spacing, tile_um=tile_um)
        x = ops.channel_background(x, b, factor=float(factor))
    if prefilter == "log":
        return ops.log_filter(x, sigma_um, spacing, per_plane=per_plane)
    if prefilter == "dog":
        return ops.dog_filter(x, sigma_um, spacing, per_plane=per_plane)
    if prefilter == "tophat":
        return ops.white_tophat(x, sigma_um, spacing, per_plane=per_plane)
    return x


def threshold_stats(response, spacing, tile_um, negative, factors):
    """Mean, SD and voxel count of the response per plane (tile) inside the tissue, as three arrays."""
    mask = tissue_mask(negative, factors, response.shape, response.chunks)
    st = ops.tile_stats(response, spacing, tile_um=tile_um, mask=mask)
    return st.mean, st.sd, st.count.astype(np.float64)


def _foreground(response, mode, stats, tile, k, value, window_um, spacing, negative, factors):
    mask = tissue_mask(negative, factors, response.shape, response.chunks)
    if mode == "absolute":
        fg = response > float(value)
    elif mode == "local":
        fg = ops.local_threshold(response, window_um, spacing, k=k)
    else:
        mean, sd, count = (np.asarray(a) for a in stats)
        fg = ops.tile_threshold(response, ops.TileStats(mean, sd, count.astype(np.int64), tuple(tile)), k)
    return fg & mask


def find_cells(response, mode, stats, tile, k, value, window_um, spacing, peak_radius_um, min_distance_um,
               negative, factors) -> pd.DataFrame:
    """Local maxima of the response inside the thresholded foreground, thinned to one per ``min_distance_um`` (LC)."""
    fg = _foreground(response, mode, stats, tile, k, value, window_um, spacing, negative, factors)
    peaks = ops.find_peaks(response, spacing, peak_radius_um, foreground=fg)
    return ops.thin_peaks(peaks, spacing, min_distance_um)


def foreground_components(response, mode, stats, tile, k, value, window_um, spacing, negative, factors):
    """Exact connected components of the thresholded foreground (OS)."""
    fg = _foreground(response, mode, stats, tile, k, value, window_um, spacing, negative, factors)
    os_arr, _ = ops.label(fg)
    return os_arr


def filter_cells(cells: pd.DataFrame, components, shapes: pd.DataFrame, spacing, params: dict,
                 shape_filter: bool) -> pd.DataFrame:
    """Add each cell's foreground object and its shape; one maximum per cell; drop cells in non-cell objects.

    A maximum is dropped when a stronger one lies closer than half the
    equivalent diameter of the foreground object it sits in (clipped to
    ``min_distance_um`` .. ``max_thin_um``): one large cell can show two
    maxima, while touching cells lie about a diameter apart.
    """
    out = cells.copy()
    if len(out):
        idx = tuple(out[a].to_numpy(np.int64) for a in "zyx")
        comp = np.asarray(da.asarray(components).vindex[idx].compute(), dtype=np.int64)
    else:
        comp = np.zeros(0, np.int64)
    out["component"] = comp
    shapes = shapes.set_index("id")
    out["component_volume_um3"] = shapes["volume_um3"].reindex(comp).to_numpy()
    out["component_elongation"] = shapes["elongation"].reindex(comp).to_numpy()
    half = 0.5 * shapes["equivalent_diameter_um"].reindex(comp).to_numpy()
    out["thin_um"] = np.clip(np.nan_to_num(half), params["min_distance_um"], params["max_thin_um"])
    out = ops.thin_peaks(out, spacing, params["min_distance_um"], radius_column="thin_um").drop(columns="thin_um")
    if shape_filter and len(out):
        keep = ops.shape_filter(
            out.rename(columns={"component_volume_um3": "volume_um3", "component_elongation": "elongation"}),
            volume_um3=(params["min_volume_um3"], params["max_volume_um3"]), max_elongation=params["max_elongation"],
        )
        out = out[keep.to_numpy()].reset_index(drop=True)
    out["id"] = np.arange(1, len(out) + 1, dtype=np.int64)
    return out


def cell_table(cells: pd.DataFrame, spacing, translation, shape) -> pd.DataFrame:
    """Physical centres (``z_um, y_um, x_um``) and ``touches_border`` (a centre on the first/last voxel)."""
    out = cells.copy()
    for axis, s, t in zip("zyx", spacing, translation):
        out[f"{axis}_um"] = out[axis] * s + t
    pos = out[["z", "y", "x"]].to_numpy() if len(out) else np.zeros((0, 3))
    out["touches_border"] = ((pos == 0) | (pos == np.asarray(shape) - 1)).any(axis=1)
    return out


# --- the run -------------------------------------------------------------------------------


def _open_background(config, img):
    """The background (autofluorescence) channel: another channel of the scan, or its own image."""
    from voxelflow.pipelines.plaque import open_scan

    if config["input.background_url"]:
        bg, _, _, _ = open_scan(config["input.background_url"], None, config["input.level"])
        where = "input.background_url"
    elif config["input.background_channel"] is not None:
        url = config["input.url"].split("?", 1)[0]
        bg, _, _, _ = open_scan(url, config["input.background_channel"], config["input.level"])
        where = "input.background_channel"
    else:
        return None
    if bg.shape != img.shape:
        raise InvalidInputError(f"{where}: the background channel has shape {bg.shape}, the scan {img.shape}")
    return bg.rechunk(img.chunks)


def _check(config):
    if config["pipeline.kind"] != "cells":
        raise ConfigError(f"pipeline.kind: the cell pipeline needs 'cells', got {config['pipeline.kind']!r}")
    if config["cells.threshold"] == "absolute" and config["cells.threshold_value"] is None:
        raise ConfigError("cells.threshold_value: expected a number when cells.threshold = 'absolute'")


def run_cell_pipeline(config: dict, *, viewer=None, progress: bool = True, stream=None) -> CellResult:
    """Run the cell pipeline of a validated configuration.

    Parameters
    ----------
    config : dict
        Dotted keys as returned by :func:`voxelflow.pipelines.config.load_config`,
        with ``pipeline.kind = "cells"``.
    viewer : napari.Viewer, optional
        Every step result is added to it.
    progress : bool
        Print one line per step.
    stream : file, optional
        Where progress goes (default ``sys.stderr``).

    Returns
    -------
    CellResult

    Raises
    ------
    ConfigError, InvalidPathError, InvalidInputError
        Bad settings, missing input, channels of different shapes.
    """
    from voxelflow.pipelines import plaque

    _check(config)
    stream = stream or sys.stderr
    t_start = time.perf_counter()
    out_dir = VPath(config["output.folder"])
    cache = VPath(config["output.cache"] or (out_dir / CACHE_FOLDER).url)
    img, meta, spacing, translation = plaque.open_scan(config["input.url"], config["input.channel"],
                                                       config["input.level"])
    bg = _open_background(config, img)
    params = cell_parameters(config, spacing)
    atlas = plaque._open_atlas(config, img.shape, spacing) if config["atlas.url"] else None
    out_dir.mkdirs()
    cf = tuple(config["pipeline.coarse_factors"])
    coarse_scale = tuple(s * f for s, f in zip(spacing, cf))
    full_store = {"chunks": tuple(min(c, s) for c, s in zip(config["output.chunks"], img.shape)),
                  "levels": config["output.levels"], "scale": spacing}

    def show(record: StepRecord) -> None:
        state = "cached" if record.cached else "computed"
        print(f"  {record.name:<18} {record.seconds:7.2f} s  {state}", file=stream, flush=True)

    runner = Runner(cache, viewer_args={"viewer": viewer} if viewer is not None else None,
                    on_result=(lambda r: show(r.record)) if progress else None)
    tile_bg = params["tile_um"] if config["cells.background"] == "tile" else None
    tile_thr = params["tile_um"] if config["cells.threshold"] == "tile" else None
    mode = config["cells.threshold"]
    k = float(config["cells.threshold_k"])
    try:
        coarse = runner.step(ops.downsample, img, cf, method="max", name="coarse", kind="IN->IN",
                             storage={"scale": coarse_scale})
        negative = _negative(runner, config, coarse, coarse_scale)
        masked = float(np.asarray(negative).mean()) if negative.size else 0.0
        levels = bg_levels = None
        factor = 0.0
        if config["cells.background"] != "none":
            levels = runner.step(plane_levels, img, spacing, tile_bg, negative, cf, name="plane_levels",
                                 kind="IN->IN")
        if bg is not None:
            if config["cells.background"] != "none":
                bg_levels = runner.step(plane_levels, bg, spacing, tile_bg, negative, cf, name="background_levels",
                                        kind="IN->IN")
                factor = runner.step(channel_factor, img, levels, bg, bg_levels, spacing, tile_bg, negative, cf,
                                     name="channel_factor")
            else:
                factor = runner.step(channel_factor, img, np.ones((img.shape[0], 1, 1)), bg,
                                     np.ones((img.shape[0], 1, 1)), spacing, None, negative, cf,
                                     name="channel_factor")
        response = runner.step(detection_response, img, levels, bg, bg_levels, factor, spacing, tile_bg,
                               config["cells.prefilter"], params["sigma_um"], config["cells.per_plane"],
                               name="response", kind="IN->IN", storage=full_store)
        stats, tile = None, (img.shape[1], img.shape[2])
        if mode in ("plane", "tile"):
            stats = runner.step(threshold_stats, response, spacing, tile_thr, negative, cf, name="threshold_stats")
            if tile_thr is not None:
                tile = tuple(max(1, int(round(tile_thr / s))) for s in spacing[1:])
        args = (response, mode, stats, tile, k, config["cells.threshold_value"], params["window_um"], spacing)
        raw = runner.step(find_cells, *args, params["peak_radius_um"], params["min_distance_um"], negative, cf,
                          name="cells_raw", kind="IN->LC")
        components = runner.step(foreground_components, *args, negative, cf, name="components", kind="IN->OS",
                                 storage=full_store)
        shapes = runner.step(ops.shape_table, components, spacing, name="component_shapes", kind="OS->LC")
        cells = runner.step(filter_cells, raw, components, shapes, spacing, params, config["cells.shape_filter"],
                            name="cells", kind="LC->LC")
        cells = cell_table(cells, spacing, translation, img.shape)
        regions = None
        if atlas is not None and len(cells):
            cells = cells.assign(voxels=1)
            labels, ascale, table = atlas
            cells = runner.step(ops.add_regions, cells, labels, ascale, spacing, table, img.shape,
                                name="objects_regions", kind="LC->LC")
            regions = runner.step(ops.count_by_region, cells, labels, ascale, table, name="region_counts",
                                  kind="LC->RC")
            cells = cells.drop(columns=["voxels"])
    except BaseException as exc:
        plaque._write_failure(out_dir, config, runner.records, exc, t_start)
        raise
    if masked > config["mask.warn_fraction"] and progress:
        print(f"  warning: the mask removes {masked:.0%} of the volume (mask.warn_fraction = "
              f"{config['mask.warn_fraction']:.0%}); for a crop of a brain keep mask.whole_brain = false, "
              "or check pipeline.mask", file=stream)
    run = _write_outputs(out_dir, config, cells, regions, cache, runner.records, img, spacing, params, masked,
                         float(factor), len(raw), t_start)
    return CellResult(cells, regions, run, out_dir, runner.records)


def _negative(runner, config, coarse, coarse_scale):
    setting = config["pipeline.mask"]
    if setting == "none":
        return np.zeros(coarse.shape, dtype=bool)
    if setting == "auto":
        return runner.step(ops.auto_negative_mask, coarse, coarse_scale, config["cells.edge_um"],
                           whole_brain=config["mask.whole_brain"], name="negative_mask", kind="IN->BS",
                           storage={"scale": coarse_scale})
    from voxelflow.io import open_ome_zarr
    from voxelflow.pipelines.plaque import _stamp, user_mask_on_grid

    if not VPath(setting.split("?", 1)[0]).exists():
        raise InvalidPathError(f"pipeline.mask {setting!r} does not exist; expected 'auto', 'none' or an OME-Zarr")
    user, _ = open_ome_zarr(setting)
    user = keyed(user, json.dumps([setting, _stamp(VPath(setting.split("?", 1)[0]))]))
    return runner.step(user_mask_on_grid, user, coarse.shape, name="negative_mask", kind="BS->BS",
                       storage={"scale": coarse_scale})


def _write_outputs(out_dir, config, cells, regions, cache, records, img, spacing, params, masked, factor, n_raw,
                   t_start):
    from voxelflow.pipelines.plaque import _versions
    from voxelflow.runtime.compute import process_peak_memory_mb, worker_peak_memory_mb

    (out_dir / "objects.parquet").write_bytes(cells.to_parquet(index=False))
    cols = [c for c in CELL_COLUMNS if c in cells.columns]
    (out_dir / "objects.csv").write_text(cells[cols].to_csv(index=False))
    base, _, query = config["input.url"].partition("?")
    outputs = {"objects": "objects.parquet", "objects_csv": "objects.csv",
               "image": VPath(base).url + (f"?{query}" if query else "")}
    if regions is not None:
        (out_dir / "regions.csv").write_text(regions.to_csv(index=False))
        outputs["regions"] = "regions.csv"
    run = {
        "status": "ok",
        "pipeline": "cells",
        "config": config,
        "parameters": params,
        "versions": _versions(),
        "input": {"url": config["input.url"], "shape": list(img.shape), "dtype": str(img.dtype),
                  "scale_um": list(spacing), "chunks": [list(c[:1]) for c in img.chunks]},
        "masked_fraction": round(masked, 6),
        "mask_warning": masked > config["mask.warn_fraction"],
        "channel_factor": factor,
        "cells_before_shape_filter": int(n_raw),
        "objects": int(len(cells)),
        "steps": [r.as_dict() for r in records],
        "seconds_total": round(time.perf_counter() - t_start, 3),
        "peak_memory_mb": process_peak_memory_mb(),
        "peak_worker_memory_mb": worker_peak_memory_mb(),
        "cache": cache.url,
        "outputs": outputs,
    }
    write_run(out_dir, run)
    return run
