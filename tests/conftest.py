"""Suite-wide settings and fixtures: a Hypothesis profile sized for a 2-core CI machine, storage roots.

The test folders mirror the package (``cache/``, ``io/``, ``ops/``, ...); plain
helper functions shared by several folders live in ``*_helpers.py`` modules
here, fixtures in ``conftest.py`` files.

Tests write only inside temporary folders: Hypothesis keeps its example database
in memory (a failing example is printed with the seed to reproduce it) and its
other caches, numba's compile cache and Dask's spill folder ("dask-scratch-space") go to one
scratch folder of the session, removed at its end (worker processes inherit it
through the environment).
"""

import os
import shutil
import tempfile
import uuid

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.configuration import set_hypothesis_home_dir
from hypothesis.database import InMemoryExampleDatabase

_SCRATCH = tempfile.mkdtemp(prefix="voxelflow-tests-")
# before voxelflow (and numba) are imported by any test module
os.environ["NUMBA_CACHE_DIR"] = os.path.join(_SCRATCH, "numba")
os.environ["DASK_TEMPORARY_DIRECTORY"] = os.path.join(_SCRATCH, "dask")

import dask  # noqa: E402

from voxelflow.paths import VPath  # noqa: E402

dask.config.set({"temporary-directory": os.environ["DASK_TEMPORARY_DIRECTORY"]})
set_hypothesis_home_dir(os.path.join(_SCRATCH, "hypothesis"))  # its caches (constants, unicode data)

settings.register_profile(
    "ci",
    deadline=None,
    max_examples=30,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=InMemoryExampleDatabase(),
)
settings.register_profile("thorough", deadline=None, max_examples=500, database=InMemoryExampleDatabase())
settings.load_profile(os.environ.get("VOXELFLOW_HYPOTHESIS_PROFILE", "ci"))


def pytest_unconfigure(config):
    shutil.rmtree(_SCRATCH, ignore_errors=True)


@pytest.fixture(params=["local", "memory"])
def root(request, tmp_path):
    """A folder on local disk or in fsspec's in-memory file system, as a VPath (removed afterwards)."""
    if request.param == "local":
        yield VPath(tmp_path / "root")
        return
    url = f"memory://vf-test-{uuid.uuid4().hex}"
    yield VPath(url)
    VPath(url).rm()
