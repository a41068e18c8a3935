"""Objects in atlas regions: the stage every recipe ends with when it has an atlas.

With a pre-registered atlas (``atlas.url``): the region of every object
[``objects_regions``] and counts, volumes and densities per region
[``region_counts``].

With an atlas registered by voxelflow (``atlas.brainglobe``, see
:mod:`voxelflow.pipelines.registration`), objects are placed in the atlas and
take their region there, on the atlas's own grid, as the annotation defines
it; the warped labels on the scan grid give the volumes (cache node names in
brackets):

1. the atlas position of every object (``atlas_z_um, atlas_y_um,
   atlas_x_um``: the registration's transform of its centroid, micrometres
   from the whole atlas's corner, atlas axes), its region (the annotation
   voxel there, also beyond the registered part of a partial scan's atlas)
   and its hemisphere (the hemisphere image filled out to the whole atlas
   volume, so the side is decided by the registered midline alone)
   [``objects_atlas``];
2. region volumes are those of the warped labels up-sampled lazily to the
   scan grid, counted on the coarse grid with each coarse voxel weighted by
   the scan voxels it covers [``region_counts``];
3. left/right counts and densities, and the fraction of every region (and of
   each side) the scan imaged; a region the scan did not image at all has no
   count (empty in ``regions.csv``), not a count of 0 [``region_counts_lr``];
4. the atlas-space density map: objects per atlas voxel (or per block of
   ``atlas.density_um``), optionally smoothed, NaN outside what was imaged,
   stored as OME-Zarr with the atlas voxel size [``atlas_density``].

Looking the region up in the atlas, not on the labels resampled onto the
coarse scan grid, matters at boundaries: resampling twice (atlas grid to
coarse grid, coarse grid to scan voxels) moves boundaries by up to a coarse
voxel, so on a 200 um atlas about one object in ten near boundaries was
counted in a neighbour even with a perfect registration.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import dask.array as da
import numpy as np
import pandas as pd

from voxelflow import steps
from voxelflow.ops._atlas_part import SIDES
from voxelflow.ops._atlas_space import (
    atlas_density_map,
    density_grid,
    imaged_fraction,
    upsampled_label_volumes,
    value_at,
)
from voxelflow.ops._hemispheres import fill_hemispheres
from voxelflow.paths import VPath
from voxelflow.pipelines.inputs import Atlas
from voxelflow.pipelines.registration import mapping_from_result, part_of
from voxelflow.steps import Runner, Step

__all__ = ["RegionStage", "region_stage", "ATLAS_COLUMNS"]

#: Object-table columns of the atlas position.
ATLAS_COLUMNS = ("atlas_z_um", "atlas_y_um", "atlas_x_um")
#: Count columns left empty for regions (or sides) the scan did not image.
_NOT_IMAGED = {"": ("count", "count_self", "density_per_mm3"), "_left": ("count_left", "density_left_per_mm3"),
               "_right": ("count_right", "density_right_per_mm3")}


@dataclass
class RegionStage:
    """What the region stage adds to a run: tables, the atlas-space density node and run facts."""

    objects: pd.DataFrame
    regions: pd.DataFrame | None
    atlas_density_node: VPath | None = None
    facts: dict = field(default_factory=dict)


def region_stage(run: Runner, objects: pd.DataFrame, atlas: Atlas, scale, shape, *, density_um: float = 0.0,
                 density_sigma_um: float = 0.0) -> RegionStage:
    """Regions, counts and (for a registered atlas) atlas-space outputs of ``objects`` (steps of the module doc).

    Parameters
    ----------
    run : Runner
    objects : pandas.DataFrame (LC), centroids in scan voxels
    atlas : Atlas
    scale : tuple of 3 float
        Scan voxel size (micrometres).
    shape : tuple of 3 int
        Scan shape.
    density_um, density_sigma_um : float
        Block side and smoothing of the atlas-space density map (0: one atlas voxel, no smoothing).
    """
    if atlas.registration is None:
        objects = run.step(steps.add_regions, objects, atlas.labels, atlas.scale, scale, atlas.regions,
                           image_shape=shape, name="objects_regions")
        regions = run.step(steps.count_by_region, objects, atlas.labels, atlas.scale, atlas.regions,
                           name="region_counts")
        return RegionStage(objects, regions)
    c = atlas.coarse
    bg = c["atlas"]
    objects = run.step(_atlas_space, objects, scale, atlas.registration, bg.annotation, bg.hemispheres,
                       bg.resolution, bg.orientation, atlas.regions, name="objects_atlas")
    volumes = upsampled_label_volumes(c["labels"], c["factors"], shape, scale)
    regions = run.step(steps.count_by_region, objects, atlas.labels, scale, atlas.regions, volumes=volumes,
                       name="region_counts")
    regions = run.step(_split, objects, regions, c["labels"], c["hemispheres"], c["factors"], shape, scale,
                       atlas.regions, bg.annotation, bg.hemispheres, c["coverage"], name="region_counts_lr")
    block, _ = density_grid(bg.shape, bg.resolution, density_um)
    run.step(_density, objects, bg.shape, bg.resolution, density_um, c["coverage"], density_sigma_um,
             name="atlas_density", storage={"scale": tuple(float(b) for b in block)}, viewer_args={"visible": False})
    part = part_of(atlas.registration)
    facts = {"registration": {
        "qc": atlas.registration["mapping"].get("qc", {}), "atlas": bg.name, "atlas_part": part.to_meta(),
        "imaged_fraction": round(float(np.mean(c["coverage"][bg.annotation != 0])), 6),
        "atlas_density": {"block_um": [float(b) for b in block], "orientation": bg.orientation,
                          "sigma_um": float(density_sigma_um)}}}
    return RegionStage(objects, regions, run.node("atlas_density"), facts)


def add_atlas_space(objects: pd.DataFrame, scale, result: dict, annotation, hemispheres, resolution,
                    orientation: str, table: pd.DataFrame) -> pd.DataFrame:
    """Objects with their atlas position, region and hemisphere, looked up in the atlas.

    Parameters
    ----------
    objects : pandas.DataFrame (LC), centroids ``z, y, x`` in scan voxels
    scale : tuple of 3 float
        Scan voxel size (micrometres).
    result : dict
        The ``registration`` step result (transforms, grids, atlas part).
    annotation, hemispheres : numpy.ndarray, shape of the whole atlas, integer
        The atlas's annotation and hemispheres (1 left, 2 right).
    resolution : tuple of 3 float
        Atlas voxel size (micrometres).
    orientation : str
        The atlas's orientation code.
    table : pandas.DataFrame
        Region table (for the acronyms).

    Returns
    -------
    pandas.DataFrame
        ``objects`` plus ``region_id`` (int64, the annotation voxel under the
        atlas position, 0 outside the atlas), ``region_acronym``,
        ``hemisphere`` (int64, 1 left, 2 right; the filled hemisphere image, so
        every object has a side; the scanned side for a scan of one hemisphere) and ``atlas_z_um, atlas_y_um, atlas_x_um``
        (float64, micrometres from the whole atlas's corner, atlas axes; the
        registration's transform of ``(z + 0.5) * scale`` from the scan corner).
    """
    part = part_of(result)
    mapping = mapping_from_result(result)
    centres = (objects[["z", "y", "x"]].to_numpy(dtype=np.float64) + 0.5) * np.asarray(scale)
    in_part = mapping.scan_to_atlas(centres) if len(objects) else np.zeros((0, 3))
    pos = in_part + np.asarray(part.origin) * np.asarray(resolution, dtype=np.float64)
    # the whole atlas, so an object (in tissue) the transform puts just beyond a partial scan's atlas part
    # still counts; the warped labels (volumes) stay within the part, where the scan has tissue
    region = value_at(pos, annotation, resolution)
    if part.side == "whole":
        hemisphere = value_at(pos, fill_hemispheres(hemispheres, orientation), resolution, clip=True)
    else:  # a scan of one hemisphere: every object is on that side
        hemisphere = np.full(len(pos), SIDES[part.side], dtype=np.int64)
    acronyms = dict(zip(table["id"], table["acronym"]))
    out = objects.assign(region_id=region, region_acronym=[acronyms.get(int(r), "") for r in region],
                         hemisphere=hemisphere)
    for k, col in enumerate(ATLAS_COLUMNS):
        out[col] = pos[:, k]
    return out


def split_hemispheres(objects, regions, labels, hemispheres, factors, shape, scale, table, annotation,
                      atlas_hemispheres, coverage) -> pd.DataFrame:
    """``regions`` with left/right counts and densities, imaged fractions, and no counts where nothing was imaged.

    Adds ``count_left``, ``count_right``, ``density_left_per_mm3``,
    ``density_right_per_mm3`` (each side counted with
    :func:`voxelflow.ops.count_by_region` on its objects and on the volumes of
    that hemisphere of the up-sampled labels) and ``imaged_fraction``,
    ``imaged_fraction_left``, ``imaged_fraction_right`` (of the region's atlas
    voxels). Counts and densities of a region, or of one side, with an imaged
    fraction of 0 become missing values (nullable integers / NaN).
    """
    from voxelflow.ops import count_by_region

    out = regions.copy()
    labels, hemispheres = np.asarray(labels), np.asarray(hemispheres)
    annotation, atlas_hemispheres = np.asarray(annotation), np.asarray(atlas_hemispheres)
    out["imaged_fraction"] = imaged_fraction(annotation, coverage, table).to_numpy()
    for side, value in SIDES.items():
        side_labels = np.where(hemispheres == value, labels, 0)
        volumes = upsampled_label_volumes(side_labels, factors, shape, scale)
        counts = count_by_region(objects[objects["hemisphere"] == value], side_labels, scale, table,
                                 unknown="ignore", volumes=volumes)
        out[f"count_{side}"] = counts["count"].to_numpy()
        out[f"density_{side}_per_mm3"] = counts["density_per_mm3"].to_numpy()
        side_annotation = np.where(atlas_hemispheres == value, annotation, 0)
        out[f"imaged_fraction_{side}"] = imaged_fraction(side_annotation, coverage, table).to_numpy()
    for suffix, columns in _NOT_IMAGED.items():
        unseen = (out[f"imaged_fraction{suffix}"] == 0).to_numpy()
        for col in columns:
            out[col] = out[col].astype("Int64" if col.startswith("count") else np.float64)
            out.loc[unseen, col] = pd.NA if col.startswith("count") else np.nan
    return out


def atlas_density(objects: pd.DataFrame, atlas_shape, resolution, block_um: float, coverage,
                  sigma_um: float) -> da.Array:
    """The atlas-space density map (see :func:`voxelflow.ops._atlas_space.atlas_density_map`), as a dask array."""
    pos = objects[list(ATLAS_COLUMNS)].to_numpy(dtype=np.float64) if len(objects) else np.zeros((0, 3))
    out = atlas_density_map(pos, atlas_shape, resolution, block_um or None, coverage, sigma_um)
    return da.from_array(out, chunks=tuple(min(64, n) for n in out.shape))


_atlas_space = Step(add_atlas_space, kind="LC->LC", name="objects_atlas")
_split = Step(split_hemispheres, kind="RC->RC", name="region_counts_lr")
_density = Step(atlas_density, kind="LC->CD", name="atlas_density")
