"""Multi-page TIFF, BigTIFF, OME-TIFF and ImageJ hyperstacks written by tifffile, read through ``open_image``."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import tifffile
import tifffile.tifffile as tifffile_core
from io_volumes import lightsheet_volume

from voxelflow.errors import ImageFormatError, InvalidInputError, InvalidPathError
from voxelflow.io import tiff_stack
from voxelflow.io.open import open_image


def test_plain_multipage_needs_a_voxel_size(tmp_path):
    vol = lightsheet_volume((16, 24, 40))
    tifffile.imwrite(tmp_path / "stack.tif", vol)
    with pytest.raises(InvalidInputError, match=r"along z, y, x.*input\.scale_um"):
        open_image(str(tmp_path / "stack.tif"))
    arr, meta = open_image(str(tmp_path / "stack.tif"), scale_um=(5.0, 2.0, 2.0))
    assert meta.format == "tiff" and meta.axes == ("z", "y", "x") and meta.scale == (5.0, 2.0, 2.0)
    assert arr.dtype == vol.dtype
    np.testing.assert_array_equal(arr.compute(), vol)


def test_bigtiff_tiled_compressed(tmp_path):
    vol = lightsheet_volume((9, 48, 64), dtype=np.float32, seed=4)
    tifffile.imwrite(tmp_path / "big.tif", vol, bigtiff=True, tile=(16, 32), compression="zlib")
    with tifffile.TiffFile(tmp_path / "big.tif") as tif:
        assert tif.is_bigtiff
    arr, meta = open_image(str(tmp_path / "big.tif"), scale_um=2.5)
    assert meta.scale == (2.5, 2.5, 2.5)
    np.testing.assert_array_equal(arr.compute(), vol)


def test_ome_tiff_physical_sizes_channels_and_pyramid(tmp_path):
    vol = np.stack([lightsheet_volume((6, 32, 48), seed=s) for s in (5, 6)])  # C, Z, Y, X
    half = vol[:, :, ::2, ::2]
    quarter = vol[:, :, ::4, ::4]
    path = tmp_path / "scan.ome.tif"
    meta_in = {"axes": "CZYX", "PhysicalSizeX": 650.0, "PhysicalSizeXUnit": "nm", "PhysicalSizeY": 0.65,
               "PhysicalSizeZ": 4.0, "PhysicalSizeZUnit": "µm", "Channel": {"Name": ["autofluo", "abeta"]}}
    with tifffile.TiffWriter(path, ome=True) as tw:
        tw.write(vol, subifds=2, metadata=meta_in, tile=(16, 16))
        tw.write(half, subfiletype=1, tile=(16, 16))
        tw.write(quarter, subfiletype=1, tile=(16, 16))
    arr, meta = open_image(str(path))
    assert meta.axes == ("c", "z", "y", "x") and meta.channel_names == ("autofluo", "abeta")
    assert meta.scale == pytest.approx((1.0, 4.0, 0.65, 0.65), rel=1e-12)
    assert meta.levels == ("0", "1", "2") and meta.shapes == (vol.shape, half.shape, quarter.shape)
    np.testing.assert_array_equal(arr.compute(), vol)
    arr2, meta2 = open_image(str(path), level=2)
    np.testing.assert_array_equal(arr2.compute(), quarter)
    assert meta2.scale == pytest.approx((1.0, 4.0, 2.6, 2.6), rel=1e-12)
    one, meta_c = open_image(str(path), channel="abeta")
    assert meta_c.axes == ("z", "y", "x") and meta_c.scale == pytest.approx((4.0, 0.65, 0.65))
    np.testing.assert_array_equal(one.compute(), vol[1])


def test_imagej_hyperstack_with_channels(tmp_path):
    vol = np.stack([lightsheet_volume((7, 20, 30), seed=s) for s in (7, 8)], axis=1)  # Z, C, Y, X
    tifffile.imwrite(tmp_path / "hyper.tif", vol, imagej=True, resolution=(1 / 0.8, 1 / 0.5),
                     metadata={"axes": "ZCYX", "spacing": 3.0, "unit": "micron"})
    arr, meta = open_image(str(tmp_path / "hyper.tif"))
    assert meta.axes == ("c", "z", "y", "x")
    assert meta.scale == (1.0, 3.0, 0.5, 0.8)
    np.testing.assert_array_equal(arr.compute(), vol.transpose(1, 0, 2, 3))


def test_a_chunk_reads_only_its_own_pages(tmp_path, monkeypatch):
    vol = lightsheet_volume((40, 64, 64))
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, vol, compression="zlib")  # one strip-compressed page per plane
    monkeypatch.setattr(tiff_stack, "CHUNK_BYTES", 8 * 64 * 64 * 2)
    arr, _ = open_image(str(path), scale_um=1.0)
    assert arr.chunks[0] == (8,) * 5
    with tifffile.TiffFile(path) as tif:
        page_of = {off: i for i, p in enumerate(tif.pages) for off in p.dataoffsets}
    read = []
    real = tifffile_core.FileCache.read

    def spy(self, fh, offset, bytecount, *a, **k):
        read.append(page_of[offset])
        return real(self, fh, offset, bytecount, *a, **k)

    monkeypatch.setattr(tifffile_core.FileCache, "read", spy)
    np.testing.assert_array_equal(arr.blocks[2].compute(scheduler="sync"), vol[16:24])
    assert sorted(read) == list(range(16, 24))


def test_array_pickles_and_reads_in_another_process(tmp_path):
    vol = lightsheet_volume((5, 16, 16))
    tifffile.imwrite(tmp_path / "s.tif", vol)
    arr, _ = open_image(str(tmp_path / "s.tif"), scale_um=1.0)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(arr)).compute(scheduler="processes"), vol)


def _truncate(path, fraction=0.6):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])


@pytest.mark.parametrize("kind", ["imagej", "shaped", "ome", "bigtiff", "compressed"])
def test_truncated_16_page_stack_raises_never_2d(tmp_path, kind):
    vol = lightsheet_volume((16, 32, 32))
    path = tmp_path / ("t.ome.tif" if kind == "ome" else "t.tif")
    kwargs = {"imagej": {"imagej": True, "metadata": {"axes": "ZYX", "spacing": 2.0, "unit": "um"}},
              "shaped": {}, "ome": {"metadata": {"axes": "ZYX", "PhysicalSizeX": 1.0}},
              "bigtiff": {"bigtiff": True}, "compressed": {"compression": "zlib"}}[kind]
    tifffile.imwrite(path, vol, **kwargs)
    _truncate(path)
    with pytest.raises(ImageFormatError, match="t(.ome)?.tif: .*(truncated|broken|missing)"):
        arr, _ = open_image(str(path), scale_um=1.0)
        arr.compute()


def test_truncation_inside_the_last_page_data(tmp_path):
    vol = lightsheet_volume((16, 32, 32))
    path = tmp_path / "t.tif"
    tifffile.imwrite(path, vol, imagej=True, metadata={"axes": "ZYX"})
    data = path.read_bytes()
    with tifffile.TiffFile(path) as tif:
        end = max(o + n for p in tif.pages for o, n in zip(p.dataoffsets, p.databytecounts))
    path.write_bytes(data[: end - 100])  # the page chain is intact; the last plane is short
    with pytest.raises(ImageFormatError, match="truncated"):
        open_image(str(path), scale_um=1.0)


def test_not_a_tiff(tmp_path):
    (tmp_path / "x.tif").write_bytes(b"definitely not a tiff")
    with pytest.raises(InvalidPathError, match="cannot read .*x.tif as TIFF"):
        open_image(str(tmp_path / "x.tif"))
    with pytest.raises(InvalidPathError, match="does not exist"):
        open_image(str(tmp_path / "missing.tif"))


def test_rewritten_file_is_read_anew(tmp_path):
    path = tmp_path / "s.tif"
    first = lightsheet_volume((8, 16, 16), seed=1)
    tifffile.imwrite(path, first)
    arr, _ = open_image(str(path), scale_um=1.0)
    np.testing.assert_array_equal(arr.compute(), first)  # the file is now open in this process
    second = lightsheet_volume((9, 16, 16), seed=2)
    tifffile.imwrite(path, second)
    arr2, _ = open_image(str(path), scale_um=1.0)
    assert arr2.name != arr.name
    np.testing.assert_array_equal(arr2.compute(), second)
