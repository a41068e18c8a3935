"""Open one level of an OME-Zarr image as a lazy dask array plus its metadata."""

from __future__ import annotations

import dask.array as da
import numpy as np
import zarr
from dask.base import tokenize

from voxelflow.cache._store import chunk_name
from voxelflow.errors import InvalidInputError, OmeZarrError, SliceSyntaxError
from voxelflow.io.ome_zarr.fastread import chunk_reader, read_dask_array
from voxelflow.io.ome_zarr.metadata import OmeMeta, ome_section, parse_image
from voxelflow.io.ome_zarr.slices import (
    parse_slices,
    resolve_slices,
    scale_selection,
    split_slices,
)
from voxelflow.io.ome_zarr.stores import (
    StrictChunkStore,
    is_zip,
    open_read_store,
    split_zip,
)
from voxelflow.paths import VPath, as_vpath

__all__ = ["open_group", "open_ome_zarr", "read_metadata"]


def open_group(path: VPath, strict: bool = False) -> zarr.Group:
    """Open the zarr group at ``path`` read-only (folder or zip archive)."""
    store, inner = open_read_store(path)
    if strict:
        store = StrictChunkStore(store, path.url)
    try:
        return zarr.open_group(store, mode="r", path=inner or None)
    except (FileNotFoundError, KeyError, ValueError, TypeError, zarr.errors.BaseZarrError) as exc:
        raise OmeZarrError(f"{path.url} is not an OME-Zarr image: no zarr group there ({exc})") from exc


def _label_names(group: zarr.Group) -> tuple[str, ...]:
    try:
        labels = group["labels"]
    except KeyError:
        return ()
    if not isinstance(labels, zarr.Group):
        return ()
    try:
        _, section = ome_section(labels.attrs.asdict(), "labels")
    except OmeZarrError:
        return ()
    names = section.get("labels")
    return tuple(str(n) for n in names) if isinstance(names, list) else ()


def read_metadata(path: VPath, group: zarr.Group | None = None) -> tuple[dict, zarr.Group]:
    """Parse the image metadata and check every level against it.

    Returns
    -------
    info : dict
        :func:`voxelflow.io.ome_zarr.metadata.parse_image` output plus ``shapes`` and ``labels``.
    group : zarr.Group
        The opened group.
    """
    group = open_group(path) if group is None else group
    info = parse_image(group.attrs.asdict(), path.url)
    shapes = []
    for name in info["levels"]:
        try:
            arr = group[name]
        except KeyError:
            raise OmeZarrError(
                f"{path.url}: pyramid level {name!r} is listed in the metadata but missing from the store"
            ) from None
        except Exception as exc:  # noqa: BLE001  zarr reports damaged array metadata in many ways
            raise OmeZarrError(
                f"{path.url}: the array metadata of pyramid level {name!r} is unreadable or malformed: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(arr, zarr.Array):
            raise OmeZarrError(f"{path.url}: pyramid level {name!r} is a group, not an array")
        if arr.ndim != len(info["axes"]):
            raise OmeZarrError(
                f"{path.url}: level {name!r} has {arr.ndim} dimensions but the metadata lists "
                f"{len(info['axes'])} axes {info['axes']}"
            )
        shapes.append(tuple(arr.shape))
    info["shapes"] = tuple(shapes)
    info["labels"] = _label_names(group)
    return info, group


def _level_index(level: int | str, levels: tuple[str, ...], url: str) -> int:
    if isinstance(level, str) and not level.lstrip("-").isdigit():
        if level not in levels:
            raise OmeZarrError(f"{url}: no pyramid level named {level!r}; levels are {list(levels)}")
        return levels.index(level)
    try:
        index = int(level)
    except (TypeError, ValueError):
        raise OmeZarrError(f"level must be an int or a level path, got {level!r}") from None
    if not -len(levels) <= index < len(levels):
        raise OmeZarrError(
            f"{url}: level {index} is out of range; the image has {len(levels)} levels (0..{len(levels) - 1})"
        )
    return index % len(levels)


def _level_array(zarray: zarr.Array, path: VPath, strict: bool) -> da.Array:
    """The level as a dask array: direct chunk-file reads when possible, else zarr's reader."""
    reader = None
    if path.is_local and not is_zip(split_zip(path)[0]):
        reader = chunk_reader(zarray, path.path, path.url, strict)
    if reader is not None:
        return read_dask_array(reader)
    level = CheckedLevel(zarray, path.url)
    token = tokenize(path.url, zarray.path, zarray.shape, zarray.chunks, str(zarray.dtype), strict, _stamp(path))
    return da.from_array(level, chunks=zarray.shards or zarray.chunks, name=f"vf-zarr-{token}", lock=False,
                         asarray=False, meta=np.empty((0,) * zarray.ndim, zarray.dtype))


def _stamp(path: VPath) -> str:
    """Size and time stamp of the stored image (a rewritten image gets new dask keys)."""
    try:
        info = path.fs.info(path.path)
    except (OSError, ValueError):
        return ""
    return f"{info.get('size')}-{info.get('mtime') or info.get('LastModified') or info.get('created')}"


class CheckedLevel:
    """A zarr array whose reads report damaged chunks as :class:`OmeZarrError`.

    zarr raises whatever its store or codec raises (``BadZipFile`` for a bad CRC in a
    zip member, ``ValueError`` for a crc32c mismatch, ``RuntimeError`` from blosc);
    here each becomes an error naming the image and the region read.

    Attributes
    ----------
    zarray : zarr.Array
        The level.
    url : str
        Image location for messages.
    """

    def __init__(self, zarray: zarr.Array, url: str):
        self.zarray, self.url = zarray, url
        self.shape, self.dtype, self.ndim = zarray.shape, zarray.dtype, zarray.ndim

    def __getitem__(self, key) -> np.ndarray:
        try:
            return self.zarray[key]
        except OmeZarrError:
            raise
        except Exception as exc:  # noqa: BLE001  any failure below zarr means the stored bytes are damaged
            where = ", ".join(f"{k.start}:{k.stop}" if isinstance(k, slice) else str(k) for k in key) \
                if isinstance(key, tuple) else str(key)
            raise OmeZarrError(
                f"{self.url}: level {self.zarray.path!r} cannot be read at [{where}]{chunk_name(self.zarray, key)} "
                f"(damaged chunk?): {type(exc).__name__}: {exc}"
            ) from exc



def open_ome_zarr(
    url,
    level: int | str = 0,
    *,
    storage_options: dict | None = None,
    missing_chunks: str = "auto",
) -> tuple[da.Array, OmeMeta]:
    """Open one pyramid level of an OME-Zarr image lazily.

    Parameters
    ----------
    url : str or VPath
        Folder or ``.zip`` archive, local or any fsspec URL (``memory://``,
        ``file://``, ``s3://``...), optionally followed by ``?slices=[...]``
        (numpy indexing on level 0, mapped onto the opened level; see
        :mod:`voxelflow.io.ome_zarr.slices`).
    level : int or str
        Level index (0 = full resolution, negative counts from the coarsest) or level path.
    storage_options : dict, optional
        fsspec options (credentials, ``endpoint_url``, ...).
    missing_chunks : {'auto', 'error', 'fill'}
        What reading an absent chunk does: ``'error'`` raises :class:`OmeZarrError`,
        ``'fill'`` returns the fill value (zarr's default, used by writers that skip
        empty chunks). ``'auto'`` is ``'error'`` for images written by voxelflow,
        which writes every chunk, and ``'fill'`` otherwise.

    Returns
    -------
    array : dask.array.Array
        Shape and dtype of the level (after slicing), chunked exactly as stored
        (one dask chunk per zarr shard when sharded).
    meta : OmeMeta
        Axes, units, scales, levels, channel names, label names, version.

    Raises
    ------
    OmeZarrError
        Not an OME-Zarr image, missing or inconsistent level, level out of range,
        truncated zip, or (on compute) a missing chunk.
    SliceSyntaxError
        Bad ``?slices=`` text or a selection out of range.

    Examples
    --------
    >>> arr, meta = open_ome_zarr("scan.ome.zarr?slices=[0, :100]", level=1)  # doctest: +SKIP
    >>> meta.axes, meta.scale  # doctest: +SKIP
    (('z', 'y', 'x'), (4.0, 1.0, 1.0))
    """
    if storage_options is not None and not isinstance(storage_options, dict):
        raise InvalidInputError(f"storage_options must be a dict, got {type(storage_options).__name__}")
    if missing_chunks not in ("auto", "error", "fill"):
        raise OmeZarrError(f"missing_chunks must be 'auto', 'error' or 'fill', got {missing_chunks!r}")
    base, slice_text = split_slices(str(url) if not isinstance(url, VPath) else url.url)
    items = parse_slices(slice_text) if slice_text is not None else ()
    path = as_vpath(base, storage_options) if not isinstance(url, VPath) else url
    info, group = read_metadata(path)
    index = _level_index(level, info["levels"], path.url)
    strict = missing_chunks == "error" or (missing_chunks == "auto" and info["written_by_voxelflow"])
    if strict:
        group = open_group(path, strict=True)
    zarray = group[info["levels"][index]]
    arr = _level_array(zarray, path, strict)

    axes, scale, translation = info["axes"], info["scales"][index], info["translations"][index]
    types, units, channels = info["axis_types"], info["units"], info["channel_names"]
    if slice_text is not None:
        sel0 = resolve_slices(items, info["shapes"][0], axes, slice_text)
        ratios = tuple(s / s0 if s0 else 1.0 for s, s0 in zip(scale, info["scales"][0]))
        sel = scale_selection(sel0, ratios, info["shapes"][index]) if index else sel0
        arr = arr[tuple(s.as_index() for s in sel)]
        flips = tuple(slice(None, None, -1) if s.reverse else slice(None) for s in sel if s.index is None)
        if any(f.step for f in flips):
            arr = arr[flips]
        keep = [i for i, s in enumerate(sel) if s.index is None]
        if "c" in axes and channels is not None and len(channels) == info["shapes"][0][axes.index("c")]:
            c = axes.index("c")
            picked = range(info["shapes"][0][c])[sel0[c].as_index()]
            picked = [picked] if isinstance(picked, int) else (list(picked)[::-1] if sel0[c].reverse else list(picked))
            channels = tuple(channels[i] for i in picked)
        translation = tuple(t + s.start * sc if s.index is None else t + s.index * sc for t, s, sc in zip(translation, sel, scale))
        scale = tuple(sc * s.step for sc, s in zip(scale, sel))
        axes, types, units = (tuple(v[i] for i in keep) for v in (axes, types, units))
        scale, translation = tuple(scale[i] for i in keep), tuple(translation[i] for i in keep)
        if arr.size == 0:
            raise SliceSyntaxError(f"slices {slice_text!r} select nothing at level {index} of {path.url}")
    meta = OmeMeta(
        url=path.url,
        version=info["version"],
        name=info["name"],
        axes=axes,
        axis_types=types,
        units=units,
        levels=info["levels"],
        level=index,
        scales=info["scales"],
        translations=info["translations"],
        shapes=info["shapes"],
        scale=scale,
        translation=translation,
        channel_names=channels,
        labels=info["labels"],
        slices=slice_text,
        written_by_voxelflow=info["written_by_voxelflow"],
    )
    return arr, meta
