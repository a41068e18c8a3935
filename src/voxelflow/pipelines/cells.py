"""The cell pipeline: a lightsheet scan (and its autofluorescence channel) in, cells and counts per region out.

One number sets it up: ``cells.diameter_um``, the expected nucleus diameter.
Every other length defaults from it and the scan's voxel size
(:func:`cell_parameters`). Stages, each a cached step (node name in brackets):

1. open the scan and, when given, the background (autofluorescence) channel
   (its location is recorded [``background_channel``] and in ``run.json``, so the
   viewer shows it as its own layer);
   the coarse grid [``coarse``]: a stored pyramid level within
   ``pipeline.coarse_max_voxels`` (or at ``pipeline.coarse_um``), reduced by block
   means only when no level fits, as in the plaque recipe
   (:mod:`voxelflow.pipelines.coarse`; ``pipeline.coarse_factors`` max-pools by fixed factors);
2. tissue mask on the coarse level [``negative_mask``]; on a crop the volume
   border is not a tissue edge unless ``mask.whole_brain``; the masked
   fraction goes into ``run.json`` and the summary;
3. per-plane (or per-tile) median of each channel inside the tissue and the
   autofluorescence factor, from one read of both channels [``channel_levels``]
   (without a background channel: the levels [``plane_levels``]; with one but
   ``cells.background = "none"``: the factor [``channel_factor``]);
4. the detection response [``response``]: each channel divided by its
   plane/tile level, the scaled background channel subtracted, then the
   pre-filter (LoG by default, sized from the diameter);
5. threshold statistics per plane / tile inside the tissue [``threshold_stats``];
6. cells = local maxima of the response above the threshold [``cells_raw``];
7. shape filter: the foreground objects (exact labels [``components``]) that
   are too large or too elongated for a cell (vessels, fibres, artefacts)
   lose their maxima [``component_shapes``, ``cells``];
   then touching cells without a maximum of their own are added from the
   shape of a lower-threshold foreground (:func:`voxelflow.ops.split_seeds`)
   [``cells_split``];
8. with ``cells.classifier``, a saved classifier keeps the candidates whose
   foreground object it calls a cell [``component_objects``, ``classify_cells``]
   (:mod:`voxelflow.pipelines.candidates`);
9. atlas regions and counts per region (:mod:`voxelflow.pipelines.atlas_space`; with a
   registered atlas also hemispheres, atlas positions and an atlas-space density map).

:func:`cells` is the recipe :func:`voxelflow.pipelines.run.run_pipeline` runs
for ``pipeline.kind = "cells"``; it writes the run folder like every workflow
(objects, regions, density map, ``run.json`` with the resolved parameters, the
masked fraction and the autofluorescence factor).
"""

from __future__ import annotations

import math

import dask.array as da
import numpy as np
import pandas as pd

from voxelflow import ops, steps
from voxelflow.errors import ConfigError
from voxelflow.pipelines.atlas_space import RegionStage, region_stage
from voxelflow.pipelines.candidates import classify_candidates, open_candidate_classifier
from voxelflow.pipelines.coarse import block_translation, coarse_source, density_factors
from voxelflow.pipelines.config import Config
from voxelflow.pipelines.inputs import background_reference, background_scan
from voxelflow.pipelines.run import Inputs, Outputs, PipelineResult, run_pipeline
from voxelflow.pipelines.tissue import negative_mask, report_masked_fraction
from voxelflow.steps import Runner, Step

__all__ = ["cell_parameters", "cells", "run_cell_pipeline"]

_HIDDEN = {"visible": False}


def cell_parameters(c, spacing) -> dict:
    """Every length of the detector, from ``cells.diameter_um`` unless set explicitly.

    Parameters
    ----------
    c : CellsSection
        The ``[cells]`` section of a configuration.
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
        ``match_um`` (d / 2), ``split_min_radius_um`` (0.25 d: the depth of a
        split-off cell) and ``split_extent_um`` (4 d: larger clusters are not split).
    """
    d = float(c.diameter_um)
    per_plane = bool(c.per_plane)
    prefilter = c.prefilter
    sigma = c.sigma_um
    if sigma is None:
        sigma = 0.9 * d / (2 * math.sqrt(2 if per_plane else 3))
        if prefilter == "dog":
            sigma /= 1.25
        elif prefilter == "tophat":
            sigma = d
    cell_volume = math.pi / 6 * d**3

    def pick(name, default):
        value = getattr(c, name)
        return default if value is None else float(value)

    return {
        "diameter_um": d,
        "sigma_um": float(sigma),
        "peak_radius_um": pick("peak_radius_um", 0.2 * d),
        "min_distance_um": pick("min_distance_um", 0.5 * d),
        "max_thin_um": 0.7 * d,
        "tile_um": pick("tile_um", 25.0 * d),
        "window_um": pick("window_um", 2.0 * d),
        "min_volume_um3": c.min_volume_um3,
        "max_volume_um3": pick("max_volume_um3", 40.0 * cell_volume),
        "max_elongation": pick("max_elongation", 6.0),
        "match_um": d / 2,
        "split_min_radius_um": 0.25 * d,
        "split_extent_um": 4.0 * d,
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
    mask = tissue_mask(negative, factors, img.shape, img.chunks)
    return ops.estimate_channel_factor(img, bg, mask=mask, levels=np.asarray(levels), bg_levels=np.asarray(bg_levels),
                                       spacing=spacing, tile_um=tile_um)


def channel_levels(img, bg, spacing, tile_um, negative, factors):
    """Median of every plane (tile) of both channels inside the tissue, and the autofluorescence factor of the
    level-divided channels: (levels, bg_levels, factor), the arrays (Z, n_tiles_y, n_tiles_x) float64."""
    mask = tissue_mask(negative, factors, img.shape, img.chunks)
    levels, bg_levels, factor = ops.channel_levels(img, bg, spacing, tile_um=tile_um, mask=mask)
    return levels, bg_levels, float(factor)


def detection_response(img, levels, bg, bg_levels, factor, spacing, tile_um, prefilter: str, sigma_um: float,
                       per_plane: bool) -> da.Array:
    """The filtered, background-free image the cells are found in (float32, chunks of ``img``)."""
    if bg is not None:  # levels of both channels and the subtraction in one pass
        x = ops.channel_background(img, bg, factor=float(factor), spacing=spacing, tile_um=tile_um,
                                   levels=None if levels is None else np.asarray(levels),
                                   bg_levels=None if bg_levels is None else np.asarray(bg_levels))
    elif levels is not None:
        x = ops.remove_plane_background(img, np.asarray(levels), spacing, tile_um=tile_um)
    else:
        x = img.astype(np.float32)
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
    if mode in ("plane", "tile"):  # the threshold is applied inside the peak search
        mean, sd, count = (np.asarray(a) for a in stats)
        peaks = ops.find_peaks(response, spacing, peak_radius_um,
                               foreground=tissue_mask(negative, factors, response.shape, response.chunks),
                               threshold=(ops.TileStats(mean, sd, count.astype(np.int64), tuple(tile)), k))
    else:
        fg = _foreground(response, mode, stats, tile, k, value, window_um, spacing, negative, factors)
        peaks = ops.find_peaks(response, spacing, peak_radius_um, foreground=fg)
    return ops.thin_peaks(peaks, spacing, min_distance_um)


def foreground_components(response, mode, stats, tile, k, value, window_um, spacing, negative, factors):
    """Exact connected components of the thresholded foreground (OS)."""
    fg = _foreground(response, mode, stats, tile, k, value, window_um, spacing, negative, factors)
    os_arr, _ = ops.label(fg)
    return os_arr


def _with_components(cells: pd.DataFrame, components, shapes: pd.DataFrame) -> pd.DataFrame:
    """``cells`` with the id, volume and elongation of the foreground object each one lies in (NaN outside)."""
    out = cells.copy()
    if len(out):
        idx = tuple(np.rint(out[a].to_numpy(np.float64)).astype(np.int64) for a in "zyx")
        comp = np.asarray(da.asarray(components).vindex[idx].compute(), dtype=np.int64)
    else:
        comp = np.zeros(0, np.int64)
    out["component"] = comp
    shapes = shapes.set_index("id")
    out["component_volume_um3"] = shapes["volume_um3"].reindex(comp).to_numpy()
    out["component_elongation"] = shapes["elongation"].reindex(comp).to_numpy()
    return out


def filter_cells(cells: pd.DataFrame, components, shapes: pd.DataFrame, spacing, params: dict,
                 shape_filter: bool) -> pd.DataFrame:
    """Add each cell's foreground object and its shape; one maximum per cell; drop cells in non-cell objects.

    A maximum is dropped when a stronger one lies closer than half the
    equivalent diameter of the foreground object it sits in (clipped to
    ``min_distance_um`` .. ``max_thin_um``): one large cell can show two
    maxima, while touching cells lie about a diameter apart.
    """
    out = _with_components(cells, components, shapes)
    half = 0.5 * shapes.set_index("id")["equivalent_diameter_um"].reindex(out["component"]).to_numpy()
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


def split_cells(cells: pd.DataFrame, response, mode, stats, tile, levels, value, window_um, spacing, negative,
                factors, components, shapes: pd.DataFrame, params: dict) -> pd.DataFrame:
    """Add the touching cells that show no maximum of their own (:func:`voxelflow.ops.split_seeds`).

    They are found in the foregrounds at ``mean + k SD`` for each ``k`` of
    ``levels`` in turn (below the detection threshold, so a cluster of
    touching cells is one object whose shape shows where they meet; the neck
    between two cells shows at one level or another), only in objects that
    hold a cell. The table gains a ``split`` column (True for the added cells);
    added cells take the response and foreground object under them.
    """
    seeds = cells[["z", "y", "x"]]
    found = []
    for k in levels:
        fg = _foreground(response, mode, stats, tile, float(k), value, window_um, spacing, negative, factors)
        found.append(ops.split_seeds(fg, seeds, spacing, min_radius_um=params["split_min_radius_um"],
                                     max_extent_um=params["split_extent_um"]))
        seeds = pd.concat([seeds, found[-1][["z", "y", "x"]]], ignore_index=True)
    new = pd.concat(found, ignore_index=True)
    if len(new):
        idx = tuple(new[a].to_numpy(np.int64) for a in "zyx")
        new["response"] = np.asarray(da.asarray(response).vindex[idx].compute(), dtype=np.float64)
    new = _with_components(new.drop(columns="depth_um"), components, shapes)
    out = pd.concat([cells.assign(split=False), new.assign(split=True)], ignore_index=True)
    out = out.sort_values(["z", "y", "x"], kind="stable").reset_index(drop=True)
    out["id"] = np.arange(1, len(out) + 1, dtype=np.int64)
    return out


def cell_table(cells: pd.DataFrame, spacing, translation, shape) -> pd.DataFrame:
    """Physical centres (``z_um, y_um, x_um``), ``touches_border`` (a centre on the first/last voxel), and
    ``voxels`` / ``volume_um3`` of the foreground object each cell lies in (shared by touching cells)."""
    out = cells.copy()
    vol = out["component_volume_um3"].to_numpy(np.float64) if "component_volume_um3" in out else np.zeros(len(out))
    out["volume_um3"] = np.nan_to_num(vol)
    out["voxels"] = np.rint(out["volume_um3"] / float(np.prod(spacing))).astype(np.int64)
    for axis, s, t in zip("zyx", spacing, translation):
        out[f"{axis}_um"] = out[axis] * s + t
    pos = out[["z", "y", "x"]].to_numpy() if len(out) else np.zeros((0, 3))
    out["touches_border"] = ((pos == 0) | (pos == np.asarray(shape) - 1)).any(axis=1)
    return out


# --- the stages as typed steps (their kind sets display and storage) ---------------------------

def background_channel(reference: dict) -> dict:
    """The location of the background channel (see :func:`background_reference`): a cached record the viewer
    opens as the ``autofluorescence`` layer of the run's steps."""
    return dict(reference)


_background_channel = Step(background_channel, name="background_channel")
_plane_levels = Step(plane_levels, name="plane_levels")
_channel_factor = Step(channel_factor, name="channel_factor")
_channel_levels = Step(channel_levels, name="channel_levels")
_detection_response = Step(detection_response, kind="IN->IN", name="detection_response")
_threshold_stats = Step(threshold_stats, name="threshold_stats")
_find_cells = Step(find_cells, kind="IN->LC", name="find_cells")
_foreground_components = Step(foreground_components, kind="BS->OS", name="foreground_components")
_shape_table = Step(ops.shape_table, kind="OS->LC", name="shape_table")
_filter_cells = Step(filter_cells, kind="LC->LC", name="filter_cells")
_split_cells = Step(split_cells, kind="LC->LC", name="split_cells")

# --- the recipe ----------------------------------------------------------------------------


def _check(c):
    if c.threshold == "absolute" and c.threshold_value is None:
        raise ConfigError("cells.threshold_value: expected a number when cells.threshold = 'absolute'")


def _negative(run: Runner, setting, coarse, coarse_scale, config: Config, store):
    if setting in (None, "none"):
        return np.zeros(coarse.shape, dtype=bool)
    if setting == "auto":
        return run.step(steps.auto_negative_mask, coarse, coarse_scale, config.cells.edge_um,
                        whole_brain=config.mask.whole_brain, name="negative_mask", storage=store,
                        viewer_args=_HIDDEN)
    return negative_mask(run, setting, coarse, coarse_scale, config.pipeline, store)


def cells(run: Runner, config: Config, inputs: Inputs) -> Outputs:
    """The cell recipe: the steps of the module docstring, on the runner ``run``."""
    c, scan = config.cells, inputs.scan
    _check(c)
    img, spacing = scan.image, scan.scale
    bg = background_scan(config, img)
    classifier = open_candidate_classifier(c.classifier, bg is not None) if c.classifier else None
    params = cell_parameters(c, spacing)
    source, coarse_factors, method, coarse_info = coarse_source(config, scan)
    coarse_store = {"scale": tuple(coarse_info["scale_um"]), "translation": tuple(coarse_info["translation_um"])}
    # the tissue mask is up-sampled to full resolution by whole factors of the coarse grid
    cf = tuple(max(1, round(k / s)) for k, s in zip(coarse_store["scale"], spacing))
    full_store = {"chunks": tuple(min(k, s) for k, s in zip(config.output.chunks, img.shape)),
                  "levels": config.output.levels, "scale": spacing, "translation": scan.translation}
    tile_bg = params["tile_um"] if c.background == "tile" else None
    tile_thr = params["tile_um"] if c.threshold == "tile" else None

    coarse = run.step(steps.downsample, source, coarse_factors, method=method, name="coarse", storage=coarse_store,
                      viewer_args=_HIDDEN)
    negative = _negative(run, inputs.mask, coarse, coarse_store["scale"], config, coarse_store)
    masked = report_masked_fraction(run, negative, config, inputs)
    levels = bg_levels = None
    factor = 0.0
    background = background_reference(config)
    if bg is not None:
        run.step(_background_channel, background, name="background_channel")
    if bg is not None and c.background != "none":  # the levels of both channels and the factor in one read
        levels, bg_levels, factor = run.step(_channel_levels, img, bg, spacing, tile_bg, negative, cf,
                                             name="channel_levels")
    elif bg is not None:
        flat = np.ones((img.shape[0], 1, 1))
        factor = run.step(_channel_factor, img, flat, bg, flat, spacing, tile_bg, negative, cf,
                          name="channel_factor")
    elif c.background != "none":
        levels = run.step(_plane_levels, img, spacing, tile_bg, negative, cf, name="plane_levels")
    response = run.step(_detection_response, img, levels, bg, bg_levels, factor, spacing, tile_bg, c.prefilter,
                        params["sigma_um"], c.per_plane, name="response", storage=full_store)
    stats, tile = None, (img.shape[1], img.shape[2])
    if c.threshold in ("plane", "tile"):
        stats = run.step(_threshold_stats, response, spacing, tile_thr, negative, cf, name="threshold_stats")
        if tile_thr is not None:
            tile = tuple(max(1, int(round(tile_thr / s))) for s in spacing[1:])
    args = (response, c.threshold, stats, tile, float(c.threshold_k), c.threshold_value, params["window_um"],
            spacing)
    raw = run.step(_find_cells, *args, params["peak_radius_um"], params["min_distance_um"], negative, cf,
                   name="cells_raw")
    components = run.step(_foreground_components, *args, negative, cf, name="components",
                          storage=full_store)
    shapes = run.step(_shape_table, components, spacing, name="component_shapes")
    kept = run.step(_filter_cells, raw, components, shapes, spacing, params, c.shape_filter, name="cells")
    if c.split_touching:
        kept = run.step(_split_cells, kept, response, c.threshold, stats, tile, tuple(c.split_k), c.threshold_value,
                        params["window_um"], spacing, negative, cf, components, shapes, params, name="cells_split")
    classified = None
    if classifier is not None:
        kept, classified = classify_candidates(run, kept, components, img, bg, spacing, classifier)
    objects = cell_table(kept, spacing, scan.translation, img.shape)
    stage = RegionStage(objects, None)
    if inputs.atlas is not None and len(objects):
        stage = region_stage(run, objects, inputs.atlas, spacing, img.shape, density_um=config.atlas.density_um,
                             density_sigma_um=config.atlas.density_sigma_um)
    objects, regions = stage.objects, stage.regions
    df = density_factors(config, img.shape, spacing)
    density = run.step(steps.density_map, objects, img.shape, df, name="density",
                       storage={"scale": tuple(s * f for s, f in zip(spacing, df)),
                                "translation": block_translation(scan.translation, spacing, df)}, viewer_args=_HIDDEN)
    facts = {"parameters": params, "masked_fraction": round(masked, 6),
             "mask_warning": masked > config.mask.warn_fraction, "channel_factor": float(factor),
             "cells_before_shape_filter": int(len(raw)), "coarse": coarse_info, "background": background,
             **stage.facts}
    if classified is not None:
        facts["classifier"] = classified
    return Outputs(objects, density, regions, run.node("density"), facts, stage.atlas_density_node)


def run_cell_pipeline(config: Config, *, viewer=None, progress: bool = True, stream=None) -> PipelineResult:
    """Run the cell pipeline of a validated configuration (see :func:`voxelflow.pipelines.run.run_pipeline`).

    Raises
    ------
    ConfigError
        If ``pipeline.kind`` is not ``"cells"``, or a setting contradicts another.
    InvalidPathError, InvalidInputError
        Missing input, channels of different shapes, atlas of another extent.
    """
    if config.pipeline.kind != "cells":
        raise ConfigError(f"pipeline.kind is {config.pipeline.kind!r}; run_cell_pipeline runs 'cells'")
    return run_pipeline(config, viewer=viewer, progress=progress, stream=stream)
