"""Registering a BrainGlobe atlas to the scan: the ``register`` stage of every workflow.

Steps (cache node names in brackets):

1. the registration channel (``atlas.registration_channel``, else
   ``input.channel``) block-averaged out of core to about the atlas voxel size
   [``registration_input``]; the integer factors come from the scan's voxel
   size in its metadata and the atlas resolution, so the coarse grid keeps an
   exact physical scale;
2. affine + B-spline registration of the atlas template to it, after
   reorienting it from ``atlas.orientation`` to the atlas's code
   [``registration``]; the result is JSON: both transforms as ITK text, the
   grid, the orientation codes and the QC figures;
3. the annotation and the hemispheres warped onto the coarse scan grid
   (nearest neighbour, scan orientation) [``atlas_labels``,
   ``atlas_hemispheres``]; objects are assigned through them chunk by chunk
   (a centroid reads the coarse voxel it falls in: nearest-neighbour
   up-sampling without ever building the full-resolution labels).

The run folder gets ``registration/``: ``affine.tfm``, ``deformable.tfm``,
``registration.json`` (QC) and checkerboard / edge PNGs in three planes. They
are written before the QC verdict, so a diverged or folded registration stops
the run with a clear :class:`~voxelflow.errors.RegistrationError` and its
pictures on disk.
"""

from __future__ import annotations

import json

import dask.array as da
import numpy as np

from voxelflow import steps
from voxelflow.errors import ConfigError, OrientationError, RegistrationError
from voxelflow.io.brainglobe import read_brainglobe_folder
from voxelflow.io.orientation_code import parse_orientation
from voxelflow.io.registration_files import transforms_from_text, transforms_to_text, write_png
from voxelflow.ops._atlas_map import ScanAtlasMap, register_scan, registration_factors
from voxelflow.ops._register import RegistrationParameters, check_registration
from voxelflow.ops._register_qc import qc_planes
from voxelflow.paths import VPath, as_vpath
from voxelflow.pipelines.inputs import Atlas, open_scan
from voxelflow.steps import Runner, Step

__all__ = ["register_atlas", "mapping_from_result", "atlas_space_columns", "REGISTRATION_FOLDER"]

#: Folder of the run that holds the transforms and QC pictures.
REGISTRATION_FOLDER = "registration"


def _stamp(folder: str) -> str:
    p = as_vpath(folder) / "metadata.json"
    try:
        info = p.fs.info(p.path)
    except (FileNotFoundError, OSError):
        return ""
    return str(info.get("mtime") or info.get("size"))


def register_coarse(coarse, coarse_scale, orientation: str, atlas_folder: str, atlas_stamp: str,
                    parameters: dict) -> dict:
    """Register the coarse registration channel to the atlas; the JSON-ready result (no QC verdict).

    Raises
    ------
    RegistrationError
        If the channel has no contrast or no tissue (nothing to register).
    """
    atlas = read_brainglobe_folder(atlas_folder)
    mapping = register_scan(np.asarray(coarse), coarse_scale, orientation, atlas,
                            RegistrationParameters.from_dict(parameters), check=False)
    reg = mapping.registration
    return {"mapping": mapping.to_meta(), "transforms": transforms_to_text(reg.affine, reg.deformable)}


def mapping_from_result(result: dict) -> ScanAtlasMap:
    """The :class:`ScanAtlasMap` of a ``registration`` step result."""
    affine, deformable = transforms_from_text(result["transforms"])
    return ScanAtlasMap.from_parts(affine, deformable, result["mapping"])


def warp_atlas_image(result: dict, atlas_folder: str, atlas_stamp: str, which: str) -> da.Array:
    """The atlas ``annotation`` or ``hemispheres`` on the coarse scan grid (nearest), scan orientation.

    Returned as a dask array so the cache stores it as a labels OME-Zarr with its voxel size
    (the viewer shows it over the scan).
    """
    atlas = read_brainglobe_folder(atlas_folder)
    mapping = mapping_from_result(result)
    if which == "hemispheres":  # split by the registered midline, also where the brain edges miss by a voxel
        warped = mapping.hemispheres_to_scan(atlas.hemispheres)
    else:
        warped = mapping.labels_to_scan(getattr(atlas, which))
    return da.from_array(warped, chunks=tuple(min(64, n) for n in warped.shape))


_register = Step(register_coarse, kind="IN->JSON", name="registration")
_warp = Step(warp_atlas_image, kind="JSON->OS", name="atlas_labels")


def register_atlas(run: Runner, config, scan, out_dir: VPath, stream=None, progress: bool = False) -> Atlas:
    """Register ``config.atlas.brainglobe`` to the scan and return it as an :class:`Atlas` in scan space.

    Raises
    ------
    ConfigError
        If ``atlas.orientation`` is missing.
    OrientationError, AtlasError, InvalidPathError
        Bad orientation code, bad atlas folder.
    RegistrationError
        Nothing to register, divergence or folding (QC pictures written first).
    """
    a = config.atlas
    if not a.orientation:
        raise ConfigError("atlas.orientation: expected the scan's 3-letter orientation code (e.g. 'psl': axis 0 "
                          "from posterior, axis 1 from superior, axis 2 from left) when atlas.brainglobe is set")
    orientation = parse_orientation(a.orientation, "atlas.orientation")
    atlas = read_brainglobe_folder(a.brainglobe)
    channel = a.registration_channel if a.registration_channel is not None else config.input.channel
    reg_scan = scan if channel == config.input.channel else open_scan(
        config.input.url, channel, config.input.level, scale_um=config.input.scale_um)
    factors = registration_factors(reg_scan.scale, orientation, atlas.resolution, atlas.orientation)
    cscale = tuple(s * f for s, f in zip(reg_scan.scale, factors))
    store = {"scale": cscale}
    coarse = run.step(steps.downsample, reg_scan.image, factors, method="mean", name="registration_input",
                      storage=store, viewer_args={"visible": False})
    coarse_np = np.asarray(coarse)
    stamp = _stamp(a.brainglobe)
    qc_dir = out_dir / REGISTRATION_FOLDER
    try:
        result = run.step(_register, coarse, cscale, orientation, a.brainglobe, stamp, dict(a.registration),
                          name="registration")
    except (RegistrationError, OrientationError):
        _write_qc(qc_dir, coarse_np, None, None)
        raise
    mapping = mapping_from_result(result)
    template = mapping.image_to_scan(atlas.reference)
    _write_qc(qc_dir, coarse_np, template, result)
    try:
        check_registration(mapping.registration)
    except RegistrationError as exc:
        raise RegistrationError(f"{exc} (QC pictures in {qc_dir.url})", mapping) from None
    labels = run.step(_warp, result, a.brainglobe, stamp, "annotation", name="atlas_labels", storage=store)
    hemis = run.step(_warp, result, a.brainglobe, stamp, "hemispheres", name="atlas_hemispheres", storage=store)
    return Atlas(da.asarray(labels), cscale, atlas.regions, hemispheres=da.asarray(hemis), registration=result)


def _write_qc(folder: VPath, coarse, template, result) -> None:
    folder.mkdirs()
    for name, rgb in qc_planes(coarse, template).items():
        write_png(folder / f"qc_{name}.png", rgb)
    if result is not None:
        for name, text in result["transforms"].items():
            if text is not None:
                (folder / f"{name}.tfm").write_text(text)
        (folder / "registration.json").write_text(json.dumps(result["mapping"], indent=1))


def add_atlas_space(objects, hemispheres, grid_scale, scale, result: dict):
    """Objects with ``hemisphere`` (1 left, 2 right, 0 outside) and ``atlas_z_um, atlas_y_um, atlas_x_um``.

    The atlas position is the registration's transform of the centroid
    (``(z + 0.5) * scale`` from the scan corner), in the atlas's axes and micrometres.
    """
    from voxelflow.ops import assign_regions

    hemi = assign_regions(objects, hemispheres, grid_scale, scale)
    out = objects.assign(hemisphere=hemi.to_numpy().astype(np.int64))
    centres = (objects[["z", "y", "x"]].to_numpy(dtype=np.float64) + 0.5) * np.asarray(scale)
    pos = mapping_from_result(result).scan_to_atlas(centres) if len(objects) else np.zeros((0, 3))
    for k, axis in enumerate("zyx"):
        out[f"atlas_{axis}_um"] = pos[:, k]
    return out


def split_hemispheres(objects, regions, labels, hemispheres, grid_scale, table):
    """``regions`` with ``count_left``, ``count_right``, ``density_left_per_mm3``, ``density_right_per_mm3``.

    Each side is counted with :func:`voxelflow.ops.count_by_region` on its own
    objects and on the annotation restricted to that hemisphere (so volumes
    and densities are per side).
    """
    from voxelflow.ops import count_by_region

    out = regions.copy()
    for side, value in (("left", 1), ("right", 2)):
        side_labels = da.where(da.asarray(hemispheres) == value, da.asarray(labels), 0)
        counts = count_by_region(objects[objects["hemisphere"] == value], side_labels, grid_scale, table,
                                 unknown="ignore")
        out[f"count_{side}"] = counts["count"].to_numpy()
        out[f"density_{side}_per_mm3"] = counts["density_per_mm3"].to_numpy()
    return out


_atlas_space = Step(add_atlas_space, kind="LC->LC", name="objects_atlas")
_split = Step(split_hemispheres, kind="RC->RC", name="region_counts_lr")


def atlas_space_columns(run: Runner, objects, regions, atlas: Atlas, scale):
    """The steps adding atlas-space columns to the objects and hemisphere columns to the region counts."""
    objects = run.step(_atlas_space, objects, atlas.hemispheres, atlas.scale, scale, atlas.registration,
                       name="objects_atlas")
    regions = run.step(_split, objects, regions, atlas.labels, atlas.hemispheres, atlas.scale, atlas.regions,
                       name="region_counts_lr")
    return objects, regions


def register_only(config, *, progress: bool = True, stream=None) -> dict:
    """Run only the registration stage of ``config`` (``voxelflow register``).

    Returns
    -------
    dict
        The QC figures plus ``folder`` (where the transforms and pictures are).
    """
    import sys

    from voxelflow.pipelines.progress import progress_bar, progress_printer
    from voxelflow.steps import node as layout

    stream = stream or sys.stderr
    out_dir = VPath(config.output.folder)
    cache = VPath(config.output.cache or (out_dir / layout.CACHE_FOLDER).url)
    scan = open_scan(config.input.url, config.input.channel, config.input.level, scale_um=config.input.scale_um)
    out_dir.mkdirs()
    bar = progress_bar(progress, stream)
    run = Runner(cache, on_result=progress_printer(stream, bar) if progress else None)
    with bar:
        atlas = register_atlas(run, config, scan, out_dir, stream, progress)
    return dict(atlas.registration["mapping"]["qc"], folder=(out_dir / REGISTRATION_FOLDER).url)
