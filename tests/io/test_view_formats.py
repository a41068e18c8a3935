"""``voxelflow view`` and the viewer layers open every input format, not only OME-Zarr."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from io_volumes import lightsheet_volume
from test_open_imaris import write_ims
from test_open_planes import write_planes

from voxelflow.cli import main
from voxelflow.errors import InvalidInputError
from voxelflow.viewer.sources import classify_path, layers_for_path


def test_plane_folder_and_glob_are_images_with_their_scale(tmp_path):
    vol = lightsheet_volume((6, 24, 20))
    folder = write_planes(tmp_path / "planes", vol)
    assert classify_path(str(folder)) == "image" and classify_path(str(folder / "*.tif")) == "image"
    with pytest.raises(InvalidInputError, match="scale_um"):
        layers_for_path(str(folder))
    [(data, kwargs, kind)] = layers_for_path(str(folder), scale_um=(5.0, 2.0, 2.0))
    assert kind == "image" and kwargs["scale"] == [5.0, 2.0, 2.0] and kwargs["name"] == "planes"
    assert kwargs["units"] == ["micrometer"] * 3
    np.testing.assert_array_equal(np.asarray(data), vol)


def test_imaris_pyramid_and_channels_become_layers(tmp_path):
    vols = [[lightsheet_volume((8, 32, 32), seed=s) for s in (1, 2)]]
    ims = write_ims(tmp_path / "scan.ims", vols)
    assert classify_path(str(ims)) == "image"
    [(data, kwargs, kind)] = layers_for_path(str(ims))
    assert kind == "image" and kwargs["multiscale"] and len(data) == 2
    assert kwargs["name"] == ["scan.ims [ch0-488nm]", "scan.ims [ch1-588nm]"]
    assert kwargs["scale"] == [4.0, 0.75, 0.625]
    np.testing.assert_array_equal(np.asarray(data[0]), np.stack(vols[0]))


@pytest.mark.viewer
def test_view_cli_checks_a_tiff_stack(tmp_path, capsys):
    tifffile.imwrite(tmp_path / "stack.tif", lightsheet_volume((7, 20, 20)))
    assert main(["view", str(tmp_path / "stack.tif"), "--no-show"]) == 2
    assert "input.scale_um" in capsys.readouterr().err
    assert main(["view", str(tmp_path / "stack.tif"), "--scale-um", "3,1,1", "--no-show"]) == 0
    assert "image   stack.tif  (7, 20, 20)" in capsys.readouterr().out
