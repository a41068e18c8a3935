"""Imaris ``.ims`` files written with h5py in the Imaris layout, read through ``open_image``.

The files are cross-checked with the independent ``imaris-ims-file-reader`` package.
"""

from __future__ import annotations

import sys

import h5py
import numpy as np
import pytest
from imaris_ims_file_reader.ims import ims as ims_reader
from io_volumes import lightsheet_volume

from voxelflow.errors import ImageFormatError, OptionalDependencyError
from voxelflow.io import imaris
from voxelflow.io.open import open_image

VOXEL = (4.0, 0.75, 0.625)  # z, y, x micrometres (exact in binary)
ORIGIN = (-20.0, 3.5, -10.5)


def _text_attr(value) -> np.ndarray:
    """An attribute as Imaris stores it: an array of single bytes."""
    return np.array(list(str(value)), dtype="S1")


def _set(node, **attrs):
    for k, v in attrs.items():
        node.attrs[k] = _text_attr(v)


def write_ims(path, volumes, n_levels=2, chunks=(4, 16, 16), pad_value=7777):
    """Write ``volumes[t][c]`` (each Z, Y, X) in the Imaris 5.5 layout, levels by striding.

    Data are padded to whole chunks with ``pad_value`` so a reader that returns the
    padding fails.
    """
    zyx = volumes[0][0].shape
    with h5py.File(path, "w") as f:
        _set(f, ImarisVersion="5.5.0", ImarisDataSet="ImarisDataSet", DataSetDirectoryName="DataSet",
             DataSetInfoDirectoryName="DataSetInfo")
        f.attrs["NumberOfDataSets"] = np.array([1], dtype=np.uint32)
        image = f.create_group("DataSetInfo/Image")
        _set(image, X=zyx[2], Y=zyx[1], Z=zyx[0], Unit="um", Name="brain 7")
        for i, axis in ((0, 2), (1, 1), (2, 0)):
            _set(image, **{f"ExtMin{i}": ORIGIN[axis], f"ExtMax{i}": ORIGIN[axis] + zyx[axis] * VOXEL[axis]})
        for c in range(len(volumes[0])):
            _set(f.create_group(f"DataSetInfo/Channel {c}"), Name=f"ch{c}-{488 + 100 * c}nm", Color="1 0 0")
        for r in range(n_levels):
            for t, per_c in enumerate(volumes):
                for c, vol in enumerate(per_c):
                    data = vol[:: 2**r, :: 2**r, :: 2**r]
                    g = f.create_group(f"DataSet/ResolutionLevel {r}/TimePoint {t}/Channel {c}")
                    _set(g, ImageSizeZ=data.shape[0], ImageSizeY=data.shape[1], ImageSizeX=data.shape[2],
                         HistogramMin=int(data.min()), HistogramMax=int(data.max()))
                    ch = tuple(min(a, b) for a, b in zip(chunks, data.shape))
                    padded = tuple(-(-s // k) * k for s, k in zip(data.shape, ch))
                    stored = np.full(padded, pad_value, dtype=data.dtype)
                    stored[: data.shape[0], : data.shape[1], : data.shape[2]] = data
                    g.create_dataset("Data", data=stored, chunks=ch, compression="gzip")
    return path


@pytest.fixture
def two_channels():
    return [[lightsheet_volume((9, 40, 36), seed=s) for s in (11, 12)]]


def test_round_trip_values_scale_levels_channels(tmp_path, two_channels):
    path = write_ims(tmp_path / "scan.ims", two_channels)
    arr, meta = open_image(str(path))
    vols = two_channels[0]
    assert meta.format == "imaris" and meta.version == "5.5.0" and meta.name == "brain 7"
    assert meta.axes == ("c", "z", "y", "x") and meta.channel_names == ("ch0-488nm", "ch1-588nm")
    assert arr.shape == (2, 9, 40, 36) and arr.dtype == np.uint16
    np.testing.assert_array_equal(arr.compute(), np.stack(vols))
    assert meta.scale == (1.0, *VOXEL)
    assert meta.translation == (0.0, *(o + v / 2 for o, v in zip(ORIGIN, VOXEL)))
    assert meta.levels == ("ResolutionLevel 0", "ResolutionLevel 1")
    assert meta.shapes == ((2, 9, 40, 36), (2, 5, 20, 18))
    low, lmeta = open_image(str(path), level=1)
    np.testing.assert_array_equal(low.compute(), np.stack([v[::2, ::2, ::2] for v in vols]))
    assert lmeta.scale == pytest.approx((1.0, 4.0 * 9 / 5, 1.5, 1.25), rel=1e-12)


def test_agrees_with_imaris_ims_file_reader(tmp_path, two_channels):
    path = write_ims(tmp_path / "scan.ims", two_channels)
    ref = ims_reader(str(path))
    for level in (0, 1):
        arr, meta = open_image(str(path), level=level)
        expected = ref[level, 0, :, :, :, :]
        np.testing.assert_array_equal(arr.compute(), np.asarray(expected).reshape(arr.shape))
        assert meta.scale[1:] == pytest.approx(ref.metaData[level, 0, 0, "resolution"], abs=1e-3)
    ref.close()


def test_one_channel_and_time_points(tmp_path):
    vols = [[lightsheet_volume((5, 16, 16), seed=t)] for t in range(3)]
    path = write_ims(tmp_path / "t.ims", vols, n_levels=1)
    arr, meta = open_image(str(path))
    assert meta.axes == ("t", "z", "y", "x") and meta.channel_names is None
    np.testing.assert_array_equal(arr.compute(), np.stack([v[0] for v in vols]))


def test_a_chunk_reads_only_its_region(tmp_path, two_channels, monkeypatch):
    path = write_ims(tmp_path / "scan.ims", two_channels)
    monkeypatch.setattr(imaris, "CHUNK_BYTES", 4 * 16 * 16 * 2)  # one HDF5 chunk per dask chunk
    reads, opens = [], []
    real_get, real_init = h5py.Dataset.__getitem__, h5py.File.__init__

    def spy_get(self, key):
        reads.append((self.name, key))
        return real_get(self, key)

    def spy_init(self, name, *a, **k):
        if isinstance(name, str):  # not the re-wrapping of an open file id
            opens.append(name)
        real_init(self, name, *a, **k)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy_get)
    monkeypatch.setattr(h5py.File, "__init__", spy_init)
    arr, _ = open_image(str(path))
    assert reads == []  # opening reads metadata only
    assert arr.chunks[1:] == ((4, 4, 1), (16, 16, 8), (16, 16, 4))
    block = arr.blocks[1, 2, 1, 0].compute(scheduler="sync")
    np.testing.assert_array_equal(block, two_channels[0][1][None, 8:9, 16:32, 0:16])
    assert reads == [("/DataSet/ResolutionLevel 0/TimePoint 0/Channel 1/Data",
                      (slice(8, 9), slice(16, 32), slice(0, 16)))]
    assert opens == [str(path)] * 2  # open_image's metadata read, then the reader's one handle


def test_corrupt_hdf5_chunk_is_named(tmp_path, two_channels):
    path = write_ims(tmp_path / "scan.ims", two_channels)
    with h5py.File(path, "r") as f:
        info = f["DataSet/ResolutionLevel 0/TimePoint 0/Channel 1/Data"].id.get_chunk_info(3)
    raw = bytearray(path.read_bytes())
    raw[info.byte_offset: info.byte_offset + info.size] = b"\xff" * info.size
    path.write_bytes(bytes(raw))
    arr, _ = open_image(str(path))
    with pytest.raises(ImageFormatError, match=r"scan.ims: cannot read DataSet/ResolutionLevel 0/TimePoint 0/"
                                               r"Channel 1/Data"):
        arr.compute()


def test_missing_dataset_and_short_data_and_missing_attribute(tmp_path, two_channels):
    path = write_ims(tmp_path / "a.ims", two_channels)
    with h5py.File(path, "a") as f:
        del f["DataSet/ResolutionLevel 1/TimePoint 0/Channel 1/Data"]
    with pytest.raises(ImageFormatError, match="ResolutionLevel 1/TimePoint 0/Channel 1/Data is missing"):
        open_image(str(path))
    path = write_ims(tmp_path / "b.ims", two_channels)
    with h5py.File(path, "a") as f:
        _set(f["DataSet/ResolutionLevel 0/TimePoint 0/Channel 0"], ImageSizeY=999)
    with pytest.raises(ImageFormatError, match=r"smaller than its ImageSizeZ/Y/X \(9, 999, 36\)"):
        open_image(str(path))
    path = write_ims(tmp_path / "c.ims", two_channels)
    with h5py.File(path, "a") as f:
        del f["DataSetInfo/Image"].attrs["ExtMax1"]
    with pytest.raises(ImageFormatError, match="'ExtMax1' of '/DataSetInfo/Image' is missing"):
        open_image(str(path))


def test_not_hdf5(tmp_path):
    (tmp_path / "x.ims").write_bytes(b"not an hdf5 file at all")
    with pytest.raises(OSError, match="cannot read .*x.ims as an Imaris"):
        open_image(str(tmp_path / "x.ims"))


def test_clear_error_without_h5py(tmp_path, two_channels, monkeypatch):
    path = write_ims(tmp_path / "scan.ims", two_channels)
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(OptionalDependencyError, match=r"pip install 'voxelflow\[imaris\]'"):
        open_image(str(path))


def test_rewritten_file_is_read_anew(tmp_path):
    path = tmp_path / "s.ims"
    first = [[lightsheet_volume((4, 16, 16), seed=1)]]
    write_ims(path, first, n_levels=1)
    arr, _ = open_image(str(path))
    np.testing.assert_array_equal(arr.compute(), first[0][0])
    second = [[lightsheet_volume((5, 16, 16), seed=2)]]
    write_ims(path, second, n_levels=1)
    arr2, _ = open_image(str(path))
    np.testing.assert_array_equal(arr2.compute(), second[0][0])
