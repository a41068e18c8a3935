"""The inputs of a workflow: scan, atlas and user mask, opened lazily and keyed by their source.

Every input is checked to exist, opened with :func:`voxelflow.io.open_image` (OME-Zarr,
TIFF planes or stacks, Imaris, N5), and named after its URL and the modification stamp of
its metadata (for other formats: of the files it reads)
(:func:`voxelflow.steps.keyed`), so a rewritten input is a new input for the
cache while an unchanged one keeps every downstream result.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import dask.array as da
import numpy as np
import pandas as pd

from voxelflow.errors import ConfigError, InvalidInputError, InvalidPathError
from voxelflow.io import open_image
from voxelflow.io.atlas_files import read_region_table
from voxelflow.paths import VPath, as_vpath
from voxelflow.steps import keyed

__all__ = ["Atlas", "Scan", "background_reference", "background_scan", "open_atlas", "open_keyed", "open_scan", "open_user_mask"]


@dataclass(frozen=True)
class Scan:
    """One channel of a scan.

    Attributes
    ----------
    image : dask.array.Array, shape (Z, Y, X)
        Lazy, chunked as stored, keyed by its source.
    meta : OmeMeta
        Metadata of the opened level.
    scale, translation : tuple of 3 float
        Voxel size and position of voxel 0 (micrometres).
    """

    image: da.Array
    meta: object
    scale: tuple[float, float, float]
    translation: tuple[float, float, float]


@dataclass(frozen=True)
class Atlas:
    """Region labels registered to the scan, their voxel size and the region table.

    ``hemispheres`` (1 left, 2 right, same grid as ``labels``) and
    ``registration`` (the ``registration`` step result: transforms, grid, QC)
    are set when the atlas was registered by voxelflow; ``labels`` and
    ``hemispheres`` are then lazily up-sampled to the scan grid, and ``coarse``
    holds what they were up-sampled from: ``labels``, ``hemispheres`` (coarse
    grid), ``factors`` (scan voxels per coarse voxel), ``coverage`` (bool, the
    atlas voxels the scan imaged) and ``atlas`` (the BrainGlobe atlas);
    ``files`` the run folder's ``registration/`` (file name -> bytes: transforms,
    QC figures and pictures), written with the run's outputs.
    """

    labels: da.Array
    scale: tuple[float, ...]
    regions: pd.DataFrame
    hemispheres: da.Array | None = None
    registration: dict | None = None
    coarse: dict | None = None
    files: dict | None = None


def _stamp(path: VPath) -> str:
    """Modification stamp of the image metadata (NGFF 0.5 zarr.json or 0.4 .zattrs)."""
    for name in ("zarr.json", ".zattrs", ".zgroup"):
        p = path / name
        try:
            info = p.fs.info(p.path)
        except (FileNotFoundError, OSError):
            continue
        return str(info.get("mtime") or info.get("LastModified") or info.get("ETag") or info.get("size"))
    return ""


def open_keyed(url: str, what: str, *extra, level: int = 0, storage_options: dict | None = None, scale_um=None):
    """Open an input image, keyed by its URL, ``extra`` and its metadata stamp.

    Parameters
    ----------
    url : str
        Path or URL, optionally with ``?slices=[...]``.
    what : str
        Name of the setting, for messages (``"input.url"``).
    *extra
        JSON values added to the key.

    Returns
    -------
    arr : dask.array.Array
    meta : OmeMeta
    stamp : str

    Raises
    ------
    InvalidPathError
        If nothing exists at ``url``.
    """
    path = as_vpath(url.split("?", 1)[0], storage_options)
    if not path.exists() and not any(ch in path.path for ch in "*?["):  # a glob of planes is no path
        raise InvalidPathError(f"{what} {url!r} does not exist")
    arr, meta = open_image(url, level=level, scale_um=scale_um, storage_options=storage_options)
    # Readers of other formats name their arrays after the files' sizes and modification times.
    stamp = _stamp(path) if meta.format == "ome-zarr" else arr.name
    return arr, meta, stamp


def open_scan(url: str, channel: int | None = None, level: int = 0, storage_options: dict | None = None,
              scale_um=None) -> Scan:
    """Open one channel of a scan as a (z, y, x) dask array keyed by its source.

    ``scale_um`` (micrometres, one number or ``(z, y, x)``) supplies or overrides the
    voxel size (see :func:`voxelflow.io.open_image`).

    Raises
    ------
    InvalidPathError
        If the input does not exist.
    InvalidInputError
        If the channel is missing, out of range or needed but not given, or the
        image is not 3-D after picking it.
    """
    arr, meta, stamp = open_keyed(url, "input scan", level=level, storage_options=storage_options, scale_um=scale_um)
    axes = [a.lower() for a in meta.axes]
    scale = list(meta.scale)
    translation = list(getattr(meta, "translation", None) or [0.0] * len(axes))
    if "c" in axes:
        ci = axes.index("c")
        n = arr.shape[ci]
        names = f" ({', '.join(meta.channel_names)})" if meta.channel_names else ""
        if channel is None:
            if n != 1:
                raise InvalidInputError(
                    f"input {url!r} has {n} channels{names}; pick one with input.channel or ?slices=[c, ...]"
                )
            channel = 0
        if not 0 <= channel < n:
            raise InvalidInputError(f"input.channel = {channel} is out of range: {url!r} has {n} channels{names}")
        arr = arr[(slice(None),) * ci + (channel,)]
        for lst in (axes, scale, translation):
            del lst[ci]
    elif channel not in (None, 0):
        raise InvalidInputError(f"input.channel = {channel} given, but {url!r} has no channel axis (axes {meta.axes})")
    if "t" in axes and arr.shape[axes.index("t")] == 1:
        ti = axes.index("t")
        arr = arr[(slice(None),) * ti + (0,)]
        for lst in (axes, scale, translation):
            del lst[ti]
    if tuple(axes) != ("z", "y", "x"):
        raise InvalidInputError(
            f"input {url!r} must be a 3-D (z, y, x) image after picking the channel; axes are {tuple(axes)}"
        )
    arr = keyed(arr, json.dumps([url, level, channel, arr.shape, str(arr.dtype), stamp]
                                + ([scale_um] if scale_um is not None else [])))
    return Scan(arr, meta, tuple(float(s) for s in scale), tuple(float(t) for t in translation))


def open_atlas(url: str, regions: str, shape, scale) -> Atlas:
    """Open and check the atlas before any voxel work: it must cover the scan's physical extent.

    Raises
    ------
    ConfigError
        If no region table is given.
    InvalidInputError
        If the atlas is not 3-D or covers another physical extent (beyond one atlas voxel).
    """
    if not regions:
        raise ConfigError("atlas.regions: expected a region table (CSV/JSON with id, acronym, name, parent) "
                          "when atlas.url is set")
    labels, meta, stamp = open_keyed(url, "atlas.url")
    if labels.ndim != 3:
        raise InvalidInputError(f"atlas {url!r} must be a 3-D label image, got axes {meta.axes}")
    labels = keyed(labels, json.dumps([url, stamp]))
    ascale = tuple(float(s) for s in meta.scale)
    img_ext = np.asarray(shape) * np.asarray(scale)
    atl_ext = np.asarray(labels.shape) * np.asarray(ascale)
    # an atlas made by down-sampling with a partial last block is up to one atlas voxel larger
    if (np.abs(img_ext - atl_ext) > np.asarray(ascale)).any():
        raise InvalidInputError(
            f"atlas {url!r} covers {tuple(float(v) for v in np.round(atl_ext, 1))} um (z, y, x) but the scan "
            f"covers {tuple(float(v) for v in np.round(img_ext, 1))} um; the atlas must be registered to the "
            "scan (same physical extent, any resolution)"
        )
    return Atlas(labels, ascale, read_region_table(regions))


def open_user_mask(url: str) -> da.Array:
    """A user negative mask (OME-Zarr, any resolution covering the scan; nonzero = discard), keyed by its source."""
    mask, meta, stamp = open_keyed(url, "pipeline.mask")
    if mask.ndim != 3:
        raise InvalidInputError(f"pipeline.mask must be a 3-D image, got shape {mask.shape}")
    return keyed(mask, json.dumps([url, stamp]))


def background_reference(config) -> dict | None:
    """Where the background (autofluorescence) channel is read, for the run record and the viewer; or None.

    Returns
    -------
    dict or None
        ``image``: absolute URL of the image (with any ``?slices`` of
        ``input.background_url``), ``channel``: the channel index of
        ``input.background_channel`` in the scan (None for its own image),
        ``name``: ``"autofluorescence"``.
    """
    i = config.input
    if i.background_url:
        base, _, query = i.background_url.partition("?")
        return {"image": VPath(base).url + (f"?{query}" if query else ""), "channel": None, "name": "autofluorescence"}
    if i.background_channel is not None:
        return {"image": VPath(i.url.split("?", 1)[0]).url, "channel": i.background_channel,
                "name": "autofluorescence"}
    return None


def background_scan(config, img):
    """The background (autofluorescence) channel: another channel of the scan, or its own image; or None."""
    i = config.input
    if i.background_url:
        bg, where = open_scan(i.background_url, None, i.level).image, "input.background_url"
    elif i.background_channel is not None:
        bg = open_scan(i.url.split("?", 1)[0], i.background_channel, i.level).image
        where = "input.background_channel"
    else:
        return None
    if bg.shape != img.shape:
        raise InvalidInputError(f"{where}: the background channel has shape {bg.shape}, the scan {img.shape}")
    return bg.rechunk(img.chunks)
