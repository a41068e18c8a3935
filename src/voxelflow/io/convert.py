"""Convert any input :func:`~voxelflow.io.open.open_image` reads to OME-Zarr, in one pass, resumably.

Every input chunk is read once; level 0 is stored and reduced to level 1 in the
same task, and the lower levels follow from there (the single-pass pyramid writer
of :mod:`voxelflow.io.ome_zarr.levels`). A local folder target is written beside
the target (``.<name>.partial``) with a :class:`~voxelflow.io.chunk_ledger.ChunkLedger`
of finished level-0 chunks: a killed conversion rerun with the same arguments
reads back the chunks it had finished instead of reading the input and writing
them again (the lower levels, 1/8 of the data for 2x2x2 factors, are recomputed).
The finished image replaces the target in one rename at the end.
"""

from __future__ import annotations

import math
import os
import shutil
import uuid

import numpy as np
import zarr

from voxelflow.errors import InvalidInputError, OmeZarrError
from voxelflow.io.blockreduce import METHODS
from voxelflow.io.chunk_ledger import ChunkLedger
from voxelflow.io.ome_zarr import metadata as md
from voxelflow.io.ome_zarr import write_args
from voxelflow.io.ome_zarr.levels import write_arrays
from voxelflow.io.ome_zarr.stores import is_zip
from voxelflow.io.ome_zarr.write import write_ome_zarr
from voxelflow.io.open import open_image
from voxelflow.paths import VPath, as_vpath

__all__ = ["convert_chunks", "convert_to_ome_zarr"]

#: Bytes of input the chunks along the slowest space axis may span (the input is read in whole planes).
SLAB_BYTES = 64 * 2**20
#: Bytes of one stored chunk.
CHUNK_BYTES = 8 * 2**20


def convert_chunks(shape, dtype, axes, factors) -> tuple[int, ...]:
    """Stored chunk shape for a conversion: bounded memory for inputs read in whole planes.

    The slowest space axis gets as many planes as fit in :data:`SLAB_BYTES` (at
    least one reduction block), the others the largest power of two that keeps a
    chunk within :data:`CHUNK_BYTES`; channel and time axes get 1.

    Parameters
    ----------
    shape : tuple of int
    dtype : numpy dtype
    axes : tuple of str
    factors : tuple of int
        Down-sampling factors from level 0 to level 1 (chunks are multiples of them).

    Returns
    -------
    tuple of int
    """
    itemsize = np.dtype(dtype).itemsize
    space = [i for i, a in enumerate(axes) if md.axis_type(a) == "space"]
    chunks = [1] * len(shape)
    first, rest = space[0], space[1:]
    plane = itemsize * math.prod(shape[i] for i in rest)
    planes = max(int(factors[first]), SLAB_BYTES // max(1, plane))
    planes = 1 << int(math.log2(planes))  # a power of two: whole blocks at every level
    chunks[first] = min(shape[first], max(planes, int(factors[first])))
    side = 1 << 12
    while side > 1 and chunks[first] * side ** len(rest) * itemsize > CHUNK_BYTES:
        side //= 2
    for i in rest:
        chunks[i] = min(shape[i], max(side, int(factors[i])))
    return tuple(chunks)


def _same_or_replaceable(target: VPath, overwrite: bool) -> None:
    if not target.exists():
        return
    if not overwrite:
        raise OmeZarrError(f"{target.url} already exists; pass overwrite=True (--overwrite) to replace it")
    if target.isfile() or (target.ls() and not any((target / n).exists() for n in ("zarr.json", ".zattrs",
                                                                                     ".zgroup"))):
        raise OmeZarrError(f"refusing to overwrite {target.url}: it is not an OME-Zarr image")


def _swap_into_place(work: str, target: str) -> None:
    """Move the finished ``work`` folder to ``target``; an old image there is removed only after."""
    old = None
    if os.path.exists(target):
        old = os.path.join(os.path.dirname(target), f".{os.path.basename(target)}.old-{uuid.uuid4().hex[:8]}")
        os.replace(target, old)
    os.replace(work, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def convert_to_ome_zarr(src, out, *, level=0, scale_um=None, channel=None, levels: int = 4, factors=2,
                        method: str = "mean", chunks=None, shards=None, version: str = "0.5",
                        overwrite: bool = False, storage_options: dict | None = None) -> VPath:
    """Convert an image of any input format to an OME-Zarr image with a pyramid.

    Parameters
    ----------
    src : str or VPath
        Anything :func:`~voxelflow.io.open.open_image` reads.
    out : str or VPath
        Target ``.ome.zarr`` folder (resumable when local) or ``.ome.zarr.zip`` / remote URL
        (written in one go).
    level, scale_um, channel :
        As in :func:`~voxelflow.io.open.open_image`.
    levels, factors, method, shards, version :
        As in :func:`~voxelflow.io.ome_zarr.write.write_ome_zarr`.
    chunks : int or sequence of int, optional
        Stored chunk shape; default :func:`convert_chunks`.
    overwrite : bool
        Replace an existing OME-Zarr image at ``out`` (swapped in at the end).
    storage_options : dict, optional
        fsspec options for ``src``.

    Returns
    -------
    VPath
        The written image.

    Raises
    ------
    InvalidInputError, ImageFormatError, OmeZarrError, InvalidPathError
        From reading the input or checking the target (before anything is written).
    """
    arr, meta = open_image(src, level, scale_um=scale_um, channel=channel, storage_options=storage_options)
    axes = write_args.check_axes(meta.axes, arr.ndim)
    level_factors = write_args.check_factors(factors, levels, axes)
    if chunks is None:
        chunks = convert_chunks(arr.shape, arr.dtype, axes, level_factors[0] if level_factors else (1,) * arr.ndim)
    chunk_shape = write_args.check_chunks(chunks, arr, axes, from_dask=True)
    if meta.format in ("tiff-planes", "tiff") and "z" in axes:
        # Whole planes are read per input chunk: one z-slab of stored chunks per input chunk.
        arr, meta = open_image(src, level, scale_um=scale_um, channel=channel, storage_options=storage_options,
                               planes_per_chunk=chunk_shape[axes.index("z")])
    target = as_vpath(out)
    names = meta.channel_names if "c" in axes else None
    common = dict(axes=axes, scale=meta.scale, units=meta.units, translation=meta.translation, levels=levels,
                  factors=factors, method=method, chunks=chunk_shape, version=version, shards=shards,
                  channel_names=names, name=meta.name)
    if not target.is_local or is_zip(target) or levels < 2:
        return write_ome_zarr(arr, target, overwrite=overwrite, **common)
    shard_shape = write_args.check_shards(shards, chunk_shape, axes, version)
    _same_or_replaceable(target, overwrite)
    if method not in METHODS:
        raise InvalidInputError(f"unknown method {method!r}; expected one of {METHODS}")
    scale0 = write_args.per_axis(meta.scale, axes, "scale", lambda a: 1.0, write_args.positive_float)
    translation0 = write_args.per_axis(meta.translation, axes, "translation", lambda a: 0.0, float)
    scales, translations = write_args.level_geometry(scale0, translation0, level_factors, method)
    fingerprint = {"source": meta.url, "format": meta.format, "array": arr.name, "shape": list(arr.shape),
                   "dtype": str(arr.dtype), "axes": list(axes), "levels": levels, "factors": [list(f) for f in
                                                                                               level_factors],
                   "method": method, "chunks": list(chunk_shape), "shards": list(shard_shape or ()),
                   "version": version, "scale": list(scale0)}
    work = os.path.join(target.parent.path, f".{target.name}.partial")
    ledger = ChunkLedger.open(work, fingerprint)
    write_arrays(arr, VPath(work), version=version, axes=axes, chunks=chunk_shape, shards=shard_shape,
                 factors=level_factors, method=method, ledger=ledger)
    attrs = md.image_attrs(version, axes, meta.units, [str(k) for k in range(levels)], scales, translations,
                           meta.name, method, names)
    # The metadata that makes the folder an OME-Zarr image goes last, then the swap.
    zarr.open_group(VPath(work).zarr_store(), mode="r+").attrs.update(attrs)
    ledger.remove()
    _swap_into_place(work, target.path)
    return target
