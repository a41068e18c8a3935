"""density_map equals numpy.histogramdd of the centroids on the coarse grid."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ops_helpers import object_tables
from voxelflow.ops._density import density_map

SHAPE = (9, 11, 7)


@settings(max_examples=25, deadline=None)
@given(object_tables(SHAPE), st.tuples(st.integers(1, 4), st.integers(1, 5), st.integers(1, 3)))
def test_density_map_matches_histogramdd(lc, factors):
    got = density_map(lc, SHAPE, factors)
    coarse = tuple(-(-n // f) for n, f in zip(SHAPE, factors))
    assert got.shape == coarse
    # voxel floor(c + 0.5) is in coarse cell k  <=>  c + 0.5 in [k f, (k + 1) f)
    edges = [np.arange(m + 1) * f for m, f in zip(coarse, factors)]
    ref, _ = np.histogramdd(lc[["z", "y", "x"]].to_numpy() + 0.5, bins=edges)
    np.testing.assert_array_equal(got, ref.astype(np.int64))
