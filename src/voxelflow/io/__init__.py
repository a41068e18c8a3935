"""Input and output formats: every reader and writer of images and atlas files.

* :mod:`voxelflow.io.ome_zarr`: OME-Zarr (NGFF 0.4/0.5) reading and writing with pyramids.
* :mod:`voxelflow.io.tiff`: TIFF stacks (``voxelflow convert``).
* :mod:`voxelflow.io.atlas_files`: atlas region tables (CSV, JSON, BrainGlobe folders).
* :mod:`voxelflow.io.regions`: the region-table schema (checks, no file access).
* :mod:`voxelflow.io.blockreduce`, :mod:`voxelflow.io.blockmean`: block reduction
  for pyramid levels (pure array kernels).

Nothing here caches anything.
"""

from voxelflow.io.ome_zarr import OmeMeta, open_ome_zarr, parse_slices, write_labels, write_ome_zarr

__all__ = ["OmeMeta", "open_ome_zarr", "parse_slices", "write_labels", "write_ome_zarr"]
