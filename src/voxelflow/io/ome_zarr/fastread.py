"""Direct chunk reads of local, unsharded zarr arrays, bypassing zarr's event loop.

zarr 3 runs every read through one asyncio event-loop thread: each dask task
blocks on ``sync()`` while the loop fetches and (for most codecs) hands
decoding to yet another thread pool. For a local folder of whole-chunk files
that machinery costs more CPU than the decoding itself. Here each dask task
reads its chunk file and decodes it with numcodecs on the calling thread
(blosc, zstd and gzip release the GIL), so chunks decode in parallel on the
dask workers.

Only layouts whose decoding is fully understood take this path (see
:func:`chunk_reader`); everything else (remote stores, zip archives, sharding,
unknown codecs, non-numeric dtypes) stays on zarr's own reader.

Every chunk is proved to be what the metadata declares before it is returned:
an empty file, a blosc frame whose header disagrees with the file size or the
chunk's byte size, a decoding error or a decoded size other than the chunk's
raises :class:`~voxelflow.errors.OmeZarrError` naming the chunk file (blosc
itself does not check that a frame is whole, and a reused buffer must never
stand in for missing bytes). A chunk that ends with a crc32c checksum (the zarr v3
``crc32c`` codec, which voxelflow writes into every image) is verified before it is
decoded: a flipped byte anywhere in it raises instead of decoding to wrong voxels.
"""

from __future__ import annotations

import math
import os
import struct
import threading
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import dask.array as da
import google_crc32c
import numcodecs
import numpy as np
import zarr
from dask.base import tokenize
from dask.delayed import delayed
from zarr.codecs import BloscCodec, BytesCodec, Crc32cCodec, GzipCodec, TransposeCodec, ZstdCodec

from voxelflow.errors import OmeZarrError

__all__ = ["ChunkReader", "chunk_reader", "read_dask_array"]

#: Size of the header of a blosc frame (version, flags, typesize, nbytes, blocksize, cbytes).
_BLOSC_HEADER = 16


class Crc32cCheck:
    """Decoder step of the zarr v3 ``crc32c`` codec: the chunk bytes end with their crc32c (4 bytes, little endian)."""

    def __eq__(self, other) -> bool:
        return isinstance(other, Crc32cCheck)

    def __hash__(self) -> int:
        return hash(Crc32cCheck)

    def __repr__(self) -> str:
        return "Crc32cCheck()"


@dataclass(frozen=True)
class ChunkReader:
    """Everything needed to read and decode one chunk file of a zarr array.

    Attributes
    ----------
    root : str
        Folder of the array (its metadata file lives there).
    keys : callable
        ``keys(coords) -> str``: the chunk's key relative to ``root``.
    label : str
        Key prefix used in error messages (the array path inside the store).
    url : str
        Image location for error messages.
    shape, chunks : tuple of int
        Array shape and (regular) chunk shape.
    stored_dtype : numpy.dtype
        dtype of the encoded bytes (byte order as stored).
    dtype : numpy.dtype
        dtype of the returned array (``zarray.dtype``, as zarr returns it).
    order : {'C', 'F'}
        Memory order of the encoded chunk.
    transpose : tuple of int or None
        zarr v3 ``transpose`` codec order (the stored chunk is
        ``chunk.transpose(transpose)``).
    decoders : tuple of numcodecs codecs or Crc32cCheck
        Applied in this order to the file bytes (outermost encoding first).
    fill_value : scalar
        Value of chunks that were never written.
    strict : bool
        Raise :class:`OmeZarrError` for a missing chunk instead of filling.
    """

    root: str
    keys: object
    label: str
    url: str
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    stored_dtype: np.dtype
    dtype: np.dtype
    order: str
    transpose: tuple[int, ...] | None
    decoders: tuple
    fill_value: object
    strict: bool

    def __call__(self, block_id: tuple[int, ...]) -> np.ndarray:
        """Read chunk ``block_id`` (grid coordinates) and return it cut to the array's edge.

        Returns
        -------
        numpy.ndarray, writeable, dtype ``self.dtype``, shape of the chunk
        (smaller than ``self.chunks`` at the far edges of the array).
        """
        key = self.keys(tuple(block_id))
        part = tuple(
            slice(0, min(c, s - i * c)) for i, c, s in zip(block_id, self.chunks, self.shape)
        )
        where = os.path.join(self.root, key)
        try:
            with open(where, "rb", buffering=0) as f:
                size = os.fstat(f.fileno()).st_size
                # undecoded chunks go straight into their own array; encoded ones into a
                # reused per-thread buffer (fresh buffers cost page faults, not reads)
                raw = np.empty(size, np.uint8) if not self.decoders else _scratch(size)
                _read_fully(f, raw, where)
        except FileNotFoundError:
            if self.strict:
                name = f"{self.label}/{key}" if self.label else key
                raise OmeZarrError(
                    f"chunk {name!r} of {self.url} is missing (deleted or never written)"
                ) from None
            return np.full(tuple(p.stop for p in part), self.fill_value, dtype=self.dtype)
        except OSError as exc:
            raise OmeZarrError(f"{self.url}: cannot read chunk file {where!r}: {exc}") from exc
        if size == 0:
            raise OmeZarrError(f"{self.url}: chunk file {where!r} is empty (0 bytes; truncated or damaged)")
        chunk = self._decode(raw, where)
        if any(p.stop != c for p, c in zip(part, self.chunks)):
            chunk = np.ascontiguousarray(chunk[part])
        return chunk

    @cached_property
    def _stored(self) -> tuple[tuple[int, ...], int]:
        """Shape and byte size of an encoded chunk."""
        shape = self.chunks if self.transpose is None else tuple(self.chunks[i] for i in self.transpose)
        return shape, math.prod(shape) * self.stored_dtype.itemsize

    def _decode(self, raw: np.ndarray, where: str) -> np.ndarray:
        stored_shape, nbytes = self._stored
        data = raw
        last = len(self.decoders) - 1
        try:
            for i, codec in enumerate(self.decoders):
                if isinstance(codec, Crc32cCheck):
                    data = _checked_crc32c(data, where)
                    continue
                if isinstance(codec, numcodecs.Blosc):
                    _check_blosc_frame(data, nbytes if i == last else None, where)
                    if i == last:
                        # the header was checked: decompress straight into a fresh writeable buffer
                        data = codec.decode(data, out=np.empty(nbytes, np.uint8))
                        continue
                data = codec.decode(data)
        except OmeZarrError:
            raise
        except Exception as exc:  # noqa: BLE001  any codec failure means damaged bytes
            raise OmeZarrError(
                f"{self.url}: chunk file {where!r} cannot be decoded (damaged?): {type(exc).__name__}: {exc}"
            ) from exc
        flat = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data
        flat = flat.reshape(-1).view(np.uint8)
        if flat.size != nbytes:
            raise OmeZarrError(
                f"{self.url}: chunk file {where!r} decoded to {flat.size} bytes, expected {nbytes} "
                f"({stored_shape} of {self.stored_dtype})"
            )
        chunk = flat.view(self.stored_dtype).reshape(stored_shape, order=self.order)
        if self.transpose is not None:
            chunk = chunk.transpose(np.argsort(self.transpose))
        if chunk.dtype != self.dtype:
            return chunk.astype(self.dtype, order="C")
        if not (chunk.flags.c_contiguous and chunk.flags.writeable) or (
            self.decoders and np.may_share_memory(chunk, raw)
        ):
            # like zarr: a C-ordered array of its own (not a view of a reused buffer)
            return np.array(chunk, order="C")
        return chunk


_local = threading.local()


def _scratch(size: int) -> np.ndarray:
    """A per-thread reusable byte buffer of at least ``size`` bytes, cut to ``size``."""
    buf = getattr(_local, "buf", None)
    if buf is None or buf.size < size:
        buf = _local.buf = np.empty(max(size, 1 << 20), np.uint8)
    return buf[:size]


def _read_fully(f, out: np.ndarray, where: str) -> None:
    view = memoryview(out)
    done = 0
    while done < out.size:
        got = f.readinto(view[done:])
        if not got:
            raise OmeZarrError(f"chunk file {where!r} ended early (truncated while being read?)")
        done += got


def _checked_crc32c(data, where: str) -> np.ndarray:
    """The bytes before the 4-byte crc32c trailer, after checking them against it."""
    buf = np.frombuffer(data, np.uint8) if not isinstance(data, np.ndarray) else data.reshape(-1).view(np.uint8)
    if buf.size < 4:
        raise OmeZarrError(f"chunk file {where!r} holds {buf.size} bytes: too short for its crc32c checksum")
    inner = buf[:-4]
    stored = int.from_bytes(buf[-4:].tobytes(), "little")
    computed = google_crc32c.value(inner)
    if computed != stored:
        raise OmeZarrError(
            f"chunk file {where!r} fails its crc32c checksum (stored {stored:08x}, computed {computed:08x}): "
            "the chunk is damaged"
        )
    return inner


def _check_blosc_frame(data, nbytes: int | None, where: str) -> None:
    """Refuse a blosc frame that is not whole or does not hold ``nbytes`` decoded bytes.

    The 16-byte blosc header records the decoded size and the frame's own size;
    blosc decompresses a cut frame without noticing, so both are checked here.
    """
    buf = memoryview(data).cast("B")
    if buf.nbytes < _BLOSC_HEADER:
        raise OmeZarrError(f"chunk file {where!r} holds {buf.nbytes} bytes: too short for a blosc frame")
    decoded, _, frame = struct.unpack_from("<III", buf, 4)
    if frame != buf.nbytes:
        raise OmeZarrError(
            f"chunk file {where!r} holds {buf.nbytes} bytes but its blosc header says the frame has {frame} "
            "(truncated or damaged)"
        )
    if nbytes is not None and decoded != nbytes:
        raise OmeZarrError(
            f"chunk file {where!r} decodes to {decoded} bytes but a chunk of this array has {nbytes} "
            "(the file belongs to another array, or the metadata was changed)"
        )


def _v3_plan(meta) -> tuple[np.dtype, str, tuple[int, ...] | None, tuple] | None:
    """Stored dtype, order, transpose and decoders of a v3 array, or None if unsupported."""
    codecs = list(meta.codecs)
    transpose = None
    if codecs and isinstance(codecs[0], TransposeCodec):
        transpose = tuple(int(i) for i in codecs.pop(0).order)
    if not codecs or not isinstance(codecs[0], BytesCodec):
        return None
    endian = codecs.pop(0).endian
    stored = meta.dtype.to_native_dtype()
    if endian is not None and stored.itemsize > 1:
        stored = stored.newbyteorder("<" if endian.value == "little" else ">")
    decoders = []
    for codec in reversed(codecs):
        if isinstance(codec, Crc32cCodec):
            decoders.append(Crc32cCheck())
        elif isinstance(codec, BloscCodec):
            decoders.append(numcodecs.Blosc())  # the blosc header describes the frame
        elif isinstance(codec, ZstdCodec):
            decoders.append(numcodecs.Zstd())
        elif isinstance(codec, GzipCodec):
            decoders.append(numcodecs.GZip())
        else:
            return None
    return stored, "C", transpose, tuple(decoders)


def _v2_plan(meta) -> tuple[np.dtype, str, None, tuple] | None:
    """Stored dtype, order and decoders of a v2 array, or None if unsupported."""
    stored = meta.dtype.to_native_dtype()
    endian = getattr(meta.dtype, "endianness", None)
    if endian is not None and stored.itemsize > 1:
        stored = stored.newbyteorder("<" if endian == "little" else ">")
    decoders = ([meta.compressor] if meta.compressor is not None else []) + list(
        reversed(meta.filters or ())
    )
    if not all(isinstance(c, numcodecs.abc.Codec) for c in decoders):
        return None
    return stored, meta.order, None, tuple(decoders)


def chunk_reader(zarray: zarr.Array, root: Path | str, url: str, strict: bool) -> ChunkReader | None:
    """A :class:`ChunkReader` for ``zarray`` stored under the local folder ``root``, if possible.

    Parameters
    ----------
    zarray : zarr.Array
        The opened array (its metadata decides what is supported).
    root : path
        Local folder of the store the array was opened from.
    url : str
        Image location for error messages.
    strict : bool
        Missing chunks raise instead of reading as the fill value.

    Returns
    -------
    ChunkReader or None
        None when the array needs zarr's own reader: sharded, storage
        transformers, a codec other than bytes/transpose/blosc/zstd/gzip/crc32c (v3)
        or a non-numcodecs codec (v2), or a dtype that is not bool/int/float/complex.
    """
    meta = zarray.metadata
    dtype = np.dtype(zarray.dtype)
    if dtype.kind not in "biufc" or zarray.ndim == 0 or 0 in zarray.shape:
        return None
    if meta.zarr_format == 3:
        if meta.shards is not None or meta.storage_transformers:
            return None
        plan = _v3_plan(meta)
    else:
        plan = _v2_plan(meta)
    if plan is None:
        return None
    stored, order, transpose, decoders = plan
    fill = zarray.fill_value
    return ChunkReader(
        root=os.path.join(str(root), *zarray.path.split("/")) if zarray.path else str(root),
        keys=meta.encode_chunk_key,
        label=zarray.path,
        url=url,
        shape=tuple(int(s) for s in zarray.shape),
        chunks=tuple(int(c) for c in zarray.chunks),
        stored_dtype=np.dtype(stored),
        dtype=dtype,
        order=order,
        transpose=transpose,
        decoders=decoders,
        fill_value=dtype.type(0) if fill is None else fill,
        strict=strict,
    )


def _read_block(reader: ChunkReader, block_id=None) -> np.ndarray:
    return reader(block_id)


def read_dask_array(reader: ChunkReader) -> da.Array:
    """One dask task per chunk file, each a direct :class:`ChunkReader` call.

    The array is a blockwise layer, so element-wise steps (a threshold) fuse
    into the read tasks when the graph is optimized.
    """
    chunks = tuple(
        (c,) * (s // c) + ((s % c,) if s % c else ()) for s, c in zip(reader.shape, reader.chunks)
    )
    meta_file = next(
        (os.path.join(reader.root, m) for m in ("zarr.json", ".zarray") if os.path.exists(os.path.join(reader.root, m))),
        reader.root,
    )
    # the metadata file's stamp keeps names distinct when an image is rewritten in place
    stat = os.stat(meta_file)
    token = tokenize(reader.root, reader.shape, reader.chunks, reader.dtype, reader.stored_dtype,
                     reader.transpose, reader.order, reader.strict, stat.st_mtime_ns, stat.st_size)
    # the reader is one graph node (shipped to a worker once, visible to graph inspection)
    node = delayed(reader, name=f"vf-chunkreader-{token}", pure=True)
    return da.map_blocks(
        _read_block, node, name=f"vf-read-{token}", chunks=chunks, dtype=reader.dtype,
        meta=np.empty((0,) * len(reader.shape), reader.dtype),
    )
