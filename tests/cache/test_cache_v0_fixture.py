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
import scipy.ndimage as ndi

import voxelflow

FIXTURE = pathlib.Path(__file__).parents[1] / "fixtures" / "cache_v0"


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


def test_step_outputs_of_the_old_layout_load(cache):
    vol = _vol()
    bs = voxelflow.load(cache / "run" / "threshold" / "out0")
    np.testing.assert_array_equal(bs.compute(), vol > 300)
    mask = np.zeros((4, 6, 8), dtype=bool)
    mask[0:2, 0:2, 0:2] = True
    mask[3, 4:6, 5:8] = True
    want, n = ndi.label(mask)
    np.testing.assert_array_equal(voxelflow.load(cache / "run" / "label" / "out0").compute(), want)
    assert voxelflow.load(cache / "run" / "label" / "out1") == n == 2
    table = voxelflow.load(cache / "run" / "objects" / "out0")
    assert sorted(table["voxels"]) == sorted(np.bincount(want.ravel())[1:])


def test_old_step_nodes_read_through_the_step_layout(cache):
    from voxelflow.steps.node import read_step, read_step_result

    desc = read_step(cache / "run" / "label")
    assert desc["outputs"] == ["image", "value"] and desc["tuple"] is True
    lab, n = read_step_result(str(cache / "run" / "label"), desc)
    assert n == 2 and int(lab.max().compute()) == 2


def test_old_step_nodes_load_whole(cache):
    lab, n = voxelflow.load(cache / "run" / "label")  # committed by 0.1 without a result of its own
    mask = np.zeros((4, 6, 8), dtype=bool)
    mask[0:2, 0:2, 0:2] = True
    mask[3, 4:6, 5:8] = True
    np.testing.assert_array_equal(lab.compute(), ndi.label(mask)[0])
    assert n == 2
    np.testing.assert_array_equal(voxelflow.load(cache / "run" / "threshold").compute(), _vol() > 300)


def test_a_node_committed_without_a_result_still_says_so(tmp_path):
    voxelflow.cdir_init(tmp_path / "plain")
    voxelflow.cdir_commit(tmp_path / "plain")
    with pytest.raises(voxelflow.errors.NoResultError, match="without a save"):
        voxelflow.load(tmp_path / "plain")
