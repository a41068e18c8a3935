"""Registration on a small synthetic pair with known truth; QC, failures and transform files."""

import dask.array as da
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import ndimage as ndi

from voxelflow.errors import InvalidInputError, RegistrationError
from voxelflow.io.blockreduce import block_reduce
from voxelflow.io.registration_files import read_registration, write_registration
from voxelflow.ops._atlas_map import ScanAtlasMap, register_scan, registration_factors, upsample_labels
from voxelflow.ops._register import (
    DIVERGENCE_TOLERANCE,
    Registration,
    RegistrationParameters,
    check_registration,
    jacobian_determinant,
    jacobian_on_grid,
    register,
    transform_points,
)
from voxelflow.ops._register_images import working_factors, working_image
from voxelflow.ops._register_params import level_factors
from voxelflow.synth_atlas import dice_per_region, make_synthetic_atlas, make_synthetic_scan

pytest.importorskip("SimpleITK")

# a 300 um atlas works on 300 um voxels: the metric margin is widened to five of them (metric_mask_um)
FAST = RegistrationParameters(affine_iterations=120, deformable_iterations=15, affine_levels_um=(600.0, 300.0),
                              deformable_levels_um=(600.0, 300.0), metric_mask_um=1500.0)


@pytest.fixture(scope="module")
def pair():
    atlas = make_synthetic_atlas(resolution=300.0)
    scan = make_synthetic_scan(atlas, seed=3, orientation="psl", factors=(2.0, 2.5, 2.5))
    f = registration_factors(scan.scale, scan.orientation, atlas.resolution, atlas.orientation)
    coarse = block_reduce(da.from_array(scan.image, chunks=32), f, "mean").compute()
    cscale = tuple(s * k for s, k in zip(scan.scale, f))
    mapping = register_scan(coarse, cscale, scan.orientation, atlas, FAST)
    return atlas, scan, coarse, cscale, f, mapping


def test_registration_recovers_the_known_transform(pair):
    atlas, scan, coarse, cscale, f, mapping = pair
    truth, truth_hemi = scan.truth_on_grid(coarse.shape, cscale)
    warped = mapping.labels_to_scan(atlas.annotation)
    dice = dice_per_region(truth, warped)
    big = dice[dice.voxels >= 300]
    assert len(big) >= 6
    assert big.dice.mean() >= 0.85, dice
    # the start (centres of mass matched) is far worse: the test can fail
    assert mapping.registration.qc["metric_final"] < mapping.registration.qc["metric_start"]
    brain = truth > 0
    hemi = mapping.labels_to_scan(atlas.hemispheres)
    assert (hemi[brain] == truth_hemi[brain]).mean() >= 0.97
    rng = np.random.default_rng(1)
    inside = np.argwhere(brain)
    pts = (inside[rng.choice(len(inside), 300)] + rng.uniform(0, 1, (300, 3))) * np.asarray(cscale)
    err = np.linalg.norm(mapping.scan_to_atlas(pts) - scan.scan_to_atlas(pts), axis=1) / atlas.resolution[0]
    assert err.mean() <= 1.0, err.mean()


def test_points_agree_with_the_warped_images(pair):
    atlas, scan, coarse, cscale, f, mapping = pair
    # atlas coordinate images, warped like any image, must hold where the points go
    grids = np.indices(atlas.shape).astype(np.float32)
    centres = (np.indices(coarse.shape).reshape(3, -1).T + 0.5) * np.asarray(cscale)
    mapped = mapping.scan_to_atlas(centres)
    res = np.asarray(atlas.resolution)
    for axis in range(3):
        coord_um = (grids[axis] + 0.5) * res[axis]
        warped = mapping.image_to_scan(coord_um).reshape(-1)
        inner = warped > 2 * res[axis]  # away from the zero fill outside the atlas box
        inner &= np.all((mapped > 2 * res) & (mapped < (np.asarray(atlas.shape) - 2) * res), axis=1)
        assert np.abs(warped[inner] - mapped[inner, axis]).max() <= 0.5 * res[axis]
    labels = mapping.labels_to_scan(atlas.annotation).reshape(-1)
    vox = np.floor(mapped / res).astype(int)
    ok = np.all((vox >= 0) & (vox < atlas.shape), axis=1)
    agree = atlas.annotation[tuple(vox[ok].T)] == labels[ok]
    assert agree.mean() >= 0.99


def test_labels_of_a_larger_atlas_are_read_where_the_registered_part_sits(pair):
    """A registration to a part of an atlas reads the whole atlas at the part's origin: the same labels
    inside the part, and the atlas's own labels (not 0) where points leave the part."""
    atlas, scan, coarse, cscale, f, mapping = pair
    origin, after = (3, 5, 2), (4, 1, 6)
    whole = np.pad(atlas.annotation.astype(np.int32), list(zip(origin, after)), constant_values=9999)
    part_only = mapping.labels_to_scan(atlas.annotation)
    placed = mapping.labels_to_scan(whole, origin_vox=origin)
    inside_part = part_only != 0
    np.testing.assert_array_equal(placed[inside_part], part_only[inside_part])
    # where the points leave the part but stay in the larger image, the padding's value is read
    centres = (np.indices(coarse.shape).reshape(3, -1).T + 0.5) * np.asarray(cscale)
    vox = np.floor(mapping.scan_to_atlas(centres) / np.asarray(atlas.resolution)).astype(int)
    beyond = np.any((vox < 0) | (vox >= atlas.shape), axis=1)
    in_whole = np.all((vox + origin >= 0) & (vox + origin < whole.shape), axis=1)
    assert (beyond & in_whole).sum() > 50
    got = placed.reshape(-1)[beyond & in_whole]  # centres are in the grid's (scan) order
    assert (got == 9999).mean() >= 0.95  # up to the half-voxel rounding of nearest neighbour at the part edge


def test_transform_files_round_trip(pair, tmp_path):
    atlas, scan, coarse, cscale, f, mapping = pair
    write_registration(tmp_path / "reg", mapping.registration.affine, mapping.registration.deformable,
                       mapping.to_meta())
    affine, deformable, meta = read_registration(tmp_path / "reg")
    back = ScanAtlasMap.from_parts(affine, deformable, meta)
    pts = np.random.default_rng(2).uniform(0, 5000, (50, 3))
    np.testing.assert_allclose(back.scan_to_atlas(pts), mapping.scan_to_atlas(pts), atol=1e-6)
    np.testing.assert_array_equal(back.labels_to_scan(atlas.annotation), mapping.labels_to_scan(atlas.annotation))
    assert back.registration.qc == mapping.registration.qc
    import SimpleITK as sitk  # the files are plain ITK transforms

    assert sitk.ReadTransform(str(tmp_path / "reg" / "deformable.tfm")).GetNumberOfParameters() > 0
    assert meta["deformable"] is True
    # written again without its B-spline, the folder holds no stale deformable.tfm
    write_registration(tmp_path / "reg", mapping.registration.affine, None, mapping.to_meta())
    assert read_registration(tmp_path / "reg")[1] is None and not (tmp_path / "reg" / "deformable.tfm").exists()


def test_upsampled_labels_are_the_block_they_were_reduced_into():
    rng = np.random.default_rng(0)
    shape, f = (13, 10, 17), (3, 2, 4)
    coarse = rng.integers(0, 50, tuple(-(-n // k) for n, k in zip(shape, f))).astype(np.uint32)
    up = upsample_labels(da.from_array(coarse, chunks=2), f, shape, chunks=(5, 4, 6))
    expect = coarse
    for axis, k in enumerate(f):
        expect = np.repeat(expect, k, axis=axis)
    np.testing.assert_array_equal(up.compute(), expect[: shape[0], : shape[1], : shape[2]])
    with pytest.raises(InvalidInputError, match="do not fit"):
        upsample_labels(coarse, f, (20, 10, 17))


@given(shape=st.tuples(*[st.integers(1, 12)] * 3), f=st.tuples(*[st.integers(1, 4)] * 3),
       chunks=st.integers(1, 7))
def test_upsampling_any_chunking(shape, f, chunks):
    coarse = np.arange(np.prod([-(-n // k) for n, k in zip(shape, f)]), dtype=np.int64).reshape(
        tuple(-(-n // k) for n, k in zip(shape, f)))
    got = upsample_labels(coarse, f, shape, chunks=chunks).compute()
    idx = np.ix_(*[np.arange(n) // k for n, k in zip(shape, f)])
    np.testing.assert_array_equal(got, coarse[idx])


def folded(pair):
    """A copy of the registration whose B-spline coefficients fold space."""
    import SimpleITK as sitk

    reg = pair[-1].registration
    bs = sitk.BSplineTransform(reg.deformable)
    params = np.asarray(bs.GetParameters())
    rng = np.random.default_rng(0)
    bs.SetParameters(tuple(params + rng.normal(0, 20000.0, params.shape)))
    return Registration(reg.affine, bs, reg.fixed_shape, reg.fixed_spacing, reg.moving_shape, reg.moving_spacing,
                        dict(reg.qc), dict(reg.parameters))


def test_jacobian_matches_finite_differences_and_folding_is_caught(pair):
    bad = folded(pair)
    det = jacobian_determinant(bad)
    # independent reference: numpy gradient of the mapped voxel centres
    shape, sp = bad.fixed_shape, np.asarray(bad.fixed_spacing)
    centres = (np.indices(shape).reshape(3, -1).T + 0.5) * sp
    mapped = transform_points(centres, bad).reshape(*shape, 3)
    jac = np.stack([np.stack(np.gradient(mapped[..., i], *sp), axis=-1) for i in range(3)], axis=-2)
    ref = np.linalg.det(jac[2:-2, 2:-2, 2:-2])
    inner = det[2:-2, 2:-2, 2:-2]
    assert np.corrcoef(ref.ravel(), inner.ravel())[0, 1] > 0.9
    assert ((ref <= 0) == (inner <= 0)).mean() > 0.9
    folded_fraction = float((det <= 0).mean())
    assert folded_fraction > 0.01
    bad.qc.update(folded_fraction=folded_fraction, jacobian_min=float(det.min()), jacobian_max=float(det.max()))
    with pytest.raises(RegistrationError, match="folds") as info:
        check_registration(bad)
    assert info.value.result is bad


@pytest.mark.parametrize("planes", [1, 3, 7])
def test_the_jacobian_made_slab_by_slab_is_the_whole_grids(pair, planes):
    bad = folded(pair)
    shape = bad.fixed_shape
    whole = jacobian_on_grid(bad.transform(), shape, bad.fixed_spacing, slab_voxels=int(np.prod(shape)))
    slabs = jacobian_on_grid(bad.transform(), shape, bad.fixed_spacing, slab_voxels=planes * shape[1] * shape[2])
    assert (whole <= 0).any() and (whole > 0).any()
    np.testing.assert_array_equal(slabs, whole)


def test_divergence_is_caught(pair):
    reg = pair[-1].registration
    start, affine = reg.qc["metric_start"], reg.qc["metric_affine"]
    beyond = 1.01 * DIVERGENCE_TOLERANCE
    worse = Registration(reg.affine, reg.deformable, reg.fixed_shape, reg.fixed_spacing, reg.moving_shape,
                         reg.moving_spacing, dict(reg.qc, metric_final=affine + beyond * abs(affine)), reg.parameters)
    with pytest.raises(RegistrationError, match="deformable registration diverged"):
        check_registration(worse)
    worse.qc.update(metric_affine=start + beyond * abs(start))
    with pytest.raises(RegistrationError, match="affine registration diverged"):
        check_registration(worse)
    # within the tolerance a stage may end a little worse on the QC metric (see DIVERGENCE_TOLERANCE)
    within = 0.99 * DIVERGENCE_TOLERANCE
    worse.qc.update(metric_affine=start + within * abs(start), metric_final=start + within * abs(start))
    check_registration(worse)


def test_empty_channel_is_a_clear_error(pair):
    atlas = pair[0]
    with pytest.raises(RegistrationError, match="no contrast"):
        register(np.zeros((20, 20, 20), np.uint16), atlas.reference, (300.0,) * 3, atlas.resolution, FAST)
    with pytest.raises(InvalidInputError, match="3-D"):
        register(np.zeros((20, 20), np.uint16), atlas.reference, (300.0,) * 3, atlas.resolution, FAST)


def test_parameters_from_a_config_table():
    p = RegistrationParameters.from_dict({"grid_spacing_um": 1500, "affine_levels_um": [800, 400, 200]})
    assert p.grid_spacing_um == 1500 and p.affine_levels_um == (800.0, 400.0, 200.0)
    with pytest.raises(InvalidInputError, match="unknown registration parameters"):
        RegistrationParameters.from_dict({"grid_spacing": 1})
    with pytest.raises(InvalidInputError, match="metric_samples"):
        RegistrationParameters.from_dict({"metric_samples": 0})
    with pytest.raises(InvalidInputError, match="coarse to fine"):
        RegistrationParameters.from_dict({"deformable_levels_um": [100, 400]})
    with pytest.raises(InvalidInputError, match="positive voxel sizes"):
        RegistrationParameters.from_dict({"affine_levels_um": []})


def test_level_factors_follow_the_voxel_size():
    # 25 um images: the levels 800, 400, 200 um are factors 32, 16, 8; 200 um images: 4, 2, 1
    assert level_factors((800.0, 400.0, 200.0), (25.0, 25.0, 25.0)) == [32, 16, 8]
    assert level_factors((800.0, 400.0, 200.0), (200.0, 200.0, 200.0)) == [4, 2, 1]
    # levels finer than the images collapse onto factor 1, once
    assert level_factors((400.0, 200.0, 100.0), (300.0, 300.0, 300.0)) == [1]
    assert working_factors((25.0, 50.0, 300.0), 100.0) == (4, 2, 1)


def test_block_averaged_working_image_keeps_the_physical_frame():
    import SimpleITK as sitk

    rng = np.random.default_rng(5)
    arr = ndi.gaussian_filter(rng.random((35, 32, 39)), 2).astype(np.float32)
    spacing = (20.0, 25.0, 30.0)  # towards 100 um: blocks of 5, 4, 3 voxels
    img = working_image(sitk, arr, spacing, 100.0, "test image")
    assert img.GetSpacing() == (90.0, 100.0, 100.0)  # x y z
    # block j spans [j k s, (j + 1) k s): its centre is at half a block, the frame is unchanged
    assert img.GetOrigin() == (45.0, 50.0, 50.0)
    # independent reference: numpy block means, scaled between their 0.5th and 99.5th percentiles
    ref = arr.reshape(7, 5, 8, 4, 13, 3).mean(axis=(1, 3, 5))
    lo, hi = np.percentile(ref, [0.5, 99.5])
    np.testing.assert_allclose(sitk.GetArrayFromImage(img), np.clip((ref - lo) / (hi - lo), 0, 1), atol=1e-5)


def test_a_finer_input_gives_the_same_registration(pair):
    atlas, scan, coarse, cscale, f, mapping = pair
    params = RegistrationParameters(affine_iterations=30, affine_levels_um=(600.0, 300.0), deformable=False)
    fixed = np.ascontiguousarray(coarse[:, : coarse.shape[1] // 2 * 2])
    base = register(fixed, atlas.reference, cscale, atlas.resolution, params, check=False)
    # every voxel split in 2 x 2 x 2 at half the size: block averaging gives the same working image back
    fine = np.repeat(np.repeat(np.repeat(fixed, 2, 0), 2, 1), 2, 2)
    again = register(fine, atlas.reference, tuple(s / 2 for s in cscale), atlas.resolution, params, check=False)
    assert again.qc["working_spacing_um"] == base.qc["working_spacing_um"]
    np.testing.assert_allclose(again.affine.GetParameters(), base.affine.GetParameters(), rtol=1e-9, atol=1e-6)
    assert again.fixed_shape == fine.shape


def test_points_follow_the_spline_itself(pair):
    reg = pair[-1].registration
    rng = np.random.default_rng(3)
    sp = np.asarray(reg.fixed_spacing)
    pts = (rng.uniform(0.5, np.asarray(reg.fixed_shape) - 0.5, (200, 3))) * sp  # between the first and last centres
    full = reg.transform()
    # independent reference: SimpleITK evaluates the composite transform point by point (x, y, z order)
    ref = np.array([full.TransformPoint(tuple(float(v) for v in p[::-1]))[::-1] for p in pts])
    got = transform_points(pts, reg)
    assert np.abs(got - ref).max() < 0.05 * min(reg.fixed_spacing)


def test_an_implausible_rotation_is_caught(pair):
    import SimpleITK as sitk

    reg = pair[-1].registration
    assert reg.qc["rotation_deg"] < 30
    turned = sitk.AffineTransform(reg.affine)
    turned.SetMatrix((0.0, 0.0, 1.0, 0.0, 1.0, 0.0, -1.0, 0.0, 0.0))  # 90 degrees about y
    bad = Registration(turned, reg.deformable, reg.fixed_shape, reg.fixed_spacing, reg.moving_shape,
                       reg.moving_spacing, dict(reg.qc, rotation_deg=90.0), reg.parameters)
    with pytest.raises(RegistrationError, match="rotates the atlas by 90 degrees"):
        check_registration(bad)
