"""Small synthetic scans on disk for the pipeline, CLI and distributed tests."""

from __future__ import annotations

import numpy as np

from voxelflow.synth import make_synthetic_brain

SMALL_SHAPE = (64, 128, 128)
SMALL_BRAIN = dict(
    n_plaques=80, scale=(2.0, 1.0, 1.0), edge_margin=10.0, radius_range=(1.5, 3.5),
    atlas_factors=(2, 4, 4), cluster_fraction=0.3, n_artefacts=6,
)


def write_small_scan(folder, seed: int = 5, channels: int = 2):
    """Write a small synthetic brain as a (c, z, y, x) OME-Zarr, its atlas and region table.

    Channel 0 is the brain; channel 1 (if any) is a dim decoy.
    Returns (brain, dict of paths).
    """
    from voxelflow.io.ome_zarr import write_ome_zarr

    brain = make_synthetic_brain(SMALL_SHAPE, seed, **SMALL_BRAIN)
    img = brain.image[None]
    if channels > 1:
        img = np.concatenate([img, (brain.image[None] // 8)], axis=0)
    scan = folder / "scan.ome.zarr"
    write_ome_zarr(img, str(scan), scale=(1.0, *brain.scale), levels=2, factors=(1, 1, 2, 2),
                   chunks=(1, 32, 64, 64), overwrite=True)
    atlas = folder / "atlas.ome.zarr"
    write_ome_zarr(brain.atlas, str(atlas), scale=brain.atlas_scale, method="nearest", overwrite=True)
    regions = folder / "regions.csv"
    regions.write_text(brain.regions.to_csv(index=False))
    return brain, {"scan": str(scan), "atlas": str(atlas), "regions": str(regions)}


def small_overrides(paths, out, channel_in_url: bool = True) -> list[str]:
    url = paths["scan"] + ("?slices=[0]" if channel_in_url else "")
    return [
        f'input.url="{url}"',
        f'atlas.url="{paths["atlas"]}"',
        f'atlas.regions="{paths["regions"]}"',
        f'output.folder="{out}"',
        "output.chunks=[32, 64, 64]",
        "output.levels=2",
        "pipeline.edge_um=8.0",
        "pipeline.density_factors=[8, 16, 16]",
        "pipeline.min_voxels=8",
    ]
