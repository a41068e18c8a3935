"""Helpers of the cache tests: run Python scripts of this folder in child processes."""

import os
import subprocess
import sys

TESTS = os.path.dirname(os.path.abspath(__file__))


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
