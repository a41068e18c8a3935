"""``voxelflow export-training``: annotated crops as nnU-Net v2 and cellpose training data.

Crops of ``--crop-um`` micrometres are cut around the given points (napari
Points layer saved as CSV, or a CSV with ``z, y, x``) from the image channels
and from a label image (a napari Labels layer saved as OME-Zarr, on the scan's
grid: instance ids, 0 = background). See :mod:`voxelflow.io.training_export`
for the layouts.

Example::

    voxelflow export-training --image scan.ome.zarr?slices=[0] --labels annotations.ome.zarr \\
        --points crops.csv --crop-um 120 --out training --format nnunet cellpose
"""

from __future__ import annotations

import numpy as np


def register(subparsers) -> None:
    import argparse

    p = subparsers.add_parser("export-training", help="write annotated crops for nnU-Net and cellpose training",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--image", action="append", required=True,
                   help="image channel (OME-Zarr, ?slices=[c] picks one); repeat for more channels")
    p.add_argument("--labels", required=True, help="label image (OME-Zarr) on the image's grid")
    p.add_argument("--points", required=True, help="CSV of crop centres")
    p.add_argument("--unit", choices=("um", "voxel"), default="um", help="unit of the point coordinates")
    p.add_argument("--crop-um", type=float, nargs="+", default=[100.0],
                   help="crop size in micrometres (one value, or z y x)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--format", nargs="+", choices=("nnunet", "cellpose"), default=["nnunet", "cellpose"])
    p.add_argument("--dataset-id", type=int, default=501, help="nnU-Net dataset id")
    p.add_argument("--name", default="Cells", help="nnU-Net dataset name")
    p.set_defaults(func=run)


def run(args) -> int:
    import os

    from voxelflow.errors import InvalidInputError
    from voxelflow.io.annotations import read_points
    from voxelflow.io.training_export import Crop, crop_boxes, export_cellpose, export_nnunet
    from voxelflow.pipelines.inputs import open_scan

    channels = [open_scan(url) for url in args.image]
    labels = open_scan(args.labels)
    shape, spacing = channels[0].image.shape, tuple(channels[0].scale)
    for url, c in zip(args.image + [args.labels], channels + [labels]):
        if c.image.shape != shape:
            raise InvalidInputError(f"{url} has shape {c.image.shape}; the first image has {shape}")
    if labels.image.dtype.kind not in "iub":
        raise InvalidInputError(f"{args.labels} must hold integer labels, got {labels.image.dtype}")
    points, _ = read_points(args.points, voxel_size=spacing, unit=args.unit, label=True)
    size_um = np.broadcast_to(np.asarray(args.crop_um, float), (3,))
    size = np.maximum(np.rint(size_um / np.asarray(spacing)).astype(int), 1)
    crops = []
    for i, box in enumerate(crop_boxes(points, shape, size)):
        image = np.stack([np.asarray(c.image[box]) for c in channels])
        crops.append(Crop(f"crop_{i:03d}", image, np.asarray(labels.image[box])))
    written = []
    if "nnunet" in args.format:
        written.append(export_nnunet(crops, os.path.join(args.out, "nnUNet_raw"), dataset_id=args.dataset_id,
                                     name=args.name, spacing=spacing))
    if "cellpose" in args.format:
        files = export_cellpose(crops, os.path.join(args.out, "cellpose"))
        written.append(f"{os.path.join(args.out, 'cellpose')} ({len(files)} planes)")
    print(f"voxelflow export-training: {len(crops)} crops of {tuple(int(s) for s in size)} voxels -> "
          + "; ".join(written))
    return 0
