"""``voxelflow run`` / ``voxelflow register`` with an atlas voxelflow registers: counts per region and
hemisphere against planted truth, atlas-space coordinates, failures with QC pictures."""

import json

import numpy as np
import pandas as pd
import pytest

from voxelflow.cli import main
from voxelflow.io.ome_zarr import write_ome_zarr
from voxelflow.paths import VPath
from voxelflow.synth_atlas import write_synthetic_experiment

pytest.importorskip("SimpleITK")

FAST = """
[atlas.registration]
deformable_iterations = 10
"""


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    root = tmp_path_factory.mktemp("experiment")
    exp = write_synthetic_experiment(root, resolution=300.0, seed=4, n_objects=60, orientation="psl")
    exp["config"].write_text(exp["config"].read_text() + FAST)
    assert main(["run", str(exp["config"]), "--no-report", "--quiet"]) == 0
    return exp


def test_counts_per_region_and_hemisphere_match_the_planted_truth(experiment):
    truth = experiment["truth"]
    assert len(truth) >= 15
    regions = pd.read_csv(experiment["config"].parent / "run" / "regions.csv")
    got = regions.set_index("id")
    expected = truth.groupby("region_id").size()
    for rid, n in expected.items():
        assert abs(got.loc[rid, "count_self"] - n) <= max(0.05 * n, 0), (rid, got.loc[rid, "count_self"], n)
    for side, value in (("left", 1), ("right", 2)):
        per_side = truth[truth.hemisphere == value].groupby("region_id").size()
        for rid, n in per_side.items():
            assert got.loc[rid, f"count_{side}"] == n
        assert (got[f"density_{side}_per_mm3"].dropna() >= 0).all()
    # the left and right counts add up to the count of objects inside the brain
    assert (got["count_left"] + got["count_right"] == got["count"]).all()


def test_objects_carry_atlas_coordinates(experiment):
    objects = pd.read_csv(experiment["config"].parent / "run" / "objects.csv")
    truth = experiment["truth"]
    assert {"atlas_z_um", "atlas_y_um", "atlas_x_um", "hemisphere"} <= set(objects.columns)
    found = objects[["z", "y", "x"]].to_numpy()
    planted = truth[["z", "y", "x"]].to_numpy()
    nearest = np.argmin(np.linalg.norm(found[:, None] - planted[None], axis=2), axis=1)
    err = np.linalg.norm(objects[["atlas_z_um", "atlas_y_um", "atlas_x_um"]].to_numpy()
                         - truth[["atlas_z_um", "atlas_y_um", "atlas_x_um"]].to_numpy()[nearest], axis=1)
    assert err.mean() <= 300.0  # one atlas voxel
    np.testing.assert_array_equal(objects["hemisphere"].to_numpy(), truth["hemisphere"].to_numpy()[nearest])


def test_the_run_folders_transforms_reproduce_the_atlas_coordinates(experiment):
    """``registration/`` read back with ``read_registration`` maps every object where the run put it: the
    B-spline included (an affine-only read would be off by the deformation)."""
    from voxelflow.io.registration_files import read_registration
    from voxelflow.ops._atlas_map import ScanAtlasMap

    run = experiment["config"].parent / "run"
    affine, deformable, meta = read_registration(run / "registration")
    assert deformable is not None and meta["part"]["origin"] == [0, 0, 0]
    mapping = ScanAtlasMap.from_parts(affine, deformable, meta)
    objects = pd.read_csv(run / "objects.csv")
    centres = (objects[["z", "y", "x"]].to_numpy() + 0.5) * np.asarray(experiment["synthetic"].scale)
    np.testing.assert_allclose(mapping.scan_to_atlas(centres),
                               objects[["atlas_z_um", "atlas_y_um", "atlas_x_um"]].to_numpy(), atol=1e-3)
    affine_only = ScanAtlasMap.from_parts(affine, None, meta).scan_to_atlas(centres)
    assert np.abs(affine_only - mapping.scan_to_atlas(centres)).max() > 1.0  # the check can tell them apart


def test_a_run_folder_without_its_deformable_transform_is_refused(experiment, tmp_path):
    import shutil

    from voxelflow.errors import InvalidPathError
    from voxelflow.io.registration_files import read_registration

    copy = tmp_path / "registration"
    shutil.copytree(experiment["config"].parent / "run" / "registration", copy)
    (copy / "deformable.tfm").unlink()
    with pytest.raises(InvalidPathError, match="deformable.tfm"):
        read_registration(copy)

def test_objects_take_the_region_of_the_atlas_voxel_at_their_atlas_position(experiment):
    """Region and side are those of the atlas files (read with tifffile) at ``atlas_*_um``, not of the
    labels resampled onto the scan, so objects.csv, regions.csv and the atlas coordinates agree."""
    import tifffile

    folder = experiment["atlas"]
    annotation = tifffile.imread(folder / "annotation.tiff")
    hemispheres = tifffile.imread(folder / "hemispheres.tiff")
    resolution = np.asarray(json.loads((folder / "metadata.json").read_text())["resolution"], dtype=float)
    objects = pd.read_csv(experiment["config"].parent / "run" / "objects.csv")
    voxel = np.floor(objects[["atlas_z_um", "atlas_y_um", "atlas_x_um"]].to_numpy() / resolution).astype(int)
    inside = np.all((voxel >= 0) & (voxel < annotation.shape), axis=1)
    assert inside.all()
    np.testing.assert_array_equal(objects["region_id"].to_numpy(), annotation[tuple(voxel.T)])
    in_brain = annotation[tuple(voxel.T)] != 0
    np.testing.assert_array_equal(objects["hemisphere"].to_numpy()[in_brain], hemispheres[tuple(voxel[in_brain].T)])
    regions = pd.read_csv(experiment["config"].parent / "run" / "regions.csv").set_index("id")
    counted = objects[objects.region_id != 0].groupby("region_id").size()
    np.testing.assert_array_equal(regions.loc[counted.index, "count_self"].to_numpy(), counted.to_numpy())


def test_registration_files_and_qc_pictures(experiment):
    folder = experiment["config"].parent / "run" / "registration"
    names = {p.name for p in folder.iterdir()}
    assert {"affine.tfm", "deformable.tfm", "registration.json", "qc_checker_axis0.png", "qc_edges_axis2.png"} <= names
    import SimpleITK as sitk

    assert sitk.ReadTransform(str(folder / "affine.tfm")).GetNumberOfParameters() == 12
    qc = json.loads((folder / "registration.json").read_text())["qc"]
    assert qc["folded_fraction"] <= 1e-3 and qc["metric_final"] <= qc["metric_affine"]


def test_register_only_reuses_the_cache_and_leaves_the_finished_run_whole(experiment, capsys):
    run = experiment["config"].parent / "run"
    before = {p.name: (p.read_bytes(), p.stat().st_ino) for p in (run / "registration").iterdir()}
    other = experiment["config"].with_name("other-parameters.toml")
    other.write_text(experiment["config"].read_text().replace("deformable_iterations = 10", "deformable_iterations = 11"))
    assert main(["register", str(other), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "voxelflow register: Mattes MI" in out and "registration-new" in out
    # the finished run keeps the registration its tables were counted with; the new one is beside it
    assert {p.name: (p.read_bytes(), p.stat().st_ino) for p in (run / "registration").iterdir()} == before
    assert (run / "registration-new" / "registration.json").read_bytes() != before["registration.json"][0]
    # the next finished run publishes its own registration/ and drops registration-new/
    assert main(["run", str(experiment["config"]), "--no-report", "--quiet"]) == 0
    assert not (run / "registration-new").exists()
    assert {p.name: p.read_bytes() for p in (run / "registration").iterdir()} == {
        k: v[0] for k, v in before.items()}


def test_register_only_into_a_new_folder_writes_registration(experiment, tmp_path):
    assert main(["register", str(experiment["config"]), "--quiet", "--out", str(tmp_path / "run")]) == 0
    assert (tmp_path / "run" / "registration" / "affine.tfm").is_file()
    assert not (tmp_path / "run" / "registration-new").exists()


def test_leftovers_of_a_killed_swap_are_resolved_by_the_next_run(experiment, tmp_path):
    """A process killed while swapping registration/ leaves hidden folders: a partial new one, or the
    old one moved aside with nothing in its place. The next command holding the folder resolves them."""
    out = tmp_path / "run"
    assert main(["register", str(experiment["config"]), "--quiet", "--out", str(out)]) == 0
    good = {p.name: p.read_bytes() for p in (out / "registration").iterdir()}
    # killed between the two renames: the old folder is aside, none in place; a partial new one beside
    (out / "registration").rename(out / ".registration.old-0123456789ab")
    (out / ".registration.tmp-ba9876543210").mkdir()
    (out / ".registration.tmp-ba9876543210" / "affine.tfm").write_text("partial")
    from voxelflow.pipelines.config import load_config
    from voxelflow.pipelines.publish import tidy_run_folder

    config = load_config(experiment["config"], [], values={"output.folder": str(out)})
    done = tidy_run_folder(VPath(config.output.folder))
    assert len(done) == 2
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".registration")) == []
    assert {p.name: p.read_bytes() for p in (out / "registration").iterdir()} == good
    # a finished swap's old folder is removed, the current one kept
    (out / ".registration.old-aaaaaaaaaaaa").mkdir()
    assert main(["register", str(experiment["config"]), "--quiet", "--out", str(out)]) == 0
    assert not (out / ".registration.old-aaaaaaaaaaaa").exists()
    assert {p.name: p.read_bytes() for p in (out / "registration").iterdir()} == good


def test_wrong_orientation_is_a_clear_error_with_qc_pictures(experiment, tmp_path, capsys):
    code = main(["run", str(experiment["config"]), "--quiet", "--no-report", "--set", "atlas.orientation=asr",
                 "--out", str(tmp_path / "run")])
    assert code == 2
    err = capsys.readouterr().err
    assert "does not look like orientation 'asr'" in err and "psl" in err
    failed = tmp_path / "run" / "run-failed-registration"
    assert (failed / "qc_scan_axis0.png").is_file() and str(failed) in err
    record = json.loads((tmp_path / "run" / "run-failed.json").read_text())
    assert record["status"] == "failed" and not (tmp_path / "run" / "regions.csv").exists()
    assert record["error"].startswith("OrientationError: ") and not (tmp_path / "run" / "registration").exists()


def test_empty_channel_is_a_clear_error_with_qc_pictures(experiment, tmp_path, capsys):
    import zarr

    plaques = np.asarray(zarr.open_group(str(experiment["scan"]), mode="r")["0"][1])
    empty = np.stack([np.zeros_like(plaques), plaques])
    write_ome_zarr(empty, tmp_path / "empty.ome.zarr", axes="czyx",
                   scale=(1.0, *experiment["synthetic"].scale), chunks=(1, 32, 64, 64))
    code = main(["run", str(experiment["config"]), "--quiet", "--no-report", "--set",
                 f"input.url={tmp_path / 'empty.ome.zarr'}", "--out", str(tmp_path / "run")])
    assert code == 2
    assert "no contrast" in capsys.readouterr().err
    assert (tmp_path / "run" / "run-failed-registration" / "qc_scan_axis1.png").is_file()


def test_atlas_url_and_brainglobe_together_are_refused(experiment, tmp_path, capsys):
    code = main(["run", str(experiment["config"]), "--quiet", "--no-report", "--set",
                 f"atlas.url={experiment['scan']}", "--out", str(tmp_path / "run")])
    assert code == 2 and "not both" in capsys.readouterr().err


def test_atlas_settings_are_checked_and_round_trip(tmp_path):
    from voxelflow.errors import ConfigError
    from voxelflow.pipelines.config import load_config, to_toml

    base = ["input.url=scan.ome.zarr", "output.folder=run", "atlas.brainglobe=atlas"]
    cfg = load_config(None, base + ["atlas.orientation=PSL", "atlas.registration_channel=0"])
    assert cfg.atlas.orientation == "psl" and cfg.atlas.registration == {}
    with pytest.raises(ConfigError, match="atlas.orientation"):
        load_config(None, base + ["atlas.orientation=abc"])
    text = '[input]\nurl = "s.ome.zarr"\n[output]\nfolder = "r"\n[atlas]\nbrainglobe = "a"\norientation = "asl"\n' \
           '[atlas.registration]\ngrid_spacing_um = 2500.0\naffine_levels_um = [600.0, 300.0]\n'
    (tmp_path / "c.toml").write_text(text)
    cfg = load_config(tmp_path / "c.toml")
    assert cfg.atlas.registration["grid_spacing_um"] == 2500.0
    (tmp_path / "d.toml").write_text(to_toml(cfg))
    assert load_config(tmp_path / "d.toml").atlas.registration == cfg.atlas.registration
    (tmp_path / "e.toml").write_text(text.replace("grid_spacing_um", "grid_spacing"))
    with pytest.raises(ConfigError, match="atlas.registration"):
        load_config(tmp_path / "e.toml")


def test_missing_orientation_is_a_config_error(experiment, tmp_path, capsys):
    code = main(["register", str(experiment["config"]), "--quiet", "--set", "atlas.orientation=",
                 "--out", str(tmp_path / "run")])
    assert code == 2 and "atlas.orientation" in capsys.readouterr().err


def test_the_registration_node_is_named_by_the_parameters_with_their_defaults(tmp_path, monkeypatch):
    import dataclasses

    from voxelflow.ops._register import RegistrationParameters
    from voxelflow.pipelines import registration as registration_module
    from voxelflow.pipelines.config import load_config

    base = ["input.url=scan.ome.zarr", "output.folder=run", "atlas.brainglobe=atlas", "atlas.orientation=psl"]
    name = registration_module.attempt_name(load_config(None, base), "stamp")
    # a default spelled out is the same registration, another value is another one
    spelled = load_config(None, base, values={"atlas.registration": {"flatten_um": 1000.0}})
    assert registration_module.attempt_name(spelled, "stamp") == name
    other = load_config(None, base, values={"atlas.registration": {"metric_mask_um": 800.0}})
    assert registration_module.attempt_name(other, "stamp") != name
    # new defaults in a later version do not reuse (and never replace) a registration made with the old ones
    changed = dataclasses.replace(RegistrationParameters(), flatten_um=0.0)
    monkeypatch.setattr(RegistrationParameters, "from_dict", classmethod(lambda cls, values: changed))
    assert registration_module.attempt_name(load_config(None, base), "stamp") != name
