"""auto_negative_mask against an analytic reference: a bright ball in a dark, noisy volume."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voxelflow.errors import InvalidInputError
from voxelflow.ops import auto_negative_mask


def _ball(shape, scale, centre, radius, rng):
    """Tissue = a ball of ``radius`` um; returns the image and the physical depth of every voxel inside."""
    grid = np.indices(shape).astype(np.float64)
    pos = [(g + 0.5) * s for g, s in zip(grid, scale)]
    dist = np.sqrt(sum((p - c) ** 2 for p, c in zip(pos, centre)))
    img = rng.normal(100.0, 10.0, shape)  # autofluorescence outside
    img[dist <= radius] += rng.normal(900.0, 60.0, int((dist <= radius).sum()))
    img[:, :, 0] += 50.0  # a brighter stripe along one face
    return np.clip(img, 0, None).astype(np.uint16), radius - dist


@settings(max_examples=6, deadline=None)
@given(st.integers(0, 99), st.sampled_from([0.0, 8.0, 20.0]))
def test_shell_follows_the_physical_depth(seed, edge_um):
    rng = np.random.default_rng(seed)
    shape, scale = (16, 30, 30), (6.0, 3.0, 3.0)
    img, depth = _ball(shape, scale, centre=(48.0, 45.0, 45.0), radius=42.0, rng=rng)
    neg = auto_negative_mask(img, scale, edge_um)
    assert neg.dtype == bool and neg.shape == shape
    # everything outside the ball is discarded
    assert neg[depth < 0].all()
    # everything deeper than the shell plus the two-voxel slack (and a voxel of ball surface) is kept
    deep = depth > edge_um + 2 * max(scale) + max(scale)
    assert deep.any() and not neg[deep].any()
    # no voxel shallower than edge_um survives
    if edge_um > 0:
        assert neg[(depth >= 0) & (depth < edge_um)].all()


def test_whole_brain_tissue_touching_the_border_gets_a_shell_there():
    rng = np.random.default_rng(1)
    shape, scale = (10, 20, 20), (4.0, 2.0, 2.0)
    img, depth = _ball(shape, scale, centre=(20.0, 20.0, 0.0), radius=25.0, rng=rng)  # cut by the x = 0 face
    neg = auto_negative_mask(img, scale, 6.0, whole_brain=True)
    assert neg[:, :, :3].all()  # within 6 um + one voxel of the border, where the brain was cut
    crop = auto_negative_mask(img, scale, 6.0)  # a crop: the border is no tissue edge
    assert not crop[3:7, 8:12, :3].any()  # deeper than 6 um + two voxels of slack from the ball surface


def test_flat_image_and_bad_input():
    assert not auto_negative_mask(np.full((3, 4, 5), 7), (1.0, 1.0, 1.0), 5.0).any()
    with pytest.raises(InvalidInputError, match="3-D"):
        auto_negative_mask(np.ones((3, 4)), (1.0, 1.0), 1.0)
    with pytest.raises(InvalidInputError, match="edge_um"):
        auto_negative_mask(np.ones((3, 4, 5)), (1.0, 1.0, 1.0), -1.0)
