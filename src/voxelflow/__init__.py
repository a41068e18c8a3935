"""voxelflow: find, list and count objects in whole-brain lightsheet OME-Zarr scans.

Exact chunked algorithms on Dask, a crash-safe hierarchical result cache, and
napari viewing of every intermediate step.
"""

from voxelflow import errors
from voxelflow.paths import VPath

__version__ = "0.1.0"

__all__ = ["VPath", "errors", "__version__"]
