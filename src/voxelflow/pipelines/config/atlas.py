"""``[atlas]``: the atlas registered to the scan."""

from __future__ import annotations

from dataclasses import dataclass

from voxelflow.pipelines.config.checks import key, optional_index, orientation_code, registration_table, string


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
