"""Synthetic lightsheet crops with planted cell nuclei, two channels and ground truth.

:func:`make_synthetic_cells` draws a deterministic (given ``seed``) crop of a
cleared mouse brain as a lightsheet microscope records it, with what makes cell
detection hard on real scans:

- nuclei of 6-14 um on anisotropic voxels (5 x 2 x 2 um by default), of
  varied brightness, some touching in pairs or triples, some cut by the crop
  border;
- a signal channel and an autofluorescence (background) channel; vessels,
  fibres, small lipofuscin-like granules and the bright tissue rim shine in
  both, cells only in the signal channel;
- brightness steps and ramps between groups of planes, steps between the
  (y, x) tiles of the mosaic with an illumination fall-off across each tile,
  and lightsheet stripes (shadows along x);
- tissue touching the volume border on most sides, with one tissue edge
  (dark outside) inside the crop;
- shot noise and camera read noise on a camera offset; uint16 output.

Every length is in micrometres. The planted cells come back as a table in um
and voxels with the atlas region of each, and the atlas (a coarser label
volume over a small region hierarchy) gives counts per region.

Examples
--------
>>> from voxelflow.synth_cells import make_synthetic_cells
>>> crop = make_synthetic_cells(shape=(16, 96, 96), seed=1)
>>> crop.image.shape, crop.image.dtype.name, crop.background.dtype.name
((16, 96, 96), 'uint16', 'uint16')
>>> set(crop.truth.region_id) <= set(crop.regions.id)
True
"""

from voxelflow.synth_cells._crop import SyntheticCells, make_synthetic_cells
from voxelflow.synth_cells._layout import CELL_REGIONS
from voxelflow.synth_cells._score import score_cells
from voxelflow.synth_cells._write import write_synthetic_cells

__all__ = ["SyntheticCells", "make_synthetic_cells", "score_cells", "write_synthetic_cells", "CELL_REGIONS"]
