"""Cached, viewable steps: an op plus a cache node plus a run record.

* :mod:`~voxelflow.steps.step`: the :class:`Step` class and the ``@step`` decorator;
* :mod:`~voxelflow.steps.builtin`: one step per op (``threshold``, ``label``, ...);
* :mod:`~voxelflow.steps.models`: ``predict``, ``predict_instances``, ``classify_cells`` (learned models);
* :mod:`~voxelflow.steps.runner`: :class:`Runner` (cache root, storage defaults,
  records, ``on_result`` hooks), :func:`record_steps`, :func:`subscribe`;
* :mod:`~voxelflow.steps.node`: the on-disk layout of step nodes and run folders;
* :mod:`~voxelflow.steps.fingerprint`, :mod:`~voxelflow.steps.keys`: cache keys.

See :mod:`voxelflow.steps.step` for an example.
"""

from voxelflow.steps.builtin import (
    add_regions,
    apply_bias_field,
    assign_regions,
    auto_negative_mask,
    blob_detect,
    count_by_region,
    density_map,
    downsample,
    estimate_bias_field,
    filter_by_size,
    foreground,
    foreground_objects,
    label,
    object_table,
    physical_coordinates,
    relative_threshold,
    threshold,
    threshold_corrected,
    watershed_split,
)
from voxelflow.steps.fingerprint import fingerprint
from voxelflow.steps.keys import keyed, step_key
from voxelflow.steps.models import classify_cells, predict, predict_instances
from voxelflow.steps.node import STEP_FILE
from voxelflow.steps.runner import Runner, StepRecord, StepResult, record_steps, subscribe, unsubscribe
from voxelflow.steps.step import Step, step

__all__ = [
    "Runner",
    "STEP_FILE",
    "Step",
    "StepRecord",
    "StepResult",
    "add_regions",
    "apply_bias_field",
    "assign_regions",
    "auto_negative_mask",
    "blob_detect",
    "classify_cells",
    "count_by_region",
    "density_map",
    "downsample",
    "estimate_bias_field",
    "filter_by_size",
    "fingerprint",
    "foreground",
    "foreground_objects",
    "keyed",
    "label",
    "object_table",
    "physical_coordinates",
    "predict",
    "predict_instances",
    "record_steps",
    "relative_threshold",
    "step",
    "step_key",
    "subscribe",
    "threshold",
    "threshold_corrected",
    "unsubscribe",
    "watershed_split",
]
