"""voxelflow export-training: crops around points in nnU-Net v2's and cellpose's training layouts."""

import json

import numpy as np
import pandas as pd
import tifffile

from voxelflow.cli import main
from voxelflow.io.ome_zarr import write_ome_zarr
from voxelflow.io.training_export import crop_boxes


def test_crop_boxes_stay_inside_and_keep_their_size():
    boxes = crop_boxes([[0, 0, 0], [10, 50, 50], [19, 99, 99]], (20, 100, 100), (6, 30, 40))
    assert boxes[0] == (slice(0, 6), slice(0, 30), slice(0, 40))
    assert boxes[1] == (slice(7, 13), slice(35, 65), slice(30, 70))
    assert boxes[2] == (slice(14, 20), slice(70, 100), slice(60, 100))
    assert crop_boxes([[5, 5, 5]], (4, 100, 100), (10, 10, 10))[0][0] == slice(0, 4)


def test_export_writes_both_layouts_with_the_source_voxels(tmp_path, capsys):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 4000, (2, 20, 60, 60), dtype=np.uint16)
    labels = np.zeros((20, 60, 60), np.int32)
    labels[8:12, 20:26, 20:26] = 7
    labels[9:11, 40:44, 10:14] = 9
    spacing = (5.0, 2.0, 2.0)
    write_ome_zarr(image, str(tmp_path / "scan.ome.zarr"), scale=(1.0, *spacing), overwrite=True)
    write_ome_zarr(labels, str(tmp_path / "labels.ome.zarr"), scale=spacing, method="nearest", overwrite=True)
    # two crop centres in um (napari world coordinates)
    pd.DataFrame({"axis-0": [50.0, 50.0], "axis-1": [46.0, 84.0], "axis-2": [46.0, 24.0]}).to_csv(
        tmp_path / "crops.csv", index=False)
    code = main(["export-training", "--image", f"{tmp_path / 'scan.ome.zarr'}?slices=[0]",
                 "--image", f"{tmp_path / 'scan.ome.zarr'}?slices=[1]", "--labels", str(tmp_path / "labels.ome.zarr"),
                 "--points", str(tmp_path / "crops.csv"), "--crop-um", "30", "40", "40", "--out", str(tmp_path / "t")])
    assert code == 0 and "2 crops of (6, 20, 20) voxels" in capsys.readouterr().out
    root = tmp_path / "t" / "nnUNet_raw" / "Dataset501_Cells"
    meta = json.loads((root / "dataset.json").read_text())
    assert meta["numTraining"] == 2 and meta["file_ending"] == ".tif" and meta["labels"] == {"background": 0, "cell": 1}
    assert meta["channel_names"] == {"0": "channel_0", "1": "channel_1"}
    boxes = crop_boxes([[10, 23, 23], [10, 42, 12]], labels.shape, (6, 20, 20))
    for i, box in enumerate(boxes):
        for ch in range(2):
            np.testing.assert_array_equal(tifffile.imread(root / "imagesTr" / f"crop_{i:03d}_{ch:04d}.tif"),
                                          image[ch][box])
        np.testing.assert_array_equal(tifffile.imread(root / "labelsTr" / f"crop_{i:03d}.tif"), labels[box] != 0)
        assert json.loads((root / "labelsTr" / f"crop_{i:03d}.json").read_text()) == {"spacing": list(spacing)}
    cp = tmp_path / "t" / "cellpose"
    planes = sorted(p.name for p in cp.glob("*_masks.tif"))
    assert planes == [f"crop_000_z{z:03d}_masks.tif" for z in range(1, 5)] + \
        [f"crop_001_z{z:03d}_masks.tif" for z in range(2, 4)]
    z = 1 + boxes[0][0].start
    np.testing.assert_array_equal(tifffile.imread(cp / "crop_000_z001_masks.tif"), labels[z][boxes[0][1:]])
    np.testing.assert_array_equal(tifffile.imread(cp / "crop_000_z001.tif"), image[:, z][(slice(None),) + boxes[0][1:]])
