"""Brightness flattening before registration: a smooth multiplicative field is removed, gain and offset do not matter."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage as ndi

from voxelflow.errors import InvalidInputError
from voxelflow.ops._register import RegistrationParameters
from voxelflow.ops._register_images import flatten_brightness
from voxelflow.synth_atlas import make_synthetic_atlas


@pytest.fixture(scope="module")
def template():
    atlas = make_synthetic_atlas(resolution=200.0)
    return atlas.reference.astype(np.float32), atlas.resolution


def smooth_field(shape, seed: int) -> np.ndarray:
    """A multiplicative field from 0.6 to 1.4 over the volume: trilinear from a random 3 x 3 x 3 grid."""
    grid = np.random.default_rng(seed).uniform(0.6, 1.4, size=(3, 3, 3))
    return ndi.zoom(grid, [n / 3 for n in shape], order=1, mode="nearest")[: shape[0], : shape[1], : shape[2]]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_smooth_brightness_field_is_removed(template, seed):
    ref, spacing = template
    field = smooth_field(ref.shape, seed)
    m = float(ref[ref > 0].mean())
    scan = ref * field + 0.08 * m  # the template under the field, over an autofluorescence background
    inner = ndi.binary_erosion(ref > 0.2 * m, iterations=1)

    def spread(values):
        lo, hi = np.percentile(values, [5, 95])
        return hi / lo

    flat_ref = flatten_brightness(ref, spacing, 1000.0)
    flat_scan = flatten_brightness(scan, spacing, 1000.0)
    # reference: the planted field itself, which the template's brightness was multiplied by
    assert spread(field[inner]) > 1.2
    # after flattening both, what is left of the field (scan over template) varies about half as much:
    # a local mean over 1000 um follows a field that changes over half the brain, not exactly
    left = flat_scan[inner] / flat_ref[inner]
    assert spread(left) - 1 < 0.6 * (spread(field[inner]) - 1)
    assert abs(np.median(left) - 1) < 0.02
    # the tissue is about 1 and the outside about 0
    assert abs(float(flat_scan[inner].mean()) - 1) < 0.05
    assert float(np.median(flat_scan[ref == 0])) < 0.1


@settings(max_examples=25, deadline=None)
@given(gain=st.floats(0.01, 100.0), offset=st.floats(0.0, 1000.0), sigma=st.sampled_from([400.0, 1000.0, 3000.0]))
def test_gain_and_offset_of_the_image_do_not_matter(template, gain, offset, sigma):
    ref, spacing = template
    scan = ref * smooth_field(ref.shape, 4)
    base = flatten_brightness(scan, spacing, sigma)
    again = flatten_brightness(scan * np.float32(gain) + np.float32(offset), spacing, sigma)
    np.testing.assert_allclose(again, base, rtol=1e-3, atol=1e-3)


def test_flattening_width_is_a_registration_parameter():
    assert RegistrationParameters().flatten_um == 1000.0
    assert RegistrationParameters.from_dict({"flatten_um": 0}).flatten_um == 0
    with pytest.raises(InvalidInputError, match="flatten_um"):
        RegistrationParameters.from_dict({"flatten_um": -5.0})
