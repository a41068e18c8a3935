"""The direct chunk-file reader must return exactly what zarr's own reader returns."""

from __future__ import annotations

import os
import tempfile

import dask
import numcodecs
import numpy as np
import pytest
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from zarr.codecs import (
    BloscCodec,
    BytesCodec,
    Crc32cCodec,
    GzipCodec,
    TransposeCodec,
    ZstdCodec,
)

from voxelflow.errors import OmeZarrError
from voxelflow.io.ome_zarr import open_ome_zarr, write_ome_zarr
from voxelflow.io.ome_zarr.fastread import ChunkReader, chunk_reader, read_dask_array

DTYPES = ["|b1", "|u1", "|i1", "<i2", ">i2", "<u4", ">i8", "<f4", ">f4", "<f8", ">c8"]


def _values(rng, shape, dtype):
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return rng.random(shape) < 0.5
    if dtype.kind == "c":
        return (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(dtype)
    if dtype.kind == "f":
        return rng.normal(size=shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(max(info.min, -1000), min(info.max, 1000), size=shape).astype(dtype)


@st.composite
def layouts(draw):
    ndim = draw(st.integers(1, 3))
    shape = tuple(draw(st.integers(1, 9)) for _ in range(ndim))
    chunks = tuple(draw(st.integers(1, s + 2)) for s in shape)
    fmt = draw(st.sampled_from([2, 3]))
    dtype = draw(st.sampled_from(DTYPES))
    compressor = draw(st.sampled_from(["blosc", "zstd", "gzip", None]))
    order = draw(st.sampled_from(["C", "F"])) if fmt == 2 else "C"
    transpose = draw(st.permutations(range(ndim))) if fmt == 3 and draw(st.booleans()) else None
    endian = draw(st.sampled_from(["little", "big"]))  # v3 byte order of the stored bytes
    fill = draw(st.sampled_from([0, 3]))
    drop = draw(st.floats(0, 0.6))
    seed = draw(st.integers(0, 2**16))
    return shape, chunks, fmt, dtype, compressor, order, transpose, endian, fill, drop, seed


def _compressors(fmt, name):
    if name is None:
        return None
    if fmt == 2:
        return {"blosc": numcodecs.Blosc(cname="lz4", shuffle=numcodecs.Blosc.SHUFFLE),
                "zstd": numcodecs.Zstd(level=1), "gzip": numcodecs.GZip(level=1)}[name]
    return {"blosc": BloscCodec(cname="lz4", shuffle="shuffle"), "zstd": ZstdCodec(level=1),
            "gzip": GzipCodec(level=1)}[name]


def _write(folder, layout):
    shape, chunks, fmt, dtype, compressor, order, transpose, endian, fill, drop, seed = layout
    rng = np.random.default_rng(seed)
    kwargs = {"order": order} if fmt == 2 else {"serializer": BytesCodec(endian=endian)}
    if transpose is not None:
        kwargs["filters"] = [TransposeCodec(order=transpose)]
    z = zarr.create_array(
        zarr.storage.LocalStore(folder), shape=shape, chunks=chunks, dtype=dtype,
        zarr_format=fmt, compressors=_compressors(fmt, compressor),
        fill_value=np.dtype(dtype).type(fill), config={"write_empty_chunks": True}, **kwargs,
    )
    z[...] = _values(rng, shape, dtype)
    chunk_files = sorted(
        os.path.join(d, f) for d, _, files in os.walk(folder) for f in files
        if f not in ("zarr.json", ".zarray", ".zattrs")
    )
    dropped = [f for f in chunk_files if rng.random() < drop]
    for f in dropped:
        os.remove(f)
    return zarr.open_array(zarr.storage.LocalStore(folder, read_only=True), mode="r"), dropped


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layouts())
def test_equals_zarr_read(layout):
    with tempfile.TemporaryDirectory() as tmp:
        z, dropped = _write(tmp, layout)
        reader = chunk_reader(z, tmp, tmp, strict=False)
        assert reader is not None
        arr = read_dask_array(reader)
        expected = z[...]
        assert arr.shape == expected.shape and arr.dtype == expected.dtype
        got = arr.compute(scheduler="threads")
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)  # also the fill value of dropped chunks
        blocks = [b for b in arr.to_delayed().ravel()]
        for block in dask.compute(*blocks):
            assert block.flags.c_contiguous and block.flags.writeable

        strict = read_dask_array(chunk_reader(z, tmp, tmp, strict=True))
        if dropped:
            with pytest.raises(OmeZarrError, match="is missing"):
                strict.compute()
        else:
            np.testing.assert_array_equal(strict.compute(), expected)


def test_blocks_are_independent_of_the_reused_read_buffer(tmp_path):
    z, _ = _write(str(tmp_path), ((8, 8), (4, 4), 3, "<u4", None, "C", None, "little", 0, 0.0, 1))
    reader = chunk_reader(z, str(tmp_path), "x", strict=False)
    first = reader((0, 0))
    reader((1, 1))
    np.testing.assert_array_equal(first, z[:4, :4])


def test_unsupported_layouts_use_zarr(tmp_path):
    sharded = zarr.create_array(zarr.storage.LocalStore(tmp_path / "s"), shape=(8, 8),
                                chunks=(2, 2), shards=(4, 4), dtype="u2")
    strings = zarr.create_array(zarr.storage.LocalStore(tmp_path / "t"), shape=(3,),
                                chunks=(2,), dtype=str)
    for z, name in ((sharded, "s"), (strings, "t")):
        assert chunk_reader(z, str(tmp_path / name), name, strict=False) is None


@pytest.mark.parametrize("compressors", ["crc", "zstd+crc", "blosc+crc", "crc+blosc"])
def test_crc32c_chunks_are_checked_and_read_like_zarr(tmp_path, compressors):
    make = {"crc": Crc32cCodec, "zstd": lambda: zarr.codecs.ZstdCodec(level=1),
            "blosc": lambda: zarr.codecs.BloscCodec(cname="lz4", shuffle="shuffle")}
    data = np.random.default_rng(3).integers(0, 5000, (9, 7)).astype("<u2")
    z = zarr.create_array(zarr.storage.LocalStore(tmp_path / "a"), shape=data.shape, chunks=(4, 3), dtype="u2",
                          compressors=[make[n]() for n in compressors.split("+")])
    z[...] = data
    reader = chunk_reader(z, str(tmp_path / "a"), "a", strict=True)
    assert reader is not None
    np.testing.assert_array_equal(read_dask_array(reader).compute(), data)
    victim = tmp_path / "a" / "c" / "1" / "1"
    raw = bytearray(victim.read_bytes())
    raw[len(raw) // 2] ^= 0x10
    victim.write_bytes(bytes(raw))
    with pytest.raises(OmeZarrError, match="crc32c|cannot be decoded"):
        reader((1, 1))
    with pytest.raises(ValueError):  # zarr itself refuses the chunk too
        z[4:8, 3:6]


def _readers(arr):
    return [getattr(v, "value", None) for v in dict(arr.__dask_graph__()).values()]


def test_open_ome_zarr_takes_the_fast_path_only_for_local_folders(tmp_path):
    data = np.arange(6 * 10 * 12, dtype=np.uint16).reshape(6, 10, 12)
    folder = write_ome_zarr(data, str(tmp_path / "a.ome.zarr"), chunks=4)
    zipped = write_ome_zarr(data, str(tmp_path / "a.ome.zarr.zip"), chunks=4)
    sharded = write_ome_zarr(data, str(tmp_path / "b.ome.zarr"), chunks=2, shards=2)
    fast, _ = open_ome_zarr(folder.url)
    assert any(isinstance(r, ChunkReader) for r in _readers(fast))
    for url in (zipped.url, sharded.url):
        slow, _ = open_ome_zarr(url)
        assert not any(isinstance(r, ChunkReader) for r in _readers(slow))
        np.testing.assert_array_equal(slow.compute(), data)
    np.testing.assert_array_equal(fast.compute(), data)
    sliced, _ = open_ome_zarr(folder.url + "?slices=[1:5, ::-2, 3]")
    np.testing.assert_array_equal(sliced.compute(), data[1:5, ::-2, 3])
