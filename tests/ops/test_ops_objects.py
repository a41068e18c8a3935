"""object_table(): equal to scipy.ndimage statistics on the whole array."""

import dask.array as da
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from ops_label_helpers import ours_to_ref, reference_table, scipy_label, volumes

from voxelflow.errors import InvalidInputError
from voxelflow.ops._label import label
from voxelflow.ops._objects import object_table

LC_3D = ["id", "z", "y", "x", "voxels", "z0", "y0", "x0", "z1", "y1", "x1"]
INTENSITY = ["intensity_sum", "intensity_mean", "intensity_max"]


def compare(table, ref, ids_in_ref, intensity=None):
    expected = reference_table(ref, ids_in_ref, intensity)
    for column in expected.columns:
        if expected[column].dtype.kind == "f":
            np.testing.assert_allclose(table[column].to_numpy(), expected[column], rtol=1e-9,
                                       atol=1e-9, err_msg=column)
        else:
            np.testing.assert_array_equal(table[column].to_numpy(), expected[column], column)


@settings(max_examples=30)
@given(volumes())
def test_bs_table_matches_scipy_and_label_ids(case):
    x, chunks, connectivity, seed = case
    # without intensity, dense chunks take the cc3d.statistics path
    intensity = None if seed % 2 else np.random.default_rng(seed).random(x.shape).astype(np.float32)
    bs = da.from_array(x, chunks=chunks)
    table = object_table(bs, intensity, connectivity)
    ref, n_ref = scipy_label(x, connectivity)
    assert len(table) == n_ref
    np.testing.assert_array_equal(table["id"], np.arange(1, n_ref + 1))
    # ids are the ids label() gives for the same array and chunking
    ours = label(bs, connectivity)[0].compute()
    compare(table, ref, ours_to_ref(ours, ref)[table["id"]] if n_ref else [], intensity)


@settings(max_examples=25)
@given(volumes())
def test_os_table_matches_scipy_per_id(case):
    x, chunks, connectivity, seed = case
    ref, n_ref = scipy_label(x, connectivity)
    # sparse, non-contiguous global ids
    os_img = np.where(ref > 0, ref * 7 + 1000, 0).astype(np.int64)
    intensity = np.random.default_rng(seed).integers(0, 100, x.shape).astype(np.uint16)
    table = object_table(da.from_array(os_img, chunks=chunks), intensity)
    np.testing.assert_array_equal(table["id"], np.arange(1, n_ref + 1) * 7 + 1000)
    compare(table, ref, np.arange(1, n_ref + 1), intensity)


def test_columns_dtypes_and_order_follow_the_lc_contract():
    x = np.zeros((6, 6, 6), bool)
    x[1:3, 1:3, 1:3] = True
    x[5, 5, 5] = True
    table = object_table(da.from_array(x, chunks=2), da.from_array(x.astype(np.float32)))
    assert list(table.columns) == LC_3D + INTENSITY + ["touches_border"]
    assert table["id"].dtype == np.int64 and table["voxels"].dtype == np.int64
    assert table["z"].dtype == np.float64 and table["z1"].dtype == np.int64
    assert table["touches_border"].dtype == bool
    assert table["touches_border"].tolist() == [False, True]
    assert table[["z0", "z1"]].to_numpy().tolist() == [[1, 3], [5, 6]]
    no_intensity = object_table(x)
    assert list(no_intensity.columns) == LC_3D + ["touches_border"]


def test_2d_table_has_no_z_columns():
    x = np.zeros((5, 6), bool)
    x[1:4, 2] = True
    table = object_table(x)
    assert list(table.columns) == ["id", "y", "x", "voxels", "y0", "x0", "y1", "x1",
                                   "touches_border"]
    assert table.iloc[0][["y", "x", "voxels"]].tolist() == [2.0, 2.0, 3]


@pytest.mark.parametrize("kind", ["bs", "os"])
def test_empty_volume_gives_an_empty_table_with_the_columns(kind):
    dtype = bool if kind == "bs" else np.int32
    table = object_table(da.zeros((4, 5, 6), dtype=dtype, chunks=2), np.ones((4, 5, 6)))
    assert len(table) == 0
    assert list(table.columns) == LC_3D + INTENSITY + ["touches_border"]
    assert table["id"].dtype == np.int64


def test_zero_size_volume_gives_an_empty_table():
    table = object_table(da.zeros((0, 3, 3), dtype=bool, chunks=2))
    assert len(table) == 0 and list(table.columns) == LC_3D + ["touches_border"]


def test_full_volume_is_one_border_object():
    table = object_table(da.ones((5, 4, 3), dtype=bool, chunks=(2, 1, 3)), connectivity=1)
    row = table.iloc[0]
    assert len(table) == 1
    assert row[["z", "y", "x", "voxels"]].tolist() == [2.0, 1.5, 1.0, 60]
    assert row[["z0", "y0", "x0", "z1", "y1", "x1"]].tolist() == [0, 0, 0, 5, 4, 3]
    assert bool(row["touches_border"])


def test_object_split_over_many_chunks_is_merged_from_chunk_stats():
    x = np.zeros((10, 10, 10), bool)
    x[2:9, 1:9, 3:8] = True
    intensity = np.arange(x.size, dtype=np.float64).reshape(x.shape)
    table = object_table(da.from_array(x, chunks=(1, 3, 2)), intensity, connectivity=1)
    ref, _ = scipy_label(x, 1)
    assert len(table) == 1
    compare(table, ref, np.array([1]), intensity)


def test_uint8_is_read_as_bs_and_kind_overrides():
    x = np.zeros((4, 4, 4), np.uint8)
    x[0, 0, 0:2] = 1
    x[0, 0, 2:4] = 2  # touching values: one BS object, two OS objects
    assert len(object_table(x)) == 1
    assert object_table(x, kind="os")["id"].tolist() == [1, 2]
    assert len(object_table(x.astype(np.int32), kind="bs")) == 1


def test_bs_table_reads_the_input_once():
    calls = []

    def counted(block):
        calls.append(1)
        return block

    img = np.random.default_rng(0).random((8, 8, 8)).astype(np.float32)
    intensity = da.from_array(img, chunks=4).map_blocks(counted, meta=np.empty((0, 0, 0), np.float32))
    object_table(intensity > 0.7, intensity)
    assert len(calls) == 8


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(os_or_bs=np.zeros((3, 3), bool), kind="labels"), "kind"),
        (dict(os_or_bs=np.zeros((3, 3), np.float32), kind="os"), "integer dtype"),
        (dict(os_or_bs=np.zeros((3, 3), bool), intensity=np.zeros((3, 4))), "intensity shape"),
        (dict(os_or_bs=np.zeros((3, 3), bool), connectivity=3), "between 1 and 2"),
        (dict(os_or_bs=pd.DataFrame({"a": [1]})), "dask or numpy"),
        (dict(os_or_bs=-np.ones((3, 3), np.int32)), ">= 0"),
    ],
)
def test_bad_input_raises_a_clear_error(kwargs, match):
    with pytest.raises(InvalidInputError, match=match):
        object_table(**kwargs)
