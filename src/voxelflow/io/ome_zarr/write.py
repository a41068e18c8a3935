"""Write OME-Zarr images and label images with pyramids computed in one pass.

The arguments are checked before anything is written
(:mod:`voxelflow.io.ome_zarr.write_args`); every level is stored by one pass over the
input (:mod:`voxelflow.io.ome_zarr.levels`); the image is written beside its target
and swapped in at the end (:mod:`voxelflow.io.ome_zarr.replace`), or zipped
(:mod:`voxelflow.io.ome_zarr.zipped`), so an image it replaces stays whole until then.
With ``resume=FOLDER`` it is written in that (kept) folder with a ledger of finished
chunks, so a killed write rerun with the same job stores only the chunks it had not.
"""

from __future__ import annotations

from collections.abc import Sequence

import dask.array as da
import zarr

from voxelflow.errors import InvalidInputError, InvalidPathError, OmeZarrError, VoxelflowError
from voxelflow.io.blockreduce import METHODS
from voxelflow.io.ome_zarr import metadata as md
from voxelflow.io.ome_zarr.levels import resumable_layout, write_group, write_resumable
from voxelflow.io.ome_zarr.read import read_metadata
from voxelflow.io.ome_zarr.replace import check_target, swap_into_place, write_beside
from voxelflow.io.ome_zarr.slices import split_slices
from voxelflow.io.ome_zarr.stores import is_zip
from voxelflow.io.ome_zarr.write_args import (
    as_dask,
    check_axes,
    check_chunks,
    check_factors,
    check_shards,
    default_chunks,
    finite_float,
    level_geometry,
    per_axis,
    positive_float,
    unit_name,
)
from voxelflow.io.ome_zarr.zipped import write_zip
from voxelflow.paths import VPath, as_vpath

__all__ = ["default_chunks", "write_labels", "write_ome_zarr"]

_LABEL_METHODS = ("mode", "nearest", "max", "min")


def write_ome_zarr(
    arr,
    url,
    *,
    axes: Sequence[str] | None = None,
    scale=None,
    units=None,
    levels: int = 1,
    factors=2,
    method: str = "mean",
    chunks=None,
    version: str = "0.5",
    shards=None,
    zip: bool = False,
    overwrite: bool = False,
    storage_options: dict | None = None,
    translation=None,
    channel_names: Sequence[str] | None = None,
    name: str | None = None,
    resume: str | None = None,
    job: str | None = None,
) -> VPath:
    """Write an array as an OME-Zarr image with an optional pyramid.

    Parameters
    ----------
    arr : numpy.ndarray or dask.array.Array, 2 to 5 dimensions
        Any numeric or bool dtype; stored unchanged (never rescaled).
    url : str or VPath
        Target folder (``*.ome.zarr``) or zip archive (``*.ome.zarr.zip``), local or fsspec URL.
    axes : sequence of str, optional
        Names from ``t, c, z, y, x`` in that order; default by ``arr.ndim``:
        ``yx``, ``zyx``, ``czyx``, ``tczyx``.
    scale : float, sequence or dict, optional
        Voxel size of level 0: a number applies to every space axis; a sequence
        gives one per axis; a dict maps axis names. Default 1.
    units : str, sequence or dict, optional
        Units (e.g. ``'micrometer'``) like ``scale``; a string applies to the space axes.
    levels : int
        Number of pyramid levels including level 0.
    factors : int, sequence of int, or sequence of sequences
        Down-sampling from each level to the next. An int applies to the space
        axes only (``2`` for ``zyx`` is ``(2, 2, 2)``); a sequence gives one factor
        per axis (``(1, 2, 2)`` keeps Z); a sequence of ``levels - 1`` sequences
        gives per-level factors.
    method : {'mean', 'max', 'min', 'mode', 'nearest'}
        Down-sampling method (see :func:`voxelflow.io.blockreduce.block_reduce`): ``mean``
        for images, ``max`` for sparse bright objects, ``mode``/``nearest`` for labels.
    chunks : int or sequence of int, optional
        Zarr chunk shape of level 0 (an int applies to the space axes, other axes get 1);
        lower levels use the same shape clipped to their size. Default: the dask
        chunk shape, or ~8 MiB chunks for numpy input.
    version : {'0.5', '0.4'}
        NGFF version: 0.5 writes zarr v3, 0.4 writes zarr v2.
    shards : int or sequence of int, optional
        Zarr v3 shard shape (multiples of ``chunks``; an int is chunks per shard along
        each space axis). Keeps file counts low on HPC file systems. 0.5 only.
    zip : bool
        Write a zip archive (``url`` must end in ``.zip``; a ``.zip`` url implies it).
    overwrite : bool
        Replace an existing image at ``url`` (never a folder that is not a zarr group, nor a
        zip that is not an OME-Zarr archive). The new image is written beside the old one
        and swapped in at the end, so a failure leaves the old image whole.
    storage_options : dict, optional
        fsspec options for remote URLs.
    translation : float, sequence or dict, optional
        Physical position of voxel 0 of level 0; default 0.
    channel_names : sequence of str, optional
        Written as ``omero.channels[].label`` (one per ``c`` entry).
    name : str, optional
        ``multiscales[0].name``.
    resume : str, optional
        A local folder (outside ``url``) to write the image in, with a record of its
        finished level-0 chunks (:class:`~voxelflow.io.chunk_ledger.ChunkLedger`).
        A write killed at any moment and started again with the same ``resume``
        folder and the same job keeps the level-0 chunks it had finished: they are
        read back (for the lower levels), neither recomputed nor rewritten. The
        finished image is then moved to ``url``. Ignored (a plain write) for a zip
        or remote ``url`` and for chunks that split reduction blocks.
    job : str, optional
        What the array is, for the resume check: a folder written for another job
        is discarded. Default ``arr.name`` (a hash of the dask graph); give a stable
        identity (e.g. a cache key) when the graph's name is not.

    Returns
    -------
    VPath
        The written image.

    Raises
    ------
    InvalidInputError
        Bad axes, scale, factors, chunks, shards, method, version or dtype (checked
        before anything is written).
    OmeZarrError
        The target exists (without ``overwrite``) or is not an image that may be replaced.

    Examples
    --------
    >>> import numpy as np
    >>> vol = np.random.default_rng(0).integers(0, 1000, (64, 128, 128), dtype=np.uint16)
    >>> write_ome_zarr(vol, "memory://doc/demo.ome.zarr", scale=(4, 1, 1), units="micrometer",
    ...                levels=3, factors=(1, 2, 2)).url
    'memory://doc/demo.ome.zarr'
    """
    from_dask = isinstance(arr, da.Array)
    arr = as_dask(arr)
    if arr.dtype.kind not in "biuf":
        raise InvalidInputError(f"OME-Zarr images must be numeric or bool, got dtype {arr.dtype}")
    if version not in ("0.4", "0.5"):
        raise InvalidInputError(f"version must be '0.4' or '0.5', got {version!r}")
    if method not in METHODS:
        raise InvalidInputError(f"unknown method {method!r}; expected one of {METHODS}")
    axes = check_axes(axes, arr.ndim)
    scale0 = per_axis(scale, axes, "scale", lambda a: 1.0, positive_float)
    translation0 = per_axis(translation, axes, "translation", lambda a: 0.0, finite_float)
    units_ = per_axis(units, axes, "units", lambda a: None, unit_name)
    level_factors = check_factors(factors, levels, axes)
    chunk_shape = check_chunks(chunks, arr, axes, from_dask)
    shard_shape = check_shards(shards, chunk_shape, axes, version)
    if channel_names is not None:
        channel_names = [str(n) for n in channel_names]
        if "c" not in axes or len(channel_names) != arr.shape[axes.index("c")]:
            raise InvalidInputError(f"{len(channel_names)} channel_names given but the image has axes {axes} "
                                    f"and shape {arr.shape}")
    base, slice_text = split_slices(str(url) if not isinstance(url, VPath) else url.url)
    if slice_text is not None:
        raise InvalidInputError(f"cannot write to a ?slices= selection: {url}")
    target = as_vpath(base, storage_options) if not isinstance(url, VPath) else url
    if is_zip(target):
        zip = True
    elif zip:
        raise InvalidInputError(f"zip output needs a URL ending in '.zip', got {target.url}")
    check_target(target, overwrite, arr)

    scales, translations = level_geometry(scale0, translation0, level_factors, method)

    def attrs_for(paths):
        return md.image_attrs(version, axes, units_, paths, scales, translations, name, method, channel_names)

    def write_into(folder: VPath):
        write_group(arr, folder, attrs_for, version=version, axes=axes, chunks=chunk_shape,
                     shards=shard_shape, factors=level_factors, method=method)

    if zip or not target.is_local or not resumable_layout(arr.shape, chunk_shape, level_factors):
        resume = None
    try:
        if resume is not None:
            write_resumable(arr, str(resume), job, attrs_for, version=version, axes=axes, chunks=chunk_shape,
                            shards=shard_shape, factors=level_factors, method=method)
            swap_into_place(VPath(str(resume)), target)
        elif zip:
            write_zip(target, write_into)
        else:
            write_beside(target, write_into)
    except OSError as exc:
        if isinstance(exc, VoxelflowError):
            raise
        raise InvalidPathError(f"cannot write {target.url}: {exc}; an image that was there is unchanged") from exc
    return target


def write_labels(
    labels,
    image_url,
    name: str,
    *,
    levels: int | None = None,
    factors=None,
    method: str = "mode",
    chunks=None,
    shards=None,
    overwrite: bool = False,
    storage_options: dict | None = None,
) -> VPath:
    """Write a label image under ``<image>/labels/<name>`` without touching the image.

    Parameters
    ----------
    labels : numpy.ndarray or dask.array.Array of integers
        Either the image shape without its ``c`` axis (e.g. ``(z, y, x)`` for a
        ``czyx`` image) or the full image shape with a ``c`` axis of length 1.
        0 is background.
    image_url : str or VPath
        An existing OME-Zarr image folder (not a zip archive).
    name : str
        Label image name (a folder name).
    levels : int, optional
        Pyramid levels; default the image's number of levels.
    factors : optional
        As in :func:`write_ome_zarr`; default the image's own factors between levels,
        so every label level lines up with the image level of the same index.
    method : {'mode', 'nearest', 'max', 'min'}
        Down-sampling that never invents label ids.
    chunks, shards : optional
        As in :func:`write_ome_zarr`; default the image's level-0 chunking.
    overwrite : bool
        Replace an existing label image of that name (written beside it, swapped in at the end).
    storage_options : dict, optional
        fsspec options.

    Returns
    -------
    VPath
        The label image folder.

    Raises
    ------
    InvalidInputError
        Non-integer labels, a shape that does not match the image, a method that
        could invent ids, or a bad name.
    OmeZarrError
        The image is not a readable OME-Zarr folder, or the label image exists.
    """
    image = as_vpath(image_url, storage_options)
    if is_zip(image):
        raise OmeZarrError(f"cannot add labels to the zip archive {image.url}; write them before zipping")
    if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
        raise InvalidInputError(f"label name must be a plain folder name, got {name!r}")
    if method not in _LABEL_METHODS:
        raise InvalidInputError(f"label method must be one of {_LABEL_METHODS} (never invents ids), got {method!r}")
    arr = as_dask(labels)
    if arr.dtype.kind not in "iub":
        raise InvalidInputError(f"labels must have an integer dtype, got {arr.dtype}")
    info, group = read_metadata(image)
    img_axes, shape0 = info["axes"], info["shapes"][0]
    if arr.ndim == len(img_axes):
        keep = list(range(len(img_axes)))
        if "c" in img_axes and arr.shape[img_axes.index("c")] != 1:
            raise InvalidInputError(f"labels with a channel axis must have 1 channel, got shape {arr.shape}")
    else:
        keep = [i for i, a in enumerate(img_axes) if a != "c"]
    axes = tuple(img_axes[i] for i in keep)
    expected = tuple(1 if img_axes[i] == "c" else shape0[i] for i in keep)
    if tuple(arr.shape) != expected:
        raise InvalidInputError(f"labels shape {arr.shape} does not match the image: expected {expected} for axes {axes}")
    n_levels = len(info["levels"]) if levels is None else levels
    if factors is None:
        image_factors = [
            tuple(max(1, round(b / a)) for a, b in zip(s0, s1)) for s0, s1 in zip(info["scales"], info["scales"][1:])
        ]
        factors = [tuple(f[i] for i in keep) for f in image_factors][: n_levels - 1]
        if len(factors) < n_levels - 1:
            raise InvalidInputError(f"the image has {len(info['levels'])} levels; pass factors for {n_levels} levels")
        if not factors:
            factors = 2
    level_factors = check_factors(factors, n_levels, axes)
    if chunks is None:
        img_chunks = group[info["levels"][0]].chunks
        chunks = tuple(img_chunks[i] for i in keep)
    chunk_shape = check_chunks(chunks, arr, axes, from_dask=False)
    shard_shape = check_shards(shards, chunk_shape, axes, info["version"])
    version = info["version"] if info["version"] in ("0.4", "0.5") else "0.4"

    labels_dir = image / "labels"
    target = labels_dir / name
    check_target(target, overwrite, arr)
    scale0 = tuple(info["scales"][0][i] for i in keep)
    translation0 = tuple(info["translations"][0][i] for i in keep)
    units = tuple(info["units"][i] for i in keep)
    scales, translations = level_geometry(scale0, translation0, level_factors, method)

    def attrs_for(paths):
        return md.label_attrs(version, axes, units, paths, scales, translations, name, method)

    def write_into(folder: VPath):
        write_group(arr, folder, attrs_for, version=version, axes=axes, chunks=chunk_shape,
                     shards=shard_shape, factors=level_factors, method=method)

    write_beside(target, write_into)
    _register_label(labels_dir, name, version)
    return target


def _register_label(labels_dir: VPath, name: str, version: str) -> None:
    """Add ``name`` to the ``labels`` group list (created if needed), keeping other entries."""
    zarr_format = 3 if version == "0.5" else 2
    store = labels_dir.zarr_store()
    try:
        group = zarr.open_group(store, mode="r+")
        _, section = md.ome_section(group.attrs.asdict(), labels_dir.url)
        names = [n for n in section.get("labels", []) if n != name]
    except (FileNotFoundError, OmeZarrError, zarr.errors.BaseZarrError):
        group = zarr.open_group(store, mode="a", zarr_format=zarr_format)
        names = []
    group.attrs.update(md.labels_group_attrs(version, [*names, name]))

