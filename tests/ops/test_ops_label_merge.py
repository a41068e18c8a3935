"""The pieces of label(): face contacts, the sparse merge and per-chunk remap tables."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voxelflow.ops._faces import block_faces, face_contacts, forward_directions
from voxelflow.ops._merge import (
    build_remap,
    final_ids,
    merge_face_pairs,
    plan_labels,
    remap_specs,
)


@pytest.mark.parametrize(
    "ndim,connectivity,count", [(2, 1, 2), (2, 2, 4), (3, 1, 3), (3, 2, 9), (3, 3, 13)]
)
def test_forward_directions_cover_each_neighbour_pair_once(ndim, connectivity, count):
    dirs = forward_directions(ndim, connectivity)
    assert len(dirs) == count
    backward = {tuple(-d for d in delta) for delta in dirs}
    assert not backward & set(dirs)
    every = {
        d for d in itertools.product((-1, 0, 1), repeat=ndim)
        if any(d) and sum(map(abs, d)) <= connectivity
    }
    assert set(dirs) | backward == every


def brute_force_contacts(a, b, delta, connectivity):
    """All (label_a, label_b) with adjacent voxels, placing B at offset delta * shape."""
    shift = np.array([d * s for d, s in zip(delta, a.shape)])
    pa = np.argwhere(a)
    pb = np.argwhere(b) + shift
    found = set()
    for p in pa:
        diff = np.abs(pb - p)
        near = (diff.max(axis=1) <= 1) & ((diff != 0).sum(axis=1) <= connectivity)
        for q in pb[near]:
            found.add((int(a[tuple(p)]), int(b[tuple(q - shift)])))
    return found


@settings(max_examples=60)
@given(
    ndim=st.sampled_from([2, 3]),
    data=st.data(),
)
def test_face_contacts_equal_brute_force(ndim, data):
    connectivity = data.draw(st.integers(1, ndim))
    delta = data.draw(st.sampled_from(forward_directions(ndim, connectivity)))
    shape = tuple(data.draw(st.integers(1, 4)) for _ in range(ndim))
    seed = data.draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 4, size=shape).astype(np.uint32) * (rng.random(shape) < 0.6)
    b = rng.integers(0, 4, size=shape).astype(np.uint32) * (rng.random(shape) < 0.6)
    la, lb = face_contacts(block_faces(a), block_faces(b), delta, connectivity)
    got = set(zip(la.tolist(), lb.tolist()))
    assert len(got) == la.size  # unique pairs
    assert got == brute_force_contacts(a, b, delta, connectivity)


def bfs_components(n, edges):
    adjacency = {i: set() for i in range(1, n + 1)}
    for u, v in edges:
        adjacency[u].add(v)
        adjacency[v].add(u)
    comp, seen = {}, set()
    for start in range(1, n + 1):
        if start in seen:
            continue
        stack, members = [start], []
        seen.add(start)
        while stack:
            u = stack.pop()
            members.append(u)
            for v in adjacency[u] - seen:
                seen.add(v)
                stack.append(v)
        for u in members:
            comp[u] = min(members)
    return comp


@settings(max_examples=40)
@given(
    counts=st.lists(st.integers(0, 6), min_size=1, max_size=8),
    data=st.data(),
)
def test_plan_and_remap_tables_match_a_reference_union_find(counts, data):
    total = sum(counts)
    ids = st.integers(1, max(total, 1))
    edges = data.draw(st.lists(st.tuples(ids, ids), max_size=12)) if total else []
    plan = plan_labels(np.array(counts), np.array([e[0] for e in edges], np.int64),
                       np.array([e[1] for e in edges], np.int64))
    comp = bfs_components(total, edges)
    reps = sorted(set(comp.values()))
    assert plan.n == len(reps)
    expected = np.array([reps.index(comp[g]) + 1 for g in range(1, total + 1)], dtype=np.int64)
    np.testing.assert_array_equal(final_ids(plan), expected)
    # per-chunk tables rebuild exactly the same ids, each sized by its chunk
    specs = remap_specs(plan)
    tables = [build_remap(spec, plan.dtype) for spec in specs]
    for count, table in zip(counts, tables):
        assert len(table) == count + 1 and table[0] == 0
    rebuilt = np.concatenate([t[1:] for t in tables]) if total else np.empty(0)
    np.testing.assert_array_equal(rebuilt, expected)


def test_merge_face_pairs_handles_long_chains_without_python_loops():
    # a path 1-2-3-...-N given in shuffled order collapses to one component
    n = 200_000
    order = np.random.default_rng(0).permutation(n - 1)
    ga = np.arange(1, n, dtype=np.int64)[order]
    nodes, reps = merge_face_pairs(ga, ga + 1)
    np.testing.assert_array_equal(nodes, np.arange(1, n + 1))
    assert (reps == 1).all()
