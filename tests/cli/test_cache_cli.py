"""``voxelflow cache ls / info / rm``."""

import json
import time

import numpy as np

from voxelflow.cache import cdir_init, cdir_query, save
from voxelflow.cache._lock import LockInfo, release
from voxelflow.cache._marker import LOCK_NAME
from voxelflow.cli import main
from voxelflow.paths import VPath


def _tree(tmp_path):
    root = tmp_path / "CacheDirectory"
    save(root / "run" / "A", np.zeros(1000, dtype=np.uint8), key={"sigma": 1})
    save(root / "run" / "B", {"n": 1})
    cdir_init(root / "run" / "C")
    (root / "run" / "C" / "part.bin").write_bytes(b"x" * 10)
    release(VPath(root / "run" / "C"))  # C looks like a crashed step
    cdir_init(root / "run" / "D")
    now = time.time()
    foreign = LockInfo("elsewhere.example", 7, 0.0, "t", now, now)
    (VPath(root / "run" / "D") / LOCK_NAME).write_text(foreign.to_json())
    return root


def test_ls_prints_tree_with_status_key_size_and_time(tmp_path, capsys):
    root = _tree(tmp_path)
    assert main(["cache", "ls", str(root)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["NODE", "STATUS", "KEY", "SIZE", "TIME"]
    rows = {line.split()[0]: line for line in out[1:]}
    assert list(rows) == ["CacheDirectory/", "run/", "A/", "B/", "C/", "D/"]
    assert rows["CacheDirectory/"].split()[1] == "folder"
    key_hash = cdir_query(root / "run" / "A").marker["key_hash"]
    a = rows["A/"].split()
    assert a[1:3] == ["committed", key_hash[:8]]
    size = sum(f.stat().st_size for f in (root / "run" / "A").rglob("*") if f.is_file())
    assert a[3:5] == [f"{size / 1024:.1f}", "KiB"]
    assert cdir_query(root / "run" / "A").commit.strftime("%Y-%m-%d %H:%M:%S") in rows["A/"]
    assert rows["B/"].split()[1:3] == ["committed", "-"]
    assert rows["C/"].split()[1] == "partial"
    assert rows["D/"].split()[1] == "locked" and "elsewhere.example" in rows["D/"]
    assert out[1 + list(rows).index("A/")].startswith("    A/")  # indented two levels


def test_info_prints_the_marker(tmp_path, capsys):
    root = _tree(tmp_path)
    assert main(["cache", "info", str(root / "run" / "A")]) == 0
    out = capsys.readouterr().out
    assert "status:  committed" in out
    marker = json.loads(out[out.index("{") : out.rindex("}") + 1])
    assert marker["key"] == {"sigma": 1} and marker["payload"]["shape"] == [1000]


def test_rm_removes_a_node_and_refuses_locked_ones(tmp_path, capsys):
    root = _tree(tmp_path)
    assert main(["cache", "rm", str(root / "run" / "A")]) == 0
    assert not (root / "run" / "A").exists()
    assert main(["cache", "rm", str(root / "run" / "D")]) == 2
    assert "elsewhere.example" in capsys.readouterr().err
    assert (root / "run" / "D").exists()
    assert main(["cache", "rm", str(root / "run")]) == 2  # a plain folder, not a node
    assert (root / "run" / "B").exists()
