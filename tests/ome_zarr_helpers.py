"""Shared fixtures and independent checks for the OME-Zarr tests."""

from __future__ import annotations

import importlib.util
import pathlib
import uuid

import pytest
import zarr

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
V04 = FIXTURES / "ome_zarr_py_v04.ome.zarr"
V05 = FIXTURES / "ome_zarr_py_v05.ome.zarr"


def _load_make_fixtures():
    spec = importlib.util.spec_from_file_location("make_fixtures", FIXTURES / "make_fixtures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_fixtures = _load_make_fixtures()


def validate_with_models(url: str, *, labels: tuple[str, ...] = ()) -> None:
    """Validate an image (and its label images) with ome-zarr-models; raises on any violation."""
    group = zarr.open_group(url, mode="r")
    if "ome" in group.attrs:
        from ome_zarr_models.v05 import Image, ImageLabel, Labels
    else:
        from ome_zarr_models.v04 import Image, ImageLabel, Labels
    Image.from_zarr(group)
    if labels:
        Labels.from_zarr(group["labels"])
        for name in labels:
            ImageLabel.from_zarr(group[f"labels/{name}"])


def read_with_ome_zarr_py(url: str):
    """Level arrays (numpy) of every node that ome-zarr-py's Reader finds at ``url``."""
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    location = parse_url(url)
    assert location is not None, f"ome-zarr-py cannot open {url}"
    return [[level.compute() for level in node.data] for node in Reader(location)()]


def memory_root():
    """Yield a fresh memory:// folder URL and remove it afterwards (wrap in a fixture)."""
    import fsspec

    root = f"memory://ome-zarr-tests/{uuid.uuid4().hex}"
    yield root
    fs = fsspec.filesystem("memory")
    if fs.exists(root):
        fs.rm(root, recursive=True)


def s3_server():
    """Yield s3fs storage options for a moto S3 server on 127.0.0.1 with a bucket ``voxelflow``."""
    s3fs = pytest.importorskip("s3fs")
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        options = {"key": "testing", "secret": "testing", "endpoint_url": f"http://{host}:{port}"}
        s3fs.S3FileSystem(skip_instance_cache=True, **options).mkdir("voxelflow")
        yield options
    finally:
        server.stop()
