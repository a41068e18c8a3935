"""auto_negative_mask on crops: the volume border is a tissue edge only for whole brains."""

import numpy as np
from scipy import ndimage as ndi

from voxelflow.ops import auto_negative_mask


def _crop(shape=(12, 40, 40), seed=0):
    """Tissue filling the volume except a dark corner beyond a plane x + y > 60."""
    rng = np.random.default_rng(seed)
    z, y, x = np.indices(shape)
    tissue = (x + y) <= 60
    img = np.where(tissue, 400.0, 100.0) + rng.normal(0, 10, shape)
    return img.astype(np.float32), tissue


def test_a_crop_keeps_tissue_at_the_volume_border():
    img, tissue = _crop()
    scale = (10.0, 8.0, 8.0)
    neg = auto_negative_mask(img, scale, edge_um=20.0)
    # the shell follows only the edge inside the volume: distances to the dark corner
    depth = ndi.distance_transform_edt(tissue, sampling=scale)
    expected_keep = tissue & (depth > 20.0 + 2 * max(scale))  # edge_um plus two coarse voxels of slack
    np.testing.assert_array_equal(~neg, expected_keep)
    assert (~neg)[0].any() and (~neg)[-1].any() and (~neg)[:, 0].any() and (~neg)[:, :, 0].any()


def test_a_whole_brain_loses_a_shell_along_the_volume_border():
    img, tissue = _crop()
    scale = (10.0, 8.0, 8.0)
    neg = auto_negative_mask(img, scale, edge_um=20.0, whole_brain=True)
    assert neg[0].all() and neg[-1].all() and neg[:, 0].all() and neg[:, :, 0].all()


def test_a_crop_inside_the_tissue_is_all_tissue():
    rng = np.random.default_rng(1)
    img = (400.0 * (1 + 0.3 * (np.indices((10, 30, 30))[2] > 15)) + rng.normal(0, 10, (10, 30, 30)))
    neg = auto_negative_mask(img.astype(np.float32), (10.0, 8.0, 8.0), edge_um=20.0)
    assert not neg.any()
