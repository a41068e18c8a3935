"""Shared fixtures and helpers for the napari tests (run under Xvfb, real canvas)."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def module_viewer():
    napari = pytest.importorskip("napari")
    # show=True: without a mapped window napari's canvas never renders (blank screenshots).
    viewer = napari.Viewer(show=True)
    yield viewer
    viewer.close()


@pytest.fixture
def viewer(module_viewer):
    """A shown napari viewer with no layers, shared by the tests of one module."""
    module_viewer.layers.clear()
    module_viewer.dims.ndisplay = 2
    yield module_viewer
    module_viewer.layers.clear()


def camera(viewer):
    """The viewer's camera (``viewer.scene.camera`` from napari 0.9 on)."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None else viewer.camera


def look_at(viewer, center_yx, zoom):
    """Centre the 2D view on world point ``center_yx`` with ``zoom`` screen px per world unit."""
    cam = camera(viewer)
    cam.center = (0.0, *map(float, center_yx))
    cam.zoom = float(zoom)


def shot(viewer) -> np.ndarray:
    """RGB screenshot of the canvas, shape (H, W, 3) uint8."""
    return viewer.screenshot(canvas_only=True, flash=False)[..., :3]


def to_screen(viewer, image, world_yx):
    """Screenshot (row, col) of a world point, for the current 2D camera."""
    cam = camera(viewer)
    h, w = image.shape[:2]
    cy, cx = cam.center[-2:]
    y, x = world_yx
    return int(round(h / 2 + (y - cy) * cam.zoom)), int(round(w / 2 + (x - cx) * cam.zoom))


def voxel_centre(index_yx, scale_yx=(1.0, 1.0)):
    """World coordinates of the centre of voxel ``index_yx`` of a layer with ``scale_yx``."""
    return tuple(i * s for i, s in zip(index_yx, scale_yx))


def rgb(color) -> np.ndarray:
    """A napari RGBA float colour as uint8 RGB."""
    return np.round(np.asarray(color, dtype=float)[:3] * 255).astype(int)


def close_to(pixel, color, tol=6) -> bool:
    return bool(np.all(np.abs(np.asarray(pixel, dtype=int) - rgb(color)) <= tol))


def write_ngff(path, arr, *, axes="zyx", scale=None, levels=2, labels=None, fmt="0.4"):
    """Write ``arr`` (and ``labels`` name -> array) with ome-zarr-py, an independent writer.

    Returns the path as a string.
    """
    import zarr
    from ome_zarr.format import FormatV04, FormatV05
    from ome_zarr.writer import write_image, write_labels

    fmt_obj = FormatV04() if fmt == "0.4" else FormatV05()
    zarr_format = 2 if fmt == "0.4" else 3
    group = zarr.open_group(str(path), mode="w", zarr_format=zarr_format)
    spatial = {a: 2 for a in axes if a in "yx"}
    factors = [dict(spatial) for _ in range(levels - 1)]
    unit = {a: "micrometer" for a in axes if a in "zyx"}
    write_image(arr, group, axes=list(axes), scale_factors=factors, scale=scale,
                axes_units=unit, fmt=fmt_obj)
    for name, lab in (labels or {}).items():
        write_labels(lab, group, name=name, axes=[a for a in axes if a != "c"],
                     scale_factors=factors, scale={k: v for k, v in (scale or {}).items() if k != "c"},
                     axes_units={k: v for k, v in unit.items()}, fmt=fmt_obj)
    return str(path)
