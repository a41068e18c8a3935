"""Shape features equal skimage.measure.regionprops with spacing on the whole array, for any chunking."""

import dask.array as da
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage.measure import regionprops

from ops_helpers import partitions
from voxelflow.errors import InvalidInputError
from voxelflow.ops import shape_filter, shape_table


def _random_objects(seed, shape):
    """Ellipsoids and rods with scattered ids, some crossing the border, some overlapping (later id wins)."""
    rng = np.random.default_rng(seed)
    os_arr = np.zeros(shape, np.int64)
    grid = np.indices(shape).astype(float)
    for _ in range(rng.integers(1, 6)):
        c = rng.uniform(0, 1, 3) * np.asarray(shape)
        semi = rng.uniform(0.6, 6.0, 3)
        d2 = sum(((g - v) / s) ** 2 for g, v, s in zip(grid, c, semi))
        os_arr[d2 <= 1] = int(rng.integers(1, 5000))  # regionprops allocates up to the largest id
    return os_arr


@settings(max_examples=25)
@given(st.integers(0, 2**16), st.data(), st.sampled_from([(5.0, 2.0, 2.0), (1.0, 1.0, 1.0), (3.0, 0.7, 1.3)]))
def test_shape_table_equals_regionprops_with_spacing(seed, data, spacing):
    shape = (10, 18, 16)
    os_arr = _random_objects(seed, shape)
    chunks = tuple(data.draw(partitions(n)) for n in shape)
    got = shape_table(da.from_array(os_arr, chunks=chunks), spacing).set_index("id")
    ids = np.unique(os_arr[os_arr > 0])
    assert list(got.index) == list(ids)
    for p in regionprops(os_arr, spacing=spacing):
        row = got.loc[p.label]
        assert row.volume_um3 == pytest.approx(p.area)
        assert row.equivalent_diameter_um == pytest.approx(p.equivalent_diameter_area)
        assert row.axis_major_um == pytest.approx(p.axis_major_length, rel=1e-6, abs=1e-6)
        assert row.axis_minor_um == pytest.approx(p.axis_minor_length, rel=1e-6, abs=1e-5)
        # voxel-box moments: regionprops' covariance (from its inertia tensor) plus spacing**2 / 12
        t = p.inertia_tensor
        cov = np.trace(t) / 2 * np.eye(3) - t + np.diag(np.asarray(spacing) ** 2 / 12)
        lam = np.linalg.eigvalsh(cov)
        assert row.elongation == pytest.approx(np.sqrt(lam[2] / lam[0]), rel=1e-6)
        assert row.sphericity == pytest.approx(p.equivalent_diameter_area / np.sqrt(20 * lam[2]), rel=1e-6)


def test_a_ball_is_round_and_a_vessel_is_elongated_on_anisotropic_voxels():
    spacing = (5.0, 2.0, 2.0)
    shape = (20, 80, 80)
    z, y, x = np.indices(shape).astype(float)
    os_arr = np.zeros(shape, np.int32)
    ball = ((z - 6) * 5) ** 2 + ((y - 20) * 2) ** 2 + ((x - 20) * 2) ** 2 <= 6.0**2
    os_arr[ball] = 1
    rod = (((z - 14) * 5) ** 2 + ((y - 60) * 2) ** 2 <= 4.0**2) & (x > 10) & (x < 70)
    os_arr[rod] = 2
    t = shape_table(da.from_array(os_arr, chunks=(7, 30, 25)), spacing).set_index("id")
    assert t.loc[1, "equivalent_diameter_um"] == pytest.approx(12.0, rel=0.15)
    assert t.loc[1, "elongation"] < 1.5 and t.loc[1, "sphericity"] > 0.75
    assert t.loc[2, "elongation"] > 5 and t.loc[2, "sphericity"] < 0.4
    keep = shape_filter(t, volume_um3=(100, 2000), max_elongation=2.0, min_sphericity=0.6)
    assert list(keep.to_numpy()) == [True, False]


def test_empty_and_bad_input():
    t = shape_table(np.zeros((3, 4, 5), np.uint16), (1, 1, 1))
    assert len(t) == 0 and list(t.columns)[0] == "id"
    with pytest.raises(InvalidInputError):
        shape_table(np.zeros((3, 4, 5), np.float32), (1, 1, 1))
    with pytest.raises(InvalidInputError):
        shape_table(np.full((3, 4, 5), -1, np.int32), (1, 1, 1))
    with pytest.raises(InvalidInputError):
        shape_filter(t[["id"]], max_elongation=2.0)
