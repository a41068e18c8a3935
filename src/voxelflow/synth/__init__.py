"""Synthetic lightsheet brains with planted plaques and ground truth.

:func:`make_synthetic_brain` draws a deterministic (given ``seed``) test volume
that has the difficulties of a real beta-amyloid scan: an ellipsoidal tissue
shape on a dark background, a smooth multiplicative bias field, noise, bright
plaques of varied sizes (some in touching clusters that a plain threshold and
label merges into one object), and bright artefacts along the tissue edge. It
also returns an atlas label volume at a coarser resolution with a region
hierarchy, and the planted plaques as a table, so a pipeline run can be scored.

Plaques are planted deeper than the edge shell and at least half an atlas voxel
plus the largest radius away from region boundaries, so every reasonable
convention for mapping a centroid onto the atlas grid gives the planted region
(this leaves thin plaque-free bands along region boundaries).

Examples
--------
>>> from voxelflow.synth import make_synthetic_brain
>>> brain = make_synthetic_brain(shape=(48, 96, 96), n_plaques=20, seed=1, scale=(2.0, 1.0, 1.0),
...                              edge_margin=6.0, radius_range=(1.5, 3.5), atlas_factors=(2, 2, 2))
>>> brain.image.shape, brain.image.dtype.name
((48, 96, 96), 'uint16')
>>> len(brain.truth) > 0 and set(brain.truth.region_id) <= set(brain.regions.id)
True
"""

from voxelflow.synth.brain import REGIONS, SyntheticBrain, make_synthetic_brain
from voxelflow.synth.scoring import match_detections, score_detections, truth_counts, truth_objects

__all__ = [
    "SyntheticBrain",
    "make_synthetic_brain",
    "REGIONS",
    "truth_objects",
    "truth_counts",
    "match_detections",
    "score_detections",
]
