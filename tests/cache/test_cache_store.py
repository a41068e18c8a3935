"""save/load round trips (hypothesis) for numpy, dask/zarr, DataFrame/Parquet and JSON payloads."""

import json
import uuid

import dask
import dask.array as da
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from hypothesis.extra import pandas as hpd

from voxelflow.cache import load, save
from voxelflow.errors import CacheError
from voxelflow.paths import VPath

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

NUMERIC = st.one_of(
    hnp.boolean_dtypes(),
    hnp.integer_dtypes(endianness="="),
    hnp.unsigned_integer_dtypes(endianness="="),
    hnp.floating_dtypes(endianness="="),
    hnp.complex_number_dtypes(endianness="="),
)
ANY_NPY = st.one_of(
    NUMERIC,
    hnp.datetime64_dtypes(endianness="="),
    hnp.unicode_string_dtypes(endianness="=", max_len=4),
    hnp.integer_dtypes(endianness=">"),
)


def _url(root):
    return f"{root}/{uuid.uuid4().hex}"


@SETTINGS
@given(arr=hnp.arrays(ANY_NPY, hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5)))
def test_numpy_round_trip(root, arr):
    url = _url(root)
    save(url, arr)
    back = load(url)
    assert type(back) is np.ndarray and back.dtype == arr.dtype and back.shape == arr.shape
    np.testing.assert_array_equal(back, arr)  # NaN == NaN here, bitwise-equal arrays round trip


@st.composite
def dask_arrays(draw):
    """A dask array with random shape, dtype and (possibly irregular) chunks."""
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=9))
    dtype = draw(NUMERIC)
    data = draw(hnp.arrays(dtype, shape))
    chunks = []
    for side in shape:
        sizes, left = [], side
        while left > 0:
            sizes.append(draw(st.integers(1, left)))
            left -= sizes[-1]
        chunks.append(tuple(sizes) or (0,))
    return data, da.from_array(data, chunks=tuple(chunks))


@SETTINGS
@given(case=dask_arrays())
def test_dask_round_trip_keeps_values_dtype_and_chunks(root, case):
    data, arr = case
    url = _url(root)
    save(url, arr)
    back = load(url)
    assert isinstance(back, da.Array)
    assert back.chunks == arr.chunks and back.dtype == arr.dtype
    np.testing.assert_array_equal(back.compute(), data)


@SETTINGS
@given(
    df=hpd.data_frames(
        [
            hpd.column("i", dtype=np.int64),
            hpd.column("f", dtype=np.float64),
            hpd.column("b", dtype=bool),
            hpd.column("s", elements=st.text(max_size=5)),
        ],
        index=hpd.range_indexes(max_size=20),
    )
)
def test_dataframe_round_trip(root, df):
    url = _url(root)
    save(url, df)
    back = load(url)
    pd.testing.assert_frame_equal(back, df)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=15,
)


@SETTINGS
@given(value=JSON)
def test_json_round_trip(root, value):
    url = _url(root)
    save(url, value)
    assert load(url) == value


def test_dask_is_stored_as_zarr3_readable_by_zarr(tmp_path):
    arr = da.arange(60, dtype=np.int16).reshape(6, 10).rechunk((4, 5))
    save(tmp_path / "z", arr)
    z = zarr.open_array(str(tmp_path / "z" / "data.ome.zarr" / "0"), mode="r")
    assert z.metadata.zarr_format == 3 and z.chunks == (4, 5)
    np.testing.assert_array_equal(z[:], np.arange(60, dtype=np.int16).reshape(6, 10))


@pytest.mark.parametrize("front_end", ["numpy", "dask", "step"])
def test_every_array_has_one_layout_readable_by_ome_zarr_py(tmp_path, front_end):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    import voxelflow.steps as steps
    from voxelflow.steps import Runner

    vol = np.arange(4 * 6 * 8, dtype=np.uint16).reshape(4, 6, 8)
    if front_end == "numpy":
        save(tmp_path / "n", vol)
    elif front_end == "dask":
        save(tmp_path / "n", da.from_array(vol, chunks=(2, 3, 4)))
    else:
        run = Runner(tmp_path)
        run.step(steps.threshold, da.from_array(vol, chunks=(2, 3, 4)), 100, name="n", storage={"levels": 1})
        vol = vol > 100
    image = tmp_path / "n" / ("out0" if front_end == "step" else "") / "data.ome.zarr"
    node = next(iter(Reader(parse_url(str(image)))()))
    np.testing.assert_array_equal(np.asarray(node.data[0]), vol)
    assert [a["name"] for a in node.metadata["axes"]] == ["z", "y", "x"]


@pytest.mark.parametrize("obj", [np.arange(24.0).reshape(2, 3, 4), da.ones((8, 6), chunks=(3, 4), dtype=np.int8)])
def test_a_lost_chunk_file_of_a_saved_array_is_an_error_not_zeros(tmp_path, obj):
    save(tmp_path / "n", obj)
    chunks = sorted(p for p in (tmp_path / "n" / "data.ome.zarr" / "0" / "c").rglob("*") if p.is_file())
    chunks[-1].unlink()
    with pytest.raises(CacheError, match="missing"):
        np.asarray(load(tmp_path / "n"))


def test_dataframe_is_plain_parquet(tmp_path):
    df = pd.DataFrame({"id": [3, 1], "name": ["a", "b"]}, index=[10, 20])
    save(tmp_path / "t", df)
    table = pq.read_table(tmp_path / "t" / "result.parquet")
    assert table.column("id").to_pylist() == [3, 1]
    pd.testing.assert_frame_equal(load(tmp_path / "t"), df)


def test_saving_a_dask_array_computes_each_block_once(root):
    calls = []

    def tally(block, block_info=None):
        calls.append(block_info[None]["chunk-location"])
        return block * 2

    arr = da.ones((6, 6), chunks=(2, 3), dtype=np.int32).map_blocks(tally, dtype=np.int32)
    with dask.config.set(scheduler="threads"):
        save(f"{root}/blocks", arr)
    assert sorted(calls) == sorted((i, j) for i in range(3) for j in range(2))
    np.testing.assert_array_equal(load(f"{root}/blocks").compute(), np.full((6, 6), 2))


def test_load_of_a_dask_array_reads_no_data(tmp_path):
    save(tmp_path / "n", da.ones((8, 8), chunks=4))
    for chunk in (tmp_path / "n" / "data.ome.zarr" / "0" / "c").rglob("*"):
        if chunk.is_file():
            chunk.write_bytes(b"corrupt")
    back = load(tmp_path / "n")  # lazy: the damaged chunks are not read yet
    assert back.chunks == ((4, 4), (4, 4))
    with pytest.raises(CacheError, match="damaged payload chunk"):  # once the damaged bytes are read
        back.compute()


def test_irregular_chunks_are_stored_on_a_regular_grid(tmp_path):
    arr = da.from_array(np.arange(10), chunks=((2, 5, 3),))
    save(tmp_path / "irr", arr)
    assert zarr.open_array(str(tmp_path / "irr" / "data.ome.zarr" / "0"), mode="r").chunks == (5,)
    back = load(tmp_path / "irr")
    assert back.chunks == ((2, 5, 3),)
    np.testing.assert_array_equal(back.compute(), np.arange(10))
    marker = json.loads((VPath(tmp_path / "irr") / ".voxelflow_commit.json").read_text())
    assert marker["payload"]["chunks"] == [[2, 5, 3]]


def test_a_lost_chunk_of_a_step_image_is_an_error_on_load(tmp_path):
    import voxelflow.steps as steps
    from voxelflow.steps import Runner

    vol = np.arange(4 * 6 * 8, dtype=np.uint16).reshape(4, 6, 8)
    Runner(tmp_path).step(steps.threshold, da.from_array(vol, chunks=(2, 3, 4)), 100, name="n",
                          storage={"levels": 1, "chunks": (2, 3, 4)})
    level0 = tmp_path / "n" / "out0" / "data.ome.zarr" / "0"
    chunks = sorted(p for p in level0.rglob("*") if p.is_file() and p.name != "zarr.json")
    np.testing.assert_array_equal(np.asarray(load(tmp_path / "n" / "out0")), vol > 100)
    chunks[0].unlink()  # all False: zarr would read the fill value
    with pytest.raises(CacheError, match="missing"):
        np.asarray(load(tmp_path / "n" / "out0"))
