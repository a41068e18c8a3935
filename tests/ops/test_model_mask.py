"""model_mask(): a model's foreground in 3-D, per plane and tri-planar, against the model on the whole array."""

import dask.array as da
import numpy as np
import pytest
from scipy import ndimage as ndi

from voxelflow.errors import InvalidInputError
from voxelflow.ops import PerPlane, model_mask


class Smooth:
    """p(foreground) = a smoothed image; two channels (background, foreground)."""

    channels = 2
    halo = 1

    def __call__(self, block):
        p = ndi.uniform_filter(block.astype(np.float32), 3, mode="constant")
        return np.stack([1 - p, p])


def test_3d_mask_equals_the_model_on_the_whole_array():
    x = np.random.default_rng(0).random((12, 20, 18), dtype=np.float32)
    out = model_mask(da.from_array(x, chunks=(5, 7, 9)), Smooth(), threshold=0.55, pad_mode="constant")
    assert out.dtype == bool and out.chunks == da.from_array(x, chunks=(5, 7, 9)).chunks
    np.testing.assert_array_equal(out.compute(), Smooth()(x)[1] >= 0.55)


def plane_model(plane):
    p = ndi.uniform_filter(plane.astype(np.float32), 3, mode="constant")
    return np.stack([1 - p, p])


class Plane2D:
    channels = 2
    halo = 1

    def __call__(self, plane):
        assert plane.ndim == 2
        return plane_model(plane)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_planes_equal_the_2d_model_on_every_whole_plane(axis):
    x = np.random.default_rng(1).random((9, 14, 16), dtype=np.float32)
    out = model_mask(da.from_array(x, chunks=(4, 6, 7)), Plane2D(), mode="planes", axis=axis, pad_mode="constant")
    ref = np.stack([plane_model(np.take(x, i, axis=axis))[1] for i in range(x.shape[axis])], axis=axis) >= 0.5
    np.testing.assert_array_equal(out.compute(), ref)


def test_triplanar_averages_the_three_plane_directions():
    x = np.random.default_rng(2).random((9, 14, 16), dtype=np.float32)
    out = model_mask(da.from_array(x, chunks=(4, 6, 7)), Plane2D(), mode="triplanar", threshold=0.52,
                     pad_mode="constant")
    probs = [np.stack([plane_model(np.take(x, i, axis=a))[1] for i in range(x.shape[a])], axis=a) for a in range(3)]
    ref = (probs[0] + probs[1] + probs[2]) / 3 >= 0.52
    got = out.compute()
    # float32 sums in another order may flip voxels lying on the threshold itself
    mean = (probs[0] + probs[1] + probs[2]) / 3
    assert (got == ref).all() or np.abs(mean[got != ref] - 0.52).max() < 1e-6


def test_per_plane_wrapper_and_single_channel_models():
    wrapped = PerPlane(Plane2D(), axis=1)
    assert wrapped.halo == (1, 0, 1) and wrapped.channels == 2
    assert wrapped(np.zeros((3, 4, 5), np.float32)).shape == (2, 3, 4, 5)
    x = np.random.default_rng(3).random((6, 8, 8), dtype=np.float32)

    def one_channel(block):
        return block[None]

    one_channel.channels = 1
    np.testing.assert_array_equal(model_mask(x, one_channel, threshold=0.3).compute(), x >= 0.3)


def test_bad_arguments():
    with pytest.raises(InvalidInputError, match="mode"):
        model_mask(np.zeros((4, 4, 4)), Smooth(), mode="2d")
    with pytest.raises(InvalidInputError, match="3-D"):
        model_mask(np.zeros((4, 4)), Smooth())
    with pytest.raises(InvalidInputError, match="threshold"):
        model_mask(np.zeros((4, 4, 4)), Smooth(), threshold=2)
    with pytest.raises(InvalidInputError, match="axis"):
        PerPlane(Plane2D(), axis=3)
