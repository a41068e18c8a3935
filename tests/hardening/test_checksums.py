"""Checksums: a flipped byte inside a chunk voxelflow wrote is an error on every read path, never wrong voxels.

blosc checks nothing inside a frame, so voxelflow ends every zarr v3 chunk it writes
(images, label images, conversions, cached arrays; inside shards too) with the zarr
``crc32c`` codec. Each case flips one byte of a stored chunk and asserts the
``voxelflow.errors`` class naming the array and chunk, and that reading changed nothing.
Images written by other libraries (no checksum) must still read.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import dask
import fsspec
import numpy as np
import pytest
import zarr
from hardening_helpers import chunk_files, tiny_volume, unchanged, write_tiny_image
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import voxelflow
from voxelflow import errors
from voxelflow.cli import main

CRC = {"name": "crc32c"}


def _compute(arr):
    with dask.config.set(scheduler="threads"):
        return np.asarray(arr.compute())


def _flip(path: Path, position: int, mask: int = 0x01) -> None:
    raw = bytearray(path.read_bytes())
    raw[position] ^= mask
    path.write_bytes(bytes(raw))


def _codecs(array_folder: Path) -> list[dict]:
    return json.loads((array_folder / "zarr.json").read_text())["codecs"]


def _frame(path: Path) -> tuple[int, int]:
    """Byte range of the blosc frame's compressed data in a chunk file (after the 16-byte header, before the crc)."""
    return 16, path.stat().st_size - 4


# --- what voxelflow writes ------------------------------------------------------------------------


def test_every_written_array_ends_with_a_crc32c(tmp_path):
    data = tiny_volume((8, 16, 16))
    url, _ = write_tiny_image(tmp_path, data=data, levels=2, factors=2)
    voxelflow.write_labels((data > 30000).astype(np.uint32), url, "bright")
    sharded, _ = write_tiny_image(tmp_path, name="sharded.ome.zarr", data=data, shards=2)
    converted = tmp_path / "converted.ome.zarr"
    assert main(["convert", url, str(converted), "--levels", "2", "--quiet"]) == 0
    node = tmp_path / "cache" / "node"
    voxelflow.save(node, dask.array.from_array(data, chunks=(4, 8, 8)), key={"k": 1})
    small = tmp_path / "cache" / "numpy"
    voxelflow.save(small, data, key={"k": 1})
    assert _codecs(small / "data.ome.zarr" / "0")[-1] == CRC

    for level in ("0", "1"):
        assert _codecs(Path(url) / level)[-1] == CRC
        assert _codecs(converted / level)[-1] == CRC
        assert _codecs(Path(url) / "labels" / "bright" / level)[-1] == CRC
    assert _codecs(node / "data.ome.zarr" / "0")[-1] == CRC
    shard = _codecs(Path(sharded) / "0")[0]
    assert shard["name"] == "sharding_indexed" and shard["configuration"]["codecs"][-1] == CRC


# --- one flipped byte, every position -------------------------------------------------------------


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(where=st.floats(0.0, 1.0, exclude_max=True), mask=st.integers(1, 255))
def test_any_flipped_byte_of_a_chunk_raises(tmp_path, where, mask):
    url = os.path.join(tmp_path, "img.ome.zarr")
    if not os.path.exists(url):
        write_tiny_image(tmp_path, data=tiny_volume((8, 16, 16)), chunks=(4, 8, 8))
    data = np.asarray(zarr.open_array(os.path.join(url, "0"), mode="r")[...])
    victim = chunk_files(url)[3]
    size = victim.stat().st_size
    position = int(where * size)
    original = victim.read_bytes()
    _flip(victim, position, mask)
    try:
        with unchanged(url), pytest.raises(errors.OmeZarrError, match="crc32c") as info:
            _compute(voxelflow.open_ome_zarr(url)[0])
        assert str(victim) in str(info.value)
    finally:
        victim.write_bytes(original)
    np.testing.assert_array_equal(_compute(voxelflow.open_ome_zarr(url)[0]), data)


@pytest.fixture
def damaged_image(tmp_path):
    """A voxelflow image with one byte flipped in the middle of a chunk's compressed frame: (url, chunk file)."""
    url, data = write_tiny_image(tmp_path, data=tiny_volume((8, 16, 16)), chunks=(4, 8, 8))
    np.testing.assert_array_equal(_compute(voxelflow.open_ome_zarr(url)[0]), data)
    victim = chunk_files(url)[2]
    start, stop = _frame(victim)
    _flip(victim, (start + stop) // 2)
    return url, victim


def test_open_image_raises_naming_the_chunk(damaged_image):
    url, victim = damaged_image
    with unchanged(url), pytest.raises(errors.OmeZarrError, match="crc32c") as info:
        _compute(voxelflow.open_image(url)[0])
    assert str(victim) in str(info.value)


def test_zarr_path_raises_naming_the_level_and_chunk(damaged_image):
    # a ?slices= selection of the image still reads through the checked reader; zarr's own reader
    # (used for remote stores, zips and shards) reports the checksum through OmeZarrError too
    url, victim = damaged_image
    with unchanged(url), pytest.raises(errors.OmeZarrError, match="crc32c"):
        _compute(voxelflow.open_ome_zarr(f"{url}?slices=[:, :, :]")[0])
    fs = fsspec.filesystem("memory")
    mem = "memory://checksums/zarr-path/img.ome.zarr"
    try:
        fs.put(url, mem, recursive=True)
        with pytest.raises(errors.OmeZarrError, match="checksum") as info:
            _compute(voxelflow.open_ome_zarr(mem)[0])
        key = victim.relative_to(url).parts  # ('0', 'c', z, y, x)
        assert "level '0'" in str(info.value) and f"chunk {'/'.join(key[2:])}" in str(info.value)
    finally:
        fs.rm("memory://checksums", recursive=True)


def test_flipped_byte_inside_a_shard_raises(tmp_path):
    data = tiny_volume((8, 16, 16))
    url, _ = write_tiny_image(tmp_path, data=data, chunks=(4, 8, 8), shards=2)
    np.testing.assert_array_equal(_compute(voxelflow.open_ome_zarr(url)[0]), data)
    shard = chunk_files(url)[0]
    _flip(shard, 24)  # inside the first inner chunk's blosc frame (the shard index sits at the end)
    with unchanged(url), pytest.raises(errors.OmeZarrError, match="checksum") as info:
        _compute(voxelflow.open_ome_zarr(url)[0])
    assert "shard 0/0/0" in str(info.value)


def test_load_of_a_cached_array_raises(tmp_path):
    data = tiny_volume((8, 16, 16))
    node = tmp_path / "cache" / "node"
    voxelflow.save(node, dask.array.from_array(data, chunks=(4, 8, 8)), key={"k": 1})
    np.testing.assert_array_equal(_compute(voxelflow.load(node)), data)
    victim = sorted(p for p in (node / "data.ome.zarr" / "0" / "c").rglob("*") if p.is_file())[1]
    start, stop = _frame(victim)
    _flip(victim, start + 1)  # zstd frames have no blosc header; any inner byte is covered
    with unchanged(tmp_path), pytest.raises(errors.CacheError, match="checksum") as info:
        _compute(voxelflow.load(node))
    assert str(node) in str(info.value) and "chunk " in str(info.value)


def test_load_of_a_cached_image_raises(tmp_path):
    from voxelflow.cache import Image

    data = tiny_volume((8, 16, 16))
    node = tmp_path / "cache" / "image"
    voxelflow.save(node, Image(lambda target: voxelflow.write_ome_zarr(data, target, chunks=(4, 8, 8))),
                   key={"k": 1})
    np.testing.assert_array_equal(_compute(voxelflow.load(node)), data)
    image = next(node.glob("*.ome.zarr"))
    victim = chunk_files(image)[1]
    start, stop = _frame(victim)
    _flip(victim, (start + stop) // 2)
    with unchanged(tmp_path), pytest.raises(errors.CacheError, match="checksum"):
        _compute(voxelflow.load(node))


def test_run_on_a_damaged_input_fails_naming_the_chunk(tmp_path, capsys):
    rng = np.random.default_rng(2)
    vol = rng.normal(20, 2, (16, 48, 48))
    vol[3:13, 6:42, 6:42] += 40
    vol[5:7, 12:15, 12:15] += 200
    url = str(tmp_path / "scan.ome.zarr")
    voxelflow.write_ome_zarr(vol.astype(np.uint16), url, chunks=(8, 24, 24), scale=(4.0, 2.0, 2.0))
    victim = chunk_files(url)[5]
    start, stop = _frame(victim)
    _flip(victim, (start + stop) // 2)
    config = tmp_path / "plaque.toml"
    config.write_text(f'[input]\nurl = "{url}"\n[output]\nfolder = "{tmp_path / "run"}"\n'
                      "[pipeline]\nbias = false\nedge_um = 0.0\nthreshold = 100.0\n")
    with unchanged(url):
        code = main(["run", str(config), "--quiet", "--no-report"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("voxelflow: error:")
    assert "crc32c" in err and str(victim) in err
    assert not (tmp_path / "run" / "objects.csv").exists()


# --- images without a checksum still read ----------------------------------------------------------


@pytest.mark.parametrize("writer", ["plain-zarr-v3", "plain-zarr-v2", "ome-zarr-py"])
def test_images_without_a_checksum_still_read(tmp_path, writer):
    data = tiny_volume((8, 16, 16))
    url = tmp_path / "other.ome.zarr"
    if writer == "ome-zarr-py":
        from ome_zarr.io import parse_url
        from ome_zarr.writer import write_image

        write_image(data, zarr.open_group(parse_url(str(url), mode="w").store), axes="zyx",
                    scaler=None, storage_options={"chunks": (4, 8, 8)})
    else:
        fmt = 3 if writer.endswith("v3") else 2
        group = zarr.open_group(str(url), mode="w", zarr_format=fmt)
        group.create_array("0", data=data, chunks=(4, 8, 8))
        ms = {"version": "0.5" if fmt == 3 else "0.4", "axes": [{"name": a, "type": "space"} for a in "zyx"],
              "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1, 1, 1]}]}]}
        group.attrs.update({"ome": {"version": "0.5", "multiscales": [ms]}} if fmt == 3 else {"multiscales": [ms]})
    level = url / "0"
    if (level / "zarr.json").exists():
        assert CRC not in _codecs(level)
    np.testing.assert_array_equal(_compute(voxelflow.open_ome_zarr(str(url))[0]), data)
    np.testing.assert_array_equal(_compute(voxelflow.open_image(str(url))[0]), data)
