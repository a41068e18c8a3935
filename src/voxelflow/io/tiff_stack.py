"""Multi-page TIFF, BigTIFF, OME-TIFF and ImageJ hyperstacks as lazy dask arrays.

Pixels are read through tifffile's zarr interface (``TiffPageSeries.aszarr``), so a
dask chunk reads only its own pages. Before anything is returned the file is
checked to hold what it declares: tifffile reports a broken page chain or
unreadable metadata only as log warnings and then falls back to fewer pages (a
truncated 16-page ImageJ stack opens as one 2-D page), so those warnings, the page
count declared by the ImageJ / OME-XML / tifffile metadata and the byte extent of
the pixel data are all checked here and turned into
:class:`~voxelflow.errors.ImageFormatError`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import struct
import threading
from collections import OrderedDict
from dataclasses import dataclass

import dask.array as da
import numpy as np
import tifffile
from dask.base import tokenize

from voxelflow.errors import ImageFormatError, InvalidInputError, InvalidPathError
from voxelflow.io.imagemeta import ImageFacts
from voxelflow.io.tiff_meta import ome_pixels, tiff_calibration
from voxelflow.paths import VPath, as_vpath

__all__ = ["TiffSeriesArray", "open_tiff_stack"]

#: Bytes of one dask chunk (whole stored chunks along the slowest axes).
CHUNK_BYTES = 32 * 2**20

_AXIS_NAMES = {"T": "t", "C": "c", "S": "c", "Z": "z", "Q": "z", "I": "z", "Y": "y", "X": "x"}
_ORDER = "tczyx"


class _Warnings(logging.Handler):
    """Collects tifffile's warnings logged by one thread."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.messages.append(record.getMessage())


@contextlib.contextmanager
def _tifffile_warnings():
    logger = logging.getLogger("tifffile")
    handler = _Warnings()
    logger.addHandler(handler)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)


def _declared_shape(tif, series, where: str) -> tuple[int, ...] | None:
    """Number of 2-D planes the file's own metadata declares, as a shape (None if it declares none)."""
    if tif.is_imagej and tif.imagej_metadata:
        ij = tif.imagej_metadata
        images = ij.get("images")
        if images is None:
            images = ij.get("channels", 1) * ij.get("slices", 1) * ij.get("frames", 1)
        return (int(images),)
    if tif.is_ome:
        pixels = ome_pixels(tif, where)
        size = pixels["size"]
        samples = series.shape[series.axes.index("S")] if "S" in series.axes else 1
        return (size["T"] * size["Z"] * size["C"] // samples,)
    if tif.is_shaped and tif.shaped_metadata:
        shape = tif.shaped_metadata[0].get("shape")
        if shape:
            keep = [n for n, a in zip(shape, series.axes) if a not in "YXS"] if len(shape) == len(series.axes) \
                else list(shape[:-2])
            return (math.prod(keep),)
    return None


def _planes(series) -> int:
    return math.prod(n for n, a in zip(series.shape, series.axes) if a not in "YXS")


def _check_complete(tif, series, warnings: list[str], where: str) -> None:
    if warnings:
        raise ImageFormatError(f"{where}: the TIFF structure is broken or truncated: {'; '.join(warnings[:3])}")
    declared = _declared_shape(tif, series, where)
    if declared is not None and declared[0] != _planes(series):
        raise ImageFormatError(f"{where}: the metadata declares {declared[0]} planes but the file holds "
                               f"{_planes(series)} readable plane(s): truncated or corrupt")
    size = tif.filehandle.size
    if series.dataoffset is not None:
        end = series.dataoffset + series.nbytes
    else:
        pages = list(series.pages)
        if any(p is None for p in pages) or len(pages) != _planes(series):
            raise ImageFormatError(f"{where}: {sum(p is None for p in pages)} page(s) of the image are missing")
        end = max((o + n for p in pages for o, n in zip(p.dataoffsets, p.databytecounts)), default=0)
    if end > size:
        raise ImageFormatError(f"{where}: pixel data extends to byte {end} but the file has {size} bytes: truncated")


#: Open files kept per process (parsing a large file's pages is too slow to repeat per chunk);
#: the least recently used is dropped (and closed once no read holds it) beyond this many.
MAX_OPEN = 16
_OPEN: OrderedDict = OrderedDict()
_OPEN_LOCK = threading.Lock()


def _forget_open_files() -> None:
    # A forked child must not share its parent's file positions.
    global _OPEN, _OPEN_LOCK
    _OPEN = OrderedDict()
    _OPEN_LOCK = threading.Lock()


os.register_at_fork(after_in_child=_forget_open_files)


@dataclass(frozen=True)
class TiffSeriesArray:
    """Array-like view of one level of one TIFF series, read through tifffile's zarr store.

    Picklable (holds only the file name); each process keeps the file open between reads
    (at most :data:`MAX_OPEN` files).

    Attributes
    ----------
    fs : fsspec.AbstractFileSystem
        File system of the file.
    name : str
        File path on ``fs``.
    series, level : int
        Series and pyramid level.
    shape : tuple of int
        Shape in the file's axis order.
    dtype : numpy.dtype
        Pixel dtype.
    stamp : str
        Size and modification time of the file when opened: a rewritten file gets a new handle.
    """

    fs: object
    name: str
    series: int
    level: int
    shape: tuple[int, ...]
    dtype: np.dtype
    stamp: str

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def _zarr(self):
        import zarr

        key = (self.fs.unstrip_protocol(self.name), self.series, self.level, self.stamp)
        with _OPEN_LOCK:
            arr = _OPEN.get(key)
            if arr is None:
                fh = self.fs.open(self.name, "rb")
                tif = tifffile.TiffFile(fh)
                store = tif.series[self.series].aszarr(level=self.level, read_only=True)
                arr = _OPEN[key] = zarr.open_array(store, mode="r")
                while len(_OPEN) > MAX_OPEN:
                    _OPEN.popitem(last=False)
            _OPEN.move_to_end(key)
        return arr

    def __getitem__(self, key) -> np.ndarray:
        where = self.fs.unstrip_protocol(self.name)
        try:
            return np.asarray(self._zarr()[key])
        except Exception as exc:  # tifffile and codecs raise many types for broken data
            raise ImageFormatError(f"{where}: cannot read pixels {key} ({type(exc).__name__}: {exc}); "
                                   "the file is truncated or corrupt") from exc


def _dask_chunks(shape, axes: str, store_chunks, itemsize: int, planes: int | None) -> tuple[int, ...]:
    """Whole stored chunks, grown along the non-plane axes (fastest first) up to ``CHUNK_BYTES``.

    ``planes`` fixes the z extent instead (rounded to whole stored chunks).
    """
    chunks = list(store_chunks)
    for i in reversed(range(len(axes))):
        if axes[i] in "YXS":
            continue
        if planes and axes[i] in "ZQI":
            chunks[i] = min(shape[i], max(chunks[i], planes // chunks[i] * chunks[i]))
            continue
        grow = max(1, CHUNK_BYTES // (math.prod(chunks) * itemsize))
        chunks[i] = min(shape[i], chunks[i] * grow)
    return tuple(chunks)


def open_tiff_stack(url, level: int = 0, *, storage_options: dict | None = None, planes_per_chunk: int | None = None):
    """Open the first image series of a TIFF file lazily.

    Parameters
    ----------
    url : str or VPath
        A ``.tif``/``.tiff``/``.btf`` file: plain page stack, BigTIFF, OME-TIFF
        (pyramid levels are read as levels) or ImageJ hyperstack; local or fsspec URL.
    level : int
        Pyramid level (OME-TIFF sub-resolutions), 0 = full resolution.
    storage_options : dict, optional
        fsspec options.
    planes_per_chunk : int, optional
        z planes per dask chunk; default about 32 MiB per chunk.

    Returns
    -------
    array : dask.array.Array
        Axes in NGFF order (subset of ``t, c, z, y, x``); dtype as stored.
    facts : ImageFacts
        Shapes of all levels, voxel size from OME-XML / ImageJ / resolution tags,
        channel names from OME-XML.

    Raises
    ------
    InvalidPathError
        The file does not exist or is not a TIFF.
    ImageFormatError
        The file is truncated or its pages do not match its declared shape.
    InvalidInputError
        Axes that OME-Zarr cannot hold (e.g. both channels and RGB samples).
    """
    import zarr

    path = url if isinstance(url, VPath) else as_vpath(url, storage_options)
    where = path.url
    if not path.isfile():
        raise InvalidPathError(f"{where} is not a TIFF file (it does not exist or is a folder)")
    try:
        with _tifffile_warnings() as warnings, path.fs.open(path.path, "rb") as fh, tifffile.TiffFile(fh) as tif:
            len(tif.pages)  # walks the whole page chain: broken links are logged now
            series = tif.series[0]
            _check_complete(tif, series, warnings, where)
            levels = series.levels
            shapes_raw = [tuple(lv.shape) for lv in levels]
            tiff_axes = series.axes
            dtype = np.dtype(series.dtype)
            calibration = tiff_calibration(tif, series.pages[0] or tif.pages[0], where)
            ome = ome_pixels(tif, where)
            if not 0 <= level < len(levels):
                raise InvalidInputError(f"{where}: level {level} is out of range; the file has {len(levels)} "
                                        "level(s)")
            store_chunks = zarr.open_array(series.aszarr(level=level, read_only=True), mode="r").chunks
    except (ImageFormatError, InvalidInputError):
        raise
    except (tifffile.TiffFileError, ValueError, IndexError, KeyError, OSError, struct.error) as exc:
        raise InvalidPathError(f"cannot read {where} as TIFF: {exc}") from exc
    names = [_AXIS_NAMES.get(a) for a in tiff_axes]
    if None in names or len(set(names)) != len(names):
        raise InvalidInputError(f"{where}: TIFF axes {tiff_axes!r} cannot be mapped to OME-Zarr axes t, c, z, y, x")
    order = sorted(range(len(names)), key=lambda i: _ORDER.index(names[i]))
    axes = tuple(names[i] for i in order)
    info = path.fs.info(path.path)
    stamp = f"{info.get('size')}-{info.get('mtime')}"
    reader = TiffSeriesArray(path.fs, path.path, 0, level, shapes_raw[level], dtype, stamp)
    chunks = _dask_chunks(shapes_raw[level], tiff_axes, store_chunks, dtype.itemsize, planes_per_chunk)
    token = tokenize(where, stamp, level, chunks)
    arr = da.from_array(reader, chunks=chunks, name=f"tiff-{token}", asarray=False, fancy=False,
                        meta=np.empty((0,) * len(chunks), dtype=dtype)).transpose(order)
    shapes = tuple(tuple(s[i] for i in order) for s in shapes_raw)
    scale0 = tuple(1.0 if a in "tc" else getattr(calibration, a) for a in axes)
    factors = tuple(tuple(1.0 if a in "tc" else round(s0 / s, 6) for a, s0, s in zip(axes, shapes[0], sh))
                    for sh in shapes)
    channels = None
    if ome is not None and ome["channels"] and "c" in axes and len(ome["channels"]) == shapes[0][axes.index("c")]:
        channels = tuple(ome["channels"])
    facts = ImageFacts(
        url=where, format="tiff", version="", name=(ome or {}).get("name"), axes=axes,
        levels=tuple(str(i) for i in range(len(shapes))), shapes=shapes, scale0=scale0,
        translation0=(0.0,) * len(axes), level_factors=factors, channel_names=channels,
        scale_source=calibration.source,
    )
    return arr, facts
