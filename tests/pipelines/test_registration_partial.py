"""``voxelflow run`` on partial-brain scans (one hemisphere, a cropped box) and the atlas-space density map,
checked against planted truth and against counts made here from the object table's atlas coordinates."""

import json

import numpy as np
import pandas as pd
import pytest
import zarr

from voxelflow.cli import main
from voxelflow.synth_atlas import write_synthetic_experiment

pytest.importorskip("SimpleITK")

RES = 300.0
#: The anterior part of the brain (atlas axis 0 runs from anterior): cerebellum and midbrain lie behind it.
BOX = [0.0, 7000.0, 0.0, 8000.0, 0.0, 11400.0]
FAST = "\n[atlas.registration]\ndeformable_iterations = 10\n"


def _experiment(root, atlas_lines: str, **part):
    exp = write_synthetic_experiment(root, resolution=RES, seed=4, n_objects=60, orientation="psl", **part)
    text = exp["config"].read_text().replace("registration_channel = 0", "registration_channel = 0\n" + atlas_lines)
    exp["config"].write_text(text + FAST)
    assert main(["run", str(exp["config"]), "--no-report", "--quiet"]) == 0
    exp["run"] = exp["config"].parent / "run"
    return exp


@pytest.fixture(scope="module")
def hemisphere(tmp_path_factory):
    return _experiment(tmp_path_factory.mktemp("hemisphere"), 'coverage = "auto"', side="left")


@pytest.fixture(scope="module")
def cropped(tmp_path_factory):
    return _experiment(tmp_path_factory.mktemp("cropped"), f"crop_um = {BOX}\ndensity_um = 600.0", box_um=BOX)


def _check_counts(regions: pd.DataFrame, truth: pd.DataFrame) -> None:
    got = regions.set_index("id")
    for rid, n in truth.groupby("region_id").size().items():
        assert abs(got.loc[rid, "count_self"] - n) <= 0.05 * n, (rid, got.loc[rid, "count_self"], n)
    # nothing counted where nothing was planted
    planted = set(truth["region_id"])
    assert (got.loc[[i for i in got.index if i not in planted], "count_self"].fillna(0) == 0).all()


def test_hemisphere_is_detected_registered_and_the_other_side_is_not_imaged(hemisphere):
    truth = hemisphere["truth"]
    assert len(truth) >= 10 and set(truth["hemisphere"]) == {1}
    record = json.loads((hemisphere["run"] / "run.json").read_text())
    assert record["registration"]["atlas_part"]["side"] == "left"  # found from the tissue, coverage = "auto"
    regions = pd.read_csv(hemisphere["run"] / "regions.csv")
    _check_counts(regions, truth)
    # the right hemisphere was not imaged: no counts there (empty in the CSV), not zeros
    assert regions["count_right"].isna().all() and regions["density_right_per_mm3"].isna().all()
    assert (regions["imaged_fraction_right"] == 0).all()
    assert (regions["count_left"] == regions["count"]).all()
    painted = regions[regions["volume_mm3"] > 0]
    assert (painted["imaged_fraction_left"] > 0.9).all()
    objects = pd.read_csv(hemisphere["run"] / "objects.csv")
    assert (objects["hemisphere"] == 1).all()


def test_cropped_scan_reports_regions_behind_the_crop_as_not_imaged(cropped):
    truth = cropped["truth"]
    regions = pd.read_csv(cropped["run"] / "regions.csv").set_index("id")
    _check_counts(regions.reset_index(), truth)
    synthetic = cropped["synthetic"]
    ann = synthetic.atlas.annotation  # the atlas with only the imaged part
    full = np.asarray(__import__("tifffile").imread(cropped["atlas"] / "annotation.tiff"))
    for rid in (512, 313):  # cerebellum, midbrain: entirely behind the box
        assert not (ann == rid).any() and (full == rid).any()
        assert pd.isna(regions.loc[rid, "count"]) and pd.isna(regions.loc[rid, "count_self"])
        assert regions.loc[rid, "imaged_fraction"] == 0
    # imaged fraction of the regions cut by the box: the truth is the box itself (the field of view holds it)
    centres = (np.arange(full.shape[0]) + 0.5) * RES
    in_box = (centres < BOX[1])[:, None, None]
    for rid in (477, 698, 1097, 315):
        expect = float((full == rid)[np.broadcast_to(in_box, full.shape)].sum()) / float((full == rid).sum())
        assert regions.loc[rid, "imaged_fraction"] == pytest.approx(expect, abs=0.03), rid


def _density(run):
    group = zarr.open_group(str(run / "atlas_density.ome.zarr"), mode="r")
    attrs = group.attrs.asdict()
    multiscales = (attrs.get("ome") or attrs)["multiscales"][0]
    scale = next(t["scale"] for t in multiscales["datasets"][0]["coordinateTransformations"] if t["type"] == "scale")
    return np.asarray(group[multiscales["datasets"][0]["path"]]), scale, multiscales


def _expected_density(objects: pd.DataFrame, shape, block: float) -> np.ndarray:
    """Counts per block made here with numpy's histogram from the atlas coordinates of objects.csv."""
    pos = objects[["atlas_z_um", "atlas_y_um", "atlas_x_um"]].to_numpy()
    edges = [np.arange(n + 1) * block for n in shape]
    counts, _ = np.histogramdd(pos, bins=edges)
    return counts


@pytest.mark.parametrize("which", ["hemisphere", "cropped"])
def test_atlas_density_map_counts_the_objects_at_their_atlas_coordinates(which, request):
    exp = request.getfixturevalue(which)
    density, scale, multiscales = _density(exp["run"])
    atlas_shape = exp["synthetic"].atlas.shape
    block = 600.0 if which == "cropped" else RES
    assert scale == [block] * 3
    assert [a["name"] for a in multiscales["axes"]] == ["z", "y", "x"]
    assert density.shape == tuple(int(np.ceil(n * RES / block)) for n in atlas_shape)
    objects = pd.read_csv(exp["run"] / "objects.csv")
    expected = _expected_density(objects, density.shape, block)
    imaged = np.isfinite(density)
    np.testing.assert_array_equal(density[imaged], expected[imaged])
    assert expected[~imaged].sum() == 0 and np.nansum(density) == len(objects)
    record = json.loads((exp["run"] / "run.json").read_text())
    assert record["outputs"]["atlas_density"] == "atlas_density.ome.zarr"
    assert record["registration"]["atlas_density"]["orientation"] == "asr"
    if which == "hemisphere":
        # right-hemisphere blocks (atlas axis 2 starts on the right) were not imaged
        assert np.isnan(density[:, :, : atlas_shape[2] // 2 - 1]).all()
    else:
        first_out = int(np.ceil(BOX[1] / block))  # blocks starting at or behind the crop
        assert np.isnan(density[first_out:]).all() and np.isfinite(density[: int(BOX[1] // block) - 1]).any()


def test_a_second_run_reads_everything_from_the_cache(cropped):
    assert main(["run", str(cropped["config"]), "--no-report", "--quiet"]) == 0
    record = json.loads((cropped["run"] / "run.json").read_text())
    assert all(s["cached"] for s in record["steps"]), [s["name"] for s in record["steps"] if not s["cached"]]


def test_viewer_lists_the_atlas_density_map_in_atlas_space(hemisphere):
    from voxelflow.viewer.sources import run_folder_layers

    layers = {str(kw.get("name")): (data, kw, kind) for data, kw, kind in run_folder_layers(str(hemisphere["run"]))}
    data, kwargs, kind = layers["atlas density (atlas space)"]
    assert kind == "image" and kwargs["visible"] is False and list(kwargs["scale"]) == [RES] * 3
    assert tuple((data[0] if isinstance(data, list) else data).shape) == hemisphere["synthetic"].atlas.shape
    # the imaged atlas voxels are on the atlas grid too, and named so
    data, kwargs, kind = layers["atlas coverage (atlas space)"]
    assert kind == "labels" and kwargs["visible"] is False and list(kwargs["scale"]) == [RES] * 3
    assert tuple((data[0] if isinstance(data, list) else data).shape) == hemisphere["synthetic"].atlas.shape
    assert "atlas_coverage" not in layers


def test_viewer_shows_the_warped_annotation_as_labels_over_the_scan(hemisphere):
    from voxelflow.io.ome_zarr import open_ome_zarr
    from voxelflow.steps.node import output_image
    from voxelflow.viewer.sources import run_folder_layers

    layers = {str(kw.get("name")): (data, kw, kind) for data, kw, kind in run_folder_layers(str(hemisphere["run"]))}
    cached, meta = open_ome_zarr(output_image(hemisphere["run"] / "cache" / "atlas_labels").url)
    for name in ("atlas_labels", "atlas_hemispheres"):
        data, kwargs, kind = layers[name]
        assert kind == "labels" and kwargs.get("visible", True)
        shown = np.asarray(data[0] if isinstance(data, list) else data)
        assert list(kwargs["scale"]) == list(meta.scale)
        # the coarse grid spans the scan: its extent in micrometres is the scan's, up to one coarse voxel
        scan = np.multiply(hemisphere["synthetic"].image.shape, hemisphere["synthetic"].scale)
        extent = np.multiply(shown.shape, kwargs["scale"])
        assert np.all(extent >= scan) and np.all(extent - scan < np.asarray(kwargs["scale"]))
        # and each coarse voxel is drawn over the centre of the block of scan voxels it was averaged from
        f = np.asarray(kwargs["scale"]) / np.asarray(hemisphere["synthetic"].scale)
        np.testing.assert_allclose(kwargs["translate"], (f - 1) / 2 * np.asarray(hemisphere["synthetic"].scale))
        if name == "atlas_labels":
            np.testing.assert_array_equal(shown, np.asarray(cached))
            # the annotation shows the regions the objects were counted in
            assert set(hemisphere["truth"]["region_id"]) <= set(np.unique(shown).tolist())


def test_objects_regions_in_atlas_space_agree_with_the_full_resolution_labels(hemisphere):
    """Objects take their region in atlas space; planted 2 atlas voxels from any boundary, that is also the
    region of their voxel on the warped labels up-sampled to the scan (the labels the volumes come from)."""
    from voxelflow.io.ome_zarr import open_ome_zarr
    from voxelflow.steps.node import output_image

    run = hemisphere["run"]
    coarse, meta = open_ome_zarr(output_image(run / "cache" / "atlas_labels").url)
    scan_shape = hemisphere["synthetic"].image.shape
    factors = [int(round(c / s)) for c, s in zip(meta.scale, hemisphere["synthetic"].scale)]
    # the eager reference: every coarse voxel repeated over the scan voxels it was averaged from
    full = np.asarray(coarse)
    for axis, f in enumerate(factors):
        full = full.repeat(f, axis=axis)
    full = full[: scan_shape[0], : scan_shape[1], : scan_shape[2]]
    objects = pd.read_csv(run / "objects.csv")
    voxel = np.floor(objects[["z", "y", "x"]].to_numpy() + 0.5).astype(int)
    np.testing.assert_array_equal(objects["region_id"].to_numpy(), full[tuple(voxel.T)])
    # a scan of one hemisphere is that side wherever the transform stays in the atlas volume, cut faces included
    hemis = np.asarray(open_ome_zarr(output_image(run / "cache" / "atlas_hemispheres").url)[0])
    assert set(np.unique(hemis).tolist()) <= {0, 1} and (hemis == 1).mean() > 0.5
    assert (hemis[np.asarray(coarse) != 0] == 1).all()
