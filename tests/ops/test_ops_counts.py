"""Counting per block (centroid, edge-penalised), exact totals, per-chunk label counts, density maps."""

import itertools

import dask.array as da
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ops_helpers import chunkings, object_tables
from voxelflow.errors import InvalidInputError
from voxelflow.ops._counts import count_labels_per_chunk, count_objects, count_per_block


def _block_bounds(chunks):
    return [np.concatenate([[0], np.cumsum(c)]) for c in chunks]


def _reference_centroid(lc, chunks):
    bounds = _block_bounds(chunks)
    out = np.zeros(tuple(len(c) for c in chunks), dtype=np.int64)
    for _, row in lc.iterrows():
        index = []
        for k, a in enumerate("zyx"):
            v = int(np.floor(row[a] + 0.5))
            index.append(next(i for i in range(len(chunks[k])) if bounds[k][i] <= v < bounds[k][i + 1]))
        out[tuple(index)] += 1
    return out


def _reference_edge_penalized(lc, chunks):
    bounds = _block_bounds(chunks)
    out = np.zeros(tuple(len(c) for c in chunks))
    for _, row in lc.iterrows():
        touched = []
        for index in itertools.product(*(range(len(c)) for c in chunks)):
            if all(max(row[f"{a}0"], bounds[k][i]) < min(row[f"{a}1"], bounds[k][i + 1])
                   for k, (a, i) in enumerate(zip("zyx", index))):
                touched.append(index)
        for index in touched:
            out[index] += 1 / len(touched)
    return out


SHAPE = (9, 11, 7)


@settings(max_examples=25, deadline=None)
@given(object_tables(SHAPE), chunkings(SHAPE))
def test_count_per_block_matches_brute_force(lc, chunks):
    got = count_per_block(lc, SHAPE, chunks)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, _reference_centroid(lc, chunks))
    assert got.sum() == count_objects(lc) == len(lc)


@settings(max_examples=25, deadline=None)
@given(object_tables(SHAPE), chunkings(SHAPE))
def test_edge_penalized_matches_brute_force(lc, chunks):
    got = count_per_block(lc, SHAPE, chunks, method="edge_penalized")
    np.testing.assert_allclose(got, _reference_edge_penalized(lc, chunks))
    assert got.sum() == pytest.approx(len(lc))


def test_edge_penalized_rule_by_hand():
    lc = pd.DataFrame({"id": [1, 2, 3], "z": [1.0, 3.5, 3.5], "y": [1.0, 1.0, 3.5], "x": [1.0, 1.0, 3.5],
                       "z0": [0, 3, 3], "y0": [0, 0, 3], "x0": [0, 0, 3],
                       "z1": [2, 5, 5], "y1": [2, 2, 5], "x1": [2, 2, 5]})
    got = count_per_block(lc, (8, 8, 8), 4, method="edge_penalized")
    expected = np.zeros((2, 2, 2))
    expected[0, 0, 0] += 1            # inside one block
    expected[:, 0, 0] += 0.5          # straddles the z face
    expected += 1 / 8                 # sits on the corner where all 8 blocks meet
    np.testing.assert_allclose(got, expected)


def test_count_objects_counts_distinct_ids():
    assert count_objects(pd.DataFrame({"id": [3, 5, 5, 9]})) == 3


@settings(max_examples=15, deadline=None)
@given(st.data())
def test_count_labels_per_chunk_matches_numpy(data):
    shape = (6, 7, 5)
    labels = np.random.default_rng(data.draw(st.integers(0, 100))).integers(0, 4, shape) * 3
    chunks = data.draw(chunkings(shape))
    got = count_labels_per_chunk(da.from_array(labels, chunks=chunks)).compute()
    bounds = _block_bounds(chunks)
    for index in itertools.product(*(range(len(c)) for c in chunks)):
        block = labels[tuple(slice(b[i], b[i + 1]) for b, i in zip(bounds, index))]
        assert got[index] == len(np.unique(block[block > 0]))


def test_bad_inputs():
    lc = pd.DataFrame({"id": [1], "z": [0.0], "y": [0.0]})
    with pytest.raises(InvalidInputError, match="columns"):
        count_per_block(lc, (4, 4, 4), 2)
    with pytest.raises(InvalidInputError, match="method"):
        count_per_block(lc, (4, 4, 4), 2, method="mean")
    with pytest.raises(InvalidInputError, match="integer"):
        count_labels_per_chunk(da.zeros((3, 3), chunks=2))
