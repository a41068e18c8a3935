"""Writing OME-Zarr: round trips, pyramids, one-pass computation, crash safety, labels, shards, zip."""

from __future__ import annotations

import hashlib
import os
import threading

import dask
import dask.array as da
import numpy as np
import pytest
import skimage.measure
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ome_zarr_helpers import read_with_ome_zarr_py, validate_with_models
from voxelflow.errors import InvalidInputError, OmeZarrError
from voxelflow.io.ome_zarr import open_ome_zarr, write_labels, write_ome_zarr

AXES = {2: ("y", "x"), 3: ("z", "y", "x"), 4: ("c", "z", "y", "x"), 5: ("t", "c", "z", "y", "x")}


@st.composite
def images(draw):
    ndim = draw(st.integers(2, 5))
    shape = tuple(draw(st.integers(1, 3)) if i < ndim - 3 else draw(st.integers(1, 12)) for i in range(ndim))
    chunks = tuple(draw(st.integers(1, s)) for s in shape)
    dtype = draw(st.sampled_from(["uint8", "uint16", "int32", "float32", "float64", "bool"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    data = (rng.random(shape) * 200).astype(dtype)
    scale = tuple(draw(st.sampled_from([0.25, 0.5, 1.0, 3.0])) for _ in range(ndim))
    version = draw(st.sampled_from(["0.4", "0.5"]))
    return data, chunks, scale, version


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(images())
def test_round_trip(memory_url, case):
    data, chunks, scale, version = case
    url = f"{memory_url}/rt-{np.random.default_rng().integers(1 << 30)}.ome.zarr"
    write_ome_zarr(da.from_array(data, chunks=chunks), url, scale=scale, version=version)
    arr, meta = open_ome_zarr(url)
    assert arr.dtype == data.dtype
    assert arr.chunksize == chunks
    assert meta.scale == scale and meta.scales == (scale,)
    assert meta.axes == AXES[data.ndim] and meta.version == version
    np.testing.assert_array_equal(arr.compute(), data)


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_pyramid_levels_match_independent_reduction(tmp_path, version):
    rng = np.random.default_rng(1)
    data = rng.integers(0, 60000, (2, 16, 32, 48), dtype=np.uint16)
    url = str(tmp_path / "img.ome.zarr")
    write_ome_zarr(data, url, levels=3, factors=(1, 2, 2, 2), chunks=(1, 8, 16, 16), version=version,
                   scale=(1, 2, 0.5, 0.5), units="micrometer", channel_names=["a", "b"])
    expected = data
    for level in range(3):
        arr, meta = open_ome_zarr(url, level=level)
        np.testing.assert_array_equal(arr.compute(), expected)
        assert meta.scale == (1.0, 2.0 * 2**level, 0.5 * 2**level, 0.5 * 2**level)
        expected = np.floor(skimage.measure.block_reduce(expected.astype(np.float64), (1, 2, 2, 2), np.mean) + 0.5)
        expected = expected.astype(np.uint16)
    assert meta.units == (None, "micrometer", "micrometer", "micrometer")
    assert meta.channel_names == ("a", "b")
    validate_with_models(url)
    levels = read_with_ome_zarr_py(url)[0]
    assert [lv.shape for lv in levels] == [(2, 16, 32, 48), (2, 8, 16, 24), (2, 4, 8, 12)]
    np.testing.assert_array_equal(levels[0], data)


def test_per_axis_factors_keep_z_and_max_keeps_bright_spots(memory_url):
    data = np.zeros((6, 40, 40), np.uint16)
    data[3, 17, 29] = 5000
    url = f"{memory_url}/sparse.ome.zarr"
    write_ome_zarr(data, url, levels=4, factors=(1, 2, 2), method="max", scale=(5, 1, 1))
    arr, meta = open_ome_zarr(url, level=3)
    assert arr.shape == (6, 5, 5)
    assert meta.scale == (5.0, 8.0, 8.0)
    assert arr[3, 17 // 8, 29 // 8].compute() == 5000 and arr.sum().compute() == 5000


def test_each_input_voxel_computed_once(tmp_path):
    calls = []
    lock = threading.Lock()

    def upstream(block):
        with lock:
            calls.append(block.shape)
        return block * 2

    base = da.from_array(np.arange(32 * 64 * 64, dtype=np.uint16).reshape(32, 64, 64), chunks=(8, 16, 32))
    arr = base.map_blocks(upstream, dtype=np.uint16, meta=np.empty((0, 0, 0), np.uint16))
    write_ome_zarr(arr, str(tmp_path / "once.ome.zarr"), levels=4, factors=2, chunks=(16, 32, 32))
    assert len(calls) == base.npartitions
    assert sum(np.prod(s) for s in calls) == base.size
    level3, _ = open_ome_zarr(str(tmp_path / "once.ome.zarr"), level=3)
    assert level3.shape == (4, 8, 8)


class Boom(RuntimeError):
    pass


def _failing(after: int):
    seen = []

    def fn(block):
        seen.append(1)
        if len(seen) > after:
            raise Boom("upstream failed")
        return block

    return fn


def test_crashed_write_never_looks_valid_and_spares_other_images(tmp_path):
    keep = np.arange(16 * 16, dtype=np.uint8).reshape(16, 16)
    other = write_ome_zarr(keep, str(tmp_path / "other.ome.zarr"))
    before = _digest(other.path)
    data = da.ones((16, 64, 64), dtype=np.uint8, chunks=(4, 16, 16))
    bad = data.map_blocks(_failing(5), dtype=np.uint8, meta=np.empty((0, 0, 0), np.uint8))
    target = tmp_path / "new.ome.zarr"
    with pytest.raises(Boom):
        write_ome_zarr(bad, str(target), levels=2)
    with pytest.raises(OmeZarrError):
        open_ome_zarr(str(target))
    # Overwriting an existing image with a crashing write: the new image was written beside
    # the old one, which is still whole.
    write_ome_zarr(keep, str(target))
    with pytest.raises(Boom):
        write_ome_zarr(bad, str(target), overwrite=True)
    np.testing.assert_array_equal(open_ome_zarr(str(target))[0].compute(), keep)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.ome.zarr", "other.ome.zarr"]
    assert _digest(other.path) == before
    np.testing.assert_array_equal(open_ome_zarr(other.url)[0].compute(), keep)


def test_a_failed_chunk_store_fails_the_write(tmp_path, monkeypatch):
    # Level-0 chunks are stored on helper threads while the task reduces them: their
    # errors must still reach the caller, and the half-written image must not look valid.
    calls, original = [], zarr.Array.__setitem__

    def flaky(self, key, value):
        calls.append(1)
        if len(calls) == 3:
            raise OSError("disk full")
        original(self, key, value)

    monkeypatch.setattr(zarr.Array, "__setitem__", flaky)
    data = da.ones((32, 64, 64), dtype=np.uint16, chunks=(8, 16, 16))
    target = tmp_path / "img.ome.zarr"
    with pytest.raises(OSError, match="disk full"):
        write_ome_zarr(data, str(target), levels=3)
    assert not target.exists()


def _write_in_child(url: str, queue) -> None:
    # dask's threaded scheduler does not survive a fork; the synchronous one does.
    with dask.config.set(scheduler="sync"):
        write_ome_zarr(np.full((16, 32, 32), 7, np.uint16), url, levels=3, chunks=(8, 8, 8))
        queue.put(int(open_ome_zarr(url, level=2)[0].compute().sum()))


def test_a_forked_child_can_write_after_its_parent(tmp_path):
    # The child inherits the parent's store-thread pool object without its threads.
    import multiprocessing

    write_ome_zarr(np.ones((16, 32, 32), np.uint16), str(tmp_path / "parent.ome.zarr"), levels=3, chunks=(8, 8, 8))
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_write_in_child, args=(str(tmp_path / "child.ome.zarr"), queue))
    child.start()
    child.join(60)
    if child.is_alive():
        child.kill()
        pytest.fail("the forked child hung writing a pyramid")
    assert child.exitcode == 0
    assert queue.get(timeout=5) == 7 * 4 * 8 * 8


def test_metadata_is_the_last_write(tmp_path, monkeypatch):
    order = []
    real_set = zarr.storage.LocalStore.set

    async def recording_set(self, key, value):
        order.append(key)
        return await real_set(self, key, value)

    monkeypatch.setattr(zarr.storage.LocalStore, "set", recording_set)
    write_ome_zarr(np.ones((8, 32, 32), np.uint16), str(tmp_path / "a.ome.zarr"), levels=2, chunks=(4, 16, 16))
    assert order[-1] == "zarr.json"
    assert sum("/c/" in k for k in order) == 8 + 1  # every chunk of both levels before it


def _digest(folder: str, skip: str | None = None) -> str:
    """Hash of every file name and content below ``folder`` (except the top-level ``skip`` entry)."""
    h = hashlib.sha256()
    for dirpath, _, files in sorted(os.walk(folder)):
        rel = os.path.relpath(dirpath, folder)
        if skip and (rel == skip or rel.startswith(skip + os.sep)):
            continue
        for name in sorted(files):
            with open(os.path.join(dirpath, name), "rb") as f:
                h.update(name.encode() + f.read())
    return h.hexdigest()


def test_overwrite_rules(tmp_path):
    url = str(tmp_path / "img.ome.zarr")
    write_ome_zarr(np.zeros((8, 8), np.uint8), url, levels=2)
    with pytest.raises(OmeZarrError, match="already exists; pass overwrite=True"):
        write_ome_zarr(np.zeros((8, 8), np.uint8), url)
    write_ome_zarr(np.full((4, 4), 7, np.uint8), url, overwrite=True)
    arr, meta = open_ome_zarr(url)
    assert meta.levels == ("0",) and (arr.compute() == 7).all()
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.txt").write_text("do not delete")
    with pytest.raises(OmeZarrError, match="not a zarr group"):
        write_ome_zarr(np.zeros((8, 8), np.uint8), str(precious), overwrite=True)
    assert (precious / "thesis.txt").read_text() == "do not delete"


def test_refuses_to_overwrite_its_own_source(tmp_path):
    url = str(tmp_path / "img.ome.zarr")
    data = np.arange(4 * 8 * 8, dtype=np.uint16).reshape(4, 8, 8)
    write_ome_zarr(data, url)
    arr, _ = open_ome_zarr(url)
    with pytest.raises(OmeZarrError, match="computed from it"):
        write_ome_zarr(arr + 1, url, overwrite=True)
    np.testing.assert_array_equal(open_ome_zarr(url)[0].compute(), data)  # untouched
    write_ome_zarr(arr + 1, str(tmp_path / "next.ome.zarr"))  # a new path is fine
    np.testing.assert_array_equal(open_ome_zarr(str(tmp_path / "next.ome.zarr"))[0].compute(), data + 1)


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_labels_written_beside_untouched_image(tmp_path, version):
    rng = np.random.default_rng(2)
    image = rng.integers(0, 1000, (2, 8, 24, 24), dtype=np.uint16)
    url = str(tmp_path / "img.ome.zarr")
    write_ome_zarr(image, url, levels=3, factors=(1, 1, 2, 2), scale=(1, 3, 1, 1), version=version)
    before = _digest(url)
    labels = np.zeros((8, 24, 24), np.uint32)
    labels[2:6, 3:11, 4:20] = 70000
    labels[1:7, 12:22, 2:9] = 5
    write_labels(labels, url, "cells")
    write_labels((labels > 0).astype(np.uint8), url, "mask", method="nearest")
    # The image's own metadata and chunks are byte-identical.
    assert _digest(url, skip="labels") == before
    _, meta = open_ome_zarr(url)
    assert meta.labels == ("cells", "mask")
    lab, lmeta = open_ome_zarr(f"{url}/labels/cells", level=2)
    assert lmeta.axes == ("z", "y", "x") and lmeta.scale == (3.0, 4.0, 4.0)
    assert lab.shape == (8, 6, 6)
    assert set(np.unique(lab.compute())) <= {0, 5, 70000}
    np.testing.assert_array_equal(open_ome_zarr(f"{url}/labels/cells")[0].compute(), labels)
    validate_with_models(url, labels=("cells", "mask"))
    nodes = read_with_ome_zarr_py(url)
    assert any(levels and levels[0].shape == (8, 24, 24) for levels in nodes)


def test_label_input_errors(memory_url):
    url = f"{memory_url}/img.ome.zarr"
    write_ome_zarr(np.zeros((2, 4, 8, 8), np.uint8), url)
    with pytest.raises(InvalidInputError, match="does not match the image"):
        write_labels(np.zeros((4, 8, 9), np.uint8), url, "x")
    with pytest.raises(InvalidInputError, match="never invents ids"):
        write_labels(np.zeros((4, 8, 8), np.uint8), url, "x", method="mean")
    with pytest.raises(InvalidInputError, match="integer dtype"):
        write_labels(np.zeros((4, 8, 8), np.float32), url, "x")
    with pytest.raises(InvalidInputError, match="plain folder name"):
        write_labels(np.zeros((4, 8, 8), np.uint8), url, "../escape")
    write_labels(np.zeros((4, 8, 8), np.uint8), url, "x")
    with pytest.raises(OmeZarrError, match="already exists"):
        write_labels(np.zeros((4, 8, 8), np.uint8), url, "x")


def test_sharding_keeps_file_count_low(tmp_path):
    data = np.arange(16 * 64 * 64, dtype=np.uint16).reshape(16, 64, 64)
    plain = write_ome_zarr(data, str(tmp_path / "plain.ome.zarr"), chunks=(4, 16, 16))
    sharded = write_ome_zarr(data, str(tmp_path / "sharded.ome.zarr"), chunks=(4, 16, 16), shards=(16, 64, 64),
                             levels=2)
    def count(folder):
        return sum(len(files) for _, _, files in os.walk(folder))

    assert count(plain.path) == 64 + 2
    assert count(sharded.path) <= 5
    arr, _ = open_ome_zarr(sharded.url)
    assert arr.chunksize == (16, 64, 64)  # one dask chunk per shard
    np.testing.assert_array_equal(arr.compute(), data)
    assert zarr.open_array(os.path.join(sharded.path, "0"), mode="r").shards == (16, 64, 64)
    validate_with_models(sharded.url)
    with pytest.raises(InvalidInputError, match="sharding needs zarr v3"):
        write_ome_zarr(data, str(tmp_path / "v4.ome.zarr"), shards=2, version="0.4")


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_zip_output(tmp_path, version):
    data = np.arange(2 * 8 * 16 * 16, dtype=np.uint16).reshape(2, 8, 16, 16)
    url = str(tmp_path / "img.ome.zarr.zip")
    write_ome_zarr(data, url, levels=2, version=version, chunks=(1, 4, 8, 8))
    arr, meta = open_ome_zarr(url, level=1)
    assert arr.shape == (2, 4, 8, 8) and meta.version == version
    np.testing.assert_array_equal(open_ome_zarr(url)[0].compute(), data)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img.ome.zarr.zip"]  # no temp leftovers
    store = zarr.storage.ZipStore(url, mode="r")
    group = zarr.open_group(store, mode="r")
    if version == "0.5":
        from ome_zarr_models.v05 import Image
    else:
        from ome_zarr_models.v04 import Image
    Image.from_zarr(group)
    with pytest.raises(InvalidInputError, match="ending in '.zip'"):
        write_ome_zarr(data, str(tmp_path / "x.ome.zarr"), zip=True)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"arr": np.zeros(5)}, "2 to 5 dimensions"),
        ({"axes": ("y", "x", "t")}, "ordered time, channel"),
        ({"axes": ("t", "c", "x")}, "2 or 3 space axes"),
        ({"axes": ("q", "y", "x")}, "distinct names"),
        ({"scale": (1, -2, 1)}, "positive and finite"),
        ({"factors": (2, 2)}, "has 2 entries but the array has 3"),
        ({"levels": 0}, "levels must be an int >= 1"),
        ({"chunks": (0, 4, 4)}, "positive ints"),
        ({"version": "0.3"}, "version must be"),
        ({"method": "median"}, "unknown method"),
        ({"arr": np.zeros((4, 4, 4), complex)}, "numeric or bool"),
        ({"channel_names": ["a"]}, "channel_names"),
    ],
)
def test_bad_write_arguments_touch_nothing(tmp_path, kwargs, match):
    kwargs = dict(kwargs)
    arr = kwargs.pop("arr", np.zeros((4, 8, 8), np.uint8))
    target = tmp_path / "img.ome.zarr"
    with pytest.raises(InvalidInputError, match=match):
        write_ome_zarr(arr, str(target), **kwargs)
    assert not target.exists()
