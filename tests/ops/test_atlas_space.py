"""Atlas-space counting, lazily up-sampled labels and partial atlases, against whole-array references."""

import dataclasses
import tracemalloc

import dask
import dask.array as da
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage as ndi

from voxelflow.errors import InvalidInputError
from voxelflow.ops import assign_regions, count_by_region, region_volumes
from voxelflow.ops._atlas_map import registration_factors, upsample_labels
from voxelflow.ops._atlas_part import crop_atlas, detect_hemisphere, inverse_points
from voxelflow.ops._atlas_space import atlas_density_map, imaged_fraction, upsampled_label_volumes, value_at
from voxelflow.ops._resample import downsample
from voxelflow.synth_atlas import ATLAS_REGIONS, make_synthetic_atlas, make_synthetic_scan
from voxelflow.synth_atlas.scan import partial_atlas

IDS = np.array([0, 315, 477, 512, 1009])


@settings(max_examples=12, deadline=None)
@given(shape=st.tuples(*[st.integers(3, 23)] * 3), factors=st.tuples(*[st.integers(1, 4)] * 3),
       seed=st.integers(0, 100), chunk=st.integers(2, 9))
def test_volumes_of_lazily_upsampled_labels_equal_the_full_array(shape, factors, seed, chunk):
    coarse_shape = tuple(-(-n // f) for n, f in zip(shape, factors))
    coarse = np.random.default_rng(seed).choice(IDS, size=coarse_shape).astype(np.uint32)
    scale = (5.0, 2.0, 3.0)
    full = upsample_labels(da.from_array(coarse, chunks=chunk), factors, shape).compute()
    reference = region_volumes(full, scale)
    got = upsampled_label_volumes(coarse, factors, shape, scale)
    pd.testing.assert_series_equal(got.sort_index(), reference.sort_index(), check_names=False, check_index_type=False)


def _peak_bytes(fn):
    """Result of ``fn()`` and the peak of memory traced while it ran (numpy arrays included)."""
    tracemalloc.start()
    try:
        out = fn()
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_region_assignment_on_lazy_labels_equals_the_eager_path_without_a_full_size_array():
    shape, factors = (128, 192, 256), (4, 4, 4)
    rng = np.random.default_rng(3)
    coarse = rng.choice(IDS, size=tuple(n // f for n, f in zip(shape, factors))).astype(np.uint32)
    lazy = upsample_labels(da.from_array(coarse, chunks=8), factors, shape, chunks=(32, 32, 32))
    # objects in every chunk: the worst case for the lazy path
    lc = pd.DataFrame(rng.uniform(-0.5, np.asarray(shape) - 0.5, size=(400, 3)), columns=["z", "y", "x"])
    scale = (5.0, 2.0, 2.0)
    full_bytes = int(np.prod(shape)) * coarse.itemsize
    with dask.config.set(scheduler="synchronous"):
        assign_regions(lc.iloc[:3], lazy, scale, scale)  # imports and caches of a first call are not counted
        got, peak = _peak_bytes(lambda: assign_regions(lc, lazy, scale, scale, image_shape=shape,
                                                       block_bytes=full_bytes // 32))
        volumes, peak_volumes = _peak_bytes(lambda: upsampled_label_volumes(coarse, factors, shape, scale))
    assert peak < full_bytes / 8, (peak, full_bytes)
    assert peak_volumes < full_bytes / 8, (peak_volumes, full_bytes)  # it reads the coarse grid only
    eager, eager_peak = _peak_bytes(lambda: np.asarray(lazy))
    assert eager_peak >= full_bytes  # the measure sees a full-size array when there is one
    pd.testing.assert_series_equal(got, assign_regions(lc, eager, scale, scale, image_shape=shape))
    counted = count_by_region(lc.assign(region_id=got.to_numpy()), lazy, scale, ATLAS_REGIONS, unknown="ignore",
                              volumes=volumes)
    reference = count_by_region(lc.assign(region_id=got.to_numpy()), eager, scale, ATLAS_REGIONS, unknown="ignore")
    pd.testing.assert_frame_equal(counted, reference)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 1000), block=st.sampled_from([None, 40.0, 55.0]), n=st.integers(0, 60),
       sigma=st.sampled_from([0.0, 30.0]))
def test_atlas_density_map_matches_a_histogram(seed, block, n, sigma):
    rng = np.random.default_rng(seed)
    shape, res = (7, 9, 6), (20.0, 20.0, 25.0)
    extent = np.asarray(shape) * np.asarray(res)
    pts = rng.uniform(-30, extent + 30, size=(n, 3))
    coverage = np.zeros(shape, bool)
    coverage[:4] = True
    got = atlas_density_map(pts, shape, res, block, coverage, sigma)
    b = np.asarray(res) if block is None else np.full(3, block)
    grid = np.ceil(extent / b - 1e-9).astype(int)
    inside = np.all((pts >= 0) & (pts < extent), axis=1)
    counts, _ = np.histogramdd(pts[inside], bins=[np.arange(g + 1) * s for g, s in zip(grid, b)])
    if sigma:
        counts = ndi.gaussian_filter(counts, sigma / b, mode="constant")
    # a block is imaged when the centre of one imaged atlas voxel lies in it
    centres_z = (np.arange(shape[0]) + 0.5) * res[0]
    last_imaged_block = int(np.floor(centres_z[3] / b[0]))
    assert got.shape == tuple(grid)
    assert np.isnan(got[last_imaged_block + 1:]).all()
    np.testing.assert_allclose(got[: last_imaged_block + 1], counts[: last_imaged_block + 1], rtol=1e-5, atol=1e-6)


def test_imaged_fraction_rolls_up_the_hierarchy():
    ann = np.zeros((4, 4, 4), np.uint32)
    ann[:2] = 315
    ann[2:] = 1089
    coverage = np.zeros(ann.shape, bool)
    coverage[:3] = True  # all of 315, half of 1089
    frac = imaged_fraction(ann, coverage, ATLAS_REGIONS).to_dict()
    assert frac[315] == 1.0 and frac[1089] == 0.5 and frac[688] == 0.75 and np.isnan(frac[512])


def test_crop_atlas_keeps_voxel_centres_in_the_box_and_blanks_the_other_hemisphere():
    atlas = make_synthetic_atlas(resolution=600.0)
    cut, part = crop_atlas(atlas, [0, 3000, 600, 4000, 0, 1e6])
    # voxel i is kept when (i + 0.5) * 600 lies in [lo, hi)
    assert part.origin == (0, 1, 0) and part.shape == (5, 6, atlas.shape[2])
    np.testing.assert_array_equal(cut.annotation, atlas.annotation[:5, 1:7])
    # a slanted midline, so the bounding box of the left side holds right-side voxels
    z, _, x = np.indices(atlas.shape)
    slanted = np.where(x + 0.3 * z > atlas.shape[2] / 2, 1, 2).astype(np.uint8) * (atlas.annotation != 0)
    atlas = dataclasses.replace(atlas, hemispheres=slanted)
    left, part = crop_atlas(atlas, side="left")
    assert set(np.unique(left.hemispheres)) == {0, 1}
    assert (left.hemispheres == 1).sum() == (atlas.hemispheres == 1).sum()  # all of the left side is kept
    right = atlas.hemispheres[part.slices()] == 2
    assert right.any() and (left.reference[right] == 0).all() and (left.annotation[right] == 0).all()
    with pytest.raises(InvalidInputError, match="crop box"):
        crop_atlas(atlas, [0, 10, 5, 1, 0, 10])
    with pytest.raises(InvalidInputError, match="smaller than 4 voxels"):
        crop_atlas(atlas, [0, 600, 0, 1e6, 0, 1e6])


def test_inverse_points_undo_the_registration_transform():
    sitk = pytest.importorskip("SimpleITK")
    from voxelflow.ops._register import Registration, transform_points

    shape, spacing = (20, 16, 18), (50.0, 40.0, 45.0)
    affine = sitk.AffineTransform(3)
    affine.SetMatrix((1.05, 0.1, 0.0, -0.08, 0.95, 0.05, 0.02, 0.0, 1.1))
    affine.SetTranslation((30.0, -20.0, 15.0))
    affine.SetCenter((400.0, 300.0, 500.0))
    ref = sitk.Image([18, 16, 20], sitk.sitkUInt8)
    ref.SetSpacing((45.0, 40.0, 50.0))
    ref.SetOrigin((22.5, 20.0, 25.0))
    bspline = sitk.BSplineTransformInitializer(ref, [3, 3, 3], order=3)
    params = np.random.default_rng(0).normal(0, 40.0, len(bspline.GetParameters()))
    bspline.SetParameters(tuple(float(p) for p in params))
    reg = Registration(affine, bspline, shape, spacing, shape, spacing)
    q = np.random.default_rng(1).uniform(0.2, 0.8, size=(200, 3)) * np.asarray(shape) * np.asarray(spacing)
    back = inverse_points(transform_points(q, reg), reg)
    assert np.abs(back - q).max() < 0.05 * min(spacing)


@pytest.mark.parametrize("side, orientation, seed", [("whole", "ial", 6), ("left", "psl", 4), ("right", "asr", 5),
                                                     ("left", "rsp", 7)])
def test_detect_hemisphere_on_synthetic_scans(side, orientation, seed):
    atlas = make_synthetic_atlas(resolution=400.0)
    shown, box = (atlas, None) if side == "whole" else partial_atlas(atlas, None, side)
    scan = make_synthetic_scan(shown, seed=seed, orientation=orientation, factors=(2.0, 2.0, 2.0), box_um=box)
    f = registration_factors(scan.scale, orientation, atlas.resolution, atlas.orientation)
    coarse = np.asarray(downsample(scan.image, f, method="mean"))
    assert detect_hemisphere(coarse, tuple(s * k for s, k in zip(scan.scale, f)), orientation, atlas) == side


@settings(max_examples=25, deadline=None)
@given(shape=st.tuples(*[st.integers(1, 9)] * 3), res=st.tuples(*[st.sampled_from([10.0, 25.0, 7.5])] * 3),
       seed=st.integers(0, 1000), clip=st.booleans())
def test_value_at_is_the_voxel_whose_box_holds_the_point(shape, res, seed, clip):
    rng = np.random.default_rng(seed)
    image = rng.integers(1, 50, size=shape)
    extent = np.asarray(shape) * np.asarray(res)
    pts = rng.uniform(-0.5, 1.5, size=(40, 3)) * extent
    pts[:5] = np.floor(pts[:5] / res) * res  # exactly on voxel edges
    pts[5, 1] = np.nan
    got = value_at(pts, image, res, clip=clip)
    expected = np.zeros(len(pts), dtype=np.int64)
    for n, p in enumerate(pts):
        if not np.all(np.isfinite(p)):
            continue
        # the box [i r, (i + 1) r) holding p along each axis: edges at or below p, minus one
        idx = [int(np.searchsorted(np.arange(m + 1) * r, q, side="right")) - 1 for m, r, q in zip(shape, res, p)]
        if clip:
            idx = [min(max(i, 0), m - 1) for i, m in zip(idx, shape)]
        if all(0 <= i < m for i, m in zip(idx, shape)):
            expected[n] = image[tuple(idx)]
    np.testing.assert_array_equal(got, expected)


def test_value_at_refuses_a_wrong_image():
    with pytest.raises(InvalidInputError, match="3-D image"):
        value_at(np.zeros((1, 3)), np.zeros((4, 4)), (1.0, 1.0, 1.0))
