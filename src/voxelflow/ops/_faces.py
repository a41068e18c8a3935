"""Chunk faces and the label contacts between neighbouring chunks.

A chunk only needs its outer shell to find which of its local labels continue
into a neighbour: two voxels in different chunks can only be adjacent (for any
``scipy.ndimage.generate_binary_structure(ndim, connectivity)``) if each lies on
the shell of its chunk. Contacts are searched between a chunk and each of its
*forward* neighbours (offset ``delta`` in ``{-1, 0, 1}**ndim`` whose first
non-zero entry is ``+1``), so every adjacent pair of chunks is visited exactly
once: 3 directions in 3D for connectivity 1 (faces), 9 for 2 (+ edges), 13 for
3 (+ corners).
"""

from __future__ import annotations

import itertools

import numpy as np

Faces = tuple[tuple[np.ndarray, np.ndarray], ...]


def forward_directions(ndim: int, connectivity: int) -> list[tuple[int, ...]]:
    """Neighbour offsets whose chunks can share adjacent voxels.

    Parameters
    ----------
    ndim : int
        Number of array dimensions.
    connectivity : int
        Maximum number of axes along which two adjacent voxels may differ
        (as in ``scipy.ndimage.generate_binary_structure``).

    Returns
    -------
    list of tuple of int
        Offsets ``delta`` (length ``ndim``) with first non-zero entry ``+1``
        and at most ``connectivity`` non-zero entries, in lexicographic order.
    """
    out = []
    for delta in itertools.product((-1, 0, 1), repeat=ndim):
        nonzero = [d for d in delta if d]
        if nonzero and nonzero[0] == 1 and len(nonzero) <= connectivity:
            out.append(delta)
    return out


def block_faces(labels: np.ndarray) -> Faces:
    """Copy the outer shell of a labelled chunk.

    Parameters
    ----------
    labels : ndarray of unsigned int, shape (n0, ..., nk)
        Local labels of one chunk (0 = background).

    Returns
    -------
    tuple of (low, high) pairs, one per axis
        ``low`` is ``labels`` at index 0 along that axis and ``high`` at index
        -1, each of shape ``labels.shape`` without that axis, with the same
        labels in the narrowest unsigned dtype (an empty face is a read-only
        broadcast zero). Never views of ``labels``, so the full chunk can be freed.
    """
    return tuple(
        (_compact(np.take(labels, 0, axis=ax)), _compact(np.take(labels, -1, axis=ax))) for ax in range(labels.ndim)
    )


def _compact(face: np.ndarray) -> np.ndarray:
    """The face in the narrowest unsigned dtype that holds its labels; an empty face as one broadcast zero.

    A pass keeps every chunk's faces until its neighbours are paired with it, so on
    a scan of thousands of chunks their size is most of the pass's memory.
    """
    top = int(face.max()) if face.size else 0
    if top == 0:
        return np.broadcast_to(np.zeros((), np.uint8), face.shape)
    dtype = np.uint8 if top < 2**8 else np.uint16 if top < 2**16 else face.dtype
    return face.astype(dtype, copy=True)


def _shift_slices(offset: tuple[int, ...]) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """Slices pairing ``a[p]`` with ``b[p + offset]`` over the common range."""
    sa, sb = [], []
    for s in offset:
        if s == 1:
            sa.append(slice(None, -1))
            sb.append(slice(1, None))
        elif s == -1:
            sa.append(slice(1, None))
            sb.append(slice(None, -1))
        else:
            sa.append(slice(None))
            sb.append(slice(None))
    return tuple(sa), tuple(sb)


def face_contacts(
    faces_a: Faces, faces_b: Faces, delta: tuple[int, ...], connectivity: int
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of local labels that touch across the boundary between two chunks.

    Parameters
    ----------
    faces_a, faces_b : Faces
        Shells (see :func:`block_faces`) of chunk A and of its neighbour B at
        block offset ``delta`` from A.
    delta : tuple of int
        A forward direction (see :func:`forward_directions`).
    connectivity : int
        Connectivity of the labelling (1 .. ndim).

    Returns
    -------
    la, lb : ndarray of uint64, shape (m,)
        Unique pairs ``(la[i], lb[i])`` of non-zero local labels of A and B
        that own adjacent voxels.
    """
    sliced = [ax for ax, d in enumerate(delta) if d]
    budget = connectivity - len(sliced)
    empty = np.empty(0, np.uint64)
    if budget < 0:
        return empty, empty
    first = sliced[0]
    a = faces_a[first][1]
    b = faces_b[first][0]
    # Along the other crossed axes, A's last index meets B's first (delta=+1) or
    # A's first meets B's last (delta=-1); free axes keep their full extent.
    index_a, index_b = [], []
    for ax, d in enumerate(delta):
        if ax == first:
            continue
        index_a.append(-1 if d == 1 else 0 if d == -1 else slice(None))
        index_b.append(0 if d == 1 else -1 if d == -1 else slice(None))
    a = a[tuple(index_a)]
    b = b[tuple(index_b)]
    if not (a.any() and b.any()):
        return empty, empty
    found_a, found_b = [], []
    for offset in itertools.product((-1, 0, 1), repeat=a.ndim):
        if sum(map(abs, offset)) > budget:
            continue
        sa, sb = _shift_slices(offset)
        va, vb = a[sa], b[sb]
        touching = (va != 0) & (vb != 0)
        found_a.append(va[touching])
        found_b.append(vb[touching])
    la = np.concatenate(found_a).astype(np.uint64)
    lb = np.concatenate(found_b).astype(np.uint64)
    if la.size == 0:
        return empty, empty
    return _unique_pairs(la, lb)


def _unique_pairs(la: np.ndarray, lb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop repeated pairs (a chunk-local operation: labels fit their chunk)."""
    width = int(lb.max()).bit_length()
    if width + int(la.max()).bit_length() <= 64:
        keys = np.unique((la << np.uint64(width)) | lb)
        return keys >> np.uint64(width), keys & np.uint64((1 << width) - 1)
    pairs = np.unique(np.stack([la, lb], axis=1), axis=0)
    return pairs[:, 0].copy(), pairs[:, 1].copy()
