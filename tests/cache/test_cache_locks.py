"""Locks: other live processes are waited for, dead ones are taken over; two processes share a root."""

import json
import logging
import multiprocessing
import signal
import time
from collections import Counter

import cache_worker as worker
import pytest
from cache_helpers import run_python, start_python

from voxelflow.cache import cdir_commit, cdir_init, cdir_query, load, save
from voxelflow.cache._lock import LEASE_SECONDS, LockInfo, read_lock, refresh_held
from voxelflow.cache._marker import LOCK_NAME
from voxelflow.cache._tree import remove_node
from voxelflow.errors import CacheLockedError, NotCommittedError
from voxelflow.paths import VPath


@pytest.fixture
def holder():
    """Start ``cache_holder.py`` on a node; wait until it holds the lock; kill it afterwards."""
    procs = []

    def start(url, mode, *extra):
        proc = start_python("cache_holder.py", str(url), mode, *map(str, extra))
        procs.append(proc)
        line = proc.stdout.readline()
        assert line.startswith("ready"), proc.stderr.read()
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def test_lock_of_a_crashed_process_is_taken_over(tmp_path, caplog):
    url = tmp_path / "node"
    done = run_python("cache_holder.py", str(url), "die")
    assert done.returncode == 0, done.stderr
    stale = read_lock(VPath(url))
    assert isinstance(stale, LockInfo)
    with caplog.at_level(logging.INFO, logger="voxelflow.cache"):
        node = cdir_init(url, timeout=10)  # a wait for the dead holder would end in CacheLockedError
    assert node.status == "computing"
    assert read_lock(VPath(url)).token != stale.token
    assert any("stale lock" in r.getMessage() for r in caplog.records)


def test_normal_exit_releases_the_lock(tmp_path):
    url = tmp_path / "node"
    done = run_python("cache_holder.py", str(url), "exit")
    assert done.returncode == 0, done.stderr
    assert (VPath(url) / ".voxelflow_node.json").exists()
    assert read_lock(VPath(url)) is None


def test_live_holder_is_protected_until_it_dies(tmp_path, holder):
    url = tmp_path / "node"
    proc = holder(url, "hold")
    (VPath(url) / "work-in-progress.bin").write_bytes(b"123")
    assert cdir_query(url).status == "locked"
    with pytest.raises(CacheLockedError, match=f"pid {proc.pid}"):
        cdir_init(url, timeout=0.3)
    with pytest.raises(CacheLockedError):
        save(url, 1, timeout=0.3)
    with pytest.raises(CacheLockedError):
        cdir_commit(url)
    with pytest.raises(CacheLockedError):
        remove_node(url)
    with pytest.raises(NotCommittedError):
        load(url)
    assert (VPath(url) / "work-in-progress.bin").read_bytes() == b"123"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert cdir_init(url, timeout=5).status == "computing"
    assert not (VPath(url) / "work-in-progress.bin").exists()


def test_waiting_process_gets_the_commit_of_the_holder(tmp_path, holder, caplog):
    url = tmp_path / "node"
    holder(url, "commit", 1.0)
    with caplog.at_level(logging.INFO, logger="voxelflow.cache"):
        node = cdir_init(url, timeout=60)
    assert node.commit is not None
    assert load(url) == 42
    assert any("waiting for" in r.getMessage() for r in caplog.records)


def _write_foreign_lock(url, heartbeat_age):
    now = time.time()
    info = LockInfo("elsewhere.example", 1, 0.0, "foreign", now - heartbeat_age, now - heartbeat_age)
    (VPath(url) / LOCK_NAME).write_text(info.to_json())


def test_lease_of_a_process_on_another_host(root):
    url = f"{root}/node"
    cdir_init(url)
    _write_foreign_lock(url, heartbeat_age=1.0)
    with pytest.raises(CacheLockedError, match="elsewhere.example"):
        cdir_init(url, timeout=0.2)
    _write_foreign_lock(url, heartbeat_age=LEASE_SECONDS + 1)
    assert cdir_init(url, timeout=1).status == "computing"
    assert read_lock(VPath(url)).host != "elsewhere.example"


def test_unparsable_lock_is_taken_over(root):
    url = f"{root}/node"
    cdir_init(url)
    (VPath(url) / LOCK_NAME).write_bytes(b"{\x00")
    assert read_lock(VPath(url)) is False
    assert cdir_init(url, timeout=1).status == "computing"


def test_same_process_reinitialises_its_own_node_without_waiting(root):
    url = f"{root}/node"
    first = read_lock(VPath(cdir_init(url).path))
    assert cdir_init(url, timeout=0).status == "computing"  # timeout=0: any wait would raise
    assert read_lock(VPath(url)).token != first.token


def test_heartbeat_renews_held_locks(root):
    url = f"{root}/node"
    cdir_init(url)
    before = read_lock(VPath(url)).heartbeat
    time.sleep(0.02)
    refresh_held()
    assert read_lock(VPath(url)).heartbeat > before
    save(url, 1)
    assert read_lock(VPath(url)) is None  # commit released it; the heartbeat must not bring it back
    refresh_held()
    assert read_lock(VPath(url)) is None


@pytest.mark.parametrize("container", [True, False], ids=["root-node", "plain-root"])
def test_two_processes_on_one_cache_root(tmp_path, container):
    """Started together; each node is computed exactly once and both read correct results."""
    root = tmp_path / "shared"
    barrier = tmp_path / "go"
    flags = [] if container else ["--no-container"]
    procs = [
        start_python("cache_worker.py", str(root), str(tmp_path / f"p{i}.events"), "--slow", "0.15",
                     "--barrier", str(barrier), *flags)
        for i in range(2)
    ]
    for proc in procs:
        assert proc.stdout.readline().strip() == "ready"
    barrier.write_text("go")
    outputs = [proc.communicate(timeout=120) for proc in procs]
    for proc, (_, err) in zip(procs, outputs):
        assert proc.returncode == 0, err
    events = [(tmp_path / f"p{i}.events").read_text().splitlines() for i in range(2)]
    computed = Counter(line.split()[1] for lines in events for line in lines if line.startswith("compute "))
    assert computed == Counter(worker.STEPS)
    for lines in events:
        assert lines[-1].startswith("done")
        verified = {line.split()[1] for line in lines if line.startswith("verified ")}
        assert verified == set(worker.STEPS)
    assert any("waiting for" in err for _, err in outputs)
    reference = worker.reference(worker.DEFAULT_GENS)
    for name in worker.STEPS:
        assert worker.same(name, worker.read_node(str(root), name), reference[name]), name
        assert cdir_query(f"{root}/pipeline/{name}").status == "committed"
    assert json.loads((root / "pipeline" / "group" / "manifest.json").read_text())["b"]["rows"] == 48


def _child_sees_parents_lock(url, out):
    try:
        cdir_init(url, timeout=0.2)
        out.put("acquired")
    except CacheLockedError:
        out.put("locked")


def test_forked_child_does_not_inherit_the_parents_locks(tmp_path):
    url = str(tmp_path / "node")
    cdir_init(url)
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    proc = ctx.Process(target=_child_sees_parents_lock, args=(url, out))
    proc.start()
    proc.join(30)
    assert out.get(timeout=5) == "locked"
    assert cdir_query(url).status == "computing"
