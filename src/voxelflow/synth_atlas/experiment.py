"""A synthetic experiment on disk: BrainGlobe atlas folder, 2-channel scan, truth and a configuration.

``kind = "plaque"`` plants bright balls in a dim channel and writes ``plaque.toml``;
``kind = "cells"`` plants nuclei over the autofluorescence in the signal channel
(:func:`~voxelflow.synth_atlas.truth.plant_cells`) and writes ``cells.toml``
(``pipeline.kind = "cells"``, channel 0 as both the registration and the
background channel). The cells are a scale model: a few scan voxels across (a
whole brain at cellular resolution is too large to make in a test), sparse, so
the detection response inside the tissue is mostly noise and ``cells.threshold_k``
is 5 (mean + 5 SD keeps the noise maxima out; the default 3 suits dense cells).
"""

from __future__ import annotations

import numpy as np

from voxelflow.errors import InvalidInputError
from voxelflow.synth_atlas.brain import make_synthetic_atlas
from voxelflow.synth_atlas.scan import make_synthetic_scan, partial_atlas
from voxelflow.synth_atlas.truth import plant_cells, plant_objects

__all__ = ["write_synthetic_experiment"]


def write_synthetic_experiment(folder, *, resolution: float = 300.0, seed: int = 0, n_objects: int = 200,
                               orientation: str | None = "psl", factors=(2.0, 2.5, 2.5), box_um=None,
                               side: str = "whole", scan_kwargs: dict | None = None, kind: str = "plaque",
                               margin_vox: float = 2.0, cell_diameter_um: float | None = None) -> dict:
    """Write a BrainGlobe atlas folder, a 2-channel scan OME-Zarr, the truth and a configuration.

    Channel 0 of ``scan.ome.zarr`` is the autofluorescence (registration)
    channel, channel 1 the plaques (``kind = "plaque"``) or the cells
    (``kind = "cells"``). The configuration (``plaque.toml`` / ``cells.toml``)
    runs that pipeline with the atlas registered by voxelflow.

    With ``box_um`` or ``side`` (see :func:`~voxelflow.synth_atlas.scan.partial_atlas`)
    the scan shows only that part of the brain (the rest is cut away and the
    field of view framed on the part); objects are planted in it only, and the
    whole atlas is written. Objects lie at least ``margin_vox`` atlas voxels
    from any region or hemisphere boundary. Cells are ``cell_diameter_um``
    across (default 2.5 of the scan's largest voxel side).

    Returns
    -------
    dict with ``atlas``, ``scan``, ``config`` (paths), ``truth`` (DataFrame of
    :func:`plant_objects` / :func:`plant_cells`), ``synthetic`` (:class:`SyntheticScan`).
    """
    from pathlib import Path

    from voxelflow.io.brainglobe import write_brainglobe_folder
    from voxelflow.io.ome_zarr import write_ome_zarr

    if kind not in ("plaque", "cells"):
        raise InvalidInputError(f"kind must be 'plaque' or 'cells', got {kind!r}")
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    atlas = make_synthetic_atlas(resolution=resolution)
    write_brainglobe_folder(atlas, root / "atlas")
    shown, box = atlas, None
    if box_um is not None or side != "whole":
        shown, box = partial_atlas(atlas, box_um, side)
    scan = make_synthetic_scan(shown, seed=seed, orientation=orientation, factors=factors, box_um=box,
                               **(scan_kwargs or {}))
    if kind == "plaque":
        objects, truth = plant_objects(scan, n_objects, seed=seed + 1, margin_vox=margin_vox)
        pipeline = "[pipeline]\nthreshold = 1000\nmin_voxels = 3\nbias = false\nmask = \"none\"\n\n"
        background = ""
    else:
        diameter = float(cell_diameter_um or 2.5 * max(scan.scale))
        objects, truth = plant_cells(scan, n_objects, seed=seed + 1, diameter_um=diameter, margin_vox=margin_vox)
        pipeline = f"[pipeline]\nkind = \"cells\"\n\n[mask]\nwhole_brain = true\n\n[cells]\ndiameter_um = {diameter}\nthreshold_k = 5.0\n\n"
        background = "background_channel = 0\n"
    both = np.stack([scan.image, objects])
    write_ome_zarr(both, root / "scan.ome.zarr", axes="czyx", scale=(1.0, *scan.scale),
                   chunks=(1, 32, 64, 64), overwrite=True)
    truth.to_csv(root / "truth.csv", index=False)
    config = root / f"{kind}.toml"
    config.write_text(
        f"[input]\nurl = \"scan.ome.zarr\"\nchannel = 1\n{background}\n"
        f"[atlas]\nbrainglobe = \"atlas\"\norientation = \"{scan.orientation}\"\nregistration_channel = 0\n\n"
        f"{pipeline}[output]\nfolder = \"run\"\n"
    )
    return {"atlas": root / "atlas", "scan": root / "scan.ome.zarr", "config": config, "truth": truth,
            "synthetic": scan}
