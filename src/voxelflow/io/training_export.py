"""Annotated crops written as training data for nnU-Net v2 and cellpose.

nnU-Net v2 (raw dataset layout, TIFF flavour read by its ``Tiff3DIO``)::

    Dataset501_Cells/
        dataset.json                      channel_names, labels, numTraining, file_ending ".tif"
        imagesTr/crop_000_0000.tif        one file per channel (_0000, _0001, ...)
        imagesTr/crop_000.json            {"spacing": [z, y, x]} in micrometres
        labelsTr/crop_000.tif             class ids (uint8/uint16), 0 = background
        labelsTr/crop_000.json

cellpose (its training folder: an image and its ``_masks`` file per 2-D plane)::

    cellpose/
        crop_000_z007.tif                 (C, Y, X) or (Y, X)
        crop_000_z007_masks.tif           instance ids, 0 = background

Only planes that hold at least one labelled voxel are written for cellpose.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import tifffile

from voxelflow.errors import InvalidInputError

__all__ = ["Crop", "crop_boxes", "export_nnunet", "export_cellpose"]


@dataclass(frozen=True)
class Crop:
    """One annotated crop.

    Attributes
    ----------
    name : str
    image : ndarray, shape (C, Z, Y, X)
    labels : ndarray of int, shape (Z, Y, X)
    """

    name: str
    image: np.ndarray
    labels: np.ndarray


def crop_boxes(centres, shape: Sequence[int], size: Sequence[int]) -> list[tuple[slice, ...]]:
    """Boxes of ``size`` voxels around each centre, shifted inward to stay inside ``shape``.

    Parameters
    ----------
    centres : array-like, shape (n, 3)
        Voxel coordinates.
    shape : sequence of 3 int
        Shape of the volume.
    size : sequence of 3 int
        Crop size in voxels (clipped to ``shape``).

    Returns
    -------
    list of tuple of slice
    """
    centres = np.asarray(centres, dtype=float).reshape(-1, 3)
    size = [min(int(s), int(n)) for s, n in zip(size, shape)]
    boxes = []
    for c in centres:
        box = []
        for p, s, n in zip(c, size, shape):
            start = int(math.floor(p - s / 2 + 0.5))
            start = min(max(start, 0), n - s)
            box.append(slice(start, start + s))
        boxes.append(tuple(box))
    return boxes


def _check(crops: list[Crop]):
    if not crops:
        raise InvalidInputError("no crops to export")
    channels = {c.image.shape[0] for c in crops}
    if len(channels) != 1:
        raise InvalidInputError(f"all crops need the same channel count, got {sorted(channels)}")
    for c in crops:
        if c.image.ndim != 4 or c.image.shape[1:] != c.labels.shape:
            raise InvalidInputError(
                f"crop {c.name}: image {c.image.shape} must be (C, Z, Y, X) over labels {c.labels.shape}"
            )
        if c.labels.dtype.kind not in "iub" or (c.labels.size and c.labels.min() < 0):
            raise InvalidInputError(f"crop {c.name}: labels must be non-negative integers")


def _write_tif(path, data):
    tmp = f"{path}.tmp"
    tifffile.imwrite(tmp, data, compression="zlib")
    os.replace(tmp, path)


def export_nnunet(crops: list[Crop], folder, *, dataset_id: int = 501, name: str = "Cells",
                  spacing: Sequence[float] = (1.0, 1.0, 1.0), channel_names: Sequence[str] | None = None,
                  class_names: dict[str, int] | None = None, instances_as_foreground: bool = True) -> str:
    """Write crops as an nnU-Net v2 raw dataset; returns the dataset folder.

    Parameters
    ----------
    crops : list of Crop
    folder : str or os.PathLike
        Parent folder (``nnUNet_raw``); the dataset goes to ``Dataset{id:03d}_{name}``.
    dataset_id : int
        nnU-Net dataset id (1 .. 999).
    name : str
    spacing : sequence of 3 float
        Voxel size in micrometres (z, y, x).
    channel_names : sequence of str, optional
        One per image channel (default ``channel_0``, ...).
    class_names : dict, optional
        nnU-Net ``labels`` entry; default ``{"background": 0, "cell": 1}``.
    instances_as_foreground : bool
        Write every non-zero label as class 1 (instance annotations become a
        foreground class); False writes the label values as class ids.
    """
    _check(crops)
    if not 1 <= int(dataset_id) <= 999:
        raise InvalidInputError(f"dataset_id must be between 1 and 999, got {dataset_id}")
    if not name or not name.replace("_", "").isalnum():
        raise InvalidInputError(f"the dataset name must be letters, digits and _, got {name!r}")
    n_channels = crops[0].image.shape[0]
    channel_names = list(channel_names or [f"channel_{i}" for i in range(n_channels)])
    if len(channel_names) != n_channels:
        raise InvalidInputError(f"{len(channel_names)} channel names for {n_channels} channels")
    classes = dict(class_names or {"background": 0, "cell": 1})
    root = os.path.join(os.fspath(folder), f"Dataset{int(dataset_id):03d}_{name}")
    images, labels = os.path.join(root, "imagesTr"), os.path.join(root, "labelsTr")
    os.makedirs(images, exist_ok=True)
    os.makedirs(labels, exist_ok=True)
    side = json.dumps({"spacing": [float(s) for s in spacing]})
    top = max(classes.values())
    for crop in crops:
        seg = (crop.labels != 0) if instances_as_foreground else crop.labels
        if seg.size and int(seg.max()) > top:
            raise InvalidInputError(f"crop {crop.name} has label {int(seg.max())}, above the classes {classes}")
        for ch in range(n_channels):
            _write_tif(os.path.join(images, f"{crop.name}_{ch:04d}.tif"), np.ascontiguousarray(crop.image[ch]))
        _write_tif(os.path.join(labels, f"{crop.name}.tif"), seg.astype(np.uint8 if top < 256 else np.uint16))
        for where in (images, labels):
            with open(os.path.join(where, f"{crop.name}.json"), "w") as f:
                f.write(side)
    dataset = {
        "channel_names": {str(i): n for i, n in enumerate(channel_names)},
        "labels": classes,
        "numTraining": len(crops),
        "file_ending": ".tif",
        "overwrite_image_reader_writer": "Tiff3DIO",
    }
    with open(os.path.join(root, "dataset.json"), "w") as f:
        json.dump(dataset, f, indent=2)
    return root


def export_cellpose(crops: list[Crop], folder) -> list[str]:
    """Write every labelled z-plane of the crops in cellpose's training layout; returns the image files."""
    _check(crops)
    os.makedirs(os.fspath(folder), exist_ok=True)
    written = []
    for crop in crops:
        for z in range(crop.labels.shape[0]):
            masks = crop.labels[z]
            if not masks.any():
                continue
            stem = os.path.join(os.fspath(folder), f"{crop.name}_z{z:03d}")
            image = crop.image[:, z]
            _write_tif(f"{stem}.tif", image[0] if image.shape[0] == 1 else image)
            _write_tif(f"{stem}_masks.tif", masks.astype(np.uint32 if masks.max() >= 65536 else np.uint16))
            written.append(f"{stem}.tif")
    return written
