"""Registering a BrainGlobe atlas to the scan: the ``register`` stage of every workflow.

Steps (cache node names in brackets):

1. the registration channel (``atlas.registration_channel``, else
   ``input.channel``) block-averaged out of core to about the atlas voxel size
   [``registration_input``]; the integer factors come from the scan's voxel
   size in its metadata and the atlas resolution, so the coarse grid keeps an
   exact physical scale; where that grid is coarser than the finest
   registration level (an atlas coarser than the level), also block-averaged
   towards that level [``registration_detail``], the image registration
   optimises on (:func:`voxelflow.ops._atlas_map.detail_factors`);
2. affine + B-spline registration of the atlas template to it, after
   reorienting it from ``atlas.orientation`` to the atlas's code
   [``registration``]; a partial scan (``atlas.coverage`` a hemisphere or
   ``'auto'``, ``atlas.crop_um`` a box) is registered to the matching part of
   the atlas (:mod:`voxelflow.ops._atlas_part`). The result is JSON: both
   transforms as ITK text, the grid, the orientation codes, the atlas part and
   the QC figures. Its node is named after the atlas settings
   (``registration-<hash>``, :func:`attempt_name`), so other settings or a
   refused registration never replace an accepted one;
3. the annotation and the hemispheres (of the part) warped onto the coarse
   scan grid (nearest neighbour, scan orientation) [``atlas_labels``,
   ``atlas_hemispheres``]; the recipe reads them up-sampled lazily to the full
   scan grid (:func:`voxelflow.ops._atlas_map.upsample_labels`, chunk by
   chunk, never whole);
4. the atlas voxels the scan imaged [``atlas_coverage``], so regions outside a
   partial scan are reported as not imaged rather than as empty.

The run folder gets ``registration/``: ``affine.tfm``, ``deformable.tfm``,
``registration.json`` (QC) and checkerboard / edge PNGs in three planes
(:func:`registration_files`; read back by
:func:`voxelflow.io.registration_files.read_registration`), published with the
run's other outputs. A
registration that fails (no contrast, wrong orientation, a diverged or folded
result) stops the run with a clear :class:`~voxelflow.errors.RegistrationError`
(or :class:`~voxelflow.errors.OrientationError`) naming where its pictures are:
``run-failed-registration/`` beside ``run-failed.json``, so the previous run's
``registration/`` is never replaced by a failed run's.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict

import dask.array as da
import numpy as np

from voxelflow import steps
from voxelflow.errors import ConfigError, InvalidInputError, OrientationError, RegistrationError
from voxelflow.io.brainglobe import read_brainglobe_folder
from voxelflow.io.ome_zarr.replace import write_beside
from voxelflow.io.orientation_code import parse_orientation
from voxelflow.io.registration_files import (
    png_bytes,
    registration_folder_files,
    transforms_from_text,
    transforms_to_text,
)
from voxelflow.ops._atlas_map import (
    ScanAtlasMap,
    detail_factors,
    register_scan,
    registration_factors,
    upsample_labels,
)
from voxelflow.ops._atlas_part import SIDES, AtlasPart, atlas_coverage, cut_part, detect_hemisphere, find_part
from voxelflow.ops._register import RegistrationParameters, check_registration
from voxelflow.ops._register_qc import qc_planes
from voxelflow.paths import VPath, as_vpath
from voxelflow.pipelines.coarse import block_translation
from voxelflow.pipelines.inputs import Atlas, open_scan
from voxelflow.pipelines.publish import FAILED_REGISTRATION_FOLDER, REGISTRATION_FOLDER, write_files
from voxelflow.steps import Runner, Step

__all__ = ["register_atlas", "mapping_from_result", "part_of", "registration_files",
           "FAILED_REGISTRATION_FOLDER", "REGISTRATION_FOLDER"]


def _stamp(folder: str) -> str:
    p = as_vpath(folder) / "metadata.json"
    try:
        info = p.fs.info(p.path)
    except (FileNotFoundError, OSError):
        return ""
    return str(info.get("mtime") or info.get("size"))


def register_coarse(coarse, coarse_scale, orientation: str, atlas_folder: str, atlas_stamp: str,
                    parameters: dict, coverage: str = "whole", crop_um=(), detail=None, detail_scale=None) -> dict:
    """Register the coarse registration channel to (a part of) the atlas; the JSON-ready result.

    ``coverage`` (``'whole'``, ``'left'``, ``'right'`` or ``'auto'``) and
    ``crop_um`` (a box in atlas micrometres, or empty) choose the atlas part;
    the result's ``part`` says which was used. ``detail`` (with its voxel size
    ``detail_scale``) is the channel at the finest registration level where the
    coarse grid is coarser (:func:`voxelflow.ops._atlas_map.register_scan`).

    Raises
    ------
    RegistrationError
        If the channel has no contrast or no tissue (nothing to register), or
        the result fails the QC verdict (divergence, folding, rotation); then
        its ``result`` is the JSON-ready result, for QC pictures.
    """
    atlas = read_brainglobe_folder(atlas_folder)
    coarse = np.asarray(coarse)
    side = detect_hemisphere(coarse, coarse_scale, orientation, atlas) if coverage == "auto" else coverage
    part = find_part(atlas, list(crop_um) or None, side)
    mapping = register_scan(coarse, coarse_scale, orientation, cut_part(atlas, part),
                            RegistrationParameters.from_dict(parameters), check=False,
                            detail=None if detail is None else np.asarray(detail), detail_scale=detail_scale)
    reg = mapping.registration
    out = {"mapping": mapping.to_meta(), "transforms": transforms_to_text(reg.affine, reg.deformable),
           "part": part.to_meta()}
    try:
        check_registration(reg)
    except RegistrationError as exc:
        # raised inside the step, so a refused result is never cached over an accepted one
        raise RegistrationError(str(exc), out) from None
    return out


def mapping_from_result(result: dict) -> ScanAtlasMap:
    """The :class:`ScanAtlasMap` of a ``registration`` step result (to the registered atlas part)."""
    affine, deformable = transforms_from_text(result["transforms"])
    return ScanAtlasMap.from_parts(affine, deformable, result["mapping"])


def part_of(result: dict) -> AtlasPart:
    """The atlas part a ``registration`` step result registered (the whole atlas for older results)."""
    if "part" in result:
        return AtlasPart.from_meta(result["part"])
    return AtlasPart((0, 0, 0), tuple(result["mapping"]["moving_shape"]))


def warp_atlas_image(result: dict, atlas_folder: str, atlas_stamp: str, which: str) -> da.Array:
    """The atlas ``annotation`` or ``hemispheres`` on the coarse scan grid (nearest), scan orientation.

    Returned as a dask array so the cache stores it as a labels OME-Zarr with its voxel size
    (the viewer shows it over the scan).
    """
    atlas = read_brainglobe_folder(atlas_folder)
    part = part_of(result)
    mapping = mapping_from_result(result)
    if which == "hemispheres":
        # the whole atlas, filled and placed where the registered part sits in it: the side is decided by the
        # registered midline alone, also for scan voxels the transform puts just beyond a cut face; a scan of
        # one hemisphere is that side throughout
        hemi = atlas.hemispheres if part.side == "whole" else np.full_like(atlas.hemispheres, SIDES[part.side])
        warped = mapping.hemispheres_to_scan(hemi, part.origin)
    else:
        # the part only: beyond a partial scan's cut face the scan holds no tissue, so no region volume there
        warped = mapping.labels_to_scan(getattr(cut_part(atlas, part), which))
    return da.from_array(warped, chunks=tuple(min(64, n) for n in warped.shape))


def imaged_atlas_voxels(result: dict, atlas_folder: str, atlas_stamp: str) -> np.ndarray:
    """The atlas voxels (whole atlas grid, atlas orientation) the scan imaged, bool."""
    atlas = read_brainglobe_folder(atlas_folder)
    return atlas_coverage(mapping_from_result(result), atlas.shape, part_of(result), atlas.hemispheres)


_register = Step(register_coarse, kind="IN->JSON", name="registration")
_warp = Step(warp_atlas_image, kind="JSON->OS", name="atlas_labels")
_coverage = Step(imaged_atlas_voxels, kind="JSON->BS", name="atlas_coverage")


def attempt_name(config, stamp: str) -> str:
    """Cache node name of the ``registration`` step: ``registration-`` plus a hash of the atlas settings.

    Each set of settings (atlas folder and its stamp, orientation, channel,
    parameters with their defaults filled in, part) gets its own node, so
    trying other settings, a registration that fails, or new default
    parameters never replace an accepted registration in the cache.
    """
    a = config.atlas
    parameters = asdict(RegistrationParameters.from_dict(dict(a.registration)))
    settings = [a.brainglobe, stamp, a.orientation, a.registration_channel, parameters, a.coverage, a.crop_um]
    return "registration-" + hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:12]


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
    if reg_scan.image.shape != scan.image.shape:
        raise InvalidInputError(f"atlas.registration_channel {channel} of {config.input.url!r} has shape "
                                f"{reg_scan.image.shape}, the counted channel {scan.image.shape}; expected the same")
    factors = registration_factors(reg_scan.scale, orientation, atlas.resolution, atlas.orientation)
    cscale = tuple(s * f for s, f in zip(reg_scan.scale, factors))
    store = {"scale": cscale, "translation": block_translation(reg_scan.translation, reg_scan.scale, factors)}
    coarse = run.step(steps.downsample, reg_scan.image, factors, method="mean", name="registration_input",
                      storage=store, viewer_args={"visible": False})
    coarse_np = np.asarray(coarse)
    fine = detail_factors(reg_scan.scale, factors, min(atlas.resolution),
                          RegistrationParameters.from_dict(dict(a.registration)))
    detail, dscale = None, None
    if fine is not None:
        dscale = tuple(s * f for s, f in zip(reg_scan.scale, fine))
        detail = run.step(steps.downsample, reg_scan.image, fine, method="mean", name="registration_detail",
                          storage={"scale": dscale,
                                   "translation": block_translation(reg_scan.translation, reg_scan.scale, fine)},
                          viewer_args={"visible": False})
    stamp = _stamp(a.brainglobe)
    try:
        result = run.step(_register, coarse, cscale, orientation, a.brainglobe, stamp, dict(a.registration),
                          a.coverage, tuple(a.crop_um), detail, dscale, name=attempt_name(config, stamp))
    except (RegistrationError, OrientationError) as exc:
        pair = (f"registering the atlas {a.brainglobe!r} (template reference.tiff) to channel {channel} of "
                f"{config.input.url!r}")
        refused = getattr(exc, "result", None)
        failed_dir = out_dir / FAILED_REGISTRATION_FOLDER
        kept = f"; the previous run's {REGISTRATION_FOLDER}/ is kept"
        if isinstance(refused, dict) and "transforms" in refused:
            _write_failed(failed_dir, registration_files(coarse_np, _template(refused, atlas), refused))
            raise RegistrationError(f"{pair}: {exc} (QC pictures of this run in {failed_dir.url}{kept})",
                                    refused) from None
        _write_failed(failed_dir, registration_files(coarse_np, None, None))
        where = f"pictures of the channel in {failed_dir.url}{kept}"
        if isinstance(exc, RegistrationError):
            raise RegistrationError(f"{pair}: {exc} ({where})") from None
        raise OrientationError(f"{exc} ({where})") from None
    files = registration_files(coarse_np, _template(result, atlas), result)
    labels = run.step(_warp, result, a.brainglobe, stamp, "annotation", name="atlas_labels", storage=store)
    hemis = run.step(_warp, result, a.brainglobe, stamp, "hemispheres", name="atlas_hemispheres", storage=store)
    coverage = run.step(_coverage, result, a.brainglobe, stamp, name="atlas_coverage",
                        storage={"scale": atlas.resolution}, viewer_args={"visible": False})
    shape, chunks = scan.image.shape, scan.image.chunksize
    full = {name: upsample_labels(da.asarray(arr), factors, shape, chunks=chunks)
            for name, arr in (("labels", labels), ("hemispheres", hemis))}
    return Atlas(full["labels"], tuple(scan.scale), atlas.regions, hemispheres=full["hemispheres"],
                 registration=result, files=files,
                 coarse={"labels": da.asarray(labels), "hemispheres": da.asarray(hemis), "factors": factors,
                         "coverage": np.asarray(coverage), "atlas": atlas})


def _template(result: dict, atlas) -> np.ndarray:
    """The registered atlas template on the coarse scan grid (scan orientation), float32."""
    return mapping_from_result(result).image_to_scan(cut_part(atlas, part_of(result)).reference)


def registration_files(coarse, template, result) -> dict[str, bytes]:
    """The files of a run's registration folder, by name: QC pictures, transforms, ``registration.json``.

    Parameters
    ----------
    coarse : numpy.ndarray, shape (Z, Y, X)
        The registration channel on the coarse scan grid.
    template : numpy.ndarray, same shape, or None
        The registered atlas template on that grid; None draws the channel alone
        (``qc_scan_axis*.png``), else checkerboards and edges.
    result : dict or None
        A ``registration`` step result (accepted or refused): adds ``affine.tfm``,
        ``deformable.tfm`` and ``registration.json`` (grids, orientation codes, QC, atlas part).
    """
    files = {f"qc_{name}.png": png_bytes(rgb) for name, rgb in qc_planes(coarse, template).items()}
    if result is not None:
        files.update(registration_folder_files(result["transforms"], dict(result["mapping"], part=result.get("part"))))
    return files


def _write_failed(folder: VPath, files: dict[str, bytes]) -> None:
    """The failed run's files, written beside an earlier failed run's and swapped in."""
    write_beside(folder, lambda work: write_files(work, files))


def register_only(config, *, progress: bool = True, stream=None) -> dict:
    """Run only the registration stage of ``config`` (``voxelflow register``).

    The files go to the run folder's ``registration/``; when the folder holds a
    finished run (``run.json``), whose ``registration/`` belongs with its tables,
    they go to ``registration-new/`` instead (removed by the next finished run).

    Returns
    -------
    dict
        The QC figures plus ``folder`` (where the transforms and pictures are).
    """
    import sys

    from voxelflow.pipelines.progress import progress_bar, progress_printer
    from voxelflow.pipelines.publish import NEW_REGISTRATION_FOLDER, tidy_run_folder
    from voxelflow.pipelines.run_lock import run_folder_lock
    from voxelflow.steps import node as layout

    stream = stream or sys.stderr
    out_dir = VPath(config.output.folder)
    cache = VPath(config.output.cache or (out_dir / layout.CACHE_FOLDER).url)
    scan = open_scan(config.input.url, config.input.channel, config.input.level, scale_um=config.input.scale_um)
    out_dir.mkdirs()
    bar = progress_bar(progress, stream)
    run = Runner(cache, on_result=progress_printer(stream, bar) if progress else None)
    with run_folder_lock(out_dir), bar:
        tidy_run_folder(out_dir)
        atlas = register_atlas(run, config, scan, out_dir, stream, progress)
        finished = (out_dir / layout.RUN_FILE).exists()
        folder = out_dir / (NEW_REGISTRATION_FOLDER if finished else REGISTRATION_FOLDER)
        write_beside(folder, lambda work: write_files(work, atlas.files))
    return dict(atlas.registration["mapping"]["qc"], folder=folder.url)
