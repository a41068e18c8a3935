"""Shared references and strategies for the label / object_table tests.

The reference is always scipy.ndimage on the whole (unchunked) array.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.ndimage as ndi
from hypothesis import strategies as st


def scipy_label(x: np.ndarray, connectivity: int) -> tuple[np.ndarray, int]:
    """``scipy.ndimage.label`` with ``generate_binary_structure(ndim, connectivity)``."""
    return ndi.label(x, ndi.generate_binary_structure(x.ndim, connectivity))


def assert_same_partition(ours: np.ndarray, ref: np.ndarray) -> None:
    """Assert two label images are equal up to a renumbering of non-zero ids."""
    assert ours.shape == ref.shape
    np.testing.assert_array_equal(ours == 0, ref == 0)
    fg = ref != 0
    pairs = np.unique(np.stack([ours[fg], ref[fg]], axis=1), axis=0)
    assert len(pairs) == len(np.unique(pairs[:, 0])) == len(np.unique(pairs[:, 1])), (
        "an object of one labelling is split or merged in the other"
    )


def reference_table(ref: np.ndarray, ids: np.ndarray, intensity=None) -> pd.DataFrame:
    """LC-like table of the objects ``ids`` of label image ``ref``, with scipy."""
    axes = ("z", "y", "x")[-ref.ndim :]
    ones = np.ones(ref.shape)
    out = {"voxels": np.asarray(ndi.sum(ones, ref, ids), dtype=np.int64)}
    com = np.asarray(ndi.center_of_mass(ones, ref, ids)).reshape(len(ids), ref.ndim)
    boxes = ndi.find_objects(ref)
    for ax, name in enumerate(axes):
        out[name] = com[:, ax]
        out[f"{name}0"] = np.array([boxes[i - 1][ax].start for i in ids], dtype=np.int64)
        out[f"{name}1"] = np.array([boxes[i - 1][ax].stop for i in ids], dtype=np.int64)
    if intensity is not None:
        out["intensity_sum"] = np.asarray(ndi.sum(intensity, ref, ids), dtype=np.float64)
        out["intensity_mean"] = np.asarray(ndi.mean(intensity, ref, ids), dtype=np.float64)
        out["intensity_max"] = np.asarray(ndi.maximum(intensity, ref, ids), dtype=np.float64)
    on_border = np.zeros(ref.shape, bool)
    for ax in range(ref.ndim):
        on_border[(slice(None),) * ax + (0,)] = True
        on_border[(slice(None),) * ax + (-1,)] = True
    out["touches_border"] = np.asarray(ndi.maximum(on_border, ref, ids), dtype=bool)
    return pd.DataFrame(out)


def ours_to_ref(ours: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Lookup table: ``table[our_id]`` is the scipy id of the same object."""
    table = np.zeros(int(ours.max()) + 1, dtype=np.int64)
    table[ours[ours != 0]] = ref[ours != 0]
    return table


@st.composite
def irregular_chunks(draw, length: int) -> tuple[int, ...]:
    """A random partition of ``length`` into chunk sizes (1-voxel chunks included)."""
    if length <= 1:
        return (length,)
    cuts = sorted(draw(st.sets(st.integers(1, length - 1), max_size=min(length - 1, 6))))
    edges = [0, *cuts, length]
    return tuple(b - a for a, b in zip(edges[:-1], edges[1:]))


@st.composite
def volumes(draw, max_side: int = 9):
    """(boolean volume, chunks, connectivity, seed) with random shape and density."""
    ndim = draw(st.sampled_from([2, 3]))
    shape = tuple(draw(st.integers(1, max_side if ndim == 3 else 2 * max_side)) for _ in range(ndim))
    density = draw(st.sampled_from([0.0, 0.05, 0.2, 0.35, 0.5, 0.7, 1.0]))
    seed = draw(st.integers(0, 2**32 - 1))
    x = np.random.default_rng(seed).random(shape) < density
    chunks = tuple(draw(irregular_chunks(s)) for s in shape)
    connectivity = draw(st.integers(1, ndim))
    return x, chunks, connectivity, seed
