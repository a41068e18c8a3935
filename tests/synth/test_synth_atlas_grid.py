"""The synthetic atlas scan's grid paths agree with the point-by-point truth and the whole-volume artefacts."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage as ndi

from voxelflow.synth_atlas import make_synthetic_atlas, make_synthetic_scan
from voxelflow.synth_atlas.artefacts import lightsheet_artefacts
from voxelflow.synth_atlas.scan import _render


@pytest.fixture(scope="module")
def atlas():
    return make_synthetic_atlas(resolution=600.0)


def _truth_by_points(scan, shape, scale):
    """The reference: every grid voxel centre mapped through scan_to_atlas, floored, looked up."""
    idx = np.indices(tuple(shape)).reshape(3, -1).T
    vox = np.floor(scan.scan_to_atlas((idx + 0.5) * np.asarray(scale)) / np.asarray(scan.atlas.resolution))
    vox = vox.astype(np.int64)
    inside = np.all((vox >= 0) & (vox < np.asarray(scan.atlas.shape)), axis=1)
    lab = np.zeros(len(vox), scan.atlas.annotation.dtype)
    hem = np.zeros(len(vox), np.uint8)
    lab[inside] = scan.atlas.annotation[tuple(vox[inside].T)]
    hem[inside] = scan.atlas.hemispheres[tuple(vox[inside].T)]
    return lab.reshape(tuple(shape)), hem.reshape(tuple(shape))


def _artefacts_whole_volume(img, rng, noise):
    """The reference: the artefacts computed on the whole float64 volume at once, with ndi.zoom and
    binary_dilation (no slabs, no separable bias)."""
    shape = img.shape
    tissue_mean = float(img[img > 0].mean()) if (img > 0).any() else 1.0
    coarse = rng.uniform(0.6, 1.4, size=(3, 3, 3))
    bias = ndi.zoom(coarse, [n / 3 for n in shape], order=1, mode="nearest")[: shape[0], : shape[1], : shape[2]]
    img = img * bias
    tissue = img > 0.2 * tissue_mean
    for _ in range(6):
        p0 = np.array([rng.uniform(0, n) for n in shape])
        d = rng.standard_normal(3)
        d /= np.linalg.norm(d)
        t = np.arange(-max(shape), max(shape), 0.5)
        pts = np.round(p0 + t[:, None] * d).astype(int)
        pts = pts[np.all((pts >= 0) & (pts < shape), axis=1)]
        keep = tissue[tuple(pts.T)]
        vessel = np.zeros(shape, dtype=bool)
        vessel[tuple(pts[keep].T)] = True
        vessel = ndi.binary_dilation(vessel, iterations=1)
        img[vessel] += 0.6 * tissue_mean
    img *= rng.uniform(0.9, 1.1, size=shape[0])[:, None, None]
    stripes = 1 + 0.15 * (rng.random(shape[2]) < 0.08)[None, None, :].astype(np.float32)
    img *= ndi.gaussian_filter1d(stripes, 1.0, axis=2)
    img[:, shape[1] // 2:, :] *= rng.uniform(0.85, 1.15)
    img = img + 0.08 * tissue_mean
    img = rng.poisson(np.maximum(img, 0) / 4.0).astype(np.float32) * 4.0
    img += rng.normal(0, noise * tissue_mean, size=shape).astype(np.float32)
    return np.clip(img, 0, 65535).astype(np.uint16)


@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 50), coarse=st.sampled_from([1, 2, 3]), slab=st.sampled_from([500, 4_000_000]))
def test_truth_on_grid_matches_points(atlas, seed, coarse, slab):
    scan = make_synthetic_scan(atlas, seed=seed, factors=(2.0, 2.5, 3.0))
    shape = tuple(-(-n // coarse) for n in scan.image.shape)
    scale = tuple(coarse * s for s in scan.scale)
    lab, hem = scan.truth_on_grid(shape, scale, slab_voxels=slab)
    ref_lab, ref_hem = _truth_by_points(scan, shape, scale)
    assert (lab > 0).any() and set(np.unique(hem)) == {0, 1, 2}
    assert np.array_equal(lab, ref_lab)
    assert np.array_equal(hem, ref_hem)


def test_grid_transform_matches_points(atlas):
    scan = make_synthetic_scan(atlas, seed=7, orientation="ipl", factors=(2.0, 2.0, 2.0))
    shape = scan.frame_shape
    axes = [(np.arange(n) + 0.5) * s for n, s in zip(shape, scan.frame_scale)]
    grid = scan._frame_grid_to_atlas(axes)
    q = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    points = scan._frame_to_atlas(q)
    assert scan.max_displacement_vox > 1.0  # the deformation is there to get wrong
    np.testing.assert_allclose(grid.reshape(3, -1).T, points, rtol=0, atol=1e-9)


def test_render_matches_point_sampling(atlas):
    scan = make_synthetic_scan(atlas, seed=2, factors=(2.0, 2.0, 2.0))
    shape, fscale = scan.frame_shape, scan.frame_scale
    img = _render(scan, shape, fscale, slab_voxels=700)
    q = (np.indices(shape).reshape(3, -1).T + 0.5) * np.asarray(fscale)
    a = scan._frame_to_atlas(q) / np.asarray(atlas.resolution) - 0.5
    ref = ndi.map_coordinates(atlas.reference.astype(np.float32), a.T, order=1, mode="constant", cval=0.0)
    assert (img > 0).mean() > 0.2
    np.testing.assert_allclose(img, ref.reshape(shape), rtol=1e-6, atol=1e-3)


@pytest.mark.parametrize("slab", [1, 333, 4_000_000])
def test_artefacts_match_whole_volume(atlas, slab):
    scan = make_synthetic_scan(atlas, seed=4, factors=(2.0, 2.0, 2.0))
    img = _render(scan, scan.frame_shape, scan.frame_scale, slab_voxels=4_000_000)
    got = lightsheet_artefacts(img.copy(), scan.frame_scale, np.random.default_rng(9), 0.05, slab_voxels=slab)
    ref = _artefacts_whole_volume(img.copy(), np.random.default_rng(9), 0.05)
    assert got.dtype == np.uint16 and got.std() > 0
    assert np.array_equal(got, ref)
