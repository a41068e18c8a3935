"""napari viewing of voxelflow data (the ``viewer`` extra).

* :func:`add_ome_zarr`, :func:`add_objects`, :func:`add_result` put an OME-Zarr
  image (with its labels), an object table or any step result into a viewer;
* :func:`layers_for_path` and :func:`open_path` open an image, a run folder or
  a cache root (what ``voxelflow view`` and the napari reader plugin use);
* :func:`release_dask_client` hands the threads back to napari before chunks load;
* :func:`show_step_result` shows step results whose ``viewer_args`` carry a
  viewer; importing this package subscribes it to every step call
  (:func:`voxelflow.steps.subscribe`).

Importing this package does not import napari; only creating a viewer does, and
a missing extra raises :class:`voxelflow.errors.OptionalDependencyError`.
"""

from voxelflow.steps import StepResult, subscribe
from voxelflow.steps.node import output_image
from voxelflow.viewer.add import add_layers, add_objects, add_ome_zarr, add_result
from voxelflow.viewer.layers import (
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
    "show_step_result",
]

_LABEL_KINDS = ("OS",)


def show_step_result(result: StepResult) -> None:
    """Add a step result to the viewer in its ``viewer_args`` (nothing without one).

    Images stored by the step are shown from their OME-Zarr, whose pyramid
    napari needs for large results. ``OS`` outputs are labels unless
    ``is_label`` says otherwise; the layer is named after the step unless
    ``name`` is given; ``scale`` defaults to the stored voxel size.
    """
    viewer_args = dict(result.viewer_args)
    viewer = viewer_args.pop("viewer", None)
    if viewer is None:
        return
    record = result.record
    shown = result.value[0] if isinstance(result.value, tuple) else result.value
    if record.node and record.outputs and record.outputs[0] == "image":
        shown = output_image(record.node, 0)
    is_label = viewer_args.pop("is_label", result.kind_out in _LABEL_KINDS)
    name = viewer_args.pop("name", record.name)
    viewer_args.setdefault("scale", result.storage.get("scale"))
    add_result(viewer, shown, name=name, is_label=is_label, **viewer_args)


subscribe(show_step_result)
