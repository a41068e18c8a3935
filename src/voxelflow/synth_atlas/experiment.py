"""A synthetic experiment on disk: BrainGlobe atlas folder, 2-channel scan, truth and a configuration."""

from __future__ import annotations

import numpy as np

from voxelflow.synth_atlas.brain import make_synthetic_atlas
from voxelflow.synth_atlas.scan import make_synthetic_scan, partial_atlas
from voxelflow.synth_atlas.truth import plant_objects

__all__ = ["write_synthetic_experiment"]


def write_synthetic_experiment(folder, *, resolution: float = 300.0, seed: int = 0, n_objects: int = 200,
                               orientation: str | None = "psl", factors=(2.0, 2.5, 2.5), box_um=None,
                               side: str = "whole", scan_kwargs: dict | None = None) -> dict:
    """Write a BrainGlobe atlas folder, a 2-channel scan OME-Zarr, the truth and a configuration.

    Channel 0 of ``scan.ome.zarr`` is the autofluorescence (registration)
    channel, channel 1 the plaques. ``plaque.toml`` runs the plaque pipeline
    with the atlas registered by voxelflow.

    With ``box_um`` or ``side`` (see :func:`~voxelflow.synth_atlas.scan.partial_atlas`)
    the scan shows only that part of the brain (the rest is cut away and the
    field of view framed on the part); objects are planted in it only, and the
    whole atlas is written.

    Returns
    -------
    dict with ``atlas``, ``scan``, ``config`` (paths), ``truth`` (DataFrame of
    :func:`plant_objects`), ``synthetic`` (:class:`SyntheticScan`).
    """
    from pathlib import Path

    from voxelflow.io.brainglobe import write_brainglobe_folder
    from voxelflow.io.ome_zarr import write_ome_zarr

    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    atlas = make_synthetic_atlas(resolution=resolution)
    write_brainglobe_folder(atlas, root / "atlas")
    shown, box = atlas, None
    if box_um is not None or side != "whole":
        shown, box = partial_atlas(atlas, box_um, side)
    scan = make_synthetic_scan(shown, seed=seed, orientation=orientation, factors=factors, box_um=box,
                               **(scan_kwargs or {}))
    plaques, truth = plant_objects(scan, n_objects, seed=seed + 1)
    both = np.stack([scan.image, plaques])
    write_ome_zarr(both, root / "scan.ome.zarr", axes="czyx", scale=(1.0, *scan.scale),
                   chunks=(1, 32, 64, 64), overwrite=True)
    truth.to_csv(root / "truth.csv", index=False)
    config = root / "plaque.toml"
    config.write_text(
        "[input]\nurl = \"scan.ome.zarr\"\nchannel = 1\n\n"
        f"[atlas]\nbrainglobe = \"atlas\"\norientation = \"{scan.orientation}\"\nregistration_channel = 0\n\n"
        "[pipeline]\nthreshold = 1000\nmin_voxels = 3\nbias = false\nmask = \"none\"\n\n"
        "[output]\nfolder = \"run\"\n"
    )
    return {"atlas": root / "atlas", "scan": root / "scan.ome.zarr", "config": config, "truth": truth,
            "synthetic": scan}
