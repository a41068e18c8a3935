"""tee_logs: per-run files, restoring globals, kill safety, worker prints."""

import logging
import re
import subprocess
import sys
import textwrap
import time

import pytest

import voxelflow
from voxelflow.errors import InvalidInputError, InvalidPathError
from voxelflow.runtime.logs import LOG_FORMAT, MultiOutputStream, tee_logs

NAME = re.compile(r"^run_\d{8}-\d{6}(_\d+)?_(stdout|stderr)\.txt$")


def _wait_for_text(path, text, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in path.read_text():
            return True
        time.sleep(0.05)
    return False


def test_stdout_and_stderr_go_to_terminal_and_their_own_file(tmp_path, capsys):
    with tee_logs(tmp_path, prefix="run") as logs:
        assert isinstance(sys.stdout, MultiOutputStream)
        print("to stdout")
        print("to stderr", file=sys.stderr)
    assert NAME.match(logs.stdout_path.name) and NAME.match(logs.stderr_path.name)
    assert logs.stdout_path.parent == tmp_path
    assert logs.stdout_path.read_text() == "to stdout\n"
    assert "to stderr\n" in logs.stderr_path.read_text()
    assert "to stdout" not in logs.stderr_path.read_text()
    captured = capsys.readouterr()
    assert captured.out == "to stdout\n"
    assert "to stderr\n" in captured.err


def test_runs_in_the_same_second_never_overwrite_each_other(tmp_path, monkeypatch):
    monkeypatch.setattr("voxelflow.runtime.logs.time.strftime", lambda fmt: "20260101-120000")
    # A file left by another process with the first candidate name.
    (tmp_path / "run_20260101-120000_stdout.txt").write_text("someone else's run\n")
    (tmp_path / "run_20260101-120000_1_stderr.txt").write_text("another run\n")
    contents = []
    for i in range(3):
        with tee_logs(tmp_path, prefix="run") as logs:
            print(f"run {i}")
        contents.append(logs)
    names = {p.stdout_path.name for p in contents}
    assert len(names) == 3
    assert (tmp_path / "run_20260101-120000_stdout.txt").read_text() == "someone else's run\n"
    for i, logs in enumerate(contents):
        assert logs.stdout_path.read_text() == f"run {i}\n"
    # stdout/stderr of one run share a stem even when only one of them was taken.
    assert all(
        lf.stderr_path.name.replace("stderr", "stdout") == lf.stdout_path.name for lf in contents
    )
    assert (tmp_path / "run_20260101-120000_1_stderr.txt").read_text() == "another run\n"
    # No half-claimed pair is left behind.
    assert not (tmp_path / "run_20260101-120000_1_stdout.txt").exists()
    assert len(list(tmp_path.iterdir())) == 2 + 2 * 3


def test_streams_logging_and_handlers_restored_even_when_body_raises(tmp_path):
    out, err = sys.stdout, sys.stderr
    vf_logger = logging.getLogger("voxelflow")
    handlers, level = list(vf_logger.handlers), vf_logger.level
    other = logging.getLogger("vf_test_other_library")
    other_handler = logging.StreamHandler(sys.stderr)
    other.addHandler(other_handler)
    other.propagate = False
    try:
        with pytest.raises(RuntimeError, match="boom"):
            with tee_logs(tmp_path, prefix="run") as logs:
                assert other_handler.stream is sys.stderr  # now the tee
                other.warning("library warning")
                print("before the error")
                raise RuntimeError("boom")
        assert sys.stdout is out and sys.stderr is err
        assert vf_logger.handlers == handlers and vf_logger.level == level
        assert other_handler.stream is err
        assert "before the error" in logs.stdout_path.read_text()
        assert "library warning" in logs.stderr_path.read_text()
    finally:
        other.removeHandler(other_handler)
        other.propagate = True


def test_voxelflow_log_records_are_formatted_into_stderr_file_only_while_teeing(tmp_path):
    logger = logging.getLogger("voxelflow.test_logs")
    with tee_logs(tmp_path, prefix="run") as logs:
        logger.info("step %s done", "threshold")
        logger.debug("too detailed")
    logger.warning("after the run")
    text = logs.stderr_path.read_text()
    line = next(ln for ln in text.splitlines() if "step threshold done" in ln)
    expected = logging.Formatter(LOG_FORMAT).format(
        logging.LogRecord("voxelflow.test_logs", logging.INFO, "", 0, "step threshold done", None, None)
    )
    # Same layout as LOG_FORMAT (timestamps differ).
    assert line.split(" ", 2)[2] == expected.split(" ", 2)[2]
    assert "too detailed" not in text
    assert "after the run" not in text


def test_nested_tees_restore_the_outer_one(tmp_path):
    outer_dir, inner_dir = tmp_path / "outer", tmp_path / "inner"
    with tee_logs(outer_dir, prefix="run") as outer:
        outer_stream = sys.stdout
        with tee_logs(inner_dir, prefix="run") as inner:
            print("both")
        assert sys.stdout is outer_stream
        print("outer only")
    assert inner.stdout_path.read_text() == "both\n"
    assert outer.stdout_path.read_text() == "both\nouter only\n"


def test_bad_arguments_raise_voxelflow_errors(tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    for folder in (a_file, 42, "", "memory://logs"):
        with pytest.raises(InvalidPathError):
            with tee_logs(folder):
                pass
    for prefix in ("", "a/b", None):
        with pytest.raises(InvalidInputError):
            with tee_logs(tmp_path, prefix=prefix):
                pass
    assert list(tmp_path.iterdir()) == [a_file]


def test_text_survives_sigkill(tmp_path):
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        from voxelflow.runtime.logs import tee_logs
        with tee_logs({str(tmp_path)!r}, prefix="run"):
            print("line before the kill")
            sys.stdout.write("progress 50%\\r")
            print("error line", file=sys.stderr)
            os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -9
    (out_file,) = tmp_path.glob("run_*_stdout.txt")
    (err_file,) = tmp_path.glob("run_*_stderr.txt")
    assert out_file.read_bytes() == b"line before the kill\nprogress 50%\r"
    assert err_file.read_bytes() == b"error line\n"


def test_worker_dask_distributed_print_lands_in_the_log_file(tmp_path):
    import dask.array as da
    import numpy as np
    from dask.distributed import Client, LocalCluster
    from dask.distributed import print as dprint

    def shout(block, block_info=None):
        if block_info is not None:
            dprint(f"worker saw block {block_info[0]['chunk-location']}")
        return block + 1

    with LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, memory_limit="512MiB",
        dashboard_address=None,
    ) as cluster, Client(cluster) as client:
        with tee_logs(tmp_path, prefix="run") as logs:
            arr = da.zeros((4, 4), chunks=2, dtype=np.uint8).map_blocks(shout, dtype=np.uint8)
            assert int(arr.sum().compute()) == 16
            assert client.run(lambda: __import__("os").getpid()) != {}
            arrived = _wait_for_text(logs.stdout_path, "worker saw block (1, 1)")
        text = logs.stdout_path.read_text()
    assert arrived, text
    for loc in [(0, 0), (0, 1), (1, 0), (1, 1)]:
        assert f"worker saw block {loc}" in text


def test_tee_logs_is_exported_at_top_level():
    assert voxelflow.tee_logs is tee_logs


def test_user_logging_setup_is_used_not_duplicated(tmp_path):
    root = logging.getLogger()
    user_handler = logging.StreamHandler(sys.stderr)
    user_handler.setFormatter(logging.Formatter("USER %(levelname)s %(message)s"))
    vf_logger = logging.getLogger("voxelflow")
    handlers_before = list(vf_logger.handlers)
    root.addHandler(user_handler)
    try:
        with tee_logs(tmp_path, prefix="run") as logs:
            assert vf_logger.handlers == handlers_before
            logging.getLogger("voxelflow.step").warning("disk almost full")
        text = logs.stderr_path.read_text()
    finally:
        root.removeHandler(user_handler)
    assert text.count("disk almost full") == 1
    assert "USER WARNING disk almost full" in text
    assert user_handler.stream is sys.stderr
