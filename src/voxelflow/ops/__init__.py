"""Pure chunked algorithms on dask arrays and tables: no I/O, caching or display.

Import each function from its module (``from voxelflow.ops.label import label``);
the package itself defines no names, so a module and the function it is named
after (``label``, ``threshold``) never shadow each other. Every function takes and returns dask arrays (numpy input is accepted) or pandas
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
"""
