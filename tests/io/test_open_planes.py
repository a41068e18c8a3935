"""Folders and globs of 2-D TIFF planes written by tifffile, read through ``open_image``."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tifffile
from hypothesis import given, settings
from hypothesis import strategies as st
from io_volumes import lightsheet_volume

from voxelflow.errors import ImageFormatError, InvalidInputError, InvalidPathError, OmeZarrError
from voxelflow.io.open import open_image
from voxelflow.io.planes import open_planes


def write_planes(folder, vol, pattern="scan_Z{z:04d}.tif", **kwargs):
    folder.mkdir(parents=True, exist_ok=True)
    for z, plane in enumerate(vol):
        tifffile.imwrite(folder / pattern.format(z=z), plane, **kwargs)
    return folder


def test_folder_round_trip_values_shape_dtype_scale(tmp_path):
    vol = lightsheet_volume((13, 40, 56))
    folder = write_planes(tmp_path / "planes", vol, resolution=(1 / 1.8e-4, 1 / 1.8e-4), resolutionunit="CENTIMETER")
    arr, meta = open_image(str(folder), scale_um={"z": 5.0})
    assert arr.shape == vol.shape and arr.dtype == vol.dtype
    np.testing.assert_array_equal(arr.compute(), vol)
    assert meta.format == "tiff-planes" and meta.axes == ("z", "y", "x")
    assert meta.scale == pytest.approx((5.0, 1.8, 1.8), rel=1e-12)
    assert meta.units == ("micrometer",) * 3 and meta.shapes == (vol.shape,) and meta.levels == ("0",)


def test_imagej_calibrated_planes_and_scale_override(tmp_path):
    vol = lightsheet_volume((6, 20, 24), dtype=np.uint8, seed=1)
    folder = write_planes(tmp_path / "ij", vol, imagej=True, resolution=(2.0, 4.0), metadata={"unit": "um"})
    _, meta = open_image(str(folder), scale_um={"z": 4.0})
    assert meta.scale == (4.0, 0.25, 0.5)
    arr, meta = open_image(str(folder), scale_um=(3.0, 1.0, 2.0))  # the caller's value wins
    assert meta.scale == (3.0, 1.0, 2.0)
    np.testing.assert_array_equal(arr.compute(), vol)


def test_natural_sort_of_unpadded_numbers(tmp_path):
    vol = lightsheet_volume((12, 16, 16), seed=2)
    folder = write_planes(tmp_path / "p", vol, pattern="plane_{z}.tif")  # plane_2 before plane_10
    arr, _ = open_image(str(folder), scale_um=1.0)
    np.testing.assert_array_equal(arr.compute(), vol)


def test_channels_from_name_tokens_and_glob_selection(tmp_path):
    vols = {c: lightsheet_volume((9, 24, 20), seed=c) for c in (1, 2)}
    folder = tmp_path / "scan"
    for c, vol in vols.items():
        write_planes(folder, vol, pattern=f"13-50-16_UltraII_C{c:02d}_xyz-Table Z{{z:04d}}.ome.tif")
    arr, meta = open_image(str(folder), scale_um=(4.0, 2.0, 2.0))
    assert meta.axes == ("c", "z", "y", "x") and meta.channel_names == ("C01", "C02")
    assert arr.chunksize[0] == 1
    np.testing.assert_array_equal(arr.compute(), np.stack([vols[1], vols[2]]))
    one, meta1 = open_image(str(folder / "*_C02_*.tif"), scale_um=(4.0, 2.0, 2.0))
    assert meta1.axes == ("z", "y", "x")
    np.testing.assert_array_equal(one.compute(), vols[2])
    picked, meta2 = open_image(str(folder), scale_um=(4.0, 2.0, 2.0), channel="C02")
    assert meta2.axes == ("z", "y", "x") and meta2.scale == (4.0, 2.0, 2.0)
    np.testing.assert_array_equal(picked.compute(), vols[2])


def test_a_chunk_opens_only_its_own_planes(tmp_path, monkeypatch):
    vol = lightsheet_volume((10, 16, 16), seed=3)
    folder = write_planes(tmp_path / "p", vol)
    arr, _ = open_planes(str(folder), planes_per_chunk=3)
    assert arr.chunks[0] == (3, 3, 3, 1)
    opened = []
    real = tifffile.TiffFile

    class Spy(real):
        def __init__(self, arg, *a, **k):
            opened.append(os.path.basename(getattr(arg, "path", None) or getattr(arg, "name", str(arg))))
            super().__init__(arg, *a, **k)

    monkeypatch.setattr(tifffile, "TiffFile", Spy)
    block = arr.blocks[1].compute(scheduler="sync")
    np.testing.assert_array_equal(block, vol[3:6])
    assert sorted(opened) == [f"scan_Z{z:04d}.tif" for z in (3, 4, 5)]


def test_missing_voxel_size_says_how_to_give_it(tmp_path):
    folder = write_planes(tmp_path / "p", lightsheet_volume((3, 8, 8)))
    with pytest.raises(InvalidInputError, match=r"no voxel size along z, y, x.*input\.scale_um"):
        open_image(str(folder))
    with pytest.raises(InvalidInputError, match="along z"):
        open_image(str(write_planes(tmp_path / "q", lightsheet_volume((3, 8, 8)), imagej=True,
                                    resolution=(1.0, 1.0), metadata={"unit": "um"})))


def test_truncated_uncompressed_plane_is_named_at_open(tmp_path):
    folder = write_planes(tmp_path / "p", lightsheet_volume((5, 32, 32)))
    victim = folder / "scan_Z0003.tif"
    victim.write_bytes(victim.read_bytes()[:1500])
    with pytest.raises(ImageFormatError, match="scan_Z0003.tif.*truncated"):
        open_image(str(folder), scale_um=1.0)


def test_truncated_compressed_plane_is_named_on_read(tmp_path):
    vol = lightsheet_volume((5, 32, 32))
    folder = write_planes(tmp_path / "p", vol, compression="zlib")
    victim = folder / "scan_Z0002.tif"
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])
    arr, _ = open_image(str(folder), scale_um=1.0)
    with pytest.raises(ImageFormatError, match="scan_Z0002.tif"):
        arr.compute()


def test_missing_plane_names_the_gap(tmp_path):
    folder = write_planes(tmp_path / "p", lightsheet_volume((8, 8, 8)))
    (folder / "scan_Z0005.tif").unlink()
    with pytest.raises(ImageFormatError, match="'scan_Z0005.tif' is missing between 'scan_Z0004.tif' and "
                                               "'scan_Z0006.tif'"):
        open_image(str(folder), scale_um=1.0)


def test_missing_plane_in_one_channel(tmp_path):
    folder = tmp_path / "p"
    for c in (0, 1):
        write_planes(folder, lightsheet_volume((6, 8, 8), seed=c), pattern=f"s_ch{c}_{{z:03d}}.tif")
    (folder / "s_ch1_005.tif").unlink()  # the last plane: no gap, a shorter channel
    with pytest.raises(ImageFormatError, match="CH1 has 5.*planes are missing"):
        open_image(str(folder), scale_um=1.0)


@pytest.mark.parametrize("odd", ["shape", "dtype"])
def test_inconsistent_plane_is_named_on_read(tmp_path, odd):
    vol = lightsheet_volume((6, 16, 16))
    folder = write_planes(tmp_path / "p", vol)
    bad = vol[4, :, :12] if odd == "shape" else vol[4].astype(np.float32)
    tifffile.imwrite(folder / "scan_Z0004.tif", bad)
    arr, _ = open_image(str(folder), scale_um=1.0)
    with pytest.raises(ImageFormatError, match=r"scan_Z0004.tif: plane of shape .* expected \(16, 16\) uint16"):
        arr.compute()


def test_stray_file_and_mixed_tiles_are_refused(tmp_path):
    folder = write_planes(tmp_path / "p", lightsheet_volume((4, 8, 8)))
    tifffile.imwrite(folder / "overview.tif", np.zeros((8, 8), np.uint16))
    with pytest.raises(ImageFormatError, match="overview.tif"):
        open_image(str(folder), scale_um=1.0)
    tiles = tmp_path / "tiles"
    for t in (0, 1):
        write_planes(tiles, lightsheet_volume((3, 8, 8)), pattern=f"scan_tile{t:02d}_Z{{z:03d}}.tif")
    with pytest.raises(ImageFormatError, match="2 tiles.*glob"):
        open_image(str(tiles), scale_um=1.0)
    arr, _ = open_image(str(tiles / "*tile01*.tif"), scale_um=1.0)
    assert arr.shape == (3, 8, 8)


def test_nothing_there(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(OmeZarrError, match="not an OME-Zarr image"):  # no TIFF there: read as OME-Zarr
        open_image(str(tmp_path / "empty"))
    with pytest.raises(InvalidPathError, match="no .tif"):
        open_image(str(tmp_path / "empty" / "*.tif"))


@settings(max_examples=8, deadline=None)
@given(nz=st.integers(1, 9), ny=st.integers(1, 13), nx=st.integers(1, 13), per=st.integers(1, 5),
       dtype=st.sampled_from([np.uint8, np.uint16, np.float32]))
def test_any_chunking_reads_the_same_voxels(tmp_path_factory, nz, ny, nx, per, dtype):
    vol = lightsheet_volume((nz, ny, nx), dtype=dtype, seed=nz * 31 + nx)
    folder = write_planes(tmp_path_factory.mktemp("h"), vol, pattern="img{z:02d}.tif")
    arr, _ = open_planes(str(folder), planes_per_chunk=per)
    assert arr.dtype == vol.dtype and arr.chunks[0][0] == min(per, nz)
    np.testing.assert_array_equal(arr.compute(), vol)
