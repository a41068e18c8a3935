"""napari viewing of voxelflow data (the ``viewer`` extra).

* :func:`add_ome_zarr`, :func:`add_objects`, :func:`add_result` put an OME-Zarr
  image (with its labels), an object table or any step result into a viewer;
* :func:`layers_for_path` and :func:`open_path` open an image, a run folder or
  a cache root (what ``voxelflow view`` and the napari reader plugin use);
* :func:`release_dask_client` hands the threads back to napari before chunks load.

Importing this package does not import napari; only creating a viewer does, and
a missing extra raises :class:`voxelflow.errors.OptionalDependencyError`.
"""

from voxelflow.viewer.layers import (
    add_layers,
    add_objects,
    add_ome_zarr,
    add_result,
    contrast_limits,
    object_layer,
    ome_zarr_layers,
    result_layers,
)
from voxelflow.viewer.threads import release_dask_client

__all__ = [
    "add_layers",
    "add_objects",
    "add_ome_zarr",
    "add_result",
    "contrast_limits",
    "object_layer",
    "ome_zarr_layers",
    "release_dask_client",
    "result_layers",
]
