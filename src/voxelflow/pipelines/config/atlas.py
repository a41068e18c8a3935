"""``[atlas]``: the atlas registered to the scan."""

from __future__ import annotations

from dataclasses import dataclass

from voxelflow.pipelines.config.checks import (
    atlas_box,
    key,
    number,
    optional_index,
    orientation_code,
    registration_table,
    string,
)


@dataclass
class AtlasSection:
    """``[atlas]``: region labels registered to the scan and their hierarchy."""

    url: str = key("", string(allow_empty=True), "an OME-Zarr label image path or URL (or empty)",
                   "atlas labels at any resolution covering the same physical extent", path=True)
    regions: str = key("", string(allow_empty=True), "a CSV/JSON region table or BrainGlobe folder (or empty)",
                       path=True)
    brainglobe: str = key("", string(allow_empty=True), "a local BrainGlobe atlas folder (or empty)",
                          "an atlas voxelflow registers to the scan (instead of a pre-registered atlas.url)",
                          path=True)
    orientation: str = key("", orientation_code, "a 3-letter orientation code such as 'psl' (or empty)",
                           "the scan's orientation, brainglobe-space style: each letter is where its axis starts")
    registration_channel: int | None = key(None, optional_index, "a channel index >= 0 (or leave unset)",
                                           "channel registered to the atlas template (autofluorescence); "
                                           "default input.channel")
    registration: dict = key({}, registration_table, "a table of registration parameters (grid_spacing_um, "
                             "affine_iterations, deformable_iterations, deformable, ...)",
                             "see docs/registration.md")
    coverage: str = key("whole", string(choices=("whole", "left", "right", "auto")),
                        "'whole', 'left', 'right' or 'auto'",
                        "the part of the brain the scan holds: one hemisphere is registered to that half of the atlas; "
                        "'auto' tells a hemisphere from a whole brain by the tissue's left-right extent")
    crop_um: list[float] = key([], atlas_box, "6 numbers z0, z1, y0, y1, x0, x1 in micrometres (or empty)",
                               "the box of the atlas (atlas axes, from its corner) a cropped scan covers; the atlas "
                               "is cropped to it before registering")
    density_um: float = key(0.0, number(lo=0.0), "a number >= 0 (micrometres)",
                            "block side of the atlas-space density map; 0 = one atlas voxel")
    density_sigma_um: float = key(0.0, number(lo=0.0), "a number >= 0 (micrometres)",
                                  "Gaussian smoothing of the atlas-space density map; 0 = counts")
