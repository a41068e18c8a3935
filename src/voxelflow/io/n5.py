"""N5 datasets as lazy dask arrays (BigStitcher ``dataset.xml`` on top: :mod:`voxelflow.io.bigstitcher`).

N5 is simple enough to read directly (no extra dependency): a dataset folder has
``attributes.json`` (``dimensions`` and ``blockSize`` listed fastest axis first,
``dataType``, ``compression``) and one file per block at ``<i_x>/<i_y>/<i_z>``. A
block file is a big-endian header (``uint16`` mode, ``uint16`` number of
dimensions, one ``uint32`` size per dimension, for mode 1 a ``uint32`` element
count) followed by the compressed big-endian elements, fastest axis first, i.e. a
C-order ``(z, y, x)`` array. Absent blocks are empty (zeros), as N5 defines them.
"""

from __future__ import annotations

import bz2
import json
import lzma
import posixpath
import struct
import zlib
from dataclasses import dataclass

import dask.array as da
import numpy as np
from dask.base import tokenize

from voxelflow.errors import ImageFormatError, InvalidInputError, InvalidPathError
from voxelflow.io.imagemeta import ImageFacts, length_in_um
from voxelflow.paths import VPath, as_vpath

__all__ = ["N5Array", "as_dask", "dataset", "is_n5", "open_n5", "read_json"]

_DTYPES = ("uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64", "float32", "float64")
#: Bytes of one dask chunk (whole N5 blocks).
CHUNK_BYTES = 32 * 2**20


def read_json(path: VPath, where: str) -> dict:
    """An N5 ``attributes.json`` (``{}`` when absent); invalid JSON raises ImageFormatError naming ``where``."""
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    except (ValueError, UnicodeDecodeError) as exc:
        raise ImageFormatError(f"{path.url}: invalid JSON ({exc}) in {where}") from exc


def is_n5(path: VPath) -> bool:
    """True if ``path`` is an N5 container, group or dataset (has an N5 ``attributes.json``)."""
    attrs = path / "attributes.json"
    if not attrs.isfile():
        return False
    try:
        meta = json.loads(attrs.read_bytes())
    except ValueError:
        return False
    return isinstance(meta, dict) and ("n5" in meta or "dimensions" in meta or (path / "s0").isdir())


def _decompress(raw: bytes, compression: dict, where: str) -> bytes:
    kind = compression.get("type", "raw")
    if kind == "raw":
        return raw
    if kind == "gzip":
        return zlib.decompressobj(wbits=47).decompress(raw)  # gzip or zlib header, detected
    if kind == "bzip2":
        return bz2.decompress(raw)
    if kind == "xz":
        return lzma.decompress(raw)
    if kind in ("blosc", "zstd"):
        import numcodecs

        return numcodecs.Blosc().decode(raw) if kind == "blosc" else numcodecs.Zstd().decode(raw)
    raise ImageFormatError(f"{where}: N5 compression {kind!r} is not supported "
                           "(supported: raw, gzip, bzip2, xz, blosc, zstd)")


@dataclass(frozen=True)
class N5Array:
    """Array-like view of one N5 dataset in C order ``(..., z, y, x)``; indexing reads whole blocks.

    Attributes
    ----------
    fs : fsspec.AbstractFileSystem
        File system of the container.
    root : str
        Dataset folder on ``fs``.
    shape, blocks : tuple of int
        Array and block shape, slowest axis first (the reverse of the JSON lists).
    dtype : numpy.dtype
        Native-endian element type.
    compression : dict
        The ``compression`` attribute.
    """

    fs: object
    root: str
    shape: tuple[int, ...]
    blocks: tuple[int, ...]
    dtype: np.dtype
    compression: dict

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def read_block(self, index: tuple[int, ...]) -> np.ndarray | None:
        """Block ``index`` (slowest axis first) as stored, or None when absent.

        Raises
        ------
        ImageFormatError
            A header or payload that does not match the dataset's attributes.
        """
        name = posixpath.join(self.root, *(str(i) for i in reversed(index)))
        where = self.fs.unstrip_protocol(name)
        try:
            with self.fs.open(name, "rb") as fh:
                raw = fh.read()
        except FileNotFoundError:
            return None
        try:
            mode, ndim = struct.unpack_from(">HH", raw, 0)
            if mode not in (0, 1) or ndim != self.ndim:
                raise ImageFormatError(f"{where}: N5 block header has mode {mode} and {ndim} dimensions, "
                                       f"expected mode 0 or 1 and {self.ndim}")
            size = struct.unpack_from(f">{ndim}I", raw, 4)[::-1]
            offset = 4 + 4 * ndim + (4 if mode == 1 else 0)
            data = _decompress(raw[offset:], self.compression, where)
        except (struct.error, zlib.error, OSError, EOFError, lzma.LZMAError, RuntimeError, ValueError) as exc:
            raise ImageFormatError(f"{where}: cannot decode the N5 block ({type(exc).__name__}: {exc}); "
                                   "it is truncated or corrupt") from exc
        count = int(np.prod(size))
        if len(data) != count * self.dtype.itemsize:
            raise ImageFormatError(f"{where}: N5 block of size {size} holds {len(data)} bytes, expected "
                                   f"{count * self.dtype.itemsize}: truncated or corrupt")
        expect = tuple(min(b, n - i * b) for i, b, n in zip(index, self.blocks, self.shape))
        if any(s < e for s, e in zip(size, expect)):
            raise ImageFormatError(f"{where}: N5 block has size {size}, smaller than the {expect} it must cover")
        block = np.frombuffer(data, dtype=self.dtype.newbyteorder(">")).reshape(size)
        return block[tuple(slice(0, e) for e in expect)].astype(self.dtype)

    def __getitem__(self, key) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        key = key + (slice(None),) * (self.ndim - len(key))
        ranges = [range(n)[k] for n, k in zip(self.shape, key)]
        if any(r.step != 1 for r in ranges):
            raise ValueError("N5Array supports only contiguous slices")
        out = np.zeros(tuple(len(r) for r in ranges), dtype=self.dtype)
        if out.size == 0:
            return out
        grids = [range(r.start // b, (r.stop - 1) // b + 1) for r, b in zip(ranges, self.blocks)]
        for index in np.ndindex(*(len(g) for g in grids)):
            bidx = tuple(g[i] for g, i in zip(grids, index))
            block = self.read_block(bidx)
            if block is None:
                continue
            src, dst = [], []
            for r, b, i in zip(ranges, self.blocks, bidx):
                lo, hi = max(r.start, i * b), min(r.stop, (i + 1) * b)
                src.append(slice(lo - i * b, hi - i * b))
                dst.append(slice(lo - r.start, hi - r.start))
            out[tuple(dst)] = block[tuple(src)]
        return out


def dataset(path: VPath, where: str) -> N5Array:
    """The N5 dataset at ``path`` (its attributes checked: dimensions, block size, data type, compression)."""
    attrs = read_json(path / "attributes.json", where)
    dims, blocks, dtype = attrs.get("dimensions"), attrs.get("blockSize"), attrs.get("dataType")
    if not (isinstance(dims, list) and isinstance(blocks, list) and len(dims) == len(blocks) and dims):
        raise ImageFormatError(f"{path.url}: not an N5 dataset: attributes.json needs 'dimensions' and "
                               f"'blockSize' of equal length, got {dims!r} and {blocks!r}")
    if dtype not in _DTYPES:
        raise ImageFormatError(f"{path.url}: N5 dataType {dtype!r} is not supported; expected one of {_DTYPES}")
    compression = attrs.get("compression", {"type": "raw"})
    if isinstance(compression, str):  # N5 before 1.0 wrote the compression as a string
        compression = {"type": compression}
    return N5Array(path.fs, path.path, tuple(int(d) for d in reversed(dims)),
                   tuple(int(b) for b in reversed(blocks)), np.dtype(dtype), compression)


def _dask_chunks(arr: N5Array) -> tuple[int, ...]:
    chunks = [min(b, n) for b, n in zip(arr.blocks, arr.shape)]
    for i in range(arr.ndim):  # whole blocks, grown along the slowest axes first
        grow = max(1, CHUNK_BYTES // (int(np.prod(chunks)) * arr.dtype.itemsize))
        chunks[i] = min(arr.shape[i], chunks[i] * grow)
    return tuple(chunks)


def as_dask(arr: N5Array, where: str) -> da.Array:
    """A lazy dask array of ``arr``: whole N5 blocks per chunk, about CHUNK_BYTES each; keyed by files and mtime."""
    chunks = _dask_chunks(arr)
    token = tokenize(where, arr.root, arr.shape, arr.blocks, str(arr.dtype), arr.compression, _mtime(arr))
    return da.from_array(arr, chunks=chunks, name=f"n5-{token}", asarray=False, fancy=False,
                         meta=np.empty((0,) * arr.ndim, dtype=arr.dtype))


def _mtime(arr: N5Array) -> str:
    try:
        return str(arr.fs.info(posixpath.join(arr.root, "attributes.json")).get("mtime"))
    except OSError:
        return ""


def _space_axes(ndim: int, attrs: dict, where: str) -> tuple[str, ...]:
    names = attrs.get("axes")
    if isinstance(names, list) and len(names) == ndim:
        mapped = tuple(str(a).lower() for a in reversed(names))
        if set(mapped) <= set("tczyx") and len(set(mapped)) == ndim:
            order = sorted(range(ndim), key=lambda i: "tczyx".index(mapped[i]))
            if order == list(range(ndim)):
                return mapped
    if ndim in (2, 3):
        return ("z", "y", "x")[-ndim:]
    raise ImageFormatError(f"{where}: an N5 dataset with {ndim} dimensions needs an 'axes' attribute naming "
                           "t, c, z, y, x (fastest first)")


def _n5_resolution(attrs: dict, axes, where: str) -> tuple[float | None, ...] | None:
    """Voxel size per axis from N5-viewer's ``pixelResolution`` or ``resolution`` (+ ``units``)."""
    pr = attrs.get("pixelResolution")
    if isinstance(pr, dict) and isinstance(pr.get("dimensions"), list):
        values, units = pr["dimensions"], [pr.get("unit", "um")] * len(pr["dimensions"])
    elif isinstance(attrs.get("resolution"), list):
        values = attrs["resolution"]
        units = attrs.get("units") if isinstance(attrs.get("units"), list) else [attrs.get("unit", "um")] * len(values)
    else:
        return None
    if len(values) != len(axes):
        raise ImageFormatError(f"{where}: resolution {values} has {len(values)} entries for {len(axes)} axes")
    out = tuple(length_in_um(v, u, f"{where} resolution") if a in "zyx" else 1.0
                for v, u, a in zip(reversed(values), reversed(units), axes))
    return out


def open_n5(url, level: int = 0, *, storage_options: dict | None = None):
    """Open an N5 dataset, or one level of an N5 multiscale group (``s0``, ``s1``, ...), lazily.

    Parameters
    ----------
    url : str or VPath
        The dataset folder, or a group holding ``s0, s1, ...``; local or fsspec URL.
    level : int
        Level of a multiscale group.
    storage_options : dict, optional
        fsspec options.

    Returns
    -------
    array : dask.array.Array
        ``(z, y, x)`` for 3-D datasets (N5 lists dimensions fastest first; they are reversed).
    facts : ImageFacts
        Shapes of all levels; voxel size from ``pixelResolution`` or ``resolution``
        when present (level factors from ``downsamplingFactors``, else shape ratios).

    Raises
    ------
    InvalidPathError
        Nothing N5 at ``url``.
    ImageFormatError
        Malformed attributes; on compute, malformed or truncated blocks.
    """
    path = url if isinstance(url, VPath) else as_vpath(url, storage_options)
    where = path.url
    if not is_n5(path):
        raise InvalidPathError(f"{where} is not an N5 dataset or group (no N5 attributes.json)")
    attrs = read_json(path / "attributes.json", where)
    if "dimensions" in attrs:
        level_paths, group_attrs = [path], {}
    else:
        level_paths, group_attrs = [], attrs
        while (path / f"s{len(level_paths)}" / "attributes.json").isfile():
            level_paths.append(path / f"s{len(level_paths)}")
    if not 0 <= level < len(level_paths):
        raise InvalidInputError(f"{where}: level {level} is out of range; {len(level_paths)} level(s)")
    arrays = [dataset(p, where) for p in level_paths]
    if len({a.ndim for a in arrays}) != 1 or len({a.dtype for a in arrays}) != 1:
        raise ImageFormatError(f"{where}: pyramid levels differ in dimensions or dtype")
    level_attrs = [read_json(p / "attributes.json", where) for p in level_paths]
    axes = _space_axes(arrays[0].ndim, level_attrs[0] | group_attrs, where)
    factors = []
    for arr, la in zip(arrays, level_attrs):
        f = la.get("downsamplingFactors")
        if isinstance(f, list) and len(f) == arr.ndim:
            factors.append(tuple(float(v) for v in reversed(f)))
        else:
            factors.append(tuple(a / b for a, b in zip(arrays[0].shape, arr.shape)))
    resolution = _n5_resolution(level_attrs[0], axes, where) or _n5_resolution(group_attrs, axes, where)
    scale0 = resolution or tuple(None if a in "zyx" else 1.0 for a in axes)
    facts = ImageFacts(
        url=where, format="n5", version=str(read_json(path / "attributes.json", where).get("n5", "")),
        name=path.name, axes=axes, levels=tuple(p.name for p in level_paths) if group_attrs else ("0",),
        shapes=tuple(a.shape for a in arrays), scale0=scale0, translation0=(0.0,) * len(axes),
        level_factors=tuple(factors), scale_source="the N5 attributes (pixelResolution / resolution)",
    )
    return as_dask(arrays[level], where), facts
