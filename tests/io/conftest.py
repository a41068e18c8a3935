"""Fixtures of the io tests: an in-memory fsspec folder and a local S3 server."""

import pytest

from ome_zarr_helpers import memory_root, s3_server


@pytest.fixture
def memory_url():
    """A fresh memory:// folder URL, removed afterwards."""
    yield from memory_root()


@pytest.fixture(scope="module")
def s3_options():
    """s3fs storage options of a moto S3 server with a bucket ``voxelflow``."""
    yield from s3_server()
