"""Reading OME-Zarr written by ome-zarr-py (fixtures) and by voxelflow, from every kind of location."""

from __future__ import annotations

import json
import os
import shutil
import zipfile

import fsspec
import numpy as np
import pytest
import zarr

from ome_zarr_helpers import V04, V05, make_fixtures
from voxelflow.errors import OmeZarrError
from voxelflow.io.ome_zarr import open_ome_zarr, write_ome_zarr

IMAGE = make_fixtures.image()
LABELS = make_fixtures.labels()


@pytest.mark.parametrize("path,version", [(V04, "0.4"), (V05, "0.5")])
def test_reads_ome_zarr_py_fixture(path, version):
    arr, meta = open_ome_zarr(str(path))
    np.testing.assert_array_equal(arr.compute(), IMAGE)
    assert arr.dtype == np.uint16
    assert arr.chunksize == (1, 3, 10, 12)  # as stored by ome-zarr-py
    assert meta.version == version
    assert meta.axes == ("c", "z", "y", "x")
    assert meta.units == (None, "micrometer", "micrometer", "micrometer")
    assert meta.levels == ("s0", "s1", "s2")
    assert meta.scale == (1.0, 2.0, 0.5, 0.5)
    assert meta.scales[2] == (1.0, 2.0, 2.0, 2.0)
    assert meta.channel_names == ("dapi", "abeta")
    assert meta.labels == ("cells",)
    assert meta.written_by_voxelflow is False


@pytest.mark.parametrize("path", [V04, V05])
def test_reads_lower_levels_and_labels_of_fixture(path):
    ref = zarr.open_group(str(path), mode="r")
    arr, meta = open_ome_zarr(str(path), level=2)
    np.testing.assert_array_equal(arr.compute(), ref["s2"][...])
    assert arr.shape == (2, 6, 5, 6) and meta.level == 2 and meta.scale == (1.0, 2.0, 2.0, 2.0)
    arr, meta = open_ome_zarr(str(path / "labels" / "cells"))
    np.testing.assert_array_equal(arr.compute(), LABELS)
    assert meta.axes == ("z", "y", "x")
    same, _ = open_ome_zarr(str(path), level="s2")
    assert same.shape == (2, 6, 5, 6)


def test_fixture_slices_channel_and_crop():
    arr, meta = open_ome_zarr(f"{V05}?slices=[1, :, 4:, ::-3]")
    np.testing.assert_array_equal(arr.compute(), IMAGE[1, :, 4:, ::-3])
    assert meta.channel_names == ("abeta",)
    assert meta.axes == ("z", "y", "x")


def _zip_folder(folder, archive):
    with zipfile.ZipFile(archive, "w") as zf:
        for dirpath, _, files in os.walk(folder):
            for name in files:
                full = os.path.join(dirpath, name)
                zf.write(full, os.path.relpath(full, folder))


def test_zip_archive_read_chunk_by_chunk(tmp_path, monkeypatch):
    archive = tmp_path / "fixture.ome.zarr.zip"
    _zip_folder(V05, archive)
    opened = []
    real_open = zipfile.ZipFile.open

    def counting_open(self, name, *args, **kwargs):
        opened.append(name if isinstance(name, str) else name.filename)
        return real_open(self, name, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", counting_open)
    arr, meta = open_ome_zarr(f"{archive}?slices=[0, 0:3, 0:10, 0:12]")
    opened.clear()
    np.testing.assert_array_equal(arr.compute(), IMAGE[0, 0:3, 0:10, 0:12])
    # Exactly the one chunk holding the region was read; nothing was unpacked to disk.
    assert opened == ["s0/c/0/0/0/0"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fixture.ome.zarr.zip"]
    assert meta.labels == ("cells",)
    labels, lmeta = open_ome_zarr(f"{archive}/labels/cells")
    np.testing.assert_array_equal(labels.compute(), LABELS)
    assert lmeta.axes == ("z", "y", "x")


def test_truncated_zip(tmp_path):
    archive = tmp_path / "fixture.ome.zarr.zip"
    _zip_folder(V04, archive)
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])
    with pytest.raises(OmeZarrError, match="not a readable zip archive"):
        open_ome_zarr(str(archive))


def test_memory_and_file_urls(memory_url, tmp_path):
    fs = fsspec.filesystem("memory")
    fs.put(str(V04), f"{memory_url}/copy.ome.zarr", recursive=True)
    arr, meta = open_ome_zarr(f"{memory_url}/copy.ome.zarr", level=1)
    np.testing.assert_array_equal(arr.compute(), zarr.open_group(str(V04), mode="r")["s1"][...])
    assert meta.url == f"{memory_url}/copy.ome.zarr"
    arr, _ = open_ome_zarr(f"file://{V05}?slices=[0]")
    np.testing.assert_array_equal(arr.compute(), IMAGE[0])


def test_s3_with_moto(s3_options):
    fs = fsspec.filesystem("s3", skip_instance_cache=True, **s3_options)
    fs.put(str(V05), "voxelflow/fixture.ome.zarr", recursive=True)
    arr, meta = open_ome_zarr("s3://voxelflow/fixture.ome.zarr?slices=[1, 2:4]", storage_options=s3_options)
    np.testing.assert_array_equal(arr.compute(), IMAGE[1, 2:4])
    assert meta.version == "0.5" and meta.labels == ("cells",)
    data = np.arange(4 * 20 * 24, dtype=np.int32).reshape(4, 20, 24)
    write_ome_zarr(data, "s3://voxelflow/out.ome.zarr.zip", storage_options=s3_options, levels=2, version="0.4")
    back, meta = open_ome_zarr("s3://voxelflow/out.ome.zarr.zip", storage_options=s3_options)
    np.testing.assert_array_equal(back.compute(), data)
    assert meta.version == "0.4" and len(meta.levels) == 2


# --- bad input ---------------------------------------------------------------------------


def test_not_ome_zarr(tmp_path):
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "notes.txt").write_text("hello")
    with pytest.raises(OmeZarrError, match="not an OME-Zarr image"):
        open_ome_zarr(str(tmp_path / "plain"))
    zarr.open_group(str(tmp_path / "bare.zarr"), mode="w")
    with pytest.raises(OmeZarrError, match="no 'multiscales' metadata"):
        open_ome_zarr(str(tmp_path / "bare.zarr"))
    with pytest.raises(OmeZarrError, match="nothing exists there"):
        open_ome_zarr(str(tmp_path / "missing.ome.zarr"))


def _copy(src, tmp_path):
    dst = tmp_path / src.name
    shutil.copytree(src, dst)
    return dst


def test_missing_level(tmp_path):
    path = _copy(V05, tmp_path)
    shutil.rmtree(path / "s1")
    with pytest.raises(OmeZarrError, match="level 's1' is listed in the metadata but missing"):
        open_ome_zarr(str(path))


def test_inconsistent_metadata(tmp_path):
    path = _copy(V04, tmp_path)
    attrs = json.loads((path / ".zattrs").read_text())
    attrs["multiscales"][0]["axes"] = attrs["multiscales"][0]["axes"][1:]
    (path / ".zattrs").write_text(json.dumps(attrs))
    with pytest.raises(OmeZarrError, match="has 4 values but the image has 3 axes"):
        open_ome_zarr(str(path))
    attrs["multiscales"][0]["datasets"] = []
    (path / ".zattrs").write_text(json.dumps(attrs))
    with pytest.raises(OmeZarrError, match="lists no datasets"):
        open_ome_zarr(str(path))


def test_level_out_of_range():
    with pytest.raises(OmeZarrError, match="level 3 is out of range; the image has 3 levels"):
        open_ome_zarr(str(V05), level=3)
    with pytest.raises(OmeZarrError, match="no pyramid level named 'q'"):
        open_ome_zarr(str(V05), level="q")
    _, meta = open_ome_zarr(str(V05), level=-1)
    assert meta.level == 2


def test_missing_chunk_of_voxelflow_image(tmp_path):
    data = np.arange(8 * 16 * 16, dtype=np.uint16).reshape(8, 16, 16) + 1
    path = write_ome_zarr(data, str(tmp_path / "img.ome.zarr"), chunks=(4, 8, 8))
    os.remove(os.path.join(path.path, "0", "c", "1", "0", "1"))
    arr, _ = open_ome_zarr(path.url)
    np.testing.assert_array_equal(arr[:4].compute(), data[:4])  # other chunks still read
    with pytest.raises(OmeZarrError, match=r"chunk '0/c/1/0/1' of .* is missing"):
        arr.compute()
    filled, _ = open_ome_zarr(path.url, missing_chunks="fill")
    assert (filled[4:, :8, 8:].compute() == 0).all()


def test_missing_chunk_of_foreign_image_is_fill_unless_asked(tmp_path):
    path = _copy(V05, tmp_path)
    os.remove(path / "s0" / "c" / "0" / "0" / "0" / "0")
    arr, _ = open_ome_zarr(str(path))
    assert (arr[0, :3, :10, :12].compute() == 0).all()  # zarr semantics for skipped empty chunks
    strict, _ = open_ome_zarr(str(path), missing_chunks="error")
    with pytest.raises(OmeZarrError, match="is missing"):
        strict.compute()
