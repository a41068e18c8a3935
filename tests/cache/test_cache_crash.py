"""SIGKILL a cached multi-step run at random moments; every rerun must resume correctly.

Half of the kills land at a uniformly random moment of a run, half a few
milliseconds after a write began (so many kills hit a write in progress).

The pipeline is ``tests/cache/cache_worker.py`` (numpy, dask/zarr, DataFrame/Parquet,
JSON and a ``cdir_commit`` group node with child nodes). Children are forked
from a forkserver that has the libraries imported already, so a run costs
fractions of a second and many kills fit in the time budget. After every kill:

* every node that claims to be committed loads and equals an in-memory
  reference for the key it was committed with (so no half-written node is ever
  readable), and every other node refuses to load;
* the next run resumes from that state (the worker itself also verifies every
  value it reads and exits with code 3 on a mismatch).

At the end an uninterrupted rerun must equal a clean run in a fresh folder.
"""

import multiprocessing
import os
import random
import time

import cache_worker as worker
import pytest

from voxelflow.cache import cdir_query, load
from voxelflow.errors import NotCommittedError

MIN_KILLS = 50
TARGET_KILLS = 56
TIME_BUDGET = 120.0  # stops at TARGET_KILLS; the budget only guards a very slow machine


@pytest.fixture(scope="module")
def ctx():
    context = multiprocessing.get_context("forkserver")
    # Import everything a run touches once, in the server, so each forked run starts warm.
    # Python 3.11's forkserver ignores the parent's sys.path when preloading, hence PYTHONPATH.
    context.set_forkserver_preload(["cache_worker", "zarr", "distributed", "pyarrow.parquet", "psutil", "pytest"])
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [os.path.dirname(worker.__file__), saved]))
    try:
        starter = context.Process(target=os.getpid)  # starts the server with the environment above
        starter.start()
        starter.join()
    finally:
        if saved is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = saved
    return context


def _run(ctx, root, events, gens, kill=None):
    """Run the pipeline in a child process and maybe SIGKILL it.

    ``kill`` is None (run to the end) or ``(trigger, delay)``: kill ``delay``
    seconds after the child logs its first event starting with ``trigger``
    (``"start"``: a random moment of the run; ``"begin"``: during or just after
    its first write).
    """
    proc = ctx.Process(target=worker.run_child, args=(str(root), str(events), gens))
    t0 = time.monotonic()
    proc.start()
    if kill is not None:
        trigger, delay = kill
        while proc.is_alive() and not any(line.startswith(trigger) for line in _lines(events)):
            time.sleep(0.002)
        time.sleep(delay)
        if proc.is_alive():
            proc.kill()
    proc.join()
    return proc.exitcode, _lines(events), time.monotonic() - t0


def _lines(events):
    return events.read_text().splitlines() if events.exists() else []


def _open_write(lines):
    """The node whose write was in progress when the run stopped, or None."""
    open_ = None
    for line in lines:
        word, name = line.split()[:2]
        if word == "begin":
            open_ = name
        elif word == "end" and name == open_:
            open_ = None
    return open_


def _check_tree(root):
    """Committed nodes equal the reference for their stored key; others refuse to load."""
    committed = 0
    for name in worker.STEPS:
        node = cdir_query(f"{root}/pipeline/{name}")
        if node.status == "committed":
            expected = worker.reference(worker.gens_from_key(name, node.key))[name]
            value = worker.read_node(str(root), name)
            assert worker.same(name, value, expected), f"committed node {name} holds wrong data"
            committed += 1
        elif node.status != "missing" and name != "group":
            with pytest.raises(NotCommittedError):
                load(node.path)
    return committed


def test_sigkill_at_random_moments_never_exposes_half_written_nodes(ctx, tmp_path, record_property):
    rng = random.Random(20261125)
    gens = dict(worker.DEFAULT_GENS)
    for warmup in ("warmup1", "warmup2"):  # the first run also starts the forkserver
        code, lines, clean_seconds = _run(ctx, tmp_path / warmup, tmp_path / f"{warmup}.events", gens)
        assert code == 0 and lines[-1].startswith("done"), lines

    root = tmp_path / "root"
    kills = mid_write = completed = runs = 0
    where: dict[str, int] = {}
    t0 = time.monotonic()
    while kills < TARGET_KILLS and time.monotonic() - t0 < TIME_BUDGET:
        events = tmp_path / f"run{runs}.events"
        if rng.random() < 0.5:
            kill = ("start", rng.uniform(0.0, 0.7 * clean_seconds))  # resumed runs are shorter than clean ones
        else:
            kill = ("begin", rng.uniform(0.0, 0.02))
        code, lines, _ = _run(ctx, root, events, gens, kill)
        runs += 1
        assert "CORRUPT" not in " ".join(lines), lines
        assert code in (0, -9), f"run {runs} failed with exit code {code}: {lines}"
        if code == -9:
            kills += 1
            node = _open_write(lines)
            if node is not None:
                mid_write += 1
                where[node] = where.get(node, 0) + 1
        else:
            completed += 1
            # Invalidate part of the pipeline so later kills land in writes again.
            step = rng.choice(sorted(gens))
            gens[step] += 1
        _check_tree(root)
    elapsed = time.monotonic() - t0

    code, lines, _ = _run(ctx, root, tmp_path / "final.events", gens)
    assert code == 0 and lines[-1].startswith("done"), lines
    code, lines, _ = _run(ctx, tmp_path / "clean", tmp_path / "clean.events", gens)
    assert code == 0 and lines[-1].startswith("done"), lines
    for name in worker.STEPS:
        assert worker.same(
            name, worker.read_node(str(root), name), worker.read_node(str(tmp_path / "clean"), name)
        ), name
    assert _check_tree(root) == len(worker.STEPS)

    summary = (
        f"crash test: {kills} SIGKILLs in {runs} runs ({completed} finished before the kill), "
        f"{mid_write} landed mid-write {dict(sorted(where.items()))}, loop {elapsed:.1f} s, "
        f"clean run {clean_seconds:.2f} s"
    )
    print(summary)
    record_property("crash_summary", summary)
    assert kills >= MIN_KILLS, summary
    assert mid_write >= 10, summary
