"""MultiOutputStream: copies, stream protocol, and the libraries that probe it."""

import faulthandler
import io
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tqdm import tqdm

import voxelflow
from voxelflow.errors import InvalidInputError
from voxelflow.runtime.logs import MultiOutputStream


@settings(max_examples=40, deadline=None)
@given(st.lists(st.text(), max_size=20), st.integers(1, 4))
def test_every_stream_receives_exactly_the_written_text(chunks, n_streams):
    sinks = [io.StringIO() for _ in range(n_streams)]
    out = MultiOutputStream(*sinks)
    returned = [out.write(c) for c in chunks]
    out.flush()
    assert returned == [len(c) for c in chunks]
    for s in sinks:
        assert s.getvalue() == "".join(chunks)


def test_top_level_export_is_the_class():
    assert voxelflow.MultiOutputStream is MultiOutputStream


def test_print_and_writelines_reach_all_streams():
    a, b = io.StringIO(), io.StringIO()
    out = MultiOutputStream(a, b)
    print("x", 1, sep="-", file=out)
    out.writelines(["y\n", "z\n"])
    assert a.getvalue() == b.getvalue() == "x-1\ny\nz\n"


def test_fileno_is_the_first_stream_that_has_one(tmp_path):
    with open(tmp_path / "f.txt", "w") as f:
        out = MultiOutputStream(io.StringIO(), f)
        assert out.fileno() == f.fileno()


def test_fileno_without_any_descriptor_raises_unsupported_operation():
    out = MultiOutputStream(io.StringIO(), io.StringIO())
    with pytest.raises(io.UnsupportedOperation):
        out.fileno()


def test_isatty_encoding_and_writable_describe_the_primary_stream(tmp_path):
    with open(tmp_path / "f.txt", "w", encoding="latin-1") as f:
        out = MultiOutputStream(f, io.StringIO())
        assert out.isatty() is False
        assert out.encoding == "latin-1"
        assert out.writable() and not out.readable()
    master, slave = os.openpty()
    try:
        with open(slave, "w", closefd=False) as tty:
            assert MultiOutputStream(tty, io.StringIO()).isatty() is True
            assert MultiOutputStream(io.StringIO(), tty).isatty() is False
    finally:
        os.close(master)
        os.close(slave)
    assert MultiOutputStream(io.StringIO()).encoding == "utf-8"


def test_closed_stream_is_skipped_and_the_others_still_written():
    a, b = io.StringIO(), io.StringIO()
    out = MultiOutputStream(a, b)
    b.close()
    out.write("after close")
    out.flush()
    assert a.getvalue() == "after close"
    assert not out.closed
    a.close()
    assert out.closed


class _Broken(io.StringIO):
    def write(self, text):
        raise BrokenPipeError("terminal gone")


def test_failing_stream_does_not_starve_the_others_and_error_is_raised():
    good = io.StringIO()
    out = MultiOutputStream(_Broken(), good)
    with pytest.raises(BrokenPipeError, match="terminal gone"):
        out.write("kept")
    assert good.getvalue() == "kept"


@pytest.mark.parametrize("bad", [[], [42], ["not a stream"]])
def test_non_streams_are_rejected(bad):
    with pytest.raises(InvalidInputError):
        MultiOutputStream(*bad)


def test_tqdm_progress_bar_is_written_to_every_stream():
    a, b = io.StringIO(), io.StringIO()
    out = MultiOutputStream(a, b)
    for _ in tqdm(range(7), file=out, desc="blocks", mininterval=0):
        pass
    for s in (a, b):
        assert "blocks: 100%" in s.getvalue()
        assert "7/7" in s.getvalue()
    assert a.getvalue() == b.getvalue()


def test_faulthandler_dumps_through_the_descriptor(tmp_path):
    with open(tmp_path / "fault.txt", "w") as f:
        out = MultiOutputStream(io.StringIO(), f)
        faulthandler.dump_traceback(file=out, all_threads=False)
    text = (tmp_path / "fault.txt").read_text()
    assert "test_faulthandler_dumps_through_the_descriptor" in text
