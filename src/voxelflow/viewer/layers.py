"""napari layers for voxelflow data: OME-Zarr images and labels, object tables, step results.

Every ``*_layers`` function here returns napari *layer data* tuples
``(data, kwargs, layer_type)`` and needs no napari, so the reader plugin, the
``voxelflow view`` command and the ``add_*`` helpers of
:mod:`voxelflow.viewer.add` share one code path.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import dask.array as da
import numpy as np
import pandas as pd

from voxelflow.errors import InvalidInputError

__all__ = [
    "LayerData",
    "contrast_limits",
    "object_layer",
    "ome_zarr_layers",
    "result_layers",
]

LayerData = tuple[Any, dict, str]

log = logging.getLogger(__name__)

# A level is "small enough to draw whole" when its largest yx plane fits a screen.
_PYRAMID_PLANE_PX = 2048
# Contrast statistics look at no more than this many voxels of the coarsest level.
_STATS_VOXELS = 1 << 22
_CENTROID = ("z", "y", "x")


# --- statistics ---------------------------------------------------------------


def contrast_limits(arr, *, channel_axis: int | None = None) -> list[float] | list[list[float]]:
    """Display range of an image from a small sample, never from a full compute.

    Parameters
    ----------
    arr : dask.array.Array or numpy.ndarray, any shape, numeric dtype
        Usually the coarsest pyramid level. About 4 M voxels are read at most:
        larger numpy arrays are subsampled with a regular stride, larger dask
        arrays by whole chunks spread evenly over the chunk grid.
    channel_axis : int, optional
        When given, one range per channel is returned.

    Returns
    -------
    list of float
        ``[lo, hi]``: the 0.1 and 99.9 percentiles of the sample (``hi > lo``);
        booleans give ``[0, 1]``. With ``channel_axis``, a list of such pairs.
    """
    if channel_axis is not None:
        return [
            contrast_limits(_take(arr, i, channel_axis)) for i in range(arr.shape[channel_axis])
        ]
    dtype = np.dtype(arr.dtype)
    if dtype.kind == "b":
        return [0.0, 1.0]
    if not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)):
        raise InvalidInputError(f"cannot display an image of dtype {dtype}; expected a numeric dtype")
    sample = _sample(arr)
    if np.issubdtype(dtype, np.floating):
        sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return [0.0, 1.0]
    lo, hi = (float(v) for v in np.percentile(sample, [0.1, 99.9]))
    if hi <= lo:
        lo, hi = float(sample.min()), float(sample.max())
    if hi <= lo:
        hi = lo + 1.0
    return [lo, hi]


def _sample(arr) -> np.ndarray:
    """Up to ~``_STATS_VOXELS`` voxels of ``arr``, reading only part of a large dask array.

    A strided view of a dask array still reads every chunk, so large dask
    arrays contribute whole chunks spread evenly over the chunk grid instead.
    """
    if not isinstance(arr, da.Array) or arr.size <= _STATS_VOXELS:
        stride = max(1, math.ceil((arr.size / _STATS_VOXELS) ** (1 / max(arr.ndim, 1))))
        sample = arr[(slice(None, None, stride),) * arr.ndim]
        return np.asarray(sample.compute() if isinstance(sample, da.Array) else sample).ravel()
    n_blocks = math.prod(arr.numblocks)
    per_block = arr.size / n_blocks
    k = int(min(n_blocks, max(1, _STATS_VOXELS // per_block)))
    picks = np.unique(np.linspace(0, n_blocks - 1, k).round().astype(int))
    blocks = [arr.blocks[np.unravel_index(i, arr.numblocks)] for i in picks]
    return np.concatenate([np.asarray(b).ravel() for b in da.compute(*blocks)])


def _take(arr, index: int, axis: int):
    key = [slice(None)] * arr.ndim
    key[axis] = index
    return arr[tuple(key)]


# --- OME-Zarr -----------------------------------------------------------------


def ome_zarr_layers(
    url,
    *,
    split_channels: bool = True,
    labels: bool = True,
    is_label: bool | None = None,
    name: str | None = None,
    storage_options: dict | None = None,
    scale_um=None,
    channel: int | str | None = None,
) -> list[LayerData]:
    """Layer data for an image (OME-Zarr or any format :func:`voxelflow.open_image` reads), its pyramid and labels.

    Parameters
    ----------
    url : str or VPath
        An OME-Zarr image: local folder, ``.ome.zarr.zip``, any fsspec URL, with
        an optional ``?slices=[...]`` suffix (applied at every level, and to the
        label images without its channel part); or a TIFF plane folder / glob,
        TIFF stack, Imaris file, N5 dataset or BigStitcher XML.
    split_channels : bool
        With a ``c`` axis, one layer per channel (named after the channel names)
        when True; one layer with ``c`` as a slider when False.
    labels : bool
        Also return the images of the ``labels/`` group as ``labels`` layers.
    is_label : bool, optional
        Force the image itself to be a ``labels`` (True) or ``image`` (False)
        layer; by default an NGFF ``image-label`` is a labels layer.
    name : str, optional
        Layer name; default: the image's file name without ``.ome.zarr``.
    storage_options : dict, optional
        fsspec options (credentials, endpoint).
    scale_um : optional
        Voxel size in micrometres for inputs that do not state one (see
        :func:`voxelflow.open_image`).
    channel : int or str, optional
        Show only this channel (index or name) of a multi-channel image.

    Returns
    -------
    list of (data, kwargs, layer_type)
        ``data`` is the list of lazy pyramid levels (dask arrays, finest first)
        or a single dask array; ``kwargs`` hold the physical ``scale`` and
        ``translate``, ``units``, ``axis_labels`` and, for images,
        ``contrast_limits`` from a sample of the coarsest level.

    Raises
    ------
    OmeZarrError, SliceSyntaxError, ImageFormatError, InvalidInputError
        From :func:`voxelflow.open_image` for a missing, malformed or uncalibrated image.
    """
    from voxelflow.io.open import open_image

    arr, meta = open_image(url, scale_um=scale_um, storage_options=storage_options, channel=channel)
    pyramid = [arr] + [
        open_image(url, level=i, scale_um=scale_um, storage_options=storage_options, channel=channel)[0]
        for i in range(1, len(meta.levels))
    ]
    name = name or _display_name(url)
    axes = tuple(meta.axes)
    geometry = {
        "scale": [float(s) for s in meta.scale],
        "translate": [float(t) for t in meta.translation],
        "units": [u or "pixel" for u in meta.units],
        "axis_labels": list(axes),
    }
    if is_label is None:
        is_label = meta.format == "ome-zarr" and _has_image_label(meta.url, storage_options)
    label_image = is_label
    data = pyramid if len(pyramid) > 1 else pyramid[0]
    kwargs: dict[str, Any] = {"name": name, "multiscale": len(pyramid) > 1}
    c = axes.index("c") if "c" in axes else None
    if label_image:
        if arr.dtype.kind == "b":  # napari labels need integers
            data = [p.astype(np.uint8) for p in data] if isinstance(data, list) else data.astype(np.uint8)
        kwargs.update(geometry)
        out = [(data, kwargs, "labels")]
    elif c is not None and split_channels:
        names = list(meta.channel_names or ()) or [str(i) for i in range(arr.shape[c])]
        kwargs.update({k: [v[i] for i in range(len(axes)) if i != c] for k, v in geometry.items()})
        kwargs.update(
            channel_axis=c,
            name=[f"{name} [{n}]" for n in names],
            contrast_limits=contrast_limits(pyramid[-1], channel_axis=c),
        )
        out = [(data, kwargs, "image")]
    else:
        kwargs.update(geometry, contrast_limits=contrast_limits(pyramid[-1]))
        out = [(data, kwargs, "image")]
    if labels and not label_image and meta.labels:
        from voxelflow.io.ome_zarr.stores import is_zip
        from voxelflow.paths import as_vpath

        if is_zip(as_vpath(meta.url, storage_options)):
            log.warning("%s: label images inside a zip archive are not opened", meta.url)
            return out
        for label_name in meta.labels:
            out += ome_zarr_layers(
                _labels_url(meta, label_name, storage_options),
                labels=False,
                is_label=True,
                name=f"{name} [{label_name}]",
                storage_options=storage_options,
            )
    return out


def _has_image_label(base_url: str, storage_options: dict | None) -> bool:
    """True if the NGFF metadata marks the image as a label image (``image-label``)."""
    from voxelflow.io.ome_zarr.metadata import ome_section
    from voxelflow.io.ome_zarr.read import open_group
    from voxelflow.paths import as_vpath

    group = open_group(as_vpath(base_url, storage_options))
    _, section = ome_section(group.attrs.asdict(), base_url)
    return "image-label" in section


def _labels_url(meta, label_name: str, storage_options: dict | None) -> str:
    """URL of ``labels/<label_name>`` of an image, keeping its crop but not its channel pick."""
    from voxelflow.io.ome_zarr.slices import parse_slices, resolve_slices
    from voxelflow.paths import as_vpath

    label_url = (as_vpath(meta.url) / "labels" / label_name).url
    if meta.slices is None:
        return label_url
    # meta.axes lost any axis an integer index dropped; the stored metadata has them all.
    from voxelflow.io.ome_zarr.read import read_metadata

    full_axes = tuple(read_metadata(as_vpath(meta.url, storage_options))[0]["axes"])
    label_axes = tuple(read_metadata(as_vpath(label_url, storage_options))[0]["axes"])
    sel = resolve_slices(parse_slices(meta.slices), meta.shapes[0], full_axes, meta.slices)
    parts = [_selection_text(s) for s, a in zip(sel, full_axes) if a in label_axes]
    return f"{label_url}?slices=[{', '.join(parts)}]"


def _selection_text(s) -> str:
    if s.index is not None:
        return str(s.index)
    if not s.reverse:
        return f"{s.start}:{s.stop}:{s.step}"
    last = s.start + (s.stop - 1 - s.start) // s.step * s.step
    return f"{last}:{s.start - 1 if s.start else ''}:{-s.step}"


def _display_name(url) -> str:
    base = str(url).partition("?")[0].rstrip("/")
    leaf = base.rsplit("/", 1)[-1]
    for suffix in (".ome.zarr.zip", ".ome.zarr", ".zarr.zip", ".zarr", ".zip"):
        if leaf.endswith(suffix):
            return leaf[: -len(suffix)]
    return leaf


# --- object tables --------------------------------------------------------------


def object_layer(
    lc: pd.DataFrame,
    *,
    scale: Sequence[float] | None = None,
    text: str | dict | None = None,
    name: str = "objects",
    size: float | Sequence[float] | None = None,
    **layer_kwargs,
) -> LayerData:
    """Layer data for an object table (LC) as a ``points`` layer.

    Parameters
    ----------
    lc : pandas.DataFrame
        One row per object with centroid columns ``z, y, x`` in voxels (2D
        tables may have only ``y, x``). Every other column (``voxels``,
        ``intensity_mean``, ``region_acronym``, ...) becomes a point feature.
    scale : sequence of float, optional
        Physical voxel size per centroid axis, so points line up with the image
        layer they were measured on.
    text : str or dict, optional
        napari text: a feature name (``"region_acronym"``), a format string
        (``"{id}: {voxels}"``) or a dict of napari text options.
    name : str
        Layer name.
    size : float or sequence of float, optional
        Point diameter in voxels; default: the diameter of a sphere of ``voxels``
        voxels (at least 3), or 5 without a ``voxels`` column.
    **layer_kwargs
        Passed on to ``napari.layers.Points``.

    Returns
    -------
    (data, kwargs, "points")
        ``data`` is a float64 array of shape (N, D) with the centroids.
    """
    if not isinstance(lc, pd.DataFrame):
        raise InvalidInputError(f"expected an object table (pandas DataFrame), got {type(lc).__name__}")
    axes = [a for a in _CENTROID if a in lc.columns]
    if axes[-2:] != ["y", "x"]:
        raise InvalidInputError(
            f"object table needs centroid columns z, y, x (or y, x); got {list(lc.columns)}"
        )
    data = lc[axes].to_numpy(dtype=np.float64).reshape(len(lc), len(axes))
    features = lc.drop(columns=axes).reset_index(drop=True)
    if size is None:
        if "voxels" in lc.columns:
            vox = lc["voxels"].to_numpy(dtype=np.float64)
            size = np.maximum(2.0 * np.cbrt(3.0 * vox / (4.0 * np.pi)), 3.0)
        else:
            size = 5.0
    kwargs: dict[str, Any] = {
        "name": name,
        "features": features,
        "size": size,
        "face_color": "transparent",
        "border_color": "#ffd000",
        "border_width": 0.15,
        "axis_labels": axes,
    }
    if scale is not None:
        if len(scale) != len(axes):
            raise InvalidInputError(f"scale {tuple(scale)} must have one value per axis {axes}")
        kwargs["scale"] = [float(s) for s in scale]
    if text is not None:
        if isinstance(text, str) and text in lc.columns:
            text = {"string": text, "color": "white", "size": 9}
        kwargs["text"] = text
    kwargs.update(layer_kwargs)
    return (data, kwargs, "points")


# --- any step result --------------------------------------------------------------


def result_layers(
    arr_or_df,
    name: str,
    is_label: bool = False,
    scale: Sequence[float] | None = None,
    **layer_kwargs,
) -> list[LayerData]:
    """Layer data for a step result: an array (image or labels) or an object table.

    Parameters
    ----------
    arr_or_df : dask.array.Array, numpy.ndarray, list of arrays, pandas.DataFrame or VPath
        IN/BS/OS/CD arrays of any dimensionality; a list is taken as pyramid
        levels (finest first); a DataFrame is an object table (see
        :func:`object_layer`); a :class:`~voxelflow.paths.VPath` names a stored
        OME-Zarr result, shown with its own pyramid, scale and offset.
    name : str
        Layer name.
    is_label : bool
        Show an integer or boolean array as a ``labels`` layer.
    scale : sequence of float, optional
        Physical voxel size per axis.
    **layer_kwargs
        Passed on to the napari layer (they win over the defaults here).

    Returns
    -------
    list of (data, kwargs, layer_type)
        A large array (a plane wider than 2048 px) gets a lazy pyramid of
        nearest-neighbour (strided) levels, which never invents label values.
        Empty for results with nothing to draw (numbers, JSON values, series,
        tables without ``y, x`` columns), so a pipeline run with a viewer shows
        what it can and goes on.

    Raises
    ------
    InvalidInputError
        ``is_label`` with a float array, or a ``scale`` of the wrong length.
    """
    from voxelflow.paths import VPath

    if isinstance(arr_or_df, VPath):
        stored = ome_zarr_layers(arr_or_df.url, is_label=is_label, name=name, labels=False,
                                 storage_options=arr_or_df.storage_options)
        extra = {"scale": [float(s) for s in scale]} if scale is not None else {}
        return [(data, {**kwargs, **extra, **layer_kwargs}, kind) for data, kwargs, kind in stored]
    if isinstance(arr_or_df, pd.DataFrame):
        if not {"y", "x"} <= set(arr_or_df.columns):
            log.info("step result %r is a table without centroid columns; nothing to display", name)
            return []
        return [object_layer(arr_or_df, scale=scale, name=name, **layer_kwargs)]
    if _is_array(arr_or_df):
        pyramid = _viewer_pyramid(arr_or_df)
    elif isinstance(arr_or_df, (list, tuple)) and arr_or_df and all(map(_is_array, arr_or_df)):
        pyramid = list(arr_or_df)
    else:
        log.info("step result %r is a %s; nothing to display", name, type(arr_or_df).__name__)
        return []
    base = pyramid[0]
    kwargs: dict[str, Any] = {"name": name, "multiscale": len(pyramid) > 1}
    if scale is not None:
        if len(scale) != base.ndim:
            raise InvalidInputError(f"scale {tuple(scale)} of {name!r} must have {base.ndim} values")
        kwargs["scale"] = [float(s) for s in scale]
    if is_label:
        if not (np.issubdtype(base.dtype, np.integer) or base.dtype.kind == "b"):
            raise InvalidInputError(f"labels {name!r} must be integer or bool, got {base.dtype}")
        layer_type = "labels"
        if base.dtype.kind == "b":
            pyramid = [p.astype(np.uint8) for p in pyramid]
    else:
        layer_type = "image"
        if "contrast_limits" not in layer_kwargs:
            kwargs["contrast_limits"] = contrast_limits(pyramid[-1])
    kwargs.update(layer_kwargs)
    return [(pyramid if len(pyramid) > 1 else pyramid[0], kwargs, layer_type)]


def _is_array(value) -> bool:
    return isinstance(value, (da.Array, np.ndarray)) and value.ndim >= 1


def _viewer_pyramid(arr):
    levels = [arr]
    if arr.ndim < 2:
        return levels
    while max(levels[-1].shape[-2:]) > _PYRAMID_PLANE_PX:
        prev = levels[-1]
        # Only the displayed plane axes shrink; z stays, so 2D slicing reads one plane.
        key = (slice(None),) * (prev.ndim - 2) + (slice(None, None, 2),) * 2
        levels.append(prev[key])
    return levels


# --- adding to a viewer ------------------------------------------------------------
