"""Input and output formats: every reader and writer of images and atlas files.

* :mod:`voxelflow.io.ome_zarr`: OME-Zarr (NGFF 0.4/0.5) reading and writing with pyramids.
* :func:`open_image` (:mod:`voxelflow.io.open`): one opener for every input format, OME-Zarr,
  TIFF plane folders (:mod:`~voxelflow.io.planes`), TIFF stacks (:mod:`~voxelflow.io.tiff_stack`),
  Imaris (:mod:`~voxelflow.io.imaris`), N5 (:mod:`~voxelflow.io.n5`) and BigStitcher XML (:mod:`~voxelflow.io.bigstitcher`).
* :func:`~voxelflow.io.convert.convert_to_ome_zarr`: any of them to OME-Zarr in one resumable pass
  (``voxelflow convert``).
* :mod:`voxelflow.io.atlas_files`: atlas region tables (CSV, JSON, BrainGlobe folders).
* :mod:`voxelflow.io.regions`: the region-table schema (checks, no file access).
* :mod:`voxelflow.io.blockreduce`, :mod:`voxelflow.io.blockmean`: block reduction
  for pyramid levels (pure array kernels).

Nothing here caches anything.
"""

from voxelflow.io.ome_zarr import OmeMeta, open_ome_zarr, parse_slices, write_labels, write_ome_zarr
from voxelflow.io.open import open_image

__all__ = ["OmeMeta", "open_image", "open_ome_zarr", "parse_slices", "write_labels", "write_ome_zarr"]
