"""The napari reader plugin (npe2 manifest ``voxelflow/napari.yaml``).

``napari scan.ome.zarr``, ``napari RUN_FOLDER`` or ``napari CACHE_ROOT`` open
through :func:`voxelflow.viewer.sources.layers_for_path`, so they look exactly
as with ``voxelflow view``.
"""

from __future__ import annotations

import os

from voxelflow.errors import VoxelflowError
from voxelflow.viewer.sources import classify_path, layers_for_path


def get_reader(path):
    """Return a reader for ``path`` if voxelflow can show it, else None.

    Parameters
    ----------
    path : str or list of str
        What napari was asked to open; only a single path is handled.

    Returns
    -------
    callable or None
        ``reader(path) -> list of (data, kwargs, layer_type)``.
    """
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    path = os.fspath(path)
    try:
        classify_path(path)
    except (VoxelflowError, OSError):
        return None
    return _read


def _read(path):
    if isinstance(path, (list, tuple)):
        path = path[0]
    return layers_for_path(os.fspath(path))
