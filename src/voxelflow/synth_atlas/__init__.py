"""Synthetic atlas + scan pairs with a known scan-to-atlas transform, to test registration.

- :mod:`~voxelflow.synth_atlas.brain`: the atlas (template, annotation, hemispheres, hierarchy);
- :mod:`~voxelflow.synth_atlas.scan`: a scan of it with a known transform (:class:`SyntheticScan`);
- :mod:`~voxelflow.synth_atlas.artefacts`: the lightsheet artefacts painted on the scan;
- :mod:`~voxelflow.synth_atlas.truth`: planted objects with their true region, Dice per region;
- :mod:`~voxelflow.synth_atlas.experiment`: all of it written as files with a configuration.

Examples
--------
>>> from voxelflow.synth_atlas import make_synthetic_atlas, make_synthetic_scan
>>> atlas = make_synthetic_atlas(resolution=400.0)
>>> atlas.shape, atlas.orientation
((33, 20, 28), 'asr')
>>> scan = make_synthetic_scan(atlas, seed=1, orientation="psl", factors=(2.0, 2.0, 2.0))
>>> scan.image.dtype.name, scan.orientation
('uint16', 'psl')
"""

from voxelflow.synth_atlas.brain import ATLAS_REGIONS, BRAIN_EXTENT_UM, make_synthetic_atlas
from voxelflow.synth_atlas.experiment import write_synthetic_experiment
from voxelflow.synth_atlas.scan import SyntheticScan, make_synthetic_scan
from voxelflow.synth_atlas.truth import dice_per_region, plant_cells, plant_objects

__all__ = ["ATLAS_REGIONS", "BRAIN_EXTENT_UM", "make_synthetic_atlas", "make_synthetic_scan", "SyntheticScan",
           "dice_per_region", "plant_cells", "plant_objects", "write_synthetic_experiment"]
