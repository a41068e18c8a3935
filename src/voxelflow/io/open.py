"""One opener for every input format: OME-Zarr, TIFF planes, TIFF stacks, Imaris, N5.

:func:`open_image` looks at what the path is and returns the same pair for all of
them: a lazy dask array and an :class:`~voxelflow.io.ome_zarr.metadata.OmeMeta`
(axes, micrometre voxel sizes, pyramid levels, channel names), so pipelines and
the viewer treat every format alike.
"""

from __future__ import annotations

import dask.array as da

from voxelflow.errors import InvalidInputError, InvalidPathError
from voxelflow.io.imagemeta import build_meta, override_scale
from voxelflow.io.ome_zarr.metadata import OmeMeta, axis_type
from voxelflow.io.ome_zarr.slices import split_slices
from voxelflow.paths import VPath, as_vpath

__all__ = ["FORMATS", "detect_format", "open_image"]

FORMATS = ("ome-zarr", "tiff-planes", "tiff", "imaris", "n5", "bigstitcher")
_TIFF_SUFFIXES = (".tif", ".tiff", ".btf", ".tf8", ".tf2")


def detect_format(url, storage_options: dict | None = None) -> str:
    """The format of the image at ``url``, one of :data:`FORMATS`.

    Files are told by their suffix (``.ims``, ``.xml``, ``.tif``/``.tiff``/``.btf``,
    ``.zip`` for zipped OME-Zarr); folders by their content (zarr metadata, N5
    ``attributes.json``, TIFF files); a path with ``*``, ``?`` or ``[`` is a glob of planes.

    Folders that are none of these are taken for OME-Zarr (its reader then says
    what is missing).

    Raises
    ------
    InvalidPathError
        If a file's format cannot be told, or a file named like an image does not exist.
    """
    from voxelflow.io.n5 import is_n5
    from voxelflow.io.planes import is_plane_source

    base, _ = split_slices(url.url if isinstance(url, VPath) else str(url))
    path = url if isinstance(url, VPath) else as_vpath(base, storage_options)
    name = path.name.lower()
    if name.endswith(".zip") or any((path / m).exists() for m in ("zarr.json", ".zattrs", ".zgroup")):
        return "ome-zarr"
    if is_plane_source(path):
        return "tiff-planes"
    suffix_format = ("imaris" if name.endswith(".ims") else "bigstitcher" if name.endswith(".xml")
                     else "tiff" if name.endswith(_TIFF_SUFFIXES) else None)
    if path.isfile():
        if suffix_format is None:
            raise InvalidPathError(f"{path.url}: cannot tell the image format of this file; expected .tif/.tiff "
                                   "(stack), .ims (Imaris), .xml (BigStitcher N5) or an OME-Zarr .zip")
        return suffix_format
    if suffix_format is not None:
        raise InvalidPathError(f"{path.url} does not exist")
    if path.isdir() and is_n5(path):
        return "n5"
    # Anything else is read as OME-Zarr, whose reader says precisely what is missing.
    return "ome-zarr"


def _pick_channel(arr: da.Array, meta: OmeMeta, channel) -> tuple[da.Array, OmeMeta]:
    """Keep one channel (index or name) and drop the channel axis."""
    names = meta.channel_names
    if "c" not in meta.axes:
        if channel in (0, None) or (names and channel in names):
            return arr, meta
        raise InvalidInputError(f"{meta.url}: channel {channel!r} asked for, but the image has one channel "
                                f"(axes {meta.axes})")
    ci = meta.axes.index("c")
    n = arr.shape[ci]
    if isinstance(channel, str) and names and channel in names:
        index = list(names).index(channel)
    elif isinstance(channel, str) and not channel.lstrip("-").isdigit():
        raise InvalidInputError(f"{meta.url}: no channel named {channel!r}; channels are "
                                f"{list(names) if names else list(range(n))}")
    else:
        index = int(channel)
        if not 0 <= index < n:
            raise InvalidInputError(f"{meta.url}: channel {index} is out of range; the image has {n} channels")
    keep = [i for i in range(len(meta.axes)) if i != ci]
    arr = arr[(slice(None),) * ci + (index,)]
    meta = meta.replace(
        axes=tuple(meta.axes[i] for i in keep),
        axis_types=tuple(meta.axis_types[i] for i in keep),
        units=tuple(meta.units[i] for i in keep),
        scale=tuple(meta.scale[i] for i in keep),
        translation=tuple(meta.translation[i] for i in keep),
        channel_names=(names[index],) if names and len(names) == n else None,
    )
    return arr, meta


def _override_ome_zarr_scale(meta: OmeMeta, scale_um) -> OmeMeta:
    """OME-Zarr metadata with the space-axis voxel size replaced (all levels keep their ratios)."""
    full_axes = meta.axes if len(meta.axes) == len(meta.scales[0]) else None
    if full_axes is None:
        raise InvalidInputError(f"{meta.url}: scale_um cannot be combined with ?slices= that drop axes")
    new0 = override_scale(meta.scales[0], full_axes, scale_um, meta.url)
    ratio = [n / o if axis_type(a) == "space" else 1.0 for n, o, a in zip(new0, meta.scales[0], full_axes)]
    scales = tuple(tuple(s * r for s, r in zip(level, ratio)) for level in meta.scales)
    translations = tuple(tuple(t * r for t, r in zip(level, ratio)) for level in meta.translations)
    units = tuple("micrometer" if axis_type(a) == "space" else u for a, u in zip(full_axes, meta.units))
    return meta.replace(scales=scales, translations=translations, units=units,
                        scale=tuple(s * r for s, r in zip(meta.scale, ratio)),
                        translation=tuple(t * r for t, r in zip(meta.translation, ratio)))


def open_image(url, level=0, *, scale_um=None, channel=None, storage_options: dict | None = None,
               format: str | None = None, planes_per_chunk: int | None = None) -> tuple[da.Array, OmeMeta]:
    """Open an image of any supported format lazily.

    Parameters
    ----------
    url : str or VPath
        An OME-Zarr folder or ``.zip`` (with optional ``?slices=[...]``), a folder or
        glob of 2-D TIFF planes (``scan/*_C01_*.tif``), a multi-page TIFF / BigTIFF /
        OME-TIFF / ImageJ hyperstack, an Imaris ``.ims`` file, an N5 dataset or
        multiscale group, or a BigStitcher ``dataset.xml`` with N5 data.
    level : int or str
        Pyramid level (0 = full resolution; negative counts from the coarsest for
        OME-Zarr) or level name.
    scale_um : float, sequence of float or dict, optional
        Voxel size in micrometres overriding (or supplying) the file's: a number for
        every space axis, one value per space axis (``z, y, x``), or ``{'z': 5.0}``.
        Required when the file does not state a voxel size (plain TIFF, planes
        without ImageJ calibration...).
    channel : int or str, optional
        Keep one channel (index or name) and drop the channel axis.
    storage_options : dict, optional
        fsspec options for remote URLs.
    format : str, optional
        One of :data:`FORMATS`, to skip detection.
    planes_per_chunk : int, optional
        For TIFF inputs (plane folders and stacks): z planes per dask chunk
        (default about 32 MiB). Other formats keep their stored chunking.

    Returns
    -------
    array : dask.array.Array
        Lazy; axes a subset of ``t, c, z, y, x`` in that order; dtype as stored
        (never rescaled). Computing a chunk reads only the files/blocks it covers.
    meta : OmeMeta
        ``meta.format`` says what was read; ``meta.scale`` is the voxel size of the
        opened level per axis (micrometres for space axes of non-OME-Zarr inputs).

    Raises
    ------
    InvalidPathError
        Nothing readable at ``url`` or an unknown format.
    InvalidInputError
        A missing voxel size (the message says how to give it), a bad ``scale_um``,
        ``level`` or ``channel``.
    ImageFormatError
        A truncated, corrupt or inconsistent TIFF / Imaris / N5 input.
    OmeZarrError
        A malformed OME-Zarr image.
    OptionalDependencyError
        Imaris input without h5py installed.

    Examples
    --------
    >>> arr, meta = open_image("scan_planes/*_C01_*.tif", scale_um=(5.0, 1.8, 1.8))  # doctest: +SKIP
    >>> meta.axes, meta.scale  # doctest: +SKIP
    (('z', 'y', 'x'), (5.0, 1.8, 1.8))
    """
    from voxelflow.io.imagemeta import level_index

    text = url.url if isinstance(url, VPath) else str(url)
    base, slice_text = split_slices(text)
    fmt = format or detect_format(url if isinstance(url, VPath) else base, storage_options)
    if fmt not in FORMATS:
        raise InvalidInputError(f"format must be one of {FORMATS}, got {fmt!r}")
    if fmt == "ome-zarr":
        from voxelflow.io.ome_zarr.read import open_ome_zarr

        arr, meta = open_ome_zarr(url, level=level, storage_options=storage_options)
        if scale_um is not None:
            meta = _override_ome_zarr_scale(meta, scale_um)
    else:
        if slice_text is not None:
            raise InvalidInputError(f"{text}: ?slices= selections are read from OME-Zarr only; convert the "
                                    f"{fmt} input first or slice the returned array")
        opener = _opener(fmt, planes_per_chunk)
        path = url if isinstance(url, VPath) else as_vpath(base, storage_options)
        # Level names and negative levels are resolved against the reader's own list first.
        first, facts = opener(path, 0)
        index = level_index(level, facts.levels, facts.url)
        arr, facts = (first, facts) if index == 0 else opener(path, index)
        meta = build_meta(facts, index, scale_um)
    if channel is not None:
        arr, meta = _pick_channel(arr, meta, channel)
    return arr, meta


def _opener(fmt: str, planes_per_chunk: int | None):
    if fmt == "tiff-planes":
        from voxelflow.io.planes import open_planes

        return lambda path, level: open_planes(path, planes_per_chunk=planes_per_chunk)
    if fmt == "tiff":
        from voxelflow.io.tiff_stack import open_tiff_stack

        return lambda path, level: open_tiff_stack(path, level, planes_per_chunk=planes_per_chunk)
    if fmt == "imaris":
        from voxelflow.io.imaris import open_imaris

        return lambda path, level: open_imaris(path, level)
    if fmt == "n5":
        from voxelflow.io.n5 import open_n5

        return lambda path, level: open_n5(path, level)
    from voxelflow.io.bigstitcher import open_bigstitcher

    return lambda path, level: open_bigstitcher(path, level)
