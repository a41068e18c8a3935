"""A cache folder written by voxelflow 0.1.0 at commit 86d7d36 still loads.

``tests/fixtures/cache_v0`` was written by that commit's code (``voxelflow.save``
and the built-in steps ``threshold``, ``label``, ``object_table``) from
``vol = 100 z + 10 y + x`` on a (4, 6, 8) grid and a mask with two boxes, so
every expected value below is recomputed here from numpy/scipy.
"""

import pathlib
import shutil

import numpy as np
import pandas as pd
import pytest

import voxelflow

FIXTURE = pathlib.Path(__file__).parent / "fixtures" / "cache_v0"


def _vol():
    z, y, x = np.indices((4, 6, 8))
    return (100 * z + 10 * y + x).astype(np.uint16)


@pytest.fixture
def cache(tmp_path):
    dst = tmp_path / "cache_v0"
    shutil.copytree(FIXTURE, dst)
    return dst


def test_saved_payloads_load(cache):
    arr = voxelflow.load(cache / "saved_numpy")
    assert isinstance(arr, np.ndarray) and arr.dtype == np.uint16
    np.testing.assert_array_equal(arr, _vol())
    lazy = voxelflow.load(cache / "saved_dask")
    assert lazy.chunks == ((2, 2), (3, 3), (5, 3))
    np.testing.assert_array_equal(lazy.compute(), _vol())
    table = voxelflow.load(cache / "saved_table")
    pd.testing.assert_frame_equal(table, pd.DataFrame({"id": [1, 2, 3], "voxels": [5, 7, 9], "name": ["a", "b", "c"]}))
    assert voxelflow.load(cache / "saved_value") == {"threshold": 2.5, "levels": [1, 2]}


def test_keys_of_saved_nodes_are_kept(cache):
    node = voxelflow.cdir_init(cache / "saved_numpy", key={"what": "numpy"})
    assert node.commit is not None
    np.testing.assert_array_equal(voxelflow.load(cache / "saved_numpy"), _vol())
