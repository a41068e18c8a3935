"""``voxelflow convert``: TIFF stacks written by tifffile to OME-Zarr."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.measure
import tifffile

from ome_zarr_helpers import read_with_ome_zarr_py, validate_with_models
from voxelflow.cli import main
from voxelflow.io.ome_zarr import open_ome_zarr


def test_convert_imagej_stack_with_pyramid(tmp_path, capsys):
    rng = np.random.default_rng(0)
    data = rng.integers(0, 4000, (6, 40, 52), dtype=np.uint16)
    tif = tmp_path / "stack.tif"
    tifffile.imwrite(tif, data, imagej=True, resolution=(1 / 0.5, 1 / 0.5),
                     metadata={"spacing": 2.0, "unit": "um", "axes": "ZYX"})
    out = tmp_path / "stack.ome.zarr"
    code = main(["convert", str(tif), str(out), "--levels", "3", "--factors", "1,2,2", "--chunks", "4,16,16"])
    assert code == 0 and "wrote" in capsys.readouterr().out
    arr, meta = open_ome_zarr(str(out))
    np.testing.assert_array_equal(arr.compute(), data)
    assert arr.chunksize == (4, 16, 16)
    assert meta.scale == (2.0, 0.5, 0.5) and meta.units == ("micrometer",) * 3
    top, meta2 = open_ome_zarr(str(out), level=2)
    ref = data
    for _ in range(2):  # each level is the rounded mean of the level above
        ref = np.floor(skimage.measure.block_reduce(ref.astype(float), (1, 2, 2), np.mean) + 0.5).astype(np.uint16)
    np.testing.assert_array_equal(top.compute(), ref)
    assert meta2.scale == (2.0, 2.0, 2.0)
    validate_with_models(str(out))
    assert read_with_ome_zarr_py(str(out))[0][0].shape == data.shape


def test_convert_channel_stack_reorders_axes_and_zips(tmp_path):
    data = np.arange(3 * 2 * 16 * 20, dtype=np.uint8).reshape(3, 2, 16, 20)  # Z, C, Y, X
    tif = tmp_path / "zc.tif"
    tifffile.imwrite(tif, data, metadata={"axes": "ZCYX"})
    out = tmp_path / "zc.ome.zarr.zip"
    assert main(["convert", str(tif), str(out), "--levels", "2", "--ngff-version", "0.4", "--scale", "1,3,1,1"]) == 0
    arr, meta = open_ome_zarr(str(out))
    assert meta.axes == ("c", "z", "y", "x") and meta.version == "0.4"
    assert meta.scale == (1.0, 3.0, 1.0, 1.0)
    np.testing.assert_array_equal(arr.compute(), data.transpose(1, 0, 2, 3))


def test_convert_errors(tmp_path, capsys):
    assert main(["convert", str(tmp_path / "missing.tif"), str(tmp_path / "o.ome.zarr")]) == 2
    assert "missing.tif does not exist" in capsys.readouterr().err
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"not a tiff at all")
    assert main(["convert", str(bad), str(tmp_path / "o.ome.zarr")]) == 2
    assert "cannot read" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["convert", str(bad), str(tmp_path / "o.ome.zarr"), "--factors", "a,b"])
