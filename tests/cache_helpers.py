"""Shared fixtures and helpers of the cache tests (import the fixtures by name)."""

import os
import subprocess
import sys
import uuid

import pytest

from voxelflow.paths import VPath

TESTS = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(params=["local", "memory"])
def root(request, tmp_path):
    """A cache root URL on local disk or in fsspec's in-memory file system."""
    if request.param == "local":
        yield str(tmp_path / "cache")
        return
    url = f"memory://vf-cache-test-{uuid.uuid4().hex}"
    yield url
    VPath(url).rm()


def run_python(*args, timeout=120, env=None):
    """Run ``python *args`` from the tests folder; return the CompletedProcess (text)."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=TESTS,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, **(env or {})},
    )


def start_python(*args, env=None):
    """Start ``python *args`` from the tests folder without waiting."""
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=TESTS,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
