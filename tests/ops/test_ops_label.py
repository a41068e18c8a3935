"""label(): equal to scipy.ndimage.label on the whole array, for any chunking."""

import dask
import dask.array as da
import numpy as np
import pytest
from hypothesis import given, settings
from ops_label_helpers import assert_same_partition, scipy_label, volumes

import voxelflow.ops._label as label_mod
import voxelflow.ops._merge as merge_mod
from voxelflow.errors import InvalidInputError
from voxelflow.ops._label import label


def check_label(x, chunks, connectivity):
    ref, n_ref = scipy_label(x, connectivity)
    os_arr, n = label(da.from_array(x, chunks=chunks), connectivity)
    ours = os_arr.compute()
    assert n == n_ref
    assert os_arr.chunks == da.from_array(x, chunks=chunks).chunks
    assert ours.dtype == os_arr.dtype == np.int32
    assert_same_partition(ours, ref)
    # final ids are contiguous 1 .. n
    np.testing.assert_array_equal(np.unique(ours[ours != 0]), np.arange(1, n + 1))
    return ours


@settings(max_examples=40)
@given(volumes())
def test_label_matches_scipy_for_random_volumes_and_irregular_chunks(case):
    x, chunks, connectivity, _ = case
    check_label(x, chunks, connectivity)


@pytest.mark.parametrize("connectivity", [1, 2, 3])
@pytest.mark.parametrize("fill", [False, True])
def test_empty_and_full_volumes(connectivity, fill):
    x = np.full((5, 6, 7), fill)
    ours = check_label(x, (2, 3, 1), connectivity)
    assert ours.max() == int(fill)


def test_zero_size_volume():
    os_arr, n = label(da.zeros((0, 4, 4), dtype=bool, chunks=2), 1)
    assert n == 0 and os_arr.shape == (0, 4, 4)


@pytest.mark.parametrize("connectivity,expected", [(1, 8), (2, 8), (3, 1)])
def test_objects_touching_only_at_chunk_corners(connectivity, expected):
    # voxels on the main diagonal: each pair meets only at a corner, and with
    # chunks of 2 every other contact is across a chunk corner
    x = np.zeros((8, 8, 8), bool)
    i = np.arange(8)
    x[i, i, i] = True
    ours = check_label(x, 2, connectivity)
    assert ours.max() == expected


@pytest.mark.parametrize("connectivity,expected", [(1, 6), (2, 1), (3, 1)])
def test_objects_touching_only_along_chunk_edges(connectivity, expected):
    x = np.zeros((6, 6, 5), bool)
    i = np.arange(6)
    x[i, i, 2] = True
    ours = check_label(x, (3, 3, 5), connectivity)
    assert ours.max() == expected


@pytest.mark.parametrize("connectivity,expected", [(1, 2), (2, 1)])
def test_2d_diagonal_contact_across_chunk_corner(connectivity, expected):
    x = np.zeros((6, 6), bool)
    x[2, 2] = x[3, 3] = True
    assert check_label(x, 3, connectivity).max() == expected


def snake(shape):
    """A 1-voxel-wide boustrophedon in the plane z = shape[0] // 2: one object."""
    x = np.zeros(shape, bool)
    z = shape[0] // 2
    for row, y in enumerate(range(0, shape[1], 2)):
        x[z, y, :] = True
        if y + 1 < shape[1]:
            x[z, y + 1, -1 if row % 2 == 0 else 0] = True
    return x


@pytest.mark.parametrize("chunks", [3, (2, 5, 1), ((1, 2, 1, 3), (4, 1, 6, 2, 4), (3, 3, 3, 3, 5))])
@pytest.mark.parametrize("connectivity", [1, 3])
def test_snake_crossing_chunks_back_and_forth_is_one_object(chunks, connectivity):
    x = snake((7, 17, 17))
    ours = check_label(x, chunks, connectivity)
    assert ours.max() == 1


def test_object_spanning_every_chunk_plus_isolated_specks():
    x = np.zeros((12, 12, 12), bool)
    x[:, 5, 5] = x[5, :, 5] = x[5, 5, :] = True  # a 3D cross through all chunk rows
    x[0, 0, 0] = x[11, 11, 0] = True
    ours = check_label(x, 2, 1)
    assert ours.max() == 3


def test_nonbool_input_uses_nonzero_as_foreground():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 3, size=(6, 7, 8)).astype(np.uint16)
    ref, n_ref = scipy_label(x != 0, 1)
    os_arr, n = label(da.from_array(x, chunks=3))
    assert n == n_ref
    assert_same_partition(os_arr.compute(), ref)


def test_numpy_input_is_accepted():
    x = np.eye(5, dtype=bool)
    os_arr, n = label(x, connectivity=2)
    assert n == 1 and isinstance(os_arr, da.Array)


def test_int64_ids_when_count_exceeds_the_int32_limit(monkeypatch):
    x = np.zeros((4, 4, 9), bool)
    x[1, 1, ::2] = True  # 5 separate objects, one per chunk along x
    monkeypatch.setattr(merge_mod, "MAX_INT32_LABELS", 4)
    os_arr, n = label(da.from_array(x, chunks=(4, 4, 2)))
    assert n == 5 and os_arr.dtype == np.int64
    ours = os_arr.compute()
    assert ours.dtype == np.int64
    assert_same_partition(ours, scipy_label(x, 1)[0])
    monkeypatch.setattr(merge_mod, "MAX_INT32_LABELS", 5)
    assert label(da.from_array(x, chunks=(4, 4, 2)))[0].dtype == np.int32


def test_label_dtype_rejects_counts_beyond_int64():
    with pytest.raises(InvalidInputError, match="64-bit"):
        merge_mod.label_dtype(2**63)


def test_each_chunk_gets_a_remap_table_of_its_own_labels_only(monkeypatch):
    rng = np.random.default_rng(7)
    x = rng.random((9, 10, 11)) < 0.4
    seen = []
    original = label_mod._relabel_block

    def recording(block, connectivity, spec, dtype):
        table = merge_mod.build_remap(spec, dtype)
        local_count = scipy_label(np.asarray(block), connectivity)[1]
        seen.append((len(table), local_count, spec.removed_local.size))
        return original(block, connectivity, spec, dtype)

    monkeypatch.setattr(label_mod, "_relabel_block", recording)
    bs = da.from_array(x, chunks=(4, 3, 5))
    os_arr, _ = label(bs, 3)
    assert_same_partition(os_arr.compute(), scipy_label(x, 3)[0])
    assert len(seen) == bs.npartitions
    for table_len, local_count, removed in seen:
        assert table_len == local_count + 1
        assert removed <= local_count


def test_label_computes_the_input_once_and_output_once_more():
    x = np.random.default_rng(1).random((8, 8, 8)) < 0.3
    calls = []

    def counted(block):
        calls.append(1)
        return block

    bs = da.from_array(x, chunks=4).map_blocks(counted, meta=np.empty((0, 0, 0), bool))
    os_arr, _ = label(bs, 1)
    assert len(calls) == bs.npartitions
    os_arr.compute()
    assert len(calls) == 2 * bs.npartitions


def test_works_on_a_distributed_cluster():
    distributed = pytest.importorskip("distributed")
    x = np.random.default_rng(2).random((8, 9, 10)) < 0.4
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster, distributed.Client(cluster):
        os_arr, n = label(da.from_array(x, chunks=3), 2)
        ours = os_arr.compute()
    ref, n_ref = scipy_label(x, 2)
    assert n == n_ref
    assert_same_partition(ours, ref)


def test_result_is_independent_of_the_scheduler():
    x = np.random.default_rng(4).random((7, 7, 7)) < 0.4
    with dask.config.set(scheduler="synchronous"):
        a, n_a = label(da.from_array(x, chunks=3), 1)
        a = a.compute()
    b, n_b = label(da.from_array(x, chunks=3), 1)
    assert n_a == n_b
    np.testing.assert_array_equal(a, b.compute())


@pytest.mark.parametrize(
    "bad,connectivity,match",
    [
        (np.zeros(5, bool), 1, "2D or 3D"),
        (np.zeros((2, 2, 2, 2), bool), 1, "2D or 3D"),
        (np.zeros((3, 3), complex), 1, "dtype"),
        ([[0, 1]], 1, "dask or numpy"),
        (np.zeros((3, 3, 3), bool), 4, "between 1 and 3"),
        (np.zeros((3, 3), bool), 3, "between 1 and 2"),
        (np.zeros((3, 3), bool), 1.5, "must be an int"),
        (np.zeros((3, 3), bool), True, "must be an int"),
    ],
)
def test_bad_input_raises_a_clear_error(bad, connectivity, match):
    with pytest.raises(InvalidInputError, match=match):
        label(bad, connectivity)


def test_unknown_chunk_sizes_are_rejected():
    x = da.from_array(np.arange(8) > 3, chunks=4)
    ragged = x[x][None, :]  # boolean indexing leaves NaN chunk sizes
    with pytest.raises(InvalidInputError, match="unknown chunk sizes"):
        label(ragged)
