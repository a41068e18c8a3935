"""A folder (or glob) of 2-D TIFF planes as one lazy 3-D (or channel x 3-D) dask array.

Lightsheet microscopes write one file per z plane, often one series per channel
(``..._C01_...``) and per tile. Here the planes are ordered by the number in their
names that differs between all of them (natural order, ``z2`` before ``z10``),
grouped into channels by a ``C<n>``/``ch<n>``/``channel<n>`` token, and read only when
a dask chunk (several whole planes) is computed.

Checks, each raising :class:`~voxelflow.errors.ImageFormatError` naming the file:
stray files that do not follow the naming pattern, gaps in the plane numbers,
channels with different plane counts, several tiles mixed in one folder, files
shorter than one plane's pixel data (at open); and on reading, any plane whose
shape or dtype differs from the first one, or whose pixel data cannot be read in full.
"""

from __future__ import annotations

import posixpath
import re
from collections import Counter
from dataclasses import dataclass

import dask.array as da
import numpy as np
import tifffile
from dask.base import tokenize

from voxelflow.errors import ImageFormatError, InvalidPathError
from voxelflow.io.imagemeta import ImageFacts
from voxelflow.io.tiff_meta import tiff_calibration
from voxelflow.paths import VPath, as_vpath

__all__ = ["PlaneStack", "is_plane_source", "open_planes", "plane_files"]

TIFF_SUFFIXES = (".tif", ".tiff")
#: Bytes of one dask chunk the plane count per chunk aims at.
CHUNK_BYTES = 32 * 2**20

_GLOB_CHARS = re.compile(r"[*?\[]")
_CHANNEL = re.compile(r"(?:^|(?<=[_\-. ]))(?P<tok>(?:c|ch|channel)[_\-]?\d+)(?=$|[_\-. ])", re.IGNORECASE)
_TILE = re.compile(r"(?:^|(?<=[_\-. ]))(?P<tok>(?:tile|tl)[_\-]?\d+|\[\d+ x \d+\])(?=$|[_\-. ])", re.IGNORECASE)
_NUMBER = re.compile(r"\d+")


def _is_tiff(name: str) -> bool:
    return name.lower().endswith(TIFF_SUFFIXES)


def is_plane_source(path: VPath) -> bool:
    """True if ``path`` is a glob pattern or a folder holding TIFF files."""
    if _GLOB_CHARS.search(path.path):
        return True
    return path.isdir() and any(_is_tiff(n) for n in path.ls())


def plane_files(path: VPath) -> list[dict]:
    """The TIFF files of a folder or glob, each as ``{'name', 'size', 'mtime'}`` (fs paths)."""
    fs = path.fs
    if _GLOB_CHARS.search(path.path):
        found = fs.glob(path.path, detail=True)
        entries = list(found.values()) if isinstance(found, dict) else [fs.info(p) for p in found]
    elif path.isdir():
        entries = fs.ls(path.path, detail=True)
    else:
        raise InvalidPathError(f"{path.url} is neither a folder of TIFF planes nor a glob pattern")
    files = [e for e in entries if e.get("type") != "directory" and _is_tiff(e["name"])]
    if not files:
        raise InvalidPathError(f"{path.url}: no .tif/.tiff files there")
    return [{"name": e["name"], "size": e.get("size"), "mtime": e.get("mtime", e.get("LastModified"))}
            for e in files]


def _natural_key(name: str) -> list:
    """Sort key that orders embedded numbers by value (``z2`` before ``z10``)."""
    return [int(p) if i % 2 else p.lower() for i, p in enumerate(re.split(r"(\d+)", name))]


def _token(regex, name: str) -> str | None:
    found = regex.findall(name)
    return found[-1] if found else None


def _order_planes(names: list[str], where: str) -> list[str]:
    """Plane files in z order; raises on stray files and gaps in the numbering."""
    if len(names) == 1:
        return names
    skeletons = Counter(_NUMBER.sub("#", posixpath.basename(n)) for n in names)
    if len(skeletons) > 1:
        common = skeletons.most_common(1)[0][0]
        odd = sorted(n for n in names if _NUMBER.sub("#", posixpath.basename(n)) != common)
        raise ImageFormatError(
            f"{where}: {len(odd)} file(s) do not follow the naming pattern {common!r} of the other planes: "
            f"{', '.join(posixpath.basename(n) for n in odd[:5])}; remove them or select the planes with a glob"
        )
    numbers = [[int(v) for v in _NUMBER.findall(posixpath.basename(n))] for n in names]
    fields = [i for i in range(len(numbers[0])) if len({row[i] for row in numbers}) == len(names)]
    if not fields:
        raise ImageFormatError(f"{where}: cannot order the planes: no number in the file names differs between "
                               f"all {len(names)} of them")
    z = fields[0]
    order = sorted(range(len(names)), key=lambda i: numbers[i][z])
    values = [numbers[i][z] for i in order]
    steps = [b - a for a, b in zip(values, values[1:])]
    step = min(steps)
    for k, d in enumerate(steps):
        if d != step:
            before, after = names[order[k]], names[order[k + 1]]
            missing = _name_with_number(before, z, values[k] + step)
            raise ImageFormatError(
                f"{where}: plane numbering jumps from {values[k]} to {values[k + 1]} (step {step} elsewhere): "
                f"{posixpath.basename(missing)!r} is missing between {posixpath.basename(before)!r} and "
                f"{posixpath.basename(after)!r}"
            )
    return [names[i] for i in order]


def _name_with_number(name: str, field: int, value: int) -> str:
    base = posixpath.basename(name)
    matches = list(_NUMBER.finditer(base))
    m = matches[field]
    text = str(value).zfill(len(m.group()))
    return posixpath.join(posixpath.dirname(name), base[: m.start()] + text + base[m.end():])


def _group_channels(names: list[str], where: str) -> tuple[list[str] | None, list[list[str]]]:
    tiles = sorted({t for t in (_token(_TILE, posixpath.basename(n)) for n in names) if t}, key=_natural_key)
    if len(tiles) > 1:
        raise ImageFormatError(
            f"{where}: the planes belong to {len(tiles)} tiles ({', '.join(tiles[:6])}); voxelflow reads one "
            f"stitched volume: select one tile with a glob such as '*{tiles[0]}*.tif' or stitch the tiles first"
        )
    tokens = [_token(_CHANNEL, posixpath.basename(n)) for n in names]
    keys = sorted({t.upper() for t in tokens if t}, key=_natural_key)
    if len(keys) <= 1:
        if len(keys) == 1 and None in tokens:
            stray = [posixpath.basename(n) for n, t in zip(names, tokens) if t is None]
            raise ImageFormatError(f"{where}: file(s) without the channel token {keys[0]}: {', '.join(stray[:5])}")
        return None, [_order_planes(names, where)]
    groups = {k: [] for k in keys}
    for n, t in zip(names, tokens):
        if t is None:
            raise ImageFormatError(f"{where}: {posixpath.basename(n)!r} has no channel token while other planes "
                                   f"name channels {', '.join(keys)}")
        groups[t.upper()].append(n)
    ordered = [_order_planes(groups[k], f"{where} channel {k}") for k in keys]
    counts = {k: len(g) for k, g in zip(keys, ordered)}
    if len(set(counts.values())) > 1:
        most = max(counts.values())
        short = [f"{k} has {c}" for k, c in counts.items() if c != most]
        raise ImageFormatError(f"{where}: channels have different numbers of planes ({'; '.join(short)}, "
                               f"others {most}): planes are missing")
    return keys, ordered


@dataclass(frozen=True)
class PlaneStack:
    """Array-like view of TIFF planes: ``(Z, Y, X)`` or ``(C, Z, Y, X)``; indexing reads whole planes.

    Attributes
    ----------
    fs : fsspec.AbstractFileSystem
        File system of the planes.
    files : tuple of tuple of str
        Plane paths per channel, in z order.
    plane_shape : tuple of int
        ``(Y, X)`` of every plane.
    dtype : numpy.dtype
        dtype of every plane.
    channel_axis : bool
        Whether the array has a leading channel axis.
    """

    fs: object
    files: tuple[tuple[str, ...], ...]
    plane_shape: tuple[int, int]
    dtype: np.dtype
    channel_axis: bool

    @property
    def shape(self) -> tuple[int, ...]:
        zyx = (len(self.files[0]), *self.plane_shape)
        return (len(self.files), *zyx) if self.channel_axis else zyx

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __getitem__(self, key) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        key = key + (slice(None),) * (self.ndim - len(key))
        if not self.channel_axis:
            key = (slice(0, 1), *key)
        c_sel, z_sel, y_sel, x_sel = key
        channels = range(len(self.files))[c_sel]
        zs = range(len(self.files[0]))[z_sel]
        ny, nx = len(range(self.plane_shape[0])[y_sel]), len(range(self.plane_shape[1])[x_sel])
        out = np.empty((len(channels), len(zs), ny, nx), dtype=self.dtype)
        for ci, c in enumerate(channels):
            for zi, z in enumerate(zs):
                out[ci, zi] = self.read_plane(self.files[c][z])[y_sel, x_sel]
        return out if self.channel_axis else out[0]

    def read_plane(self, name: str) -> np.ndarray:
        """Read one plane in full, checking its shape and dtype.

        Raises
        ------
        ImageFormatError
            If the file is not a TIFF, its shape or dtype differs from the first
            plane's, or its pixel data is truncated or corrupt.
        """
        where = self.fs.unstrip_protocol(name) if hasattr(self.fs, "unstrip_protocol") else name
        try:
            with self.fs.open(name, "rb") as fh, tifffile.TiffFile(fh) as tif:
                page = tif.pages[0]
                if tuple(page.shape) != self.plane_shape or np.dtype(page.dtype) != self.dtype:
                    raise ImageFormatError(
                        f"{where}: plane of shape {tuple(page.shape)} and dtype {page.dtype}, expected "
                        f"{self.plane_shape} {self.dtype} like the first plane"
                    )
                data = page.asarray()
        except ImageFormatError:
            raise
        except Exception as exc:  # tifffile raises many types for broken files
            raise ImageFormatError(f"{where}: cannot read the plane ({type(exc).__name__}: {exc}); "
                                   "the file is truncated or corrupt") from exc
        if data.shape != self.plane_shape:
            raise ImageFormatError(f"{where}: read {data.shape} pixels, expected {self.plane_shape}")
        return data


def _first_plane(fs, name: str, where: str):
    try:
        with fs.open(name, "rb") as fh, tifffile.TiffFile(fh) as tif:
            page = tif.pages[0]
            shape, dtype = tuple(page.shape), np.dtype(page.dtype)
            if len(shape) != 2:
                raise ImageFormatError(f"{where}: {posixpath.basename(name)} is not a 2-D grayscale plane "
                                       f"(shape {shape}, axes {tif.series[0].axes})")
            data_bytes = sum(page.databytecounts) if page.compression == 1 else None
            calibration = tiff_calibration(tif, page, name)
    except ImageFormatError:
        raise
    except Exception as exc:
        raise ImageFormatError(f"{where}: cannot read {posixpath.basename(name)} as TIFF ({exc})") from exc
    return shape, dtype, data_bytes, calibration


def open_planes(url, *, storage_options: dict | None = None, planes_per_chunk: int | None = None):
    """Open a folder or glob of 2-D TIFF planes lazily.

    Parameters
    ----------
    url : str or VPath
        A folder holding the planes (every ``.tif``/``.tiff`` in it) or a glob such
        as ``scan/*_C01_*.tif``; local or fsspec URL.
    storage_options : dict, optional
        fsspec options.
    planes_per_chunk : int, optional
        Planes per dask chunk; default about 32 MiB per chunk.

    Returns
    -------
    array : dask.array.Array, shape (Z, Y, X) or (C, Z, Y, X)
        dtype of the planes; chunks of whole planes (one channel each).
    facts : ImageFacts
        Axes, shape, channel names (the channel tokens, e.g. ``'C01'``) and the
        voxel size the first plane's metadata gives (z is usually unknown).

    Raises
    ------
    InvalidPathError
        No TIFF files at ``url``.
    ImageFormatError
        Stray files, gaps in the numbering, tiles mixed, channels of different
        lengths, a first plane that is not 2-D, a file shorter than one plane.
    """
    path = url if isinstance(url, VPath) else as_vpath(url, storage_options)
    where = path.url
    files = plane_files(path)
    by_name = {f["name"]: f for f in files}
    channel_names, groups = _group_channels(sorted(by_name, key=_natural_key), where)
    shape2d, dtype, data_bytes, cal = _first_plane(path.fs, groups[0][0], where)
    if data_bytes is not None:
        for f in files:
            if f["size"] is not None and f["size"] < data_bytes:
                raise ImageFormatError(
                    f"{path.fs.unstrip_protocol(f['name'])}: file of {f['size']} bytes is shorter than the "
                    f"{data_bytes} bytes of pixel data of one uncompressed {shape2d} {dtype} plane: truncated"
                )
    stack = PlaneStack(path.fs, tuple(tuple(g) for g in groups), shape2d, dtype, channel_names is not None)
    plane_bytes = shape2d[0] * shape2d[1] * dtype.itemsize
    per_chunk = planes_per_chunk or max(1, CHUNK_BYTES // max(1, plane_bytes))
    per_chunk = max(1, min(int(per_chunk), len(groups[0])))
    chunks = ((1,) if stack.channel_axis else ()) + (per_chunk, *shape2d)
    token = tokenize(where, [(f["name"], f["size"], str(f["mtime"])) for f in files], shape2d, str(dtype), chunks)
    arr = da.from_array(stack, chunks=chunks, name=f"tiff-planes-{token}", asarray=False, fancy=False,
                        meta=np.empty((0,) * stack.ndim, dtype=dtype))
    axes = ("c", "z", "y", "x") if stack.channel_axis else ("z", "y", "x")
    scale0 = tuple(1.0 if a == "c" else getattr(cal, a) for a in axes)
    facts = ImageFacts(
        url=where, format="tiff-planes", version="", name=posixpath.basename(path.path.rstrip("/")) or None,
        axes=axes, levels=("0",), shapes=(stack.shape,), scale0=scale0,
        translation0=(0.0,) * len(axes), level_factors=((1.0,) * len(axes),),
        channel_names=tuple(channel_names) if channel_names else None,
        scale_source=f"the first plane's metadata ({cal.source})",
    )
    return arr, facts

