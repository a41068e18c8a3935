"""Fixtures of the adversarial suite (corrupt data, bad input, faults, trust boundaries)."""

from __future__ import annotations

import uuid

import fsspec
import pytest
from hardening_helpers import write_tiny_image


@pytest.fixture
def mem_root():
    """A fresh ``memory://`` folder URL, removed afterwards."""
    root = f"memory://hardening/{uuid.uuid4().hex}"
    yield root
    fs = fsspec.filesystem("memory")
    if fs.exists(root):
        fs.rm(root, recursive=True)


@pytest.fixture(params=["0.4", "0.5"])
def image(request, tmp_path):
    """A tiny local voxelflow OME-Zarr image of each NGFF version: (path, voxels)."""
    url, data = write_tiny_image(tmp_path, version=request.param)
    return url, data
