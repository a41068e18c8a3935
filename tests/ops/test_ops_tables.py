"""Object-table ops: size filter and physical coordinates, checked on planted objects."""

import numpy as np
import pandas as pd
import pytest
import scipy.ndimage as ndi

from voxelflow.errors import InvalidInputError
from voxelflow.ops import filter_by_size, object_table, physical_coordinates


def _planted():
    """Objects of known sizes 1, 4, 8, 27 and 30 voxels in a (10, 12, 14) volume."""
    bs = np.zeros((10, 12, 14), dtype=bool)
    bs[0, 0, 0] = True
    bs[2, 2, 2:6] = True
    bs[5:7, 5:7, 5:7] = True
    bs[7:10, 0:3, 9:12] = True
    bs[0:2, 8:11, 0:5] = True
    return bs


@pytest.mark.parametrize("lo, hi", [(0, None), (4, None), (5, 27), (28, None), (31, None), (8, 8)])
def test_filter_by_size_keeps_the_planted_sizes_in_range(lo, hi):
    bs = _planted()
    lab, n = ndi.label(bs)
    sizes = np.bincount(lab.ravel())[1:]
    table = object_table(bs)
    got = filter_by_size(table, lo, hi)
    want = sorted(int(s) for s in sizes if s >= lo and (hi is None or s <= hi))
    assert sorted(got["voxels"].tolist()) == want
    assert got.index.tolist() == list(range(len(want)))
    assert list(got.columns) == list(table.columns)


def test_physical_coordinates_follow_scale_and_translation():
    bs = _planted()
    table = object_table(bs)
    scale, shift = (5.0, 2.0, 1.5), (100.0, -4.0, 0.0)
    got = physical_coordinates(table, scale, shift)
    lab, n = ndi.label(bs)
    centres = np.array(ndi.center_of_mass(bs, lab, range(1, n + 1)))
    want = np.sort(centres * np.array(scale) + np.array(shift), axis=0)
    np.testing.assert_allclose(np.sort(got[["z_um", "y_um", "x_um"]].to_numpy(), axis=0), want)
    np.testing.assert_allclose(got["volume_um3"], got["voxels"] * 15.0)
    assert "z_um" not in table.columns  # a copy


def test_table_ops_name_what_is_missing():
    with pytest.raises(InvalidInputError, match="voxels"):
        filter_by_size(pd.DataFrame({"z": [1.0]}), 1)
    with pytest.raises(InvalidInputError, match="3 values"):
        physical_coordinates(pd.DataFrame({"z": [1.0], "voxels": [1]}), (1.0, 1.0))
