"""Synthetic run folders for the report tests: planted cubes with known centres."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

SHAPE = (24, 48, 64)
HALF = 2  # planted cubes are (2*HALF+1)^3 voxels


def planted_image(centres, shape=SHAPE, seed=0, half=HALF):
    """Dim noise (< 0.1) with bright (1.0) cubes at integer ``centres``; float32 (z, y, x)."""
    rng = np.random.default_rng(seed)
    img = (rng.random(shape) * 0.1).astype(np.float32)
    for z, y, x in centres:
        img[max(z - half, 0):z + half + 1, max(y - half, 0):y + half + 1,
            max(x - half, 0):x + half + 1] = 1.0
    return img


def planted_objects(centres, half=HALF) -> pd.DataFrame:
    """The LC table of the planted cubes, written from the known centres (not from the image)."""
    c = np.asarray(centres, dtype=np.float64).reshape(-1, 3)
    return pd.DataFrame({
        "id": np.arange(1, len(c) + 1, dtype=np.int64),
        "z": c[:, 0], "y": c[:, 1], "x": c[:, 2],
        "voxels": np.full(len(c), (2 * half + 1) ** 3, dtype=np.int64),
    })


def region_counts() -> pd.DataFrame:
    """An RC table of a root with two children."""
    return pd.DataFrame({
        "id": [1, 2, 3], "acronym": ["root", "CTX", "HPF"], "name": ["root", "cortex", "hippocampus"],
        "parent": [-1, 1, 1], "count": [22, 11, 11], "count_self": [0, 11, 11],
        "volume_mm3": [1.0, 0.5, 0.5], "density_per_mm3": [22.0, 22.0, 22.0],
    })


def write_run_folder(run, centres, *, with_regions=True, half=HALF) -> None:
    """Write objects.parquet, regions.csv and run.json as a pipeline run would."""
    run.mkdir(parents=True, exist_ok=True)
    planted_objects(centres, half).to_parquet(run / "objects.parquet")
    if with_regions:
        region_counts().to_csv(run / "regions.csv", index=False)
    (run / "run.json").write_text(json.dumps({
        "parameters": {"threshold": 0.5}, "timings_s": {"label": 1.25}, "peak_memory_mb": 321,
    }))


def write_ngff_image(path, arr, axes, yx_levels):
    """Write ``arr`` with ome-zarr-py (an independent writer), halving y and x per extra level."""
    import zarr
    from ome_zarr.format import FormatV04
    from ome_zarr.writer import write_image

    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    factors = [{"y": 2, "x": 2} for _ in range(yx_levels)]
    write_image(arr, group, axes=list(axes), scale_factors=factors, fmt=FormatV04())
