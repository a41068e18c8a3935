"""Registration on a finer copy of the scan (``detail``) when the coarse grid is coarser than the finest level."""

import dask.array as da
import numpy as np
import pytest

from voxelflow.errors import InvalidInputError
from voxelflow.io.blockreduce import block_reduce
from voxelflow.ops._atlas_map import _detail_in_frame, detail_factors, register_scan, registration_factors
from voxelflow.ops._orientation import reorient_scale, reorient_volume
from voxelflow.ops._register import RegistrationParameters
from voxelflow.ops._register_params import finest_level_um
from voxelflow.synth_atlas import make_synthetic_atlas, make_synthetic_scan

pytest.importorskip("SimpleITK")

# finest level 150 um on a 300 um atlas: the coarse grid (about 300 um) is coarser than it
# (the metric margin is five voxels of the 300 um grid, as for any atlas this coarse: metric_mask_um)
FAST = RegistrationParameters(affine_iterations=120, deformable_iterations=15, affine_levels_um=(600.0, 300.0),
                              deformable_levels_um=(600.0, 300.0, 150.0), metric_mask_um=1500.0)


def test_detail_factors_reach_the_finest_level_never_coarser_than_the_grid():
    # 66 x 83 x 78 um scan voxels, a 200 um atlas (factors 3, 2, 3): working at 100 um (half an atlas voxel)
    assert detail_factors((66.3, 83.0, 77.9), (3, 2, 3), 200.0) == (2, 1, 1)
    # 45 um voxels: blocks of 2 reach 90 um
    assert detail_factors((45.0, 45.0, 45.0), (5, 5, 5), 200.0) == (2, 2, 2)
    # a 100 um atlas: the default 50 um level is used, so 20 um voxels are averaged in blocks of 2 (40 um)
    assert detail_factors((20.0, 20.0, 20.0), (5, 5, 5), 100.0) == (2, 2, 2)
    # the coarse grid already resolves the finest level (a 50 um atlas): nothing finer
    assert detail_factors((25.0, 25.0, 25.0), (2, 2, 2), 50.0) is None
    # one axis coarser than the level, the others not: only that axis is refined
    assert detail_factors((20.0, 20.0, 50.0), (3, 4, 4), 200.0) == (3, 4, 2)
    # affine only: the last affine level (200 um) is the finest, and the coarse grid resolves it
    affine_only = RegistrationParameters(deformable=False)
    assert detail_factors((66.3, 83.0, 77.9), (3, 2, 3), 200.0, affine_only) is None
    assert detail_factors((40.0, 40.0, 40.0), (8, 8, 8), 300.0, affine_only) == (5, 5, 5)


def test_registration_works_no_finer_than_half_an_atlas_voxel():
    default = RegistrationParameters()
    assert finest_level_um(default, 25.0) == 50.0  # the finest level
    assert finest_level_um(default, 50.0) == 50.0
    assert finest_level_um(default, 100.0) == 50.0
    assert finest_level_um(default, 200.0) == 100.0  # half the atlas voxel: the 50 um level is not used
    assert finest_level_um(RegistrationParameters(deformable=False), 25.0) == 200.0  # the last affine level


@pytest.mark.parametrize("orientation", ["psl", "rai", "asr"])
def test_detail_lands_in_the_coarse_frame(orientation):
    # scan axes not multiples of the factors: the coarse and detail grids end at different places,
    # so a flipped axis puts the detail grid's corner off the coarse frame's origin
    rng = np.random.default_rng(4)
    scan = rng.random((37, 29, 41)).astype(np.float32)
    scale = (30.0, 40.0, 25.0)
    f, fd = (4, 4, 6), (2, 2, 3)
    coarse = block_reduce(da.from_array(scan, chunks=16), f, "mean").compute()
    detail = block_reduce(da.from_array(scan, chunks=16), fd, "mean").compute()
    cscale = tuple(s * k for s, k in zip(scale, f))
    image, spacing, offset = _detail_in_frame(detail, tuple(s * k for s, k in zip(scale, fd)), orientation, "asr",
                                              coarse.shape, cscale)
    fixed = reorient_volume(coarse, orientation, "asr")
    fixed_scale = np.asarray(reorient_scale(cscale, orientation, "asr"))
    # independent reference: every detail voxel centre, placed by the offset, falls into the coarse voxel whose
    # block it was averaged from; the mean of the detail voxels of each full coarse block is that voxel
    idx = np.indices(image.shape).reshape(3, -1).T
    centres = np.asarray(offset) + (idx + 0.5) * np.asarray(spacing)
    owner = np.floor(centres / fixed_scale).astype(int)
    inside = np.all((owner >= 0) & (owner < fixed.shape), axis=1)
    assert inside.mean() > 0.8
    flat = np.ravel_multi_index(tuple(owner[inside].T), fixed.shape)
    sums = np.bincount(flat, weights=image.reshape(-1)[inside], minlength=fixed.size)
    counts = np.bincount(flat, minlength=fixed.size)
    # blocks of 2 x 2 x 2 detail voxels, away from the grid faces (where blocks can be partial)
    interior = np.zeros(fixed.shape, bool)
    interior[1:-1, 1:-1, 1:-1] = True
    full = (counts == 8) & interior.reshape(-1)
    assert full.sum() > 50
    np.testing.assert_allclose(sums[full] / 8, fixed.reshape(-1)[full], rtol=1e-5, atol=1e-6)


def test_detail_needs_its_scale():
    with pytest.raises(InvalidInputError, match="detail_scale"):
        _detail_in_frame(np.zeros((8, 8, 8)), None, "psl", "asr", (4, 4, 4), (2.0, 2.0, 2.0))


@pytest.fixture(scope="module")
def shifted_pair():
    """A pair whose truth is a pure shift (no rotation, scaling or deformation): a known midline position."""
    atlas = make_synthetic_atlas(resolution=300.0)
    scan = make_synthetic_scan(atlas, seed=7, orientation="psl", factors=(2.2, 2.6, 2.6), max_rotation_deg=0.0,
                               scale_range=(1.0, 1.0), max_deformation_vox=0.0)
    f = registration_factors(scan.scale, scan.orientation, atlas.resolution, atlas.orientation)
    fd = detail_factors(scan.scale, f, min(atlas.resolution), FAST)
    coarse = block_reduce(da.from_array(scan.image, chunks=32), f, "mean").compute()
    detail = block_reduce(da.from_array(scan.image, chunks=32), fd, "mean").compute()
    cscale = tuple(s * k for s, k in zip(scan.scale, f))
    dscale = tuple(s * k for s, k in zip(scan.scale, fd))
    mapping = register_scan(coarse, cscale, scan.orientation, atlas, FAST, detail=detail, detail_scale=dscale)
    return atlas, scan, coarse, cscale, f, fd, mapping


def test_registration_on_the_detail_finds_the_planted_midline(shifted_pair):
    atlas, scan, coarse, cscale, f, fd, mapping = shifted_pair
    assert any(a < b for a, b in zip(fd, f))  # the detail grid is finer: the path under test ran
    # psl: axes 1 (s -> i) and 2 (l -> r) are flipped relative to the atlas; the grids end at different places
    assert any(np.ceil(n / a) * a != np.ceil(n / b) * b for n, a, b in zip(scan.image.shape, f, fd))
    qc = mapping.registration.qc
    assert qc["optimised_spacing_um"] != qc["working_spacing_um"]
    # a mapping of the coarse grid: labels on it, points from its frame
    assert mapping.labels_to_scan(atlas.annotation).shape == coarse.shape
    truth, truth_hemi = scan.truth_on_grid(coarse.shape, cscale)
    brain = truth > 0
    centres = (np.argwhere(brain) + 0.5) * np.asarray(cscale)
    err = (mapping.scan_to_atlas(centres) - scan.scan_to_atlas(centres)) / atlas.resolution[0]
    true_lr = scan.scan_to_atlas(centres)[:, 2] / atlas.resolution[0]
    near = np.abs(true_lr - atlas.shape[2] / 2) < 2  # within 2 atlas voxels of the midline
    # a detail grid placed without its offset would be off by up to a coarse block on the flipped axes
    assert abs(err[near, 2].mean()) <= 0.25, err[near, 2].mean()
    assert np.linalg.norm(err, axis=1).mean() <= 0.5
    hemi = mapping.hemispheres_to_scan(atlas.hemispheres)
    assert (hemi[brain] == truth_hemi[brain]).mean() >= 0.98
