"""``open_image`` tells formats apart and gives OME-Zarr the same treatment as the other formats."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
import zarr
from io_volumes import lightsheet_volume
from ome_zarr.io import parse_url
from ome_zarr.writer import write_image

import voxelflow
from voxelflow.errors import InvalidInputError, InvalidPathError, OmeZarrError
from voxelflow.io.ome_zarr import open_ome_zarr
from voxelflow.io.open import detect_format, open_image


@pytest.fixture
def ome_zarr_image(tmp_path):
    """A 2-channel, 3-level OME-Zarr written by ome-zarr-py."""
    vol = np.stack([lightsheet_volume((8, 32, 32), seed=s) for s in (1, 2)])
    url = tmp_path / "img.ome.zarr"
    root = zarr.open_group(parse_url(str(url), mode="w").store, mode="w")
    write_image(vol, root, axes=[{"name": "c", "type": "channel"}] + [
        {"name": a, "type": "space", "unit": "micrometer"} for a in "zyx"],
        scaler=None, scale_factors=[{"z": 1, "y": 2, "x": 2}, {"z": 1, "y": 4, "x": 4}])
    root.attrs["ome"] = root.attrs["ome"] | {"omero": {"channels": [{"label": "autofluo"}, {"label": "abeta"}]}}
    return url, vol


def test_ome_zarr_is_delegated_unchanged(ome_zarr_image):
    url, vol = ome_zarr_image
    arr, meta = open_image(str(url), level=1)
    ref, ref_meta = open_ome_zarr(str(url), level=1)
    assert meta == ref_meta and meta.format == "ome-zarr"
    np.testing.assert_array_equal(arr.compute(), ref.compute())
    assert voxelflow.open_image is open_image


def test_ome_zarr_scale_override_and_channel(ome_zarr_image):
    url, vol = ome_zarr_image
    arr, meta = open_image(str(url), level=2, scale_um={"z": 5.0}, channel="abeta")
    assert meta.axes == ("z", "y", "x") and meta.channel_names == ("abeta",)
    _, ref = open_ome_zarr(str(url), level=2)
    assert meta.scale == (5.0, *ref.scale[2:]) and ref.scale[1] != 5.0
    assert meta.scales[0] == (1.0, 5.0, *ref.scales[0][2:])
    np.testing.assert_array_equal(arr.compute(), open_ome_zarr(str(url), level=2)[0][1].compute())
    with pytest.raises(InvalidInputError, match="no channel named 'gfp'.*autofluo"):
        open_image(str(url), channel="gfp")
    with pytest.raises(InvalidInputError, match="channel 2 is out of range"):
        open_image(str(url), channel=2)


def test_detect_every_format(tmp_path, ome_zarr_image):
    url, _ = ome_zarr_image
    assert detect_format(str(url)) == "ome-zarr"
    planes = tmp_path / "planes"
    planes.mkdir()
    tifffile.imwrite(planes / "z0.tif", np.zeros((4, 4), np.uint8))
    tifffile.imwrite(tmp_path / "stack.tiff", np.zeros((2, 4, 4), np.uint8))
    (tmp_path / "a.ims").write_bytes(b"")
    (tmp_path / "dataset.xml").write_text("<SpimData/>")
    n5 = tmp_path / "d.n5"
    n5.mkdir()
    (n5 / "attributes.json").write_text(json.dumps({"n5": "2.5.1"}))
    (n5 / "s0").mkdir()
    expected = {planes: "tiff-planes", planes / "*.tif": "tiff-planes", tmp_path / "stack.tiff": "tiff",
                tmp_path / "a.ims": "imaris", tmp_path / "dataset.xml": "bigstitcher", n5: "n5"}
    assert {p: detect_format(str(p)) for p in expected} == expected


def test_unknown_and_missing_inputs(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InvalidPathError, match="cannot tell the image format"):
        open_image(str(tmp_path / "notes.txt"))
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "readme.md").write_text("x")
    with pytest.raises(OmeZarrError, match="not an OME-Zarr image"):
        open_image(str(tmp_path / "folder"))
    with pytest.raises(InvalidPathError, match="does not exist"):
        open_image(str(tmp_path / "nothing.ims"))


def test_slices_only_on_ome_zarr_and_bad_scale(tmp_path):
    tifffile.imwrite(tmp_path / "s.tif", lightsheet_volume((6, 8, 8)))  # 3 or 4 planes would be RGB(A)
    with pytest.raises(InvalidInputError, match=r"\?slices= selections are read from OME-Zarr only"):
        open_image(str(tmp_path / "s.tif") + "?slices=[0]", scale_um=1.0)
    with pytest.raises(InvalidInputError, match="one value per space axis"):
        open_image(str(tmp_path / "s.tif"), scale_um=(1.0, 2.0))
    with pytest.raises(InvalidInputError, match="positive micrometres"):
        open_image(str(tmp_path / "s.tif"), scale_um=-1)
    with pytest.raises(InvalidInputError, match="level 1 is out of range"):
        open_image(str(tmp_path / "s.tif"), level=1, scale_um=1.0)


def test_remote_planes_stack_and_n5_over_fsspec(tmp_path, memory_url):
    import fsspec
    from test_open_n5 import ts_write

    vol = lightsheet_volume((6, 16, 20), seed=9)
    fs = fsspec.filesystem("memory")
    root = memory_url.removeprefix("memory://")
    for z, plane in enumerate(vol):
        tifffile.imwrite(tmp_path / f"p{z}.tif", plane)
        fs.put_file(str(tmp_path / f"p{z}.tif"), f"{root}/planes/p{z}.tif")
    tifffile.imwrite(tmp_path / "stack.tif", vol, imagej=True, resolution=(2.0, 2.0),
                     metadata={"axes": "ZYX", "spacing": 3.0, "unit": "um"})
    fs.put_file(str(tmp_path / "stack.tif"), f"{root}/stack.tif")
    ts_write(tmp_path / "v.n5", vol, block=(2, 8, 8), extra={"resolution": [0.5, 0.5, 3.0]})
    fs.put(str(tmp_path / "v.n5"), f"{root}/v.n5", recursive=True)
    planes, meta = open_image(f"{memory_url}/planes", scale_um=(3.0, 0.5, 0.5))
    assert meta.format == "tiff-planes"
    np.testing.assert_array_equal(planes.compute(), vol)
    globbed, _ = open_image(f"{memory_url}/planes/p*.tif", scale_um=(3.0, 0.5, 0.5))
    np.testing.assert_array_equal(globbed.compute(), vol)
    stack, meta = open_image(f"{memory_url}/stack.tif")
    assert meta.format == "tiff" and meta.scale == (3.0, 0.5, 0.5)
    np.testing.assert_array_equal(stack.compute(), vol)
    n5, meta = open_image(f"{memory_url}/v.n5")
    assert meta.format == "n5" and meta.scale == (3.0, 0.5, 0.5)
    np.testing.assert_array_equal(n5.compute(), vol)
