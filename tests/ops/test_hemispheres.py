"""Hemisphere image extended over the whole atlas volume: nearest side along the left-right line."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voxelflow.errors import InvalidInputError
from voxelflow.ops._hemispheres import fill_hemispheres
from voxelflow.synth_atlas import make_synthetic_atlas


def brute_force(hemi: np.ndarray, axis: int) -> np.ndarray:
    """Line by line in plain Python: nearest labelled voxel (ties to the lower index), else the mean midline."""
    lines = np.moveaxis(hemi, axis, -1)
    sides = sorted(int(v) for v in np.unique(hemi) if v)
    mean = {v: np.mean(np.nonzero(lines == v)[-1]) for v in sides}
    low, high = sorted(sides, key=lambda v: mean[v])
    mid = (mean[low] + mean[high]) / 2
    out = np.empty_like(lines)
    for idx in np.ndindex(lines.shape[:-1]):
        line = lines[idx]
        where = np.nonzero(line)[0]
        for i in range(len(line)):
            if len(where) == 0:
                out[idx + (i,)] = low if i < mid else high
            else:
                d = np.abs(where - i)
                out[idx + (i,)] = line[where[np.argmin(d)]]  # argmin takes the first (lower) of equal distances
    return np.moveaxis(out, -1, axis)


@settings(max_examples=15, deadline=None)
@given(shape=st.tuples(*[st.integers(2, 9)] * 3), code=st.sampled_from(["asr", "lpi", "sla", "rai"]),
       seed=st.integers(0, 1000), slab=st.integers(1, 5))
def test_fill_matches_a_line_by_line_reference(shape, code, seed, slab):
    rng = np.random.default_rng(seed)
    axis = next(i for i, c in enumerate(code) if c in "lr")
    pos = np.arange(shape[axis]).reshape([-1 if k == axis else 1 for k in range(3)])
    half = np.broadcast_to(np.where(pos < shape[axis] / 2, 2, 1), shape).astype(np.uint8)
    hemi = np.where(rng.random(shape) < 0.4, half, 0).astype(np.uint8)
    # both sides present: the first voxel of the first line and the last voxel of the last line
    lines = np.moveaxis(hemi, axis, -1)
    lines[0, 0, 0], lines[-1, -1, -1] = 2, 1
    np.testing.assert_array_equal(fill_hemispheres(hemi, code, slab=slab), brute_force(hemi, axis))


def test_the_synthetic_atlas_is_split_at_its_midline():
    atlas = make_synthetic_atlas(resolution=400.0)
    filled = fill_hemispheres(atlas.hemispheres, atlas.orientation)
    inside = atlas.hemispheres > 0
    np.testing.assert_array_equal(filled[inside], atlas.hemispheres[inside])
    assert set(np.unique(filled)) == {1, 2}
    # 'asr': the last axis runs from right to left, the brain midline is the middle of that axis
    x = np.arange(atlas.shape[2])
    mid = atlas.shape[2] / 2
    far = np.abs(x + 0.5 - mid) > 1.5
    expect = np.where(x + 0.5 > mid, 1, 2)
    assert (filled[:, :, far] == expect[far]).all()


def test_one_sided_images_are_that_side_and_empty_ones_are_refused():
    half = np.zeros((4, 5, 6), np.uint8)
    half[1:3, 1:4, 3:] = 2
    np.testing.assert_array_equal(fill_hemispheres(half, "asr"), np.full(half.shape, 2, np.uint8))
    with pytest.raises(InvalidInputError, match="side values"):
        fill_hemispheres(np.zeros((4, 4, 4), np.uint8), "asr")
    with pytest.raises(InvalidInputError, match="side values"):
        fill_hemispheres(np.arange(64, dtype=np.uint8).reshape(4, 4, 4) % 4, "asr")
