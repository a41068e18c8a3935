"""PartsProgress: chunk groups done, rate and ETA of a pending step, read from its recorded parts."""

from __future__ import annotations

import io

from voxelflow.cache import cdir_init, part_store
from voxelflow.paths import VPath
from voxelflow.pipelines.progress import PartsProgress


def test_progress_lines_follow_the_recorded_parts(tmp_path):
    cache = VPath(str(tmp_path / "cache"))
    node = cdir_init((cache / "objects_raw").url, key="k")
    store = part_store(node.url, "k-token", 10)
    for g in range(3):
        store.save(g, {"group": g})
    out = io.StringIO()
    progress = PartsProgress(cache, out)
    assert progress.line("objects_raw", 3, 10, now=100.0) == "  objects_raw        3/10 chunk groups, 3 done before"
    assert progress.line("objects_raw", 3, 10, now=101.0) is None  # nothing moved
    line = progress.line("objects_raw", 7, 10, now=102.0)
    assert "7/10 chunk groups (70 %)" in line and "2.00 groups/s" in line and "ETA 1.50 s" in line

    other = PartsProgress(cache, out)
    other.poll()
    assert "objects_raw" in out.getvalue() and "3/10" in out.getvalue()
    store.save(5, {"group": 5})
    other.poll()
    assert "4/10 chunk groups (40 %)" in out.getvalue()


def test_committed_node_has_no_progress(tmp_path):
    from voxelflow.cache import cdir_commit

    cache = VPath(str(tmp_path / "cache"))
    node = cdir_init((cache / "objects_raw").url, key="k")
    part_store(node.url, "k-token", 4).save(0, 1)
    cdir_commit(node.url)
    out = io.StringIO()
    PartsProgress(cache, out).poll()
    assert out.getvalue() == ""
