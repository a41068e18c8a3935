"""Bad input to the cache: each case raises a named voxelflow error and loses nothing committed."""

import json

import dask.array as da
import numpy as np
import pandas as pd
import pytest

from voxelflow.cache import cdir_commit, cdir_init, cdir_query, load, save
from voxelflow.cache._lock import read_lock
from voxelflow.cache._marker import MARKER_NAME
from voxelflow.cli import main
from voxelflow.errors import (
    CacheError,
    CacheKeyError,
    InvalidInputError,
    InvalidPathError,
    NotACacheNodeError,
    NotCommittedError,
    UnsupportedObjectError,
)
from voxelflow.paths import VPath


@pytest.mark.parametrize("url", [123, None, 4.5, b"/tmp/x", ""])
@pytest.mark.parametrize("fn", [cdir_init, cdir_query, cdir_commit, load])
def test_url_of_the_wrong_type(fn, url):
    with pytest.raises(InvalidPathError):
        fn(url)


def test_unknown_protocol():
    with pytest.raises(InvalidPathError, match="nosuchproto"):
        cdir_init("nosuchproto://bucket/node")


@pytest.mark.parametrize("fn", [cdir_init, cdir_query, cdir_commit, load])
def test_node_that_is_a_file(tmp_path, fn):
    f = tmp_path / "result.txt"
    f.write_text("precious")
    with pytest.raises(NotACacheNodeError, match="result.txt"):
        fn(f)
    with pytest.raises(NotACacheNodeError):
        save(f, 1)
    assert f.read_text() == "precious"


def test_node_below_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(InvalidPathError, match="file/node"):
        cdir_init(f / "node")
    assert f.read_text() == "x"


def test_foreign_folder(tmp_path):
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "notes.txt").write_text("keep")
    for fn in (cdir_init, cdir_commit, load):
        with pytest.raises(NotACacheNodeError, match="home"):
            fn(tmp_path / "home")
    assert (tmp_path / "home" / "notes.txt").read_text() == "keep"


@pytest.mark.parametrize(
    "key",
    [object(), {1, 2}, float("nan"), np.int64(3), {"a": np.zeros(2)}, {1: "a", "b": 2}, b"bytes"],
    ids=["object", "set", "nan", "numpy-int", "array-in-dict", "mixed-dict-keys", "bytes"],
)
def test_key_that_is_not_json(root, key):
    url = f"{root}/node"
    with pytest.raises(CacheKeyError, match="JSON"):
        cdir_init(url, key=key)
    assert not VPath(url).exists()
    with pytest.raises(CacheKeyError):
        save(url, 1, key=key)
    save(url, 1)
    with pytest.raises(CacheKeyError):
        cdir_commit(url, key=key)
    assert load(url) == 1


@pytest.mark.parametrize("timeout", ["1", -1, float("nan"), True])
def test_bad_timeout(root, timeout):
    with pytest.raises(InvalidInputError, match="timeout"):
        cdir_init(f"{root}/n", timeout=timeout)


def test_bad_storage_options(root):
    with pytest.raises(InvalidInputError, match="storage_options"):
        cdir_init(f"{root}/n", storage_options="anon")


@pytest.mark.parametrize(
    "obj",
    [
        object(),
        {1, 2},
        np.array([1, "a", None], dtype=object),
        np.ma.masked_array([1, 2], mask=[0, 1]),
        da.from_array(np.array(["a", "b"])),
        da.ones(10, chunks=5)[da.ones(10, chunks=5) > 0],  # unknown chunk sizes
        pd.DataFrame({"a": [object(), object()]}),
        {"nan": float("nan")},
    ],
    ids=["object", "set", "object-array", "masked", "dask-str", "dask-unknown-chunks", "df-objects", "json-nan"],
)
def test_unsupported_object_leaves_the_committed_result(root, obj):
    url = f"{root}/node"
    save(url, np.arange(4))
    before = cdir_query(url).commit
    with pytest.raises(UnsupportedObjectError):
        save(url, obj)
    assert cdir_query(url).commit == before
    np.testing.assert_array_equal(load(url), np.arange(4))


def test_failing_dask_graph_leaves_node_uncommitted_and_unlocked(root):
    def boom(block):
        raise ZeroDivisionError("step failed")

    url = f"{root}/node"
    with pytest.raises(ZeroDivisionError):
        save(url, da.ones(4, chunks=2).map_blocks(boom, dtype=float))
    assert cdir_query(url).status == "partial"
    assert read_lock(VPath(url)) is None
    with pytest.raises(NotCommittedError):
        load(url)


def test_load_of_missing_or_uncommitted_nodes(root):
    with pytest.raises(NotCommittedError, match="does not exist"):
        load(f"{root}/missing")
    cdir_init(f"{root}/open")
    with pytest.raises(NotCommittedError, match="not committed"):
        load(f"{root}/open")


@pytest.mark.parametrize("damage", ["delete", "truncate"])
def test_damaged_payload_of_a_committed_node(root, damage):
    url = f"{root}/node"
    save(url, np.arange(100))
    payload = VPath(url) / "data.ome.zarr"
    if damage == "delete":
        payload.rm()
    else:
        chunk = payload / "0" / "c" / "0"
        chunk.write_bytes(chunk.read_bytes()[:40])
    with pytest.raises(CacheError, match="damaged payload"):
        load(url)


def test_marker_that_is_not_a_marker(root):
    url = f"{root}/node"
    save(url, 5)
    (VPath(url) / MARKER_NAME).write_text(json.dumps({"format": "voxelflow-cache-commit", "committed": "yesterday"}))
    with pytest.raises(NotCommittedError):
        load(url)
    assert cdir_init(url).commit is None


def test_commit_of_a_missing_node(root):
    with pytest.raises(NotACacheNodeError, match="cdir_init first"):
        cdir_commit(f"{root}/never")


def test_cli_refuses_foreign_folders_and_missing_paths(tmp_path, capsys):
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "notes.txt").write_text("keep")
    assert main(["cache", "rm", str(tmp_path / "home")]) == 2
    assert "not a voxelflow cache node" in capsys.readouterr().err
    assert (tmp_path / "home" / "notes.txt").read_text() == "keep"
    assert main(["cache", "ls", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["cache", "info", str(tmp_path / "home")]) == 2
    assert main(["cache", "ls", str(tmp_path / "home" / "notes.txt")]) == 2


def test_removing_a_tree_whose_files_vanish_meanwhile(tmp_path, monkeypatch):
    # a failed zarr write may delete its temporary file while the retry clears the node
    import shutil

    (tmp_path / "node" / "data").mkdir(parents=True)
    (tmp_path / "node" / "data" / "zarr.tmp.partial").write_text("x")
    real, calls = shutil.rmtree, []

    def vanishing(path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 1:
            (tmp_path / "node" / "data" / "zarr.tmp.partial").unlink()
            raise FileNotFoundError(2, "No such file or directory", "zarr.tmp.partial")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(shutil, "rmtree", vanishing)
    VPath(str(tmp_path / "node")).rm()
    assert not (tmp_path / "node").exists() and len(calls) == 2
