"""The synthetic cell crops: planted truth, two channels, brightness steps, border cells, scoring."""

import numpy as np
import pytest

from voxelflow.errors import InvalidInputError
from voxelflow.ops import assign_regions
from voxelflow.synth_cells import CELL_REGIONS, make_synthetic_cells, score_cells


@pytest.fixture(scope="module")
def crop():
    return make_synthetic_cells(shape=(24, 160, 160), seed=3)


def test_same_seed_same_crop_other_seed_other_crop(crop):
    again = make_synthetic_cells(shape=(24, 160, 160), seed=3)
    assert np.array_equal(again.image, crop.image) and again.truth.equals(crop.truth)
    other = make_synthetic_cells(shape=(24, 160, 160), seed=4)
    assert not np.array_equal(other.image, crop.image)


def test_cells_shine_in_the_signal_channel_only(crop):
    t = crop.truth[crop.truth.inside & ~crop.truth.cut_by_border]
    idx = tuple(np.rint(t[["z", "y", "x"]].to_numpy()).astype(int).T)
    sig, bg = crop.image.astype(float), crop.background.astype(float)
    tissue = crop.tissue
    # at the centres the signal is well above the tissue median of its plane; the background channel is not
    plane_sig = np.array([np.median(sig[z][tissue[z]]) for z in range(sig.shape[0])])
    plane_bg = np.array([np.median(bg[z][tissue[z]]) for z in range(bg.shape[0])])
    assert np.median(sig[idx] / plane_sig[idx[0]]) > 1.8
    assert np.median(bg[idx] / plane_bg[idx[0]]) == pytest.approx(1.0, abs=0.15)


def test_autofluorescence_is_in_both_channels(crop):
    sig, bg = crop.image.astype(float), crop.background.astype(float)
    bright_bg = bg > np.quantile(bg[crop.tissue], 0.995)
    # autofluorescent structures: bright in the background channel and raised in the signal channel too
    assert np.median(sig[bright_bg & crop.tissue]) > 1.5 * np.median(sig[crop.tissue])


def test_planes_and_tiles_differ_in_brightness(crop):
    sig = crop.image.astype(float)
    planes = np.array([np.median(sig[z][crop.tissue[z]]) for z in range(sig.shape[0])])
    assert planes.max() / planes.min() > 1.15
    steps = np.abs(np.diff(planes)) / planes[:-1]
    assert (steps > 0.1).any()  # at least one step between groups of planes


def test_tissue_touches_the_border_and_has_an_edge(crop):
    t = crop.tissue
    assert 0.5 < t.mean() < 0.99
    assert t[:, 0, :].any() and t[:, :, 0].any() and t[:, -1, :].any() and t[:, :, -1].any()
    assert crop.image[~t].mean() < 0.5 * crop.image[t].mean()


def test_truth_table_regions_groups_and_border_cells(crop):
    t = crop.truth
    assert len(t) > 100
    sp = np.asarray(crop.spacing)
    np.testing.assert_allclose(t[["z", "y", "x"]].to_numpy() * sp, t[["z_um", "y_um", "x_um"]].to_numpy())
    assert t.diameter_um.between(6, 14).all()
    assert set(t.region_id) <= set(CELL_REGIONS) and t.region_id.nunique() == len(CELL_REGIONS)
    assert t.cut_by_border.any() and (~t.inside).any() and t.inside.mean() > 0.8
    # touching groups: neighbours within a group are planted at 0.92-1.0 x the sum of the radii
    for _, g in t.groupby("group"):
        if len(g) > 1:
            p = g[["z_um", "y_um", "x_um"]].to_numpy()
            d = np.linalg.norm(p[:, None] - p[None], axis=2) + np.eye(len(g)) * 1e9
            r = g.diameter_um.to_numpy() / 2
            assert (d.min(axis=1) <= (r[:, None] + r[None])[np.arange(len(g)), d.argmin(axis=1)] * 1.0 + 1e-6).all()
    # the atlas region under each centre is the one the library assigns (its voxel-corner convention)
    inner = t[t.inside]
    regions = assign_regions(inner, crop.atlas, crop.atlas_spacing, crop.spacing, image_shape=crop.image.shape)
    assert (regions.to_numpy() == inner.region_id.to_numpy()).all()
    counts = crop.truth_counts()
    assert counts.cells.sum() == t.inside.sum()


def test_score_cells_ignores_caps_of_cells_centred_outside(crop):
    t = crop.truth
    perfect = score_cells(crop, t[["z_um", "y_um", "x_um"]].to_numpy(), detected_regions=t.region_id.to_numpy())
    assert perfect["precision"] == 1.0 and perfect["recall"] == 1.0
    assert perfect["detected"] == t.inside.sum() and (perfect["regions"].error == 0).all()
    half = t[t.inside].iloc[::2]
    spurious = np.array([[-100.0, -100.0, -100.0]])
    s = score_cells(crop, np.concatenate([half[["z_um", "y_um", "x_um"]].to_numpy() + 1.0, spurious]))
    assert s["matched"] == len(half) and s["detected"] == len(half) + 1
    assert s["recall"] == pytest.approx(len(half) / t.inside.sum())


def test_bad_arguments():
    with pytest.raises(InvalidInputError):
        make_synthetic_cells(shape=(4, 64, 64))
    with pytest.raises(InvalidInputError):
        make_synthetic_cells(shape=(16, 64, 64), diameter_range=(10.0, 5.0))


def _excess(crop, img):
    """Counts above each plane's tissue median."""
    img = img.astype(float)
    med = np.array([np.median(img[z][crop.tissue[z]]) for z in range(img.shape[0])])
    return img - med[:, None, None]


def test_spectral_spread_gives_each_autofluorescent_structure_its_own_ratio():
    plain = make_synthetic_cells((16, 128, 128), seed=5)
    spread = make_synthetic_cells((16, 128, 128), seed=5, spectral_spread=0.4)
    assert np.array_equal(plain.background, spread.background) and plain.truth.equals(spread.truth)
    iqr = []
    for crop in (plain, spread):
        bg = _excess(crop, crop.background)
        sig = _excess(crop, crop.image)
        far = np.ones(crop.image.shape, bool)  # away from every planted cell
        for c in crop.truth[["z", "y", "x"]].to_numpy():
            lo = np.maximum(np.floor(c - (2, 6, 6)).astype(int), 0)
            far[lo[0]:int(c[0]) + 3, lo[1]:int(c[1]) + 7, lo[2]:int(c[2]) + 7] = False
        bright = far & crop.tissue & (bg > 300)
        q = np.quantile(sig[bright] / bg[bright], [0.25, 0.75])
        iqr.append(q[1] - q[0])
    assert iqr[1] > 1.5 * iqr[0]


def test_axial_blur_spreads_cells_along_z_and_keeps_the_truth():
    sharp = make_synthetic_cells((24, 128, 128), seed=6)
    blurred = make_synthetic_cells((24, 128, 128), seed=6, axial_blur_um=4.0)
    assert sharp.truth.equals(blurred.truth)
    t = sharp.truth[sharp.truth.inside]
    idx = np.rint(t[["z", "y", "x"]].to_numpy()).astype(int)
    idx = idx[(idx[:, 0] >= 2) & (idx[:, 0] < 22)]
    spread = []
    for crop in (sharp, blurred):
        e = _excess(crop, crop.image)
        centre = e[tuple(idx.T)]
        two_off = (e[tuple((idx + [2, 0, 0]).T)] + e[tuple((idx - [2, 0, 0]).T)]) / 2
        spread.append(np.median(two_off / centre))
    assert spread[1] > spread[0] + 0.1
    with pytest.raises(InvalidInputError, match="axial_blur_um"):
        make_synthetic_cells((16, 64, 64), axial_blur_um=-1.0)
