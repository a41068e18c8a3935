"""Lazy reading of TIFF stacks (tifffile) as dask arrays with NGFF axis names."""

from __future__ import annotations

import dask.array as da
import numpy as np

from voxelflow.errors import InvalidInputError, InvalidPathError
from voxelflow.paths import as_vpath

__all__ = ["read_tiff"]

_AXIS_NAMES = {"T": "t", "C": "c", "S": "c", "Z": "z", "Q": "z", "I": "z", "Y": "y", "X": "x"}
_ORDER = "tczyx"
_UNITS = {"um": "micrometer", "µm": "micrometer", "\\u00B5m": "micrometer", "micron": "micrometer",
          "nm": "nanometer", "mm": "millimeter"}


def read_tiff(path) -> tuple[da.Array, tuple[str, ...], dict[str, float], str | None]:
    """Open the first image series of a TIFF file lazily, one page per chunk.

    Parameters
    ----------
    path : str or os.PathLike
        A local ``.tif``/``.tiff`` file (ImageJ hyperstack, OME-TIFF or plain page stack).

    Returns
    -------
    array : dask.array.Array
        Axes reordered to NGFF order (``t, c, z, y, x`` subset); pages are read on compute.
    axes : tuple of str
        Axis names of ``array``.
    scale : dict
        Voxel size per space axis from ImageJ metadata (``spacing`` for z, the
        resolution tags for y and x); empty if the file has none.
    unit : str or None
        Physical unit of ``scale`` (e.g. ``'micrometer'``).

    Raises
    ------
    InvalidPathError
        If the file does not exist or is not a TIFF.
    InvalidInputError
        If the series has axes that OME-Zarr cannot hold (more than one channel-like axis, ...).
    """
    import tifffile
    import zarr

    vpath = as_vpath(path)
    if not vpath.is_local or not vpath.isfile():
        raise InvalidPathError(f"{vpath.url} is not a local TIFF file")
    try:
        with tifffile.TiffFile(vpath.path) as tif:
            series = tif.series[0]
            tiff_axes = series.axes
            scale, unit = _imagej_scale(tif)
        store = tifffile.imread(vpath.path, aszarr=True)
    except (tifffile.TiffFileError, ValueError, IndexError) as exc:
        raise InvalidPathError(f"cannot read {vpath.url} as TIFF: {exc}") from exc
    names = [_AXIS_NAMES.get(a) for a in tiff_axes]
    if None in names or len(set(names)) != len(names):
        raise InvalidInputError(
            f"{vpath.url}: TIFF axes {tiff_axes!r} cannot be mapped to OME-Zarr axes t, c, z, y, x"
        )
    zarray = zarr.open_array(store, mode="r")
    arr = da.from_zarr(zarray, chunks=zarray.chunks)
    order = sorted(range(len(names)), key=lambda i: _ORDER.index(names[i]))
    arr = arr.transpose(order)
    axes = tuple(names[i] for i in order)
    scale = {a: v for a, v in scale.items() if a in axes}
    return arr, axes, scale, unit


def _imagej_scale(tif) -> tuple[dict[str, float], str | None]:
    meta = tif.imagej_metadata or {}
    scale: dict[str, float] = {}
    if meta.get("spacing"):
        scale["z"] = float(meta["spacing"])
    page = tif.pages[0]
    for tag, axis in (("XResolution", "x"), ("YResolution", "y")):
        value = page.tags.get(tag)
        if value is None or not meta:
            continue
        num, den = value.value
        if num:
            scale[axis] = float(np.float64(den) / num)
    unit = meta.get("unit")
    return scale, _UNITS.get(unit, unit) if unit else None
