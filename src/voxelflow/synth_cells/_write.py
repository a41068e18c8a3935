"""A synthetic crop written to disk as a run reads it."""

from __future__ import annotations

import numpy as np

from voxelflow.synth_cells._crop import SyntheticCells

__all__ = ["write_synthetic_cells"]


def write_synthetic_cells(crop: SyntheticCells, folder, *, chunks=(32, 128, 128)) -> dict:
    """Write a crop as a run would read it: a two-channel OME-Zarr, the atlas, the region and truth tables.

    Parameters
    ----------
    crop : SyntheticCells
    folder : str or VPath
        Created if needed; gets ``scan.ome.zarr`` (axes c, z, y, x: channel 0
        signal, 1 background), ``atlas.ome.zarr``, ``regions.csv`` and ``truth.csv``.
    chunks : tuple of 3 int
        Chunk shape (z, y, x) of the scan.

    Returns
    -------
    dict
        URLs of what was written: ``scan``, ``atlas``, ``regions``, ``truth``.
    """
    from voxelflow.io import write_ome_zarr
    from voxelflow.paths import as_vpath

    out = as_vpath(folder)
    out.mkdirs()
    scan = np.stack([crop.image, crop.background])
    ch = (1,) + tuple(min(c, s) for c, s in zip(chunks, crop.image.shape))
    write_ome_zarr(scan, (out / "scan.ome.zarr").url, axes="czyx", scale=(1.0,) + tuple(crop.spacing),
                   units="micrometer", chunks=ch, channel_names=["signal", "autofluorescence"], overwrite=True)
    write_ome_zarr(crop.atlas, (out / "atlas.ome.zarr").url, scale=crop.atlas_spacing, units="micrometer",
                   method="nearest", overwrite=True)
    (out / "regions.csv").write_text(crop.regions.to_csv(index=False))
    (out / "truth.csv").write_text(crop.truth.to_csv(index=False))
    return {name: (out / f).url for name, f in
            (("scan", "scan.ome.zarr"), ("atlas", "atlas.ome.zarr"), ("regions", "regions.csv"),
             ("truth", "truth.csv"))}
