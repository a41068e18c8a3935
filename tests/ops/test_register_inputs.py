"""What registration measures: images flattened by their local mean brightness, the metric on the tissue alone."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage as ndi
from skimage.filters import threshold_otsu

from voxelflow.errors import InvalidInputError
from voxelflow.ops._register import RegistrationParameters
from voxelflow.ops._register_images import FLATTEN_PRIOR, flatten_brightness, to_sitk
from voxelflow.ops._register_metric import metric_mask, registration_method
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
    # the same up to rounding; a voxel that rounding moves across the tissue threshold changes the local
    # mean around it a little
    diff = np.abs(again - base)
    assert np.mean(diff > 1e-3) < 0.02 and diff.max() < 0.05, (np.mean(diff > 1e-3), diff.max())


def test_flattening_width_is_a_registration_parameter():
    assert RegistrationParameters().flatten_um == 1000.0
    assert RegistrationParameters.from_dict({"flatten_um": 0}).flatten_um == 0
    with pytest.raises(InvalidInputError, match="flatten_um"):
        RegistrationParameters.from_dict({"flatten_um": -5.0})


@pytest.mark.parametrize("dtype", [np.float32, np.uint16])
def test_flattening_is_the_documented_normalised_convolution(template, dtype):
    ref, spacing = template
    img = (ref * smooth_field(ref.shape, 5) * 1000.0).astype(dtype)
    # the formula of the docstring, written out of place with scipy on the whole array
    a = img.astype(np.float64)
    b = np.percentile(a, 1.0)
    tissue = a > threshold_otsu(a)
    sigma = [1000.0 / s for s in spacing]
    num = ndi.gaussian_filter(np.where(tissue, a - b, 0.0), sigma, mode="constant")
    den = ndi.gaussian_filter(tissue.astype(np.float64), sigma, mode="constant")
    m = (a - b)[tissue].mean()
    expected = (a - b) / ((num + FLATTEN_PRIOR * m) / (den + FLATTEN_PRIOR))
    np.testing.assert_allclose(flatten_brightness(img, spacing, 1000.0), expected, rtol=1e-4, atol=1e-4)


def test_the_metric_mask_is_the_tissue_and_a_margin_in_micrometres():
    import SimpleITK as sitk

    shape, spacing = (40, 50, 60), (100.0, 80.0, 120.0)
    centre = np.array([20.0, 25.0, 30.0]) * spacing
    pos = (np.indices(shape).reshape(3, -1).T + 0.5) * spacing
    dist = np.linalg.norm(pos - centre, axis=1).reshape(shape)
    img = to_sitk(sitk, np.where(dist <= 1000.0, 1.0, 0.05).astype(np.float32), spacing)
    mask = sitk.GetArrayFromImage(metric_mask(sitk, img, 500.0)).astype(bool)
    # independent reference: the ball of 1000 + 500 um, up to a voxel at its edge
    assert np.all(mask[dist <= 1500.0 - 120.0]) and not np.any(mask[dist > 1500.0 + 120.0])
    assert metric_mask(sitk, img, float("inf")) is None


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), margin=st.floats(0.0, 900.0),
       spacing=st.tuples(*[st.sampled_from([40.0, 75.0, 100.0, 130.0])] * 3),
       shape=st.tuples(*[st.integers(6, 30)] * 3))
def test_the_metric_mask_matches_the_distance_transform_of_the_whole_grid(seed, margin, spacing, shape):
    import SimpleITK as sitk

    rng = np.random.default_rng(seed)
    tissue = ndi.gaussian_filter(rng.random(shape), 1.5) > 0.55  # blobs anywhere, touching the border or not
    tissue[tuple(rng.integers(0, n) for n in shape)] = True
    img = to_sitk(sitk, np.where(tissue, 1.0, 0.05).astype(np.float32), spacing)
    got = sitk.GetArrayFromImage(metric_mask(sitk, img, margin)).astype(bool)
    # independent reference: scipy's distance transform over the whole field of view
    ref = ndi.distance_transform_edt(~tissue, sampling=spacing) <= margin
    np.testing.assert_array_equal(got, ref)


def test_the_metric_samples_as_many_voxels_inside_the_mask_as_asked():
    import SimpleITK as sitk

    rng = np.random.default_rng(0)
    arr = ndi.gaussian_filter(rng.random((60, 60, 60)), 2).astype(np.float32)
    f_img = to_sitk(sitk, arr, (100.0,) * 3)
    m_img = to_sitk(sitk, np.roll(arr, 2, axis=0), (100.0,) * 3)
    inside = np.zeros(arr.shape, np.uint8)
    inside[10:40, 10:40, 10:40] = 1  # 12.5 % of the grid
    mask = sitk.GetImageFromArray(inside)
    mask.CopyInformation(f_img)
    params = RegistrationParameters(metric_samples=5000)
    counts = []
    for m in (None, mask):
        reg = registration_method(sitk, params, f_img, [1], m)
        reg.SetOptimizerAsRegularStepGradientDescent(1.0, 1e-4, 1)
        reg.SetInitialTransform(sitk.TranslationTransform(3))
        reg.AddCommand(sitk.sitkIterationEvent, lambda r=reg: counts.append(r.GetMetricNumberOfValidPoints()))
        reg.Execute(f_img, m_img)
    # about 5000 samples either way (some fall where the moved image is undefined); without raising the drawn
    # share by the mask's inverse share, only an eighth of them would land in the mask
    assert 4000 <= counts[0] <= 5200 and 4000 <= counts[-1] <= 5600, counts


def test_the_mask_margin_is_a_registration_parameter():
    assert RegistrationParameters().metric_mask_um == 500.0
    assert RegistrationParameters.from_dict({"metric_mask_um": float("inf")}).metric_mask_um == float("inf")
    with pytest.raises(InvalidInputError, match="metric_mask_um"):
        RegistrationParameters.from_dict({"metric_mask_um": -1.0})
