"""Split touching objects of a binary segmentation (BS -> OS) by a seeded watershed.

Every chunk is processed together with a halo of neighbouring voxels: the
Euclidean distance transform of the foreground, one seed per local maximum of
the distance (``skimage.feature.peak_local_max``, searched separately inside
each connected cluster of foreground), and ``skimage.segmentation.watershed`` of
the negated distance from those seeds, restricted to the foreground. Only the
chunk's own voxels are kept.

Ids are the position of the seed: ``1 + ravel_multi_index(seed, shape)``. Two
chunks that see the same cluster whole compute the same seeds, so they give its
voxels the same ids without any merge step, and ids never collide across chunks.
Ids are therefore unique and stable, but neither consecutive nor small (int64).
"""

from __future__ import annotations

from collections.abc import Sequence

import dask.array as da
import numpy as np
from scipy import ndimage as ndi

from voxelflow.errors import InvalidInputError
from voxelflow.ops._halo import iter_blocks, map_regions, padded_region

__all__ = ["watershed_split"]


def watershed_split(
    bs,
    min_distance: int = 3,
    halo: int | Sequence[int] = 16,
    *,
    connectivity: int = 1,
    sampling: float | Sequence[float] | None = None,
) -> da.Array:
    """Split touching blobs of a binary segmentation into labelled objects.

    Parameters
    ----------
    bs : dask.array.Array or numpy.ndarray, shape (Z, Y, X) (any ndim), bool or int
        Foreground where non-zero.
    min_distance : int
        Minimum distance in voxels between two seeds (``peak_local_max``): the
        larger, the fewer splits.
    halo : int or sequence of int
        Voxels of context read around each chunk, per axis.
    connectivity : int
        Neighbourhood of the clusters and of the flooding, 1 (faces) to ndim
        (faces, edges and corners), as in ``scipy.ndimage.generate_binary_structure``.
    sampling : float or sequence of float, optional
        Voxel size per axis for the distance transform (anisotropic data).

    Returns
    -------
    dask.array.Array, shape of ``bs``, int64, chunks of ``bs``
        0 on background; every foreground voxel gets an id
        ``1 + ravel_multi_index(seed_position, shape)``.

    Notes
    -----
    Chunking invariance: the result is identical to a single-chunk run on the
    whole array for every foreground cluster (connected component under
    ``connectivity``) whose bounding box is at most ``halo`` voxels long on
    every axis, whatever the chunking, because such a cluster and the
    background ring around it lie entirely in the padded block of every chunk it
    touches. Larger clusters are cut by the padded block: their distance
    transform, seeds and basins are computed from the part that is visible, so
    they may be split differently on the two sides of a chunk boundary (the
    pieces get different ids), but every foreground voxel still gets a non-zero
    id and ids stay unique. A cluster with no interior maximum (e.g. a flat
    plate) gets one seed at its first voxel in C order.
    """
    bs = da.asarray(bs)
    ndim = bs.ndim
    if ndim < 1:
        raise InvalidInputError("watershed_split needs an array with at least one axis")
    if not (np.issubdtype(bs.dtype, np.integer) or bs.dtype == bool):
        raise InvalidInputError(f"bs must be a bool or integer binary segmentation, got dtype {bs.dtype}")
    if not isinstance(min_distance, (int, np.integer)) or min_distance < 1:
        raise InvalidInputError(f"min_distance must be a positive int, got {min_distance!r}")
    if not 1 <= connectivity <= ndim:
        raise InvalidInputError(f"connectivity must be between 1 and {ndim}, got {connectivity!r}")
    depth = tuple(int(h) for h in np.broadcast_to(np.asarray(halo), (ndim,)))
    if any(h < 0 for h in depth):
        raise InvalidInputError(f"halo must be non-negative, got {halo!r}")

    plan = []
    for block in iter_blocks(bs.chunks):
        lo, hi = padded_region(block, depth, bs.shape)
        core = tuple(slice(a - p, b - p) for a, b, p in zip(block.start, block.stop, lo))
        args = (lo, core, bs.shape, min_distance, connectivity, sampling)
        plan.append((block.index, (lo, hi), _split_block, args))
    return map_regions(bs, bs.chunks, plan, np.int64, "watershed-split")


def _split_block(padded, origin, core, shape, min_distance, connectivity, sampling):
    fg = np.asarray(padded).astype(bool, copy=False)
    out = np.zeros(fg.shape, dtype=np.int64)
    structure = ndi.generate_binary_structure(fg.ndim, connectivity)
    clusters, _ = ndi.label(fg, structure)
    in_core = np.unique(clusters[core])
    boxes = ndi.find_objects(clusters)
    for k in in_core[in_core > 0]:
        # One cluster at a time, in a crop that depends only on the cluster (its
        # bounding box plus the background ring that fixes its distance transform),
        # so neither the distances nor the watershed's tie-breaking can depend on
        # what else the chunk contains.
        box = tuple(slice(max(s.start - 1, 0), min(s.stop + 1, n)) for s, n in zip(boxes[k - 1], fg.shape))
        mask = clusters[box] == k
        local = _split_cluster(fg[box], mask, min_distance, structure, sampling)
        crop_origin = np.array([o + s.start for o, s in zip(origin, box)], dtype=np.int64)
        seed_pos = np.stack(np.unravel_index(local[mask] - 1, mask.shape), axis=1) + crop_origin
        out[box][mask] = np.ravel_multi_index(tuple(seed_pos.T), shape) + 1
    return np.ascontiguousarray(out[core])


def _split_cluster(fg, mask, min_distance, structure, sampling):
    """Watershed of one cluster; labels are ``1 + ravel index of the seed`` in the crop."""
    # imported here: scikit-image costs about a second to import, and only workers need it
    from skimage.feature import peak_local_max
    from skimage.segmentation import watershed

    distance = ndi.distance_transform_edt(fg, sampling=sampling)
    distance[~mask] = 0
    peaks = peak_local_max(
        distance, min_distance=min_distance, threshold_abs=0, exclude_border=False, labels=mask.astype(np.int32)
    )
    if len(peaks) == 0:
        peaks = np.argwhere(mask)[:1]
    markers = np.zeros(mask.shape, dtype=np.int64)
    markers[tuple(peaks.T)] = np.ravel_multi_index(tuple(peaks.T), mask.shape) + 1
    return watershed(-distance, markers, connectivity=structure, mask=mask)
