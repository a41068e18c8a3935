"""The built-in steps: one per op of :mod:`voxelflow.ops`, with its data types (DESIGN.md names).

Each is a :class:`~voxelflow.steps.Step` importing its op on first call, so
``import voxelflow.steps`` stays light.
"""

from voxelflow.steps.step import Step

__all__ = [
    "add_regions",
    "apply_bias_field",
    "assign_regions",
    "auto_negative_mask",
    "blob_detect",
    "count_by_region",
    "density_map",
    "downsample",
    "estimate_bias_field",
    "filter_by_size",
    "foreground",
    "foreground_objects",
    "label",
    "object_table",
    "physical_coordinates",
    "relative_threshold",
    "threshold",
    "threshold_corrected",
    "watershed_split",
]

threshold = Step("voxelflow.ops:threshold", kind="IN->BS")
label = Step("voxelflow.ops:label", kind="BS->OS")
object_table = Step("voxelflow.ops:object_table", kind="OS->LC")
watershed_split = Step("voxelflow.ops:watershed_split", kind="BS->OS")
blob_detect = Step("voxelflow.ops:blob_detect", kind="IN->LC")
downsample = Step("voxelflow.ops:downsample", kind="IN->IN")
estimate_bias_field = Step("voxelflow.ops:estimate_bias_field", kind="IN->IN")
apply_bias_field = Step("voxelflow.ops:apply_bias_field", kind="IN->IN")
density_map = Step("voxelflow.ops:density_map", kind="LC->CD")
assign_regions = Step("voxelflow.ops:assign_regions", kind="LC->LC")  # returns the region_id Series
count_by_region = Step("voxelflow.ops:count_by_region", kind="LC->RC")
relative_threshold = Step("voxelflow.ops:relative_threshold", kind="IN->IN")
foreground = Step("voxelflow.ops:foreground", kind="IN->BS")
threshold_corrected = Step("voxelflow.ops:threshold_corrected", kind="IN->BS")
foreground_objects = Step("voxelflow.ops:foreground_objects", kind="IN->LC")
auto_negative_mask = Step("voxelflow.ops:auto_negative_mask", kind="IN->BS")
filter_by_size = Step("voxelflow.ops:filter_by_size", kind="LC->LC")
physical_coordinates = Step("voxelflow.ops:physical_coordinates", kind="LC->LC")
add_regions = Step("voxelflow.ops:add_regions", kind="LC->LC")
