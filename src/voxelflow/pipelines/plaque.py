"""The beta-amyloid plaque pipeline: scan in, object table and counts per region out.

Each stage is one cached step of the run (cache node name in brackets):

1. the coarse grid of all whole-volume work [``coarse``]: a stored pyramid level
   within ``pipeline.coarse_max_voxels`` (or at ``pipeline.coarse_um``), reduced by
   block means only when no level fits (:mod:`voxelflow.pipelines.coarse`);
2. a negative mask on the coarse grid [``negative_mask``]: by default the
   outside of the tissue plus a shell of ``edge_um`` micrometres along its edge
   (where lightsheet scans show bright artefacts; the volume border is such an
   edge only with ``mask.whole_brain``, so crops keep their border objects);
   or a user mask OME-Zarr
   (any resolution covering the scan), or a user function of the coarse image,
   or (``pipeline.mask = "model:PATH"``) the foreground of a segmentation model
   run on the coarse level in 3-D, per plane or tri-planar (``pipeline.mask_mode``);
3. N4 bias field on block means of the coarse grid within ``pipeline.bias_max_voxels``
   [``bias_field``] (needs SimpleITK; with ``pipeline.bias = "auto"`` it is skipped
   cleanly when that is missing);
4. threshold [``threshold_value`` when relative]; then, when full-resolution
   intermediates are stored (``output.full_res``), the foreground [``foreground``],
   exact connected-component labelling [``label``] (or, with ``pipeline.split =
   "watershed"``, a distance-transform watershed that splits touching plaques
   [``watershed``]) and the object table [``objects_raw``]; otherwise the object
   table in one streaming pass over the scan [``objects_raw``], which resumes chunk
   group by chunk group after a kill; the size filter [``objects_kept``] and physical
   coordinates [``objects``];
5. atlas regions of every object and counts per region
   (:mod:`voxelflow.pipelines.atlas_space`: with an atlas registered by
   voxelflow also hemispheres, atlas positions, left/right counts, imaged
   fractions and an atlas-space density map), and a density map [``density``].

:func:`voxelflow.pipelines.run.run_pipeline` runs it and writes the run folder
(layout: :mod:`voxelflow.steps.node`).
"""

from __future__ import annotations

from collections.abc import Callable

from voxelflow import steps
from voxelflow.errors import ConfigError, EmptyResultError
from voxelflow.pipelines.atlas_space import RegionStage, region_stage
from voxelflow.pipelines.coarse import block_translation, coarse_source, density_factors
from voxelflow.pipelines.config import Config
from voxelflow.pipelines.detector import detector_step, split_distance_voxels, uses_detector
from voxelflow.pipelines.run import Inputs, Outputs, PipelineResult, run_pipeline
from voxelflow.pipelines.tissue import HIDDEN, bias_field, negative_mask, report_masked_fraction, require_finite
from voxelflow.steps import Runner

__all__ = ["PlaqueResult", "plaque", "run_plaque_pipeline"]

PlaqueResult = PipelineResult

#: ``output.full_res = "auto"`` stores full-resolution intermediates up to this many voxels (67 M).
AUTO_FULL_RES = 2**26


def plaque(run: Runner, config: Config, inputs: Inputs) -> Outputs:
    """The plaque recipe: the steps of the module docstring, on the runner ``run``."""
    p, scan = config.pipeline, inputs.scan
    img, scale = scan.image, scan.scale
    source, factors, method, coarse_info = coarse_source(config, scan)
    coarse_store = {"scale": tuple(coarse_info["scale_um"]), "translation": tuple(coarse_info["translation_um"])}
    full_store = {"chunks": tuple(min(c, s) for c, s in zip(config.output.chunks, img.shape)),
                  "levels": config.output.levels, "scale": scale, "translation": scan.translation}

    coarse = run.step(steps.downsample, source, factors, method=method, name="coarse", storage=coarse_store,
                      viewer_args=HIDDEN)
    require_finite(coarse, config.input.url)
    negative = negative_mask(run, inputs.mask, coarse, coarse_store["scale"], p, coarse_store,
                             whole_brain=config.mask.whole_brain)
    masked = report_masked_fraction(run, negative, config, inputs)
    field = bias_field(run, p, coarse, negative, coarse_store, inputs)
    value = p.threshold
    if value is None and p.threshold_mode == "factor":
        value = run.step(steps.relative_threshold, coarse, negative, p.threshold_factor, field=field,
                         name="threshold_value")
    stored = config.output.full_res == "all" or (config.output.full_res == "auto" and img.size <= AUTO_FULL_RES)
    if uses_detector(p) or stored or p.split == "watershed":
        if uses_detector(p):
            bs = detector_step(run, config, img, negative, coarse_store["scale"], field, full_store)
        else:
            bs = run.step(steps.threshold_corrected, img, value, field, negative, name="foreground",
                          storage=full_store)
        if p.split == "watershed":
            labels = run.step(steps.watershed_split, bs, split_distance_voxels(p, scale), connectivity=p.connectivity,
                              sampling=scale, name="watershed", storage=full_store)
        else:
            labels, _ = run.step(steps.label, bs, connectivity=p.connectivity, name="label", storage=full_store)
        raw = run.step(steps.object_table, labels, intensity=img, connectivity=p.connectivity, kind="os",
                       name="objects_raw")
    else:
        # whole brains: one streaming, chunk-resumable pass; nothing of full resolution is written
        raw = run.step(steps.foreground_objects, img, value, negative, field, p.connectivity, name="objects_raw")
    kept = run.step(steps.filter_by_size, raw, p.min_voxels, p.max_voxels, name="objects_kept")
    objects = run.step(steps.physical_coordinates, kept, scale, scan.translation, name="objects")
    if len(objects) == 0:
        raise EmptyResultError(
            f"no objects found: {len(raw)} above the threshold "
            f"({p.threshold_mode}: {value if value is not None else f'k = {p.threshold_k}'}), none of size "
            f">= pipeline.min_voxels = {p.min_voxels}; lower pipeline.threshold "
            "(or pipeline.threshold_factor) or pipeline.min_voxels"
        )
    stage = RegionStage(objects, None)
    if inputs.atlas is not None:
        stage = region_stage(run, objects, inputs.atlas, scale, img.shape, density_um=config.atlas.density_um,
                             density_sigma_um=config.atlas.density_sigma_um)
    objects, regions = stage.objects, stage.regions
    df = density_factors(config, img.shape, scale)
    density = run.step(steps.density_map, objects, img.shape, df, name="density",
                       storage={"scale": tuple(s * f for s, f in zip(scale, df)),
                                "translation": block_translation(scan.translation, scale, df)}, viewer_args=HIDDEN)
    facts = {"threshold": value, "bias_corrected": field is not None, "objects_above_threshold": int(len(raw)),
             "masked_fraction": round(masked, 6), "mask_warning": masked > config.mask.warn_fraction,
             "coarse": coarse_info, "full_res_stored": bool(stored), **stage.facts}
    return Outputs(objects, density, regions, run.node("density"), facts, stage.atlas_density_node)


def run_plaque_pipeline(config: Config, *, mask: str | Callable | None = None, viewer=None, progress: bool = True,
                        stream=None) -> PipelineResult:
    """Run the plaque pipeline of a validated configuration (see :func:`voxelflow.pipelines.run.run_pipeline`).

    Raises
    ------
    ConfigError
        If ``pipeline.kind`` is not ``"plaque"``.
    InvalidPathError, InvalidInputError
        Missing input, wrong channel, atlas of another physical extent, bad mask.
    EmptyResultError
        No object survives thresholding and the size filter.
    """
    if config.pipeline.kind != "plaque":
        raise ConfigError(f"pipeline.kind is {config.pipeline.kind!r}; run_plaque_pipeline runs 'plaque'")
    return run_pipeline(config, mask=mask, viewer=viewer, progress=progress, stream=stream)
