"""Suite-wide settings and fixtures: a Hypothesis profile sized for a 2-core CI machine, storage roots.

The test folders mirror the package (``cache/``, ``io/``, ``ops/``, ...); plain
helper functions shared by several folders live in ``*_helpers.py`` modules
here, fixtures in ``conftest.py`` files.
"""

import os
import uuid

import pytest
from hypothesis import HealthCheck, settings

from voxelflow.paths import VPath

settings.register_profile(
    "ci",
    deadline=None,
    max_examples=30,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("thorough", deadline=None, max_examples=500)
settings.load_profile(os.environ.get("VOXELFLOW_HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(params=["local", "memory"])
def root(request, tmp_path):
    """A folder on local disk or in fsspec's in-memory file system, as a VPath (removed afterwards)."""
    if request.param == "local":
        yield VPath(tmp_path / "root")
        return
    url = f"memory://vf-test-{uuid.uuid4().hex}"
    yield VPath(url)
    VPath(url).rm()
