"""Every code block of the seed manual runs with only the blank imports filled in.

The blocks are parsed out of ``tests/seed/setting_up_the_script.txt`` (a
verbatim copy of the original manual page) at test time. The only changes made
to them: ``import  as x`` becomes ``import voxelflow as x``; the Windows
``TMP_PATH`` becomes a temporary folder; ``viewer.add_image(...)`` gets a small
dask image in place of the ``...`` placeholder; ``Client`` makes a small local
cluster (one worker, one thread) whatever size the seed asks for. Names the
seed leaves undefined (``TMP_PATH``, ``sys``, ``computeA``, ``computeBFromA``,
``save``, ``load``, ``Client`` in the last block) are provided.
"""

import ast
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dask
import dask.array as da
import dask.distributed
import distributed
import numpy as np
import pytest

import voxelflow
from session_helpers import assert_restored, global_state

SEED = Path(__file__).parent / "seed" / "setting_up_the_script.txt"
WINDOWS_TMP = re.compile(r'TMP_PATH = "C:/[^"]*"')


def _looks_like_code(paragraph: str) -> bool:
    try:
        tree = ast.parse(fill_imports(paragraph))
    except SyntaxError:
        return False
    # A one-word heading parses as a bare name; real code calls or binds something.
    return any(isinstance(n, (ast.Call, ast.Assign, ast.Import, ast.ImportFrom)) for n in ast.walk(tree))


def seed_blocks(text: str) -> list[str]:
    """Code blocks of the manual page, in order.

    A block is an ``if __name__ == '__main__':`` line with everything indented
    (or blank) after it, or a paragraph of top-level statements.
    """
    lines = text.splitlines()
    blocks, i = [], 0
    while i < len(lines):
        if lines[i].startswith("if __name__ =="):
            j = i + 1
            while j < len(lines) and (not lines[j].strip() or lines[j][:1] in (" ", "\t")):
                j += 1
            blocks.append("\n".join(lines[i:j]).rstrip() + "\n")
            i = j
        elif lines[i].strip():
            j = i
            while j < len(lines) and lines[j].strip() and not lines[j].startswith("if __name__"):
                j += 1
            paragraph = "\n".join(lines[i:j]) + "\n"
            if _looks_like_code(paragraph):
                blocks.append(paragraph)
            i = j
        else:
            i += 1
    return blocks


def fill_imports(code: str) -> str:
    return re.sub(r"^(\s*)import\s+as\s+(\w+)", r"\1import voxelflow as \2", code, flags=re.M)


@pytest.fixture(scope="module")
def blocks():
    found = seed_blocks(SEED.read_text(encoding="utf-8"))
    assert len(found) == 6, [b.splitlines()[:2] for b in found]
    return found


class SmallClients:
    """Stand-in for ``Client``: same API, one worker with one thread, all closed at the end."""

    def __init__(self, processes: bool):
        self.processes = processes
        self.made: list[distributed.Client] = []
        self.requested: list[dict] = []

    def __call__(self, *args, **kwargs):
        self.requested.append(kwargs)
        # An in-process worker measures the whole test process's memory (napari alone is
        # ~800 MB), so a limit there would pause it and hang every compute: none then.
        client = distributed.Client(
            n_workers=1, threads_per_worker=1, processes=self.processes,
            memory_limit="1GiB" if self.processes else 0, dashboard_address=None,
        )
        self.made.append(client)
        return client

    def close_all(self):
        for c in self.made:
            c.close()


@pytest.fixture
def small_clients(monkeypatch):
    made = []

    def install(processes=False):
        clients = SmallClients(processes)
        monkeypatch.setattr(dask.distributed, "Client", clients)
        made.append(clients)
        return clients

    yield install
    for clients in made:
        clients.close_all()


def run_block(code: str, namespace: dict) -> dict:
    namespace.setdefault("__name__", "__main__")
    exec(compile(code, "<seed block>", "exec"), namespace)
    return namespace


def test_blocks_are_found_and_only_the_import_blanks_need_filling(blocks):
    assert sum("import voxelflow as tlfs" in fill_imports(b) for b in blocks) == 2
    assert sum("import voxelflow as qsetup" in fill_imports(b) for b in blocks) == 1
    for b in blocks:
        ast.parse(fill_imports(b))
    with pytest.raises(SyntaxError):
        ast.parse(blocks[3])  # unfilled blank import is not Python


def test_block1_dask_temporary_directory_and_client(blocks, small_clients, tmp_path, capsys):
    clients = small_clients()
    tmp = tmp_path / "tmp"
    run_block(fill_imports(blocks[0]), {"TMP_PATH": str(tmp)})
    assert capsys.readouterr().out == "9.0\n"
    assert clients.requested == [{"threads_per_worker": 6, "n_workers": 1}]
    # The worker put its scratch space in the configured temporary directory.
    assert (tmp / "dask-scratch-space").is_dir()


@pytest.mark.viewer
def test_block2_and_3_napari_with_client_then_close(blocks, small_clients, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    clients = small_clients()
    image = da.random.default_rng(0).random((4, 64, 64), chunks=(1, 32, 32))
    ns = {"IMAGE": image}
    placeholder = "viewer.add_image(...)"
    for block in blocks[1:3]:
        assert placeholder in block
        run_block(fill_imports(block).replace(placeholder, "viewer.add_image(IMAGE)"), ns)
    viewer, client = ns["viewer"], ns["client"]
    try:
        assert viewer.dims.ndisplay == 2
        assert [layer.data is image for layer in viewer.layers] == [True, True]
        assert client.status == "closed"
        # Block 2 asked for the seed's client (the test made it a small one); block 3 only closes it.
        assert clients.requested == [{"threads_per_worker": 6, "n_workers": 1}]
        # After client.close() the viewer's chunk loads run on the local scheduler.
        np.testing.assert_allclose(np.asarray(viewer.layers[0].data[2]), image[2].compute())
        # The block's relative TMP_PATH received the worker's scratch space.
        assert (tmp_path / "path" / "to" / "tmp" / "dir" / "dask-scratch-space").is_dir()
    finally:
        viewer.close()


def test_block4_tee_files_capture_prints_and_worker_dprint(blocks, small_clients, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    # The block replaces sys.stdout/sys.stderr for good; the test puts them back.
    orig_out, orig_err = sys.stdout, sys.stderr
    clients = small_clients(processes=True)
    ns = run_block(fill_imports(blocks[3]), {"sys": sys})
    try:
        out_file = tmp_path / "log_stdout.txt"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            ns["logfile_stdout"].flush()
            if out_file.read_text().count("map_fn is called with input") >= 1:
                break
            time.sleep(0.05)
        logged = out_file.read_text()
    finally:
        sys.stdout, sys.stderr = orig_out, orig_err
        ns["logfile_stdout"].close()
        ns["logfile_stderr"].close()
    lines = logged.splitlines()
    assert lines[0] == "9.0"
    assert "result is: [[1 1 1]\n [1 1 1]\n [1 1 1]]" in logged
    assert "map_fn is called with input [[0 0 0]\n [0 0 0]\n [0 0 0]]" in logged
    # The same text also reached the command window.
    terminal = capsys.readouterr().out
    assert "result is:" in terminal and terminal.startswith("9.0\n")
    assert (tmp_path / "log_stderr.txt").exists()
    # The worker really was another process: its print came back over the wire.
    assert all(c.cluster.processes for c in clients.made)


CACHE_DRIVER = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    import numpy as np

    import voxelflow

    block_file, tmp_path, counters = sys.argv[1], sys.argv[2], Path(sys.argv[3])

    def bump(name):
        with open(counters / name, "a") as f:
            f.write("x")

    def computeA():
        bump("A")
        return np.arange(12, dtype=np.float64).reshape(3, 4)

    def computeBFromA():
        bump("B")
        return np.asarray(voxelflow.load(ns["cache_path"] + "/A")) * 2

    ns = {
        "__name__": "__main__", "TMP_PATH": tmp_path, "computeA": computeA,
        "computeBFromA": computeBFromA, "save": voxelflow.save, "load": voxelflow.load,
    }
    exec(compile(Path(block_file).read_text(), "<seed cache block>", "exec"), ns)
    np.save(counters / "result.npy", np.asarray(ns["result"]))
    print("is_commit", ns["is_commit"])
    """
)


def test_block5_cache_computes_once_across_two_processes(blocks, tmp_path):
    block = tmp_path / "block.py"
    block.write_text(fill_imports(blocks[4]))
    driver = tmp_path / "driver.py"
    driver.write_text(CACHE_DRIVER)
    tmp, counters = tmp_path / "tmp", tmp_path / "counters"
    counters.mkdir()
    expected = np.arange(12, dtype=np.float64).reshape(3, 4) * 2
    for run, expected_counts in enumerate([("x", "x"), ("x", "x")]):
        proc = subprocess.run(
            [sys.executable, str(driver), str(block), str(tmp), str(counters)],
            capture_output=True, text=True, timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        # Use case #1's node is never committed by the seed, so it is recomputed each run.
        assert proc.stdout.strip() == "is_commit None"
        assert ((counters / "A").read_text(), (counters / "B").read_text()) == expected_counts, run
        np.testing.assert_array_equal(np.load(counters / "result.npy"), expected)
    node_a = tmp / "CacheDirectory" / "some_cache_path" / "A"
    assert voxelflow.cdir_query(str(node_a)).commit is not None


@pytest.mark.viewer
def test_block6_quick_setup_plcomponents(blocks, small_clients, tmp_path, monkeypatch):
    import napari

    monkeypatch.chdir(tmp_path)
    tmp = tmp_path / "lightsheet" / "tmp"
    code = fill_imports(blocks[5])
    assert len(WINDOWS_TMP.findall(code)) == 1
    code = WINDOWS_TMP.sub(f"TMP_PATH = {str(tmp)!r}", code)
    clients = SmallClients(processes=False)
    before = global_state()
    ns = run_block(code, {"Client": clients})
    plc, viewer = ns["plc"], ns["viewer"]
    try:
        assert clients.requested == [{"threads_per_worker": 12, "n_workers": 1}]
        assert plc.dask_client is clients.made[0] and plc.dask_client.status == "running"
        assert dask.config.get("temporary_directory") == str(tmp)
        assert os.path.isdir(plc.cache_root) and plc.cache_root == str(tmp / "CacheDirectory")
        assert isinstance(viewer, napari.Viewer) and viewer.dims.ndisplay == 2
        print("quick setup works")
        logs = sorted(p.name for p in tmp_path.glob("voxelflow_*.txt"))
        assert len(logs) == 2 and logs[0].endswith("_stderr.txt") and logs[1].endswith("_stdout.txt")
    finally:
        viewer.close()
        plc.close()
    assert "quick setup works" in plc.log_files.stdout_path.read_text()
    assert_restored(before)
