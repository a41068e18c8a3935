"""Pure chunked algorithms on dask arrays and tables: no I/O, caching or display.

Every function takes and returns dask arrays (numpy input is accepted) or pandas
tables and computes exactly what its ``scipy.ndimage`` / ``scikit-image``
counterpart computes on the whole array, whatever the chunking.

============================  =========  ==========================================
function                      types      module
============================  =========  ==========================================
``threshold``                 IN -> BS   :mod:`voxelflow.ops.threshold`
``upsample_mask``,            BS         :mod:`voxelflow.ops.masks`
``apply_negative_mask``
``percentile_range``,         IN         :mod:`voxelflow.ops.normalize`
``rescale_intensity``
``label``                     BS -> OS   :mod:`voxelflow.ops.label`
``object_table``              BS/OS->LC  :mod:`voxelflow.ops.objects`
``watershed_split``           BS -> OS   :mod:`voxelflow.ops.watershed`
``blob_detect``               IN -> LC   :mod:`voxelflow.ops.blobs`
``count_objects``,            LC -> CC   :mod:`voxelflow.ops.counts`
``count_per_block``,
``count_labels_per_chunk``
``density_map``               LC -> CD   :mod:`voxelflow.ops.density`
``assign_regions``,           LC -> RC   :mod:`voxelflow.ops.atlas`
``count_by_region``
``downsample``,               any        :mod:`voxelflow.ops.resample`
``scale_nearest``,
``affine_nearest``
``estimate_bias_field``,      IN         :mod:`voxelflow.ops.bias` (``bias`` extra)
``apply_bias_field``
============================  =========  ==========================================

Names are imported on first use, so ``import voxelflow.ops`` stays light.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "threshold": "threshold",
    "upsample_mask": "masks",
    "apply_negative_mask": "masks",
    "percentile_range": "normalize",
    "rescale_intensity": "normalize",
    "label": "label",
    "object_table": "objects",
    "watershed_split": "watershed",
    "blob_detect": "blobs",
    "count_objects": "counts",
    "count_per_block": "counts",
    "count_labels_per_chunk": "counts",
    "density_map": "density",
    "assign_regions": "atlas",
    "count_by_region": "atlas",
    "downsample": "resample",
    "scale_nearest": "resample",
    "affine_nearest": "resample",
    "estimate_bias_field": "bias",
    "apply_bias_field": "bias",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'voxelflow.ops' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"voxelflow.ops.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
