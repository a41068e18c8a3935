"""Chunk grouping (several chunks per task) must not change labels or tables."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ops_label_helpers import (
    assert_same_partition,
    ours_to_ref,
    reference_table,
    scipy_label,
    volumes,
)

import voxelflow.ops._ccpass as ccpass
from voxelflow.ops._ccpass import block_groups
from voxelflow.ops._label import label
from voxelflow.ops._objects import object_table


@pytest.mark.parametrize("grid,size", [((3, 4, 5), 2), ((2, 7), 3), ((1, 1, 1), 4), ((2, 3), 10)])
def test_groups_cover_the_grid_in_c_order(grid, size):
    groups = block_groups(grid, size)
    flat = [idx for group in groups for idx in group]
    assert flat == list(np.ndindex(*grid))
    assert all(1 <= len(g) <= size for g in groups)
    assert all(len({idx[:-1] for idx in g}) == 1 for g in groups)  # one run along the last axis


@settings(max_examples=30, deadline=None)
@given(volumes(), st.integers(1, 40))
def test_small_groups_match_scipy(case, group_bytes):
    x, chunks, connectivity, seed = case
    # chunks of a few voxels: groups of 1 .. a few chunks, cut anywhere along the last axis
    old = ccpass.GROUP_BYTES
    ccpass.GROUP_BYTES = group_bytes
    try:
        bs = da.from_array(x, chunks=chunks)
        intensity = np.random.default_rng(seed).random(x.shape)
        os_arr, n = label(bs, connectivity)
        table = object_table(bs, intensity, connectivity)
    finally:
        ccpass.GROUP_BYTES = old
    ref, n_ref = scipy_label(x, connectivity)
    ours = os_arr.compute()
    assert n == n_ref == len(table)
    assert_same_partition(ours, ref)
    if n_ref:
        expected = reference_table(ref, ours_to_ref(ours, ref)[table["id"]], intensity)
        for column in expected.columns:
            np.testing.assert_allclose(table[column].to_numpy().astype(float),
                                       expected[column].to_numpy().astype(float),
                                       rtol=1e-9, atol=1e-9, err_msg=column)
