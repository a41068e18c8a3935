"""OME-Zarr (NGFF 0.4 and 0.5) input and output on zarr 3.

Read any level of an image (folder, zip archive, fsspec URL, ``?slices=[...]``
suffix) lazily with :func:`open_ome_zarr`; write images with pyramids computed in
one pass with :func:`write_ome_zarr`, and label images with :func:`write_labels`.
"""

from voxelflow.io.ome_zarr.metadata import OmeMeta
from voxelflow.io.ome_zarr.read import open_ome_zarr
from voxelflow.io.ome_zarr.slices import parse_slices
from voxelflow.io.ome_zarr.write import write_labels, write_ome_zarr

__all__ = ["OmeMeta", "open_ome_zarr", "parse_slices", "write_labels", "write_ome_zarr"]
