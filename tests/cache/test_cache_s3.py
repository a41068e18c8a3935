"""The cache on an object store: S3 served by a local moto server."""

import socket

import dask.array as da
import numpy as np
import pandas as pd
import pytest

from voxelflow.cache import cdir_init, cdir_query, load, save
from voxelflow.cache._tree import iter_tree

moto_server = pytest.importorskip("moto.server")
boto3 = pytest.importorskip("boto3")
pytest.importorskip("s3fs")


@pytest.fixture(scope="module")
def s3():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id="k", aws_secret_access_key="s", region_name="us-east-1"
    ).create_bucket(Bucket="cache-test")
    yield {"endpoint_url": endpoint, "key": "k", "secret": "s"}
    server.stop()


def test_s3_nodes_round_trip_and_invalidate(s3):
    url = "s3://cache-test/run/step"
    assert cdir_init(url, key={"a": 1}, storage_options=s3).commit is None
    save(url, da.arange(20, chunks=6), storage_options=s3)
    back = load(url, storage_options=s3)
    assert back.chunks == ((6, 6, 6, 2),)
    np.testing.assert_array_equal(back.compute(), np.arange(20))
    assert cdir_init(url, key={"a": 1}, storage_options=s3).commit is not None

    save("s3://cache-test/run/table", pd.DataFrame({"x": [1, 2]}), storage_options=s3)
    pd.testing.assert_frame_equal(load("s3://cache-test/run/table", storage_options=s3), pd.DataFrame({"x": [1, 2]}))

    assert cdir_init(url, key={"a": 2}, storage_options=s3).commit is None
    assert cdir_query(url, storage_options=s3).status == "computing"
    statuses = {e.path.name: e.node.status for e in iter_tree("s3://cache-test/run", storage_options=s3) if e.node}
    assert statuses == {"step": "computing", "table": "committed"}
    save(url, [2], storage_options=s3)  # commits and releases the lock while the server still runs
    assert load(url, storage_options=s3) == [2]
