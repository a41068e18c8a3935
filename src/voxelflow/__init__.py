"""voxelflow: find, list and count objects in whole-brain lightsheet OME-Zarr scans.

Exact chunked algorithms on Dask, a crash-safe hierarchical result cache, and
napari viewing of every intermediate step. Public names are imported lazily so
``import voxelflow`` stays fast and never needs the optional extras.
"""

from __future__ import annotations

import importlib

from voxelflow import errors
from voxelflow.paths import VPath

__version__ = "0.1.0"

_LAZY = {
    "cdir_init": "voxelflow.cache",
    "cdir_query": "voxelflow.cache",
    "cdir_commit": "voxelflow.cache",
    "save": "voxelflow.cache",
    "load": "voxelflow.steps.node",
    "cached": "voxelflow.cache",
    "MultiOutputStream": "voxelflow.runtime.logs",
    "tee_logs": "voxelflow.runtime.logs",
    "PLComponents": "voxelflow.runtime.session",
    "open_image": "voxelflow.io",
    "open_ome_zarr": "voxelflow.io",
    "write_ome_zarr": "voxelflow.io",
    "write_labels": "voxelflow.io",
}

__all__ = ["VPath", "errors", "__version__", *_LAZY]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'voxelflow' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
