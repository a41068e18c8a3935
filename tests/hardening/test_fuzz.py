"""Fuzzing the OME-Zarr reader: mutated metadata and chunk bytes give a voxelflow error or the right voxels.

Never another exception, never wrong voxels. The mutation space is what a reader can
prove without checksums (blosc frames carry none): truncated, extended, emptied or
replaced chunk files, edited sizes in a frame header, and any edit of the NGFF
metadata or of an array's shape (smaller, or beyond its stored chunks), chunk shape
and data type. With a crc32c codec
(images that carry checksums) any byte of a chunk may change.
"""

from __future__ import annotations

import json
import math

import dask
import numpy as np
import pytest
import zarr
from hardening_helpers import array_meta_file, chunk_files, group_meta_file, tiny_volume, write_tiny_image
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import voxelflow
from voxelflow import errors

FUZZ = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 70000) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=6) | st.sampled_from(["0", "1", "../0", "zarr.json", "scale", "translation", "space", "z"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=6,
)


def _check(url, vol):
    """A voxelflow error, or exactly the stored voxels (a crop of them if the shape was made smaller).

    ``vol`` is the level-0 array, or a dict of the original arrays by level path (the
    metadata may legitimately make another stored level the opened one).
    """
    try:
        arr, meta = voxelflow.open_ome_zarr(url)
        with dask.config.set(scheduler="sync"):
            got = arr.compute()
    except errors.VoxelflowError:
        return "error"
    if isinstance(vol, dict):
        path = meta.levels[meta.level]
        assert path in vol, f"opened {path!r}, which is not a stored level"
        vol = vol[path]
    if got.size == 0:
        return "empty"  # no voxels, so none wrong (a shape edited to hold nothing)
    assert got.ndim == vol.ndim and all(g <= v for g, v in zip(got.shape, vol.shape)), got.shape
    expected = vol[tuple(slice(0, s) for s in got.shape)]
    if got.dtype.itemsize == vol.dtype.itemsize and got.dtype != vol.dtype:
        got = got.view(vol.dtype)  # the same bytes declared as another type of the same size
    np.testing.assert_array_equal(got, expected)
    return "voxels"


def _paths(doc, prefix=()):
    """Every path into a JSON document (keys and list indices)."""
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _paths(v, (*prefix, i))


def _mutate(doc, path, action, value):
    if not path:
        return value if action == "replace" else doc
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    if action == "delete":
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return doc


@FUZZ
@given(version=st.sampled_from(["0.4", "0.5"]), data=st.data())
def test_mutated_ngff_metadata(tmp_path_factory, version, data):
    url, vol = write_tiny_image(tmp_path_factory.mktemp("meta"), version=version, levels=2, factors=2)
    levels = {"0": vol, "1": zarr.open_array(f"{url}/1", mode="r")[...]}
    meta = group_meta_file(url)
    doc = json.loads(meta.read_text())
    attrs_root = ("attributes",) if version == "0.5" else ()
    paths = [p for p in _paths(doc) if p[: len(attrs_root)] == attrs_root and len(p) > len(attrs_root)]
    path = data.draw(st.sampled_from(paths))
    action = data.draw(st.sampled_from(["replace", "delete"]))
    value = data.draw(json_values)
    meta.write_text(json.dumps(_mutate(doc, path, action, value)))
    _check(url, levels)


@FUZZ
@given(version=st.sampled_from(["0.4", "0.5"]), data=st.data())
def test_mutated_array_geometry(tmp_path_factory, version, data):
    url, vol = write_tiny_image(tmp_path_factory.mktemp("geom"), version=version)
    meta = array_meta_file(url)
    doc = json.loads(meta.read_text())
    field = data.draw(st.sampled_from(["shape", "chunks", "dtype"]))
    if field == "shape":
        # a shape grown but still ending inside the last stored chunk would read that chunk's
        # padding, which no reader can tell from data without a checksum: not in the mutation space
        doc["shape"] = [data.draw(st.integers(0, n) | st.integers(-(-n // 4) * 4 + 1, 20)) for n in vol.shape]
    elif field == "chunks":
        chunks = data.draw(st.lists(st.integers(1, 8), min_size=3, max_size=3))
        if version == "0.5":
            doc["chunk_grid"]["configuration"]["chunk_shape"] = chunks
        else:
            doc["chunks"] = chunks
    else:
        dtype = np.dtype(data.draw(st.sampled_from(["uint8", "int16", "uint32", "float32", "float64", "int64"])))
        if version == "0.5":
            doc["data_type"] = dtype.name
            doc["fill_value"] = 0
            for codec in doc["codecs"]:
                if codec["name"] == "blosc":
                    codec["configuration"]["typesize"] = dtype.itemsize
        else:
            doc["dtype"] = dtype.str
    meta.write_text(json.dumps(doc))
    _check(url, vol)


@FUZZ
@given(version=st.sampled_from(["0.4", "0.5"]), data=st.data())
def test_mutated_chunk_bytes(tmp_path_factory, version, data):
    url, vol = write_tiny_image(tmp_path_factory.mktemp("bytes"), version=version)
    victim = data.draw(st.sampled_from(chunk_files(url)))
    raw = victim.read_bytes()
    action = data.draw(st.sampled_from(["truncate", "extend", "empty", "random", "size_fields", "other_chunk"]))
    if action == "truncate":
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    elif action == "extend":
        raw = raw + data.draw(st.binary(min_size=1, max_size=64))
    elif action == "empty":
        raw = b""
    elif action == "random":
        raw = data.draw(st.binary(min_size=0, max_size=2 * len(raw)))
    elif action == "size_fields":  # decoded size, block size and frame size of the blosc header
        pos = data.draw(st.integers(4, 15))
        mutated = bytearray(raw)
        mutated[pos] ^= data.draw(st.integers(1, 255))
        raw = bytes(mutated)
    else:  # a chunk of a different array (other size or dtype)
        other = data.draw(st.sampled_from([np.uint8, np.uint32, np.float64]))
        import numcodecs

        raw = numcodecs.Blosc(cname="lz4").encode(tiny_volume((4, 4, 4), dtype=other, seed=7).tobytes())
    victim.write_bytes(raw)
    _check(url, vol)


@FUZZ
@given(data=st.data())
def test_any_byte_of_a_checksummed_chunk(tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("crc")
    vol = tiny_volume()
    url = str(folder / "crc.ome.zarr")
    group = zarr.open_group(url, mode="w", zarr_format=3)
    arr = group.create_array("0", shape=vol.shape, dtype=vol.dtype, chunks=(4, 4, 4),
                             compressors=[zarr.codecs.BloscCodec(), zarr.codecs.Crc32cCodec()])
    arr[:] = vol
    group.attrs["ome"] = {"version": "0.5", "multiscales": [{
        "axes": [{"name": a, "type": "space"} for a in "zyx"],
        "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1.0, 1.0, 1.0]}]}],
    }]}
    victim = data.draw(st.sampled_from(chunk_files(url)))
    original = victim.read_bytes()
    raw = bytearray(original)
    for _ in range(data.draw(st.integers(1, 3))):
        raw[data.draw(st.integers(0, len(raw) - 1))] ^= data.draw(st.integers(1, 255))
    victim.write_bytes(bytes(raw))
    outcome = _check(url, vol)
    assert outcome == "error" or bytes(raw) == original  # flips that cancel out leave the chunk intact


def test_fuzz_checker_catches_wrong_voxels(tmp_path):
    # the property is only as good as _check: a silently changed voxel must fail it
    url, vol = write_tiny_image(tmp_path)
    z = zarr.open_array(str(tmp_path / "img.ome.zarr" / "0"), mode="r+")
    z[0, 0, 0] = int(vol[0, 0, 0]) + 1
    with pytest.raises(AssertionError):
        _check(url, vol)
    assert math.isfinite(float(vol.mean()))
