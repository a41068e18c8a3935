"""Putting voxelflow layer data into a napari viewer: images, labels, object tables, step results."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from voxelflow.viewer.layers import LayerData, object_layer, ome_zarr_layers, result_layers
from voxelflow.viewer.threads import client_is_alive
from voxelflow.viewer.threads import local_threads as wrap_local_threads

__all__ = ["add_layers", "add_objects", "add_ome_zarr", "add_result"]


def add_layers(viewer, layer_data: Sequence[LayerData], *, local_threads: bool | None = None) -> list:
    """Add layer data tuples to ``viewer``; returns the new napari layers in order.

    Parameters
    ----------
    viewer : napari.Viewer
    layer_data : sequence of (data, kwargs, layer_type)
    local_threads : bool, optional
        Wrap dask data in :class:`~voxelflow.viewer.threads.LocalThreadsArray`
        so napari loads chunks on local threads, not through a distributed
        client (3-8x faster, see ``benchmarks/bench_viewer_threads.py``).
        Default: only while a client is alive; otherwise napari gets the plain
        dask arrays (and its own chunk cache).
    """
    if local_threads is None:
        local_threads = client_is_alive()
    out = []
    for data, kwargs, layer_type in layer_data:
        if local_threads:
            data = wrap_local_threads(data)
        added = getattr(viewer, f"add_{layer_type}")(data, **kwargs)
        out.extend(added if isinstance(added, list) else [added])
    return out


def add_ome_zarr(viewer, url, **kwargs) -> list:
    """Add an OME-Zarr image (and its ``labels/``) to a napari viewer.

    See :func:`ome_zarr_layers` for the parameters, and :func:`add_layers` for
    ``local_threads``.

    Returns
    -------
    list of napari.layers.Layer
        One image layer per channel (or one for all), then one labels layer per label image.

    Examples
    --------
    >>> import napari                                      # doctest: +SKIP
    >>> from voxelflow.viewer import add_ome_zarr          # doctest: +SKIP
    >>> add_ome_zarr(napari.Viewer(), "scan.ome.zarr?slices=[0]")  # doctest: +SKIP
    """
    local = kwargs.pop("local_threads", None)
    return add_layers(viewer, ome_zarr_layers(url, **kwargs), local_threads=local)


def add_objects(viewer, lc_df: pd.DataFrame, scale=None, text=None, **kwargs):
    """Add an object table (LC) to ``viewer`` as a points layer (see :func:`object_layer`)."""
    return add_layers(viewer, [object_layer(lc_df, scale=scale, text=text, **kwargs)])[0]


def add_result(viewer, arr_or_df, name: str, is_label: bool = False, scale=None, **layer_kwargs):
    """Show a step result in ``viewer``; what steps call when ``viewer_args`` has a viewer.

    See :func:`result_layers` for the parameters, and :func:`add_layers` for
    ``local_threads``. An object table given without ``scale`` is placed on the
    grid (scale and offset) of the viewer's 3D layer with the most voxels: steps
    measure objects in voxels of the full-resolution image.

    Returns
    -------
    napari.layers.Layer or None
        The image, labels or points layer added; None when the result has
        nothing to draw (a number, a JSON value, a table without centroids).
    """
    local = layer_kwargs.pop("local_threads", None)
    if isinstance(arr_or_df, pd.DataFrame) and scale is None and "z" in arr_or_df.columns:
        grid = _finest_grid(viewer)
        if grid is not None:
            scale = grid.scale
            layer_kwargs.setdefault("translate", tuple(grid.translate))
    layers = add_layers(
        viewer, result_layers(arr_or_df, name, is_label, scale, **layer_kwargs), local_threads=local
    )
    return layers[0] if layers else None


def _finest_grid(viewer):
    """The 3D layer with the most voxels, labels first on ties (where object tables are measured)."""
    best, rank = None, (-1, False)
    for layer in viewer.layers:
        kind = type(layer).__name__
        if kind not in ("Image", "Labels") or layer.ndim != 3:
            continue
        data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
        this = (int(np.prod(data.shape)), kind == "Labels")
        if this > rank:
            best, rank = layer, this
    return best
