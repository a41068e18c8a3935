"""``voxelflow run`` reads TIFF planes and Imaris files directly and finds what it finds in the OME-Zarr."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from test_open_imaris import write_ims
from test_open_planes import write_planes

from pipeline_helpers import small_overrides, write_small_scan
from voxelflow.cli import main


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run-any")
    brain, paths = write_small_scan(folder, channels=1)
    write_planes(folder / "planes", brain.image, pattern="brain_Z{z:03d}.tif")
    return brain, paths, folder


def _run(paths, out, *extra) -> tuple[int, pd.DataFrame | None, dict | None]:
    args = ["run", "/dev/null", "--quiet", "--no-report"]
    for item in small_overrides(paths, out, channel_in_url=False) + ["pipeline.bias=false", *extra]:
        args += ["--set", item]
    code = main(args)
    if code:
        return code, None, None
    return code, pd.read_parquet(out / "objects.parquet"), json.loads((out / "run.json").read_text())


def _same_objects(a: pd.DataFrame, b: pd.DataFrame) -> None:
    cols = ["z", "y", "x", "voxels"]
    pd.testing.assert_frame_equal(a.sort_values(cols)[cols].reset_index(drop=True),
                                  b.sort_values(cols)[cols].reset_index(drop=True))


def test_plane_folder_gives_the_objects_of_the_ome_zarr(scans, tmp_path, capsys):
    brain, paths, folder = scans
    code, ref, ref_run = _run(paths, tmp_path / "zarr")
    assert code == 0 and len(ref) > 20
    code, _, _ = _run(paths, tmp_path / "noscale", f'input.url="{folder / "planes"}"')
    assert code == 2 and "input.scale_um" in capsys.readouterr().err
    scale = list(brain.scale)
    code, got, run = _run(paths, tmp_path / "planes", f'input.url="{folder / "planes"}"', f"input.scale_um={scale}")
    assert code == 0
    _same_objects(got, ref)
    assert run["input"]["scale_um"] == scale and run["threshold"] == ref_run["threshold"]
    code, globbed, _ = _run(paths, tmp_path / "glob", f'input.url="{folder / "planes" / "brain_Z*.tif"}"',
                            f"input.scale_um={scale}")
    assert code == 0
    _same_objects(globbed, ref)


def test_imaris_channel_gives_the_objects_of_the_ome_zarr(scans, tmp_path):
    brain, paths, folder = scans
    ims = write_ims(folder / "brain.ims", [[brain.image // 8, brain.image]], n_levels=2)
    code, ref, _ = _run(paths, tmp_path / "zarr")
    # the Imaris writer of the tests stores its own voxel size: give the scan's
    code, got, run = _run(paths, tmp_path / "ims", f'input.url="{ims}"', "input.channel=1",
                          f"input.scale_um={list(brain.scale)}")
    assert code == 0
    _same_objects(got, ref)
