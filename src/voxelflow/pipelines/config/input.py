"""``[input]``: the scan and its channels."""

from __future__ import annotations

from dataclasses import dataclass

from voxelflow.pipelines.config.checks import key, number, optional_index, string, voxel_size


@dataclass
class InputSection:
    """``[input]``: the scan."""

    url: str = key(None, string(), "an image path or URL: OME-Zarr (optionally with ?slices=[...]), a folder or "
                   "glob of TIFF planes, a TIFF stack, an Imaris .ims, an N5 dataset or a BigStitcher dataset.xml",
                   "the scan; ?slices=[c, ...] picks the channel of an OME-Zarr", required=True, path=True)
    scale_um: float | list[float] | None = key(None, voxel_size, "a voxel size in micrometres: one number or "
                                               "[z, y, x] (or leave unset)",
                                               "required when the scan's files state no voxel size; "
                                               "overrides the file's")
    channel: int | None = key(None, optional_index, "a channel index >= 0 (or leave unset)",
                              "channel index when the image has a c axis and no ?slices=")
    level: int = key(0, number(lo=0, integer=True), "an integer pyramid level >= 0")
    background_channel: int | None = key(None, optional_index, "a channel index >= 0 (or leave unset)",
                                         "autofluorescence channel of the same scan (cell pipeline)")
    background_url: str = key("", string(allow_empty=True), "an OME-Zarr path or URL (or empty)",
                              "autofluorescence channel stored as its own image (cell pipeline)", path=True)
