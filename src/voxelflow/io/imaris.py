"""Imaris ``.ims`` files (HDF5) as lazy dask arrays, resolution levels as the pyramid.

Layout read (Imaris 5.5 file format)::

    DataSet/ResolutionLevel r/TimePoint t/Channel c/Data      3-D (Z, Y, X), padded to whole HDF5 chunks
    DataSet/ResolutionLevel r/TimePoint t/Channel c           attributes ImageSizeX/Y/Z: the real size
    DataSetInfo/Image                                         attributes X, Y, Z, ExtMin0..2, ExtMax0..2, Unit
    DataSetInfo/Channel c                                     attribute Name

Imaris writes every attribute as an array of single bytes (``b'1', b'0', b'2', b'4'``),
decoded here to text. The voxel size is the extent divided by the size
(``(ExtMax0 - ExtMin0) / X`` for x, index 1 for y, 2 for z); padding beyond
``ImageSize*`` is never returned. Needs the optional extra ``imaris`` (h5py).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import dask.array as da
import numpy as np
from dask.base import tokenize

from voxelflow.errors import ImageFormatError, InvalidPathError, OptionalDependencyError
from voxelflow.io.imagemeta import ImageFacts, length_in_um
from voxelflow.paths import VPath, as_vpath

__all__ = ["ImarisArray", "open_imaris"]

#: Bytes of one dask chunk (whole HDF5 chunks).
CHUNK_BYTES = 32 * 2**20


def _h5py():
    try:
        import h5py
    except ImportError as exc:
        raise OptionalDependencyError(
            "reading Imaris .ims files needs h5py: pip install 'voxelflow[imaris]'"
        ) from exc
    return h5py


def attr_text(value) -> str:
    """An Imaris attribute as text: arrays of single bytes, bytes or str."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "S":
            return b"".join(value.ravel().tolist()).decode("utf-8", "replace")
        if value.size == 1:
            return str(value.ravel()[0])
        raise ValueError(f"attribute of shape {value.shape} and dtype {value.dtype}")
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _attr(node, name: str, where: str, cast=str):
    if name not in node.attrs:
        raise ImageFormatError(f"{where}: attribute {name!r} of {node.name!r} is missing")
    text = attr_text(node.attrs[name]).strip()
    try:
        return cast(text)
    except ValueError:
        raise ImageFormatError(f"{where}: attribute {name!r} of {node.name!r} is {text!r}, "
                               f"expected a {cast.__name__}") from None


def _numbered(group, prefix: str, where: str) -> int:
    """Number of members ``prefix 0 .. prefix n-1``; raises on gaps."""
    found = sorted(int(m.group(1)) for k in group for m in [re.fullmatch(rf"{prefix} (\d+)", k)] if m)
    if not found:
        raise ImageFormatError(f"{where}: {group.name!r} has no {prefix!r} members")
    if found != list(range(len(found))):
        raise ImageFormatError(f"{where}: {group.name!r} has {prefix} numbers {found}, expected 0..{len(found) - 1}")
    return len(found)


@dataclass(frozen=True)
class ImarisArray:
    """Array-like view of one resolution level: ``(T?, C?, Z, Y, X)``, cropped to the real size.

    Picklable (holds only the file name). Each read opens the file for its own duration, so
    nothing stays open between reads (another writer, or a forked worker, is never blocked).

    Attributes
    ----------
    path : str
        Local file path.
    level : int
        Resolution level.
    n_t, n_c : int
        Time points and channels; a length-1 axis is dropped when ``keep_t`` /
        ``keep_c`` is False.
    zyx : tuple of int
        Real (unpadded) size of the level.
    dtype : numpy.dtype
        Voxel dtype.
    keep_t, keep_c : bool
        Whether the array has a time / channel axis.
    stamp : str
        Size and modification time of the file when opened (part of the dask name).
    """

    path: str
    level: int
    n_t: int
    n_c: int
    zyx: tuple[int, int, int]
    dtype: np.dtype
    keep_t: bool
    keep_c: bool
    stamp: str

    @property
    def shape(self) -> tuple[int, ...]:
        return (*((self.n_t,) if self.keep_t else ()), *((self.n_c,) if self.keep_c else ()), *self.zyx)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __getitem__(self, key) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        key = key + (slice(None),) * (self.ndim - len(key))
        key = list(key)
        t_sel = key.pop(0) if self.keep_t else slice(0, 1)
        c_sel = key.pop(0) if self.keep_c else slice(0, 1)
        zyx_sel = tuple(key)
        ts, cs = range(self.n_t)[t_sel], range(self.n_c)[c_sel]
        sizes = tuple(len(range(n)[s]) for n, s in zip(self.zyx, zyx_sel))
        out = np.empty((len(ts), len(cs), *sizes), dtype=self.dtype)
        with _h5py().File(self.path, "r") as f:
            for ti, t in enumerate(ts):
                for ci, c in enumerate(cs):
                    name = f"DataSet/ResolutionLevel {self.level}/TimePoint {t}/Channel {c}/Data"
                    try:
                        out[ti, ci] = f[name][zyx_sel]
                    except (OSError, KeyError, ValueError, TypeError) as exc:
                        raise ImageFormatError(f"{self.path}: cannot read {name} {zyx_sel} ({exc}); "
                                               "the HDF5 dataset is corrupt or missing") from exc
        if not self.keep_c:
            out = out[:, 0]
        if not self.keep_t:
            out = out[0]
        return out


def _level_sizes(f, level: int, n_t: int, n_c: int, where: str):
    sizes, dtype, h5chunks = None, None, None
    for t in range(n_t):
        for c in range(n_c):
            gname = f"DataSet/ResolutionLevel {level}/TimePoint {t}/Channel {c}"
            if gname not in f or "Data" not in f[gname]:
                raise ImageFormatError(f"{where}: {gname}/Data is missing")
            group, data = f[gname], f[gname]["Data"]
            size = tuple(_attr(group, f"ImageSize{a}", where, int) for a in "ZYX")
            if data.ndim != 3 or any(d < s for d, s in zip(data.shape, size)):
                raise ImageFormatError(f"{where}: {gname}/Data has shape {data.shape}, smaller than its "
                                       f"ImageSizeZ/Y/X {size}")
            if sizes is None:
                sizes, dtype, h5chunks = size, data.dtype, data.chunks or data.shape
            elif size != sizes or data.dtype != dtype:
                raise ImageFormatError(f"{where}: {gname} is {size} {data.dtype} but time point 0 channel 0 of "
                                       f"level {level} is {sizes} {dtype}")
    return sizes, np.dtype(dtype), tuple(h5chunks)


def _dask_chunks(zyx, h5chunks, itemsize: int) -> tuple[int, int, int]:
    chunks = [min(c, n) for c, n in zip(h5chunks, zyx)]
    for i in range(3):  # grow z first (whole planes of HDF5 chunks), then y, then x
        grow = max(1, CHUNK_BYTES // (chunks[0] * chunks[1] * chunks[2] * itemsize))
        chunks[i] = min(zyx[i], chunks[i] * grow)
    return tuple(chunks)


def open_imaris(url, level: int = 0, *, storage_options: dict | None = None):
    """Open one resolution level of an Imaris ``.ims`` file lazily.

    Parameters
    ----------
    url : str or VPath
        A local ``.ims`` file.
    level : int
        Resolution level, 0 = full resolution.
    storage_options : dict, optional
        Unused for local files; accepted for a uniform signature.

    Returns
    -------
    array : dask.array.Array, shape ([T,] [C,] Z, Y, X)
        Time / channel axes only when there are more than one; dtype as stored.
    facts : ImageFacts
        All levels' shapes and voxel sizes (micrometres), channel names.

    Raises
    ------
    OptionalDependencyError
        h5py is not installed.
    InvalidPathError
        Not a readable HDF5 file.
    ImageFormatError
        Missing groups, datasets or attributes, data smaller than declared,
        inconsistent levels.
    """
    h5py = _h5py()
    path = url if isinstance(url, VPath) else as_vpath(url, storage_options)
    if not path.is_local:
        raise InvalidPathError(f"{path.url}: Imaris files are read from a local path only")
    where = path.path
    if not path.isfile():
        raise InvalidPathError(f"{where} is not an Imaris file (it does not exist or is a folder)")
    try:
        f = h5py.File(where, "r")
    except OSError as exc:
        raise InvalidPathError(f"cannot read {where} as an Imaris (HDF5) file: {exc}") from exc
    with f:
        if "DataSet" not in f or "DataSetInfo/Image" not in f:
            raise ImageFormatError(f"{where}: not an Imaris file: no DataSet and DataSetInfo/Image groups")
        n_levels = _numbered(f["DataSet"], "ResolutionLevel", where)
        n_t = _numbered(f["DataSet/ResolutionLevel 0"], "TimePoint", where)
        n_c = _numbered(f["DataSet/ResolutionLevel 0/TimePoint 0"], "Channel", where)
        if not 0 <= level < n_levels:
            raise ImageFormatError(f"{where}: level {level} is out of range; the file has {n_levels} resolution "
                                   f"level(s) (0..{n_levels - 1})")
        levels = [_level_sizes(f, r, n_t, n_c, where) for r in range(n_levels)]
        image = f["DataSetInfo/Image"]
        size0 = tuple(_attr(image, a, where, int) for a in "ZYX")
        if size0 != levels[0][0]:
            raise ImageFormatError(f"{where}: DataSetInfo/Image X/Y/Z give {size0[::-1]} but level 0 has "
                                   f"ImageSizeX/Y/Z {levels[0][0][::-1]}")
        unit = attr_text(image.attrs["Unit"]).strip() if "Unit" in image.attrs else "um"
        um = length_in_um(1.0, unit, f"{where} DataSetInfo/Image Unit")
        scale_zyx, origin_zyx = [], []
        for n, i in zip(size0, (2, 1, 0)):
            lo, hi = _attr(image, f"ExtMin{i}", where, float), _attr(image, f"ExtMax{i}", where, float)
            scale_zyx.append((hi - lo) / n * um if um is not None and hi > lo else None)
            origin_zyx.append(lo * um if um is not None else 0.0)
        channels = []
        for c in range(n_c):
            node = f.get(f"DataSetInfo/Channel {c}")
            name = attr_text(node.attrs["Name"]).strip() if node is not None and "Name" in node.attrs else ""
            channels.append(name or f"Channel {c}")
        version = attr_text(f.attrs["ImarisVersion"]) if "ImarisVersion" in f.attrs else ""
        name = attr_text(image.attrs["Name"]).strip() if "Name" in image.attrs else None
    keep_t, keep_c = n_t > 1, n_c > 1
    zyx, dtype, h5chunks = levels[level]
    stat = os.stat(where)
    stamp = f"{stat.st_size}-{stat.st_mtime_ns}"
    reader = ImarisArray(where, level, n_t, n_c, zyx, dtype, keep_t, keep_c, stamp)
    chunks = (*((1,) if keep_t else ()), *((1,) if keep_c else ()), *_dask_chunks(zyx, h5chunks, dtype.itemsize))
    token = tokenize(where, stamp, level, chunks)
    arr = da.from_array(reader, chunks=chunks, name=f"imaris-{token}", asarray=False, fancy=False,
                        meta=np.empty((0,) * len(chunks), dtype=dtype))
    axes = (*(("t",) if keep_t else ()), *(("c",) if keep_c else ()), "z", "y", "x")
    lead = tuple((n_t,) if keep_t else ()) + tuple((n_c,) if keep_c else ())
    shapes = tuple((*lead, *sz) for sz, _, _ in levels)
    n_lead = len(lead)
    factors = tuple((1.0,) * n_lead + tuple(a / b for a, b in zip(size0, sz)) for sz, _, _ in levels)
    scale0 = (1.0,) * n_lead + tuple(scale_zyx)
    translation0 = (0.0,) * n_lead + tuple(o + (s or 0.0) / 2 for o, s in zip(origin_zyx, scale_zyx))
    facts = ImageFacts(
        url=where, format="imaris", version=version, name=name, axes=axes,
        levels=tuple(f"ResolutionLevel {r}" for r in range(n_levels)), shapes=shapes, scale0=scale0,
        translation0=translation0, level_factors=factors,
        channel_names=tuple(channels) if keep_c else None,
        scale_source="the Imaris ExtMin/ExtMax attributes",
    )
    return arr, facts
