"""VPath: URL parsing, navigation and atomic writes on local disk and memory://."""

import os

import pytest

from voxelflow.errors import InvalidPathError
from voxelflow.paths import VPath, as_vpath


def test_relative_local_path_is_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = VPath("a/b")
    assert p.is_local
    assert p.url == str(tmp_path / "a" / "b")
    assert os.fspath(p) == p.url


def test_memory_url_round_trip():
    p = VPath("memory://bucket/x") / "y"
    assert p.url == "memory://bucket/x/y"
    assert VPath(p.url) == p
    assert p.parent.url == "memory://bucket/x"
    assert p.name == "y"


def test_write_read_ls_size_rm(root):
    f = root / "sub" / "data.bin"
    f.write_bytes(b"12345")
    (root / "sub" / "note.txt").write_text("hi")
    assert f.read_bytes() == b"12345"
    assert (root / "sub").ls() == ["data.bin", "note.txt"]
    assert (root / "sub").size() == 7
    assert f.isfile() and (root / "sub").isdir()
    (root / "sub").rm()
    assert not f.exists()
    assert (root / "sub").ls() == []


def test_atomic_local_write_leaves_no_temp_files(tmp_path):
    p = VPath(tmp_path) / "marker.json"
    p.write_text("one")
    p.write_text("two")
    assert p.read_text() == "two"
    assert sorted(os.listdir(tmp_path)) == ["marker.json"]


def test_as_vpath_keeps_instances():
    p = VPath("memory://keep")
    assert as_vpath(p) is p
    assert as_vpath("memory://keep") == p


@pytest.mark.parametrize("bad", [None, 3, b"bytes", ""])
def test_bad_path_types_raise(bad):
    with pytest.raises(InvalidPathError):
        VPath(bad)


def test_unknown_protocol_raises():
    with pytest.raises(InvalidPathError, match="nosuchproto"):
        VPath("nosuchproto://x")


def test_non_local_path_has_no_fspath():
    with pytest.raises(InvalidPathError):
        os.fspath(VPath("memory://x"))
