"""Cache nodes: init/commit/query, markers, keys, resuming a crashed parent, adoption rules."""

import json
import logging
import platform
import textwrap
import time
from datetime import UTC, datetime

import dask
import dask.array as da
import numpy as np
import pytest
import zarr
from cache_helpers import run_python

import voxelflow
from voxelflow import cached, cdir_commit, cdir_init, cdir_query, load, save
from voxelflow.cache._lock import release
from voxelflow.cache._marker import IDENTITY_NAME, MARKER_NAME
from voxelflow.errors import CacheError, NotACacheNodeError, NotCommittedError
from voxelflow.paths import VPath


def _crash(url):
    """Make a node look like its computing process died: drop this process's lock."""
    release(VPath(url))


def test_new_node_is_computed_once_then_committed(root):
    url = f"{root}/CacheDirectory/some_cache_path"
    node = cdir_init(url)
    assert node.commit is None and node.status == "computing"
    assert VPath(url).isdir() and (VPath(url) / IDENTITY_NAME).isfile()
    before = datetime.now(UTC)
    saved = save(url, np.arange(6).reshape(2, 3))
    assert before <= saved.commit <= datetime.now(UTC)
    again = cdir_init(url)
    assert again.commit == saved.commit and again.status == "committed"
    np.testing.assert_array_equal(load(url), np.arange(6).reshape(2, 3))


def test_marker_records_time_key_versions_and_wall_time(root):
    url = f"{root}/step"
    cdir_init(url, key={"sigma": 2.5, "names": ("a", "b")})
    time.sleep(0.2)
    node = save(url, {"n": 3})
    marker = json.loads((VPath(url) / MARKER_NAME).read_text())
    assert marker == node.marker
    assert marker["key"] == {"sigma": 2.5, "names": ["a", "b"]}
    assert marker["versions"] == {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "dask": dask.__version__,
        "zarr": zarr.__version__,
        "voxelflow": voxelflow.__version__,
    }
    assert 0.2 <= marker["wall_seconds"] < 30
    assert marker["payload"]["kind"] == "json"
    assert datetime.fromisoformat(marker["committed"]) == node.commit


def test_seed_use_case_2_run_twice_in_two_processes(tmp_path):
    """The seed's hierarchical example: the second process skips both steps."""
    script = tmp_path / "seed_case2.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import numpy as np
            import voxelflow as tlfs
            from voxelflow import save, load

            TMP_PATH = {str(tmp_path)!r}

            def computeA():
                print("computing A")
                return np.arange(10)

            def computeBFromA():
                print("computing B")
                return A * 2

            if __name__ == '__main__':
                cache_path = f'{{TMP_PATH}}/CacheDirectory/some_cache_path'
                is_commit = tlfs.cdir_init(cache_path).commit

                def multi_step_computation(cache_at: str):
                    global A
                    cache_path1 = f'{{cache_path}}/A'
                    is_commit1 = tlfs.cdir_init(cache_path1).commit
                    if not is_commit1:
                        A = computeA()
                        save(cache_path1, A)
                    A = load(cache_path1)

                    cache_path2 = f'{{cache_path}}/B'
                    is_commit2 = tlfs.cdir_init(cache_path2).commit
                    if not is_commit2:
                        B = computeBFromA()
                        save(cache_path2, B)
                    B = load(cache_path2)
                    return B

                result = multi_step_computation(cache_at=f'{{cache_path}}/multi_step_cache')
                print("result", result.tolist())
            """
        )
    )
    first = run_python(str(script))
    assert first.returncode == 0, first.stderr
    assert "computing A" in first.stdout and "computing B" in first.stdout
    second = run_python(str(script))
    assert second.returncode == 0, second.stderr
    assert "computing" not in second.stdout
    expected = f"result {list(range(0, 20, 2))}"
    assert expected in first.stdout and expected in second.stdout


def test_reinit_of_crashed_parent_keeps_committed_children(root):
    parent = f"{root}/parent"
    cdir_init(parent)
    save(f"{parent}/A", np.ones(3))
    save(f"{parent}/plain/folder/B", {"b": 1})  # committed node inside plain folders
    cdir_init(f"{parent}/C")
    save(f"{parent}/C/D", [1, 2])  # committed grandchild under an uncommitted child
    cdir_init(f"{parent}/E")
    (VPath(parent) / "E" / "partial.bin").write_bytes(b"half")  # uncommitted child with junk
    (VPath(parent) / "partial.txt").write_text("junk")
    (VPath(parent) / "plain" / "junk.txt").write_text("junk")
    save(f"{parent}/F", da.ones((4, 4), chunks=2))
    (VPath(parent) / "F" / MARKER_NAME).rm()  # F: a zarr payload without commit
    for url in (parent, f"{parent}/C", f"{parent}/E"):
        _crash(url)

    node = cdir_init(parent)

    assert node.commit is None
    assert sorted(VPath(parent).ls()) == sorted([IDENTITY_NAME, ".voxelflow_lock.json", "A", "C", "plain"])
    np.testing.assert_array_equal(load(f"{parent}/A"), np.ones(3))
    assert load(f"{parent}/plain/folder/B") == {"b": 1}
    assert load(f"{parent}/C/D") == [1, 2]
    assert cdir_query(f"{parent}/C").status == "partial"
    assert (VPath(parent) / "plain").ls() == ["folder"]
    assert cdir_init(f"{parent}/A").commit is not None  # the finished child is skipped


def test_key_change_invalidates_with_a_log_line(root, caplog):
    url = f"{root}/blur"
    cdir_init(url, key={"sigma": 1})
    save(url, np.zeros(4))
    save(f"{url}/child", 1)
    assert cdir_init(url, key={"sigma": 1}).commit is not None
    assert cdir_init(url).commit is not None  # no key: path only
    with caplog.at_level(logging.INFO, logger="voxelflow.cache"):
        node = cdir_init(url, key={"sigma": 2})
    assert node.commit is None
    assert any("key changed" in r.getMessage() and "blur" in r.getMessage() for r in caplog.records)
    assert not (VPath(url) / "child").exists()
    with pytest.raises(NotCommittedError):
        load(url)
    save(url, np.ones(4))
    assert cdir_query(url).key == {"sigma": 2}


def test_equal_keys_in_other_spellings_match(root):
    url = f"{root}/k"
    cdir_init(url, key={"b": [1, 2], "a": "x"})
    save(url, 1)
    assert cdir_init(url, key={"a": "x", "b": (1, 2)}).commit is not None
    digest = "3f2a9c1e" * 8
    save(f"{root}/h", 2, key=digest)
    assert cdir_init(f"{root}/h", key=digest).commit is not None
    assert cdir_init(f"{root}/h", key="other").commit is None


@pytest.mark.parametrize("garbage", [b'{"format": "voxelflow-cache-com', b"\x00\xff", b'{"format": "other"}', b"[]"])
def test_torn_or_foreign_marker_counts_as_not_committed(root, caplog, garbage):
    url = f"{root}/torn"
    save(url, np.arange(3))
    (VPath(url) / MARKER_NAME).write_bytes(garbage)
    with caplog.at_level(logging.WARNING, logger="voxelflow.cache"):
        assert cdir_query(url).status == "partial"
        with pytest.raises(NotCommittedError, match="commit marker"):
            load(url)
    assert any("commit marker" in r.getMessage() for r in caplog.records)
    node = cdir_init(url)
    assert node.commit is None
    assert sorted(VPath(url).ls()) == sorted([IDENTITY_NAME, ".voxelflow_lock.json"])
    save(url, np.arange(3))
    np.testing.assert_array_equal(load(url), np.arange(3))


def test_node_filled_by_another_writer_is_committed_explicitly(root):
    url = f"{root}/image"
    node = cdir_init(url, key={"level": 0})
    (node.path / "image.ome.zarr").mkdirs()
    (node.path / "image.ome.zarr" / "zarr.json").write_text("{}")
    assert cdir_query(url).status == "computing"
    committed = cdir_commit(url)
    assert committed.commit is not None and committed.key == {"level": 0}
    assert committed.marker["payload"] is None
    assert cdir_commit(url).commit == committed.commit  # already committed: unchanged
    assert cdir_init(url, key={"level": 0}).commit == committed.commit
    assert (node.path / "image.ome.zarr" / "zarr.json").read_text() == "{}"
    with pytest.raises(CacheError, match="without a save"):
        load(url)


def test_save_creates_missing_nodes_and_replaces_committed_ones(root):
    url = f"{root}/a/b/c"
    save(url, [1])
    assert load(url) == [1]
    save(f"{url}/child", "derived from the old result")
    first = cdir_query(url).commit
    save(url, np.arange(2))
    np.testing.assert_array_equal(load(url), np.arange(2))
    assert cdir_query(url).commit >= first
    assert not (VPath(url) / "child").exists()  # a replaced result invalidates what was derived from it
    assert [n for n in VPath(url).ls() if n.startswith(("result", "data"))] == ["data.ome.zarr"]


def test_folder_holding_only_nodes_is_adopted(root):
    save(f"{root}/group/sub/A", 1)
    save(f"{root}/group/B", 2)
    node = cdir_init(f"{root}/group")
    assert node.commit is None
    assert load(f"{root}/group/sub/A") == 1 and load(f"{root}/group/B") == 2


def test_empty_folder_is_adopted(tmp_path):
    (tmp_path / "empty").mkdir()
    assert cdir_init(tmp_path / "empty").commit is None


@pytest.mark.parametrize("setup", ["file_in_folder", "file_in_subfolder"])
def test_foreign_non_empty_folder_is_never_wiped(tmp_path, setup):
    home = tmp_path / "home"
    target = home / "thesis.tex" if setup == "file_in_folder" else home / "docs" / "thesis.tex"
    target.parent.mkdir(parents=True)
    target.write_text("years of work")
    before = sorted(home.rglob("*"))
    with pytest.raises(NotACacheNodeError, match="never a voxelflow cache node"):
        cdir_init(home)
    with pytest.raises(NotACacheNodeError):
        save(home, 1)
    assert target.read_text() == "years of work"
    assert sorted(home.rglob("*")) == before


def test_cached_decorator_computes_once_per_key(root):
    calls = []

    @cached(lambda n, scale: f"{root}/squares-{n}", key=lambda n, scale: {"scale": scale})
    def squares(n, scale):
        calls.append((n, scale))
        return da.arange(n, chunks=3) ** 2 * scale

    first = squares(7, 1)
    assert isinstance(first, da.Array) and first.chunks == ((3, 3, 1),)
    assert first.name.startswith("voxelflow-load-")  # comes back from storage
    np.testing.assert_array_equal(first.compute(), np.arange(7) ** 2)
    np.testing.assert_array_equal(squares(7, 1).compute(), np.arange(7) ** 2)
    assert calls == [(7, 1)]
    np.testing.assert_array_equal(squares(7, 3).compute(), 3 * np.arange(7) ** 2)
    assert calls == [(7, 1), (7, 3)]

    fixed = cached(f"{root}/fixed")(lambda: {"v": len(calls)})
    assert fixed() == {"v": 2} and fixed() == {"v": 2}
