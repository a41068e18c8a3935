"""Faults: file-system calls that fail, writes that are interrupted, schedulers that do not answer.

Every case asserts the ``voxelflow.errors`` class (or that the injected fault surfaces
unchanged where voxelflow cannot know better) and that what existed before is whole
afterwards: the old commit of a cache node, the old image under ``overwrite=True``,
the old run in a run folder.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import tifffile
from hardening_helpers import (
    FaultInjector,
    InjectedFault,
    chunk_files,
    digest,
    tiny_volume,
    unchanged,
    write_tiny_image,
)

import voxelflow
from voxelflow import errors
from voxelflow.cli import main

# --- cache commits with a failing file system ---------------------------------------------------

PAYLOADS = {
    "numpy": (np.arange(12, dtype=np.int16).reshape(3, 4), np.full((2, 2), 7, np.int16)),
    "json": ({"a": [1, 2, 3]}, {"b": "new"}),
    "dataframe": (pd.DataFrame({"x": [1.0, 2.0]}), pd.DataFrame({"y": [3, 4, 5]})),
    "dask": (da.arange(16, chunks=8).reshape(4, 4), da.ones((4, 6), chunks=(2, 3), dtype=np.uint8)),
}


def _same(a, b) -> bool:
    if isinstance(a, da.Array):
        a = a.compute()
    if isinstance(b, da.Array):
        b = b.compute()
    if isinstance(a, pd.DataFrame):
        return isinstance(b, pd.DataFrame) and a.equals(b)
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.shape == b.shape and (a == b).all()
    return a == b


def _node_state(url):
    """('committed', value) or ('uncommitted', None); anything half-done fails the test."""
    state = voxelflow.cdir_query(url)
    if state.status != "committed":
        # a folder whose identity file never got written is not a node yet
        with pytest.raises((errors.NotCommittedError, errors.NotACacheNodeError)):
            voxelflow.load(url)
        return "uncommitted", None
    return "committed", voxelflow.load(url)


@pytest.mark.parametrize("kind", sorted(PAYLOADS))
@pytest.mark.parametrize("scenario", ["fresh", "replace"])
@pytest.mark.parametrize("backend", ["local", "memory"])
def test_every_failing_call_of_a_commit_leaves_old_or_nothing(tmp_path, mem_root, monkeypatch, kind, scenario,
                                                              backend):
    old, new = PAYLOADS[kind]
    root = str(tmp_path) if backend == "local" else mem_root
    seen_kinds = set()
    for fail_at in range(1, 400):
        url = f"{root}/n{fail_at}"
        if scenario == "replace":
            voxelflow.save(url, old, key={"v": "old"})
            old_marker = voxelflow.cdir_query(url).marker
        with monkeypatch.context() as m:
            injector = FaultInjector(m, fail_at=fail_at)
            try:
                voxelflow.save(url, new, key={"v": "new"})
            except (InjectedFault, errors.VoxelflowError) as exc:
                assert injector.failed is not None, f"failed without an injected fault: {exc!r}"
                if isinstance(exc, errors.VoxelflowError):
                    assert isinstance(exc, OSError), f"a failed write must be an OSError subclass: {exc!r}"
        if injector.failed is None:
            break  # every call of the commit has failed once
        seen_kinds.add(injector.failed.split()[0])
        status, value = _node_state(url)
        if status == "committed":
            marker = voxelflow.cdir_query(url).marker
            if marker["key"] == {"v": "old"}:
                assert scenario == "replace" and marker == old_marker and _same(old, value), injector.failed
            else:
                assert marker["key"] == {"v": "new"} and _same(new, value), injector.failed
        # the node is usable again: a retry commits the new value
        voxelflow.save(url, new, key={"v": "new"}, timeout=5)
        assert _same(new, voxelflow.load(url))
    else:
        pytest.fail("the commit never finished without a fault")
    assert fail_at > 3 and {"write", "rename" if backend == "local" else "write"} <= seen_kinds


# --- atomic replacement of single files ---------------------------------------------------------


def test_rename_failure_keeps_the_old_file(tmp_path, monkeypatch):
    target = voxelflow.VPath(str(tmp_path / "state.json"))
    target.write_text('{"v": "old"}')
    with monkeypatch.context() as m:
        FaultInjector(m, fail_at=1, kinds=("rename",))
        with pytest.raises(InjectedFault):
            target.write_text('{"v": "new"}' * 1000)
    assert json.loads(target.read_text()) == {"v": "old"}
    assert os.listdir(tmp_path) == ["state.json"]  # no temporary file left behind


def test_a_write_cut_off_midway_keeps_the_old_file(tmp_path, monkeypatch):
    import builtins
    import io

    target = voxelflow.VPath(str(tmp_path / "state.json"))
    target.write_text(json.dumps({"v": "old"}))
    real_open = builtins.open

    class HalfWriter:
        def __init__(self, f):
            self._f = f

        def write(self, data):
            self._f.write(data[: len(data) // 2])
            raise InjectedFault(28, "disk full halfway")

        def __getattr__(self, name):
            return getattr(self._f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._f.close()

    def cutting_open(file, mode="r", *args, **kwargs):
        f = real_open(file, mode, *args, **kwargs)
        return HalfWriter(f) if "w" in mode and str(tmp_path) in os.fspath(file) else f

    monkeypatch.setattr(builtins, "open", cutting_open)
    monkeypatch.setattr(io, "open", cutting_open)
    with pytest.raises(InjectedFault):
        target.write_text(json.dumps({"v": "new", "pad": "x" * 5000}))
    monkeypatch.undo()
    assert json.loads(target.read_text()) == {"v": "old"}


def test_a_reader_polling_during_rewrites_always_parses(tmp_path):
    target = voxelflow.VPath(str(tmp_path / "marker.json"))
    docs = [json.dumps({"i": i, "pad": "x" * (200_000 + 7919 * i)}) for i in range(2)]
    target.write_text(docs[0])
    stop = threading.Event()
    bad: list[str] = []
    reads = [0]

    def reader():
        while not stop.is_set():
            try:
                json.loads(target.read_text())
                reads[0] += 1
            except ValueError as exc:
                bad.append(str(exc))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(60):
            target.write_text(docs[i % 2])
    finally:
        stop.set()
        thread.join()
    assert reads[0] > 0 and bad == []


# --- images replaced with overwrite=True --------------------------------------------------------


def _damaged_source(tmp_path):
    """A lazily read image whose third chunk is damaged: the write fails partway."""
    src, data = write_tiny_image(tmp_path, name="src.ome.zarr", data=tiny_volume(seed=9))
    chunk_files(src)[3].write_bytes(b"")
    arr, _ = voxelflow.open_ome_zarr(src)
    return arr


@pytest.mark.parametrize("version", ["0.4", "0.5"])
@pytest.mark.parametrize("levels", [1, 2])
def test_failed_overwrite_keeps_the_old_image(tmp_path, version, levels):
    target, data = write_tiny_image(tmp_path, version=version, levels=levels)
    arr = _damaged_source(tmp_path)
    with unchanged(target), pytest.raises(errors.OmeZarrError):
        voxelflow.write_ome_zarr(arr, target, overwrite=True, version=version, levels=levels)
    np.testing.assert_array_equal(voxelflow.open_ome_zarr(target)[0].compute(), data)
    assert sorted(os.listdir(tmp_path)) == ["img.ome.zarr", "src.ome.zarr"]  # nothing left beside it


def test_failed_overwrite_keeps_the_old_zip(tmp_path):
    target, data = write_tiny_image(tmp_path, name="img.ome.zarr.zip")
    arr = _damaged_source(tmp_path)
    with unchanged(target), pytest.raises(errors.OmeZarrError):
        voxelflow.write_ome_zarr(arr, target, overwrite=True)
    np.testing.assert_array_equal(voxelflow.open_ome_zarr(target)[0].compute(), data)


@pytest.mark.parametrize("name", ["img.ome.zarr", "img.ome.zarr.zip"])
def test_failed_overwrite_keeps_the_old_remote_image(tmp_path, mem_root, name):
    target, data = write_tiny_image(mem_root, name=name)
    arr = _damaged_source(tmp_path)
    with unchanged(target), pytest.raises(errors.OmeZarrError):
        voxelflow.write_ome_zarr(arr, target, overwrite=True)
    np.testing.assert_array_equal(voxelflow.open_ome_zarr(target)[0].compute(), data)


@pytest.mark.parametrize("fail_at", [1, 4, 9])
def test_full_disk_during_overwrite_keeps_the_old_image(tmp_path, monkeypatch, fail_at):
    target, data = write_tiny_image(tmp_path)
    new = tiny_volume(seed=4)
    with unchanged(target):
        with monkeypatch.context() as m:
            FaultInjector(m, fail_at=fail_at, kinds=("write",))
            with pytest.raises((errors.InvalidPathError, errors.OmeZarrError)):
                voxelflow.write_ome_zarr(new, target, overwrite=True, chunks=(4, 4, 4))
    np.testing.assert_array_equal(voxelflow.open_ome_zarr(target)[0].compute(), data)


def test_failed_label_overwrite_keeps_the_old_labels(tmp_path):
    image, data = write_tiny_image(tmp_path)
    labels = (data > 30000).astype(np.uint8)
    voxelflow.write_labels(labels, image, "cells")
    src, _ = write_tiny_image(tmp_path, name="src.ome.zarr", data=labels.astype(np.uint16))
    chunk_files(src)[2].write_bytes(b"\x00")
    bad, _ = voxelflow.open_ome_zarr(src)
    with unchanged(image), pytest.raises(errors.OmeZarrError):
        voxelflow.write_labels(bad.astype(np.uint8), image, "cells", overwrite=True)


@pytest.mark.parametrize("name", ["old.ome.zarr", "old.ome.zarr.zip"])
def test_convert_overwrite_from_a_truncated_tiff_keeps_the_old_image(tmp_path, capsys, name):
    target, data = write_tiny_image(tmp_path, name=name)
    tif = tmp_path / "stack.tif"
    tifffile.imwrite(tif, tiny_volume((12, 16, 16)), imagej=True, metadata={"axes": "ZYX"})
    tif.write_bytes(tif.read_bytes()[: tif.stat().st_size // 2])
    with unchanged(target, tif):
        assert main(["convert", str(tif), target, "--overwrite", "--quiet", "--scale-um", "2,1,1"]) == 2
    assert capsys.readouterr().err.startswith("voxelflow: error:")
    np.testing.assert_array_equal(voxelflow.open_ome_zarr(target)[0].compute(), data)


# --- the run folder: outputs of one run, or of none ---------------------------------------------


def _scan(folder):
    """A small scan with three bright cubes, an atlas of two regions and its region table."""
    rng = np.random.default_rng(2)
    vol = rng.normal(100, 5, (16, 48, 48))
    vol[2:14, 4:44, 4:44] += 200
    for z, y, x in [(5, 12, 12), (8, 30, 20), (10, 20, 34)]:
        vol[z:z + 2, y:y + 3, x:x + 3] += 2000
    scan = str(folder / "scan.ome.zarr")
    voxelflow.write_ome_zarr(vol.astype(np.uint16), scan, chunks=(8, 24, 24), scale=(4.0, 2.0, 2.0))
    atlas = np.ones((4, 12, 12), np.uint16)
    atlas[:, :, 6:] = 2
    atlas_url = str(folder / "atlas.ome.zarr")
    voxelflow.write_ome_zarr(atlas, atlas_url, scale=(16.0, 8.0, 8.0), method="nearest")
    regions = folder / "regions.csv"
    regions.write_text("id,acronym,name,parent\n1,A,left,-1\n2,B,right,-1\n")
    return scan, atlas_url, str(regions)


def _config(folder, scan, atlas, regions, out, extra=""):
    path = folder / f"run-{abs(hash((str(out), extra))) % 10**8}.toml"
    path.write_text(
        f'[input]\nurl = "{scan}"\n[atlas]\nurl = "{atlas}"\nregions = "{regions}"\n'
        f'[pipeline]\nbias = false\nedge_um = 0.0\nthreshold = 1000.0\nmin_voxels = 4\n'
        f'coarse_factors = [2, 4, 4]\ndensity_factors = [4, 8, 8]\n{extra}'
        f'[output]\nfolder = "{out}"\nlevels = 1\nchunks = [8, 24, 24]\nreport = false\n'
    )
    return path


@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    scan, atlas, regions = _scan(folder)
    out = folder / "out"
    assert main(["run", str(_config(folder, scan, atlas, regions, out)), "--quiet", "--no-report"]) == 0
    return folder, scan, atlas, regions, out


def _copy_run(good_run, tmp_path):
    folder, scan, atlas, regions, out = good_run
    run = tmp_path / "out"
    shutil.copytree(out, run)
    return scan, atlas, regions, run


def _outputs(run):
    return {k: v for k, v in digest(run).items() if not k.startswith("cache/")}


def test_a_failed_rerun_keeps_the_old_run_whole(good_run, tmp_path, capsys):
    scan, atlas, regions, run = _copy_run(good_run, tmp_path)
    before = _outputs(run)
    config = _config(tmp_path, scan, atlas, regions, run)
    config.write_text(config.read_text().replace("min_voxels = 4", "min_voxels = 100000"))
    assert main(["run", str(config), "--quiet", "--no-report"]) == 2
    assert "no objects" in capsys.readouterr().err
    after = _outputs(run)
    failure = json.loads((run / "run-failed.json").read_text())
    assert failure["status"] == "failed" and "EmptyResultError" in failure["error"]
    after.pop("run-failed.json")
    assert after == before
    assert json.loads((run / "run.json").read_text())["status"] == "ok"


def test_a_failure_while_writing_outputs_keeps_the_old_run_whole(good_run, tmp_path, monkeypatch, capsys):
    scan, atlas, regions, run = _copy_run(good_run, tmp_path)
    before = _outputs(run)
    config = _config(tmp_path, scan, atlas, regions, run)
    config.write_text(config.read_text().replace("threshold = 1000.0", "threshold = 1500.0"))

    def failing_to_parquet(self, *args, **kwargs):
        raise InjectedFault(28, "disk full while writing the object table")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", failing_to_parquet)
    assert main(["run", str(config), "--quiet", "--no-report"]) == 2
    assert "disk full while writing the object table" in capsys.readouterr().err
    monkeypatch.undo()
    after = _outputs(run)
    after.pop("run-failed.json", None)
    assert after == before


def test_a_new_run_without_atlas_leaves_no_regions_of_the_old_run(good_run, tmp_path):
    scan, atlas, regions, run = _copy_run(good_run, tmp_path)
    config = _config(tmp_path, scan, "", "", run)
    assert main(["run", str(config), "--quiet", "--no-report"]) == 0
    record = json.loads((run / "run.json").read_text())
    assert "regions" not in record["outputs"]
    assert not (run / "regions.csv").exists()
    names = {p.name for p in run.iterdir()} - {"cache"}
    assert names == {"run.json", *record["outputs"].values()} - {record["outputs"]["image"]}


def test_a_failed_first_run_writes_no_outputs(good_run, tmp_path, capsys):
    folder, scan, atlas, regions, _ = good_run
    run = tmp_path / "fresh"
    config = _config(tmp_path, scan, atlas, regions, run)
    config.write_text(config.read_text().replace("min_voxels = 4", "min_voxels = 100000"))
    assert main(["run", str(config), "--quiet", "--no-report"]) == 2
    names = {p.name for p in run.iterdir()} - {"cache"}
    assert names == {"run-failed.json"}


# --- schedulers that do not answer ----------------------------------------------------------------


@pytest.fixture
def closed_port():
    """A local port that is bound but not listening: connections are refused, no other process can take it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


@pytest.mark.timeout(120)
def test_unreachable_scheduler_fails_fast_naming_the_address(closed_port):
    from voxelflow.runtime.compute import compute_context

    address = f"tcp://127.0.0.1:{closed_port}"
    with pytest.raises(errors.SchedulerError, match=address) as info, compute_context(address, connect_timeout=0.5):
        pass
    assert "0.5 s" in str(info.value)


def test_the_default_connect_timeout_is_a_few_seconds(monkeypatch):
    from voxelflow.pipelines.config import load_config
    from voxelflow.runtime import compute

    seen = {}

    class Recorder:
        def __init__(self, address, **kwargs):
            seen.update(kwargs, address=address)
            raise OSError("refused")

    monkeypatch.setattr("distributed.Client", Recorder)
    config = load_config(None, ['input.url="a"', 'output.folder="b"', 'compute.scheduler="tcp://10.1.2.3:8786"'])
    with pytest.raises(errors.SchedulerError), compute.compute_context(
            config.compute.scheduler, connect_timeout=config.compute.connect_timeout):
        pass
    assert 1 <= seen["timeout"] <= 10 and seen["address"] == "tcp://10.1.2.3:8786"


@pytest.mark.timeout(180)
def test_cli_run_with_an_unreachable_scheduler(tmp_path, closed_port):
    url, _ = write_tiny_image(tmp_path)
    config = tmp_path / "plaque.toml"
    config.write_text(f'[input]\nurl = "{url}"\n[output]\nfolder = "{tmp_path / "run"}"\n'
                      "[compute]\nconnect_timeout = 1.0\n")
    address = f"tcp://127.0.0.1:{closed_port}"
    with unchanged(url):
        proc = subprocess.run([sys.executable, "-m", "voxelflow", "run", str(config), "--quiet", "--scheduler",
                               address], capture_output=True, text=True, timeout=150,
                              env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert proc.returncode == 2 and address in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "run" / "run.json").exists()


# --- the run folder is swapped as a whole: a crash at any step shows one complete run ------------


class Crash(BaseException):
    """Stands for the process dying: nothing after it runs (no recovery in the dying process)."""


class SwapFaults:
    """Make the ``fail_at``-th file-system step of a run-folder swap raise ``fault`` (counting from 0)."""

    def __init__(self, monkeypatch, fail_at: int, fault: type[BaseException], exchange: bool):
        from voxelflow.pipelines import publish

        self.calls, self.fail_at, self.fault, self.hit = 0, fail_at, fault, False
        for name in ("_rename", "_remove", "_exchange"):
            real = getattr(publish, name)
            if name == "_exchange" and not exchange:
                real = lambda a, b: False  # noqa: E731  a system without RENAME_EXCHANGE
            monkeypatch.setattr(publish, name, self._wrap(real, name))

    def _wrap(self, real, name):
        def step(*args):
            if self.calls == self.fail_at and not self.hit:  # one fault; the steps of a recovery then work
                self.hit = True
                raise self.fault(28, f"injected fault at {name}{args}") if self.fault is InjectedFault \
                    else self.fault(name)
            self.calls += 1
            return real(*args)
        return step


def _run_state(run) -> tuple | None:
    """(outputs with their digests, run_id) of a run folder, or None without run.json."""
    if not (run / "run.json").exists():
        return None
    outputs = {k: v for k, v in _outputs(run).items() if k not in ("run.json", "run-failed.json", "notes.txt")}
    return outputs, json.loads((run / "run.json").read_text()).get("run_id")


@pytest.fixture(scope="module")
def next_run(good_run, tmp_path_factory):
    """The run that replaces ``good_run``: same scan without the atlas (no regions.csv), as staged for its swap."""
    folder, scan, atlas, regions, out = good_run
    work = tmp_path_factory.mktemp("next")
    shutil.copytree(out, work / "out")
    assert main(["run", str(_config(work, scan, "", "", work / "out")), "--quiet", "--no-report"]) == 0
    staged = work / "staged"
    staged.mkdir()
    for entry in (work / "out").iterdir():
        if entry.name not in ("cache",):
            (shutil.copytree if entry.is_dir() else shutil.copy2)(entry, staged / entry.name)
    return staged, _run_state(work / "out")


def _swap_case(good_run, next_run, tmp_path):
    from voxelflow.paths import VPath

    folder, scan, atlas, regions, out = good_run
    staged, new_state = next_run
    parent = tmp_path / "runs"
    parent.mkdir()
    run = parent / "out"
    shutil.copytree(out, run)
    (run / "notes.txt").write_text("the user's own notes")
    run_id = new_state[1]
    staging = parent / f".out.run-{run_id}"
    shutil.copytree(staged, staging)
    old_state = _run_state(run)
    assert old_state[0] != new_state[0] and "regions.csv" in old_state[0] and "regions.csv" not in new_state[0]
    kept = {k: v for k, v in digest(run).items() if k.startswith("cache/") or k == "notes.txt"}
    return VPath(str(run)), VPath(str(staging)), run_id, old_state, new_state, kept


def _assert_one_whole_run(run, old_state, new_state, kept, *, leftovers_allowed: bool):
    state = _run_state(run)
    assert state in (old_state, new_state), "the run folder shows no complete run, or a mix of two"
    if not leftovers_allowed:
        assert sorted(p.name for p in run.parent.iterdir()) == ["out"]
        assert {k: v for k, v in digest(run).items() if k.startswith("cache/") or k == "notes.txt"} == kept
    return state


@pytest.mark.parametrize("exchange", [True, False], ids=["exchange", "two-renames"])
@pytest.mark.parametrize("fault", [Crash, InjectedFault], ids=["crash", "error"])
def test_a_fault_at_any_step_of_the_swap_leaves_one_whole_run(good_run, next_run, tmp_path, monkeypatch, exchange,
                                                             fault):
    from voxelflow.pipelines import publish

    outcomes = []
    for fail_at in range(20):
        case = tmp_path / str(fail_at)
        case.mkdir()
        run, staging, run_id, old_state, new_state, kept = _swap_case(good_run, next_run, case)
        with monkeypatch.context() as mp:
            faults = SwapFaults(mp, fail_at, fault, exchange)
            try:
                publish.publish(staging, run, run_id)
            except (Crash, InjectedFault):
                assert faults.hit
        out = Path(run.path)
        if not faults.hit:  # every step passed: the swap is complete
            assert _assert_one_whole_run(out, old_state, new_state, kept, leftovers_allowed=False) == new_state
            break
        if fault is InjectedFault:  # the failing process resolved its leftovers itself
            outcomes.append(_assert_one_whole_run(out, old_state, new_state, kept, leftovers_allowed=False))
            continue
        # a crash: the folder shows one whole run, except in the gap between two renames where it is set aside
        if out.exists() or exchange:
            _assert_one_whole_run(out, old_state, new_state, kept, leftovers_allowed=True)
        else:
            assert any(p.name.startswith(".out.run-old-") for p in out.parent.iterdir())
        done = publish.recover(run)  # what the next run does first
        assert done
        outcomes.append(_assert_one_whole_run(out, old_state, new_state, kept, leftovers_allowed=False))
    else:
        pytest.fail("the swap never completed")
    assert fail_at >= (2 if exchange else 3) and outcomes, "the fault never hit a step of the swap"
    assert old_state in outcomes


def test_a_run_folder_that_is_a_link_is_swapped_where_it_points(good_run, next_run, tmp_path):
    from voxelflow.paths import VPath
    from voxelflow.pipelines import publish

    (tmp_path / "disk").mkdir()
    run, staging, run_id, old_state, new_state, kept = _swap_case(good_run, next_run, tmp_path / "disk")
    link = tmp_path / "out"
    link.symlink_to(run.path, target_is_directory=True)
    assert publish.staging_folder(VPath(str(link)), run_id).path == staging.path
    publish.publish(staging, VPath(str(link)), run_id)
    assert link.is_symlink() and os.path.realpath(link) == run.path
    assert _assert_one_whole_run(Path(run.path), old_state, new_state, kept, leftovers_allowed=False) == new_state


def test_recover_reports_a_leftover_it_cannot_place(good_run, next_run, tmp_path):
    from voxelflow.pipelines import publish

    run, staging, run_id, old_state, new_state, kept = _swap_case(good_run, next_run, tmp_path)
    (Path(staging.path) / "cache").mkdir()  # as if carried over, but the run folder has its own cache
    with unchanged(tmp_path), pytest.raises(errors.InvalidPathError, match="cache"):
        publish.recover(run)


_KILL_AT_SWAP = """
import os, signal, sys
from voxelflow.pipelines import publish
from voxelflow.cli import main

real = publish._exchange
def exchange(a, b):
    os.kill(os.getpid(), signal.SIGKILL)  # the cache has been carried over; the swap is next
publish._exchange = exchange
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.timeout(300)
def test_sigkill_during_the_swap_then_rerun(good_run, tmp_path):
    folder, scan, atlas, regions, out = good_run
    parent = tmp_path / "runs"
    parent.mkdir()
    run = parent / "out"
    shutil.copytree(out, run)
    old_state = _run_state(run)
    cache = {k: v for k, v in digest(run).items() if k.startswith("cache/")}
    config = _config(tmp_path, scan, "", "", run)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-c", _KILL_AT_SWAP, "run", str(config), "--quiet", "--no-report"],
                          capture_output=True, text=True, timeout=250, env=env)
    assert proc.returncode == -9, proc.stderr
    # killed with the cache moved into the staged run: the folder still shows the old run, whole
    assert _run_state(run) == old_state and not (run / "cache").exists()
    assert any(p.name.startswith(".out.run-") for p in parent.iterdir())
    assert main(["run", str(config), "--quiet", "--no-report"]) == 0
    record = json.loads((run / "run.json").read_text())
    assert sorted(p.name for p in parent.iterdir()) == ["out"]
    assert not (run / "regions.csv").exists() and record["status"] == "ok"
    # the cache was given back before the rerun: the steps it had stored were reused, not recomputed
    coarse = {k: v for k, v in cache.items() if k.startswith("cache/coarse/")}
    assert coarse and {k: v for k, v in digest(run).items() if k in coarse} == coarse
    cached = [s["cached"] for s in record["steps"]]
    assert sum(cached) >= len(cached) - 1, record["steps"]


_HOLD_RUN_FOLDER = """
import sys
from voxelflow.paths import VPath
from voxelflow.pipelines.run_lock import run_folder_lock

with run_folder_lock(VPath(sys.argv[1])):
    print("held", flush=True)
    sys.stdin.read()
"""


@pytest.mark.timeout(300)
def test_a_second_run_into_a_folder_in_use_is_refused(good_run, tmp_path, capsys):
    scan, atlas, regions, run = _copy_run(good_run, tmp_path)
    before = digest(run)
    config = _config(tmp_path, scan, "", "", run)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_RUN_FOLDER, str(run)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main(["run", str(config), "--quiet", "--no-report"]) == 2
        assert f"process {holder.pid} is running a pipeline into it" in capsys.readouterr().err
        assert digest(run) == before  # not even a run-failed.json: the folder belongs to the other run
        assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".out")) == [".out.lock"]
    finally:
        holder.communicate("", timeout=60)
    assert main(["run", str(config), "--quiet", "--no-report"]) == 0
    assert not (run / "regions.csv").exists()
    assert not any(p.name.startswith(".out") for p in tmp_path.iterdir())
