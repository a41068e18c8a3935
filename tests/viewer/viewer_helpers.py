"""Helpers of the napari tests: screenshots, colours, planted scans, caches and run folders."""

from __future__ import annotations

import numpy as np


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
        write_labels(lab, group, name=name, axes=[a for a in axes if a != "c"], scaler=None,
                     scale_factors=factors, scale={k: v for k, v in (scale or {}).items() if k != "c"},
                     axes_units={k: v for k, v in unit.items()}, fmt=fmt_obj)
    return str(path)


# --- a small cached pipeline with planted objects ------------------------------

SCALE = (2.0, 0.5, 0.5)
SHAPE = (8, 64, 64)
# (id, z, y0, y1, x0, x1): boxes planted in plane z of the scan.
BOXES = ((1, 3, 10, 20, 40, 50), (2, 3, 36, 48, 8, 20), (3, 5, 50, 58, 50, 60))


def planted_scan() -> tuple[np.ndarray, np.ndarray]:
    """A uint16 scan with bright boxes on a noisy background, and their labels (uint32)."""
    rng = np.random.default_rng(7)
    img = rng.integers(90, 110, size=SHAPE).astype(np.uint16)
    lab = np.zeros(SHAPE, np.uint32)
    for i, z, y0, y1, x0, x1 in BOXES:
        img[z, y0:y1, x0:x1] = 3000
        lab[z, y0:y1, x0:x1] = i
    return img, lab


def _steps():
    import dask.array as da
    import pandas as pd
    from scipy import ndimage

    from voxelflow.steps import step

    @step(kind="IN->BS")
    def bright(img, value):
        return img > value

    @step(kind="BS->OS")
    def components(bs):
        lab, _ = ndimage.label(np.asarray(bs))
        return da.from_array(lab.astype(np.uint32), chunks=(4, 32, 32))

    @step(kind="OS->LC")
    def centroids(os_arr):
        lab = np.asarray(os_arr)
        ids = np.arange(1, lab.max() + 1)
        com = np.array(ndimage.center_of_mass(lab > 0, lab, ids)).reshape(-1, 3)
        vox = ndimage.sum_labels(np.ones_like(lab), lab, ids).astype(np.int64)
        return pd.DataFrame({"id": ids.astype(np.int64), "z": com[:, 0], "y": com[:, 1],
                             "x": com[:, 2], "voxels": vox})

    @step(kind="IN->IN")
    def coarse(img):
        return img[::2, ::2, ::2]

    return bright, components, centroids, coarse


def make_cache(root) -> dict:
    """Run threshold -> label -> table as cached steps under ``root/cache``, plus a saved array.

    Returns the URLs: ``image`` (the scan as OME-Zarr), ``cache``.
    """
    import dask.array as da

    from voxelflow.cache import save
    from voxelflow.io.ome_zarr import write_ome_zarr

    img, _ = planted_scan()
    image = str(write_ome_zarr(img, f"{root}/scan.ome.zarr", scale=SCALE, units="micrometer",
                               levels=2, factors=(1, 2, 2)))
    cache = f"{root}/cache"
    bright, components, centroids, coarse = _steps()
    store = {"scale": SCALE, "levels": 2, "factors": (1, 2, 2)}
    scan = da.from_array(img, chunks=(4, 32, 32))
    bs = bright(scan, 1000, cache_url=f"{cache}/bright", storage_options=store)
    os_arr = components(bs, cache_url=f"{cache}/components", storage_options=store)
    centroids(os_arr, cache_url=f"{cache}/centroids")
    # A coarse level listed first: the object table must still go on the full-resolution grid.
    coarse(scan, cache_url=f"{cache}/a_coarse", storage_options={"scale": tuple(2 * s for s in SCALE)})
    save(f"{cache}/extra/ramp", np.arange(64 * 64, dtype=np.float32).reshape(64, 64))
    save(f"{cache}/extra/settings", {"value": 1000})
    return {"image": image, "cache": cache}


def make_run_folder(root) -> str:
    """A run folder as the plaque pipeline writes it: run.json, objects.parquet, a cache."""
    import json

    from voxelflow.cache import load

    urls = make_cache(root)
    run = f"{root}/run"
    import os

    os.makedirs(run)
    objects = load(f"{urls['cache']}/centroids/out0")
    objects.to_parquet(f"{run}/objects.parquet", index=False)
    from voxelflow.io.ome_zarr import write_ome_zarr

    density = np.zeros((2, 4, 4), np.float32)
    density[0, 1, 2] = 1.0
    write_ome_zarr(density, f"{run}/density.ome.zarr", scale=tuple(s * 16 for s in SCALE))
    with open(f"{run}/run.json", "w") as f:
        json.dump({"outputs": {"image": urls["image"], "objects": "objects.parquet"},
                   "cache": urls["cache"], "input": {"scale_um": list(SCALE)}}, f)
    return run


def coloured_regions(image, min_pixels=20):
    """Bounding boxes (r0, c0, r1, c1) of the coloured (non-grey) blobs of a screenshot, sorted."""
    from scipy import ndimage

    rgb_int = image.astype(int)
    coloured = rgb_int.max(axis=-1) - rgb_int.min(axis=-1) > 40
    lab, n = ndimage.label(coloured)
    boxes = []
    for sl in ndimage.find_objects(lab):
        if (lab[sl] > 0).sum() >= min_pixels:
            boxes.append((sl[0].start, sl[1].start, sl[0].stop, sl[1].stop))
    return sorted(boxes)
