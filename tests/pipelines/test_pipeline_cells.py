"""The cell pipeline on synthetic two-channel crops: accuracy against planted cells, crops, caching, CLI."""

import json

import numpy as np
import pandas as pd
import pytest

from voxelflow.cli import main
from voxelflow.errors import ConfigError
from voxelflow.ops import detection_scores
from voxelflow.pipelines.cells import run_cell_pipeline
from voxelflow.pipelines.config import load_config
from voxelflow.synth_cells import make_synthetic_cells, score_cells, write_synthetic_cells

SHAPE = (32, 192, 192)


@pytest.fixture(scope="module")
def crop_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cells")
    crop = make_synthetic_cells(SHAPE, seed=21)
    urls = write_synthetic_cells(crop, folder / "data")
    return crop, urls, folder


def _config(urls, out, *extra, background=True):
    over = [f"input.url={urls['scan']}?slices=[0]", f"atlas.url={urls['atlas']}", f"atlas.regions={urls['regions']}",
            f"output.folder={out}", 'pipeline.kind="cells"', "cells.diameter_um=10", *extra]
    if background:
        over.append("input.background_channel=1")
    return load_config(None, over)


@pytest.fixture(scope="module")
def default_run(crop_files):
    crop, urls, folder = crop_files
    return run_cell_pipeline(_config(urls, folder / "run"), progress=False)


def _score(crop, result):
    cells = result.objects
    return score_cells(crop, cells[["z_um", "y_um", "x_um"]].to_numpy(), detected_regions=cells.region_id.to_numpy())


def test_defaults_find_the_planted_cells(crop_files, default_run):
    crop, _, _ = crop_files
    s = _score(crop, default_run)
    assert s["planted"] > 300
    assert s["precision"] >= 0.95 and s["recall"] >= 0.95
    total_error = abs(s["regions"].detected.sum() - s["planted"]) / s["planted"]
    assert total_error <= 0.03
    run = default_run.run
    assert run["parameters"]["sigma_um"] == pytest.approx(0.9 * 10 / (2 * np.sqrt(3)))
    assert run["channel_factor"] > 0


def test_touching_cells_without_a_maximum_of_their_own_are_split_off(crop_files, default_run):
    from scipy.spatial import cKDTree

    crop, urls, folder = crop_files
    cells = default_run.objects
    added = cells[cells.split]
    assert len(added) >= 3
    # the added cells sit on planted cells, nearly all of them members of touching groups
    truth = crop.truth
    in_group = truth.group.map(truth.groupby("group").size()).to_numpy() > 1
    dist, j = cKDTree(truth[["z_um", "y_um", "x_um"]].to_numpy()).query(added[["z_um", "y_um", "x_um"]].to_numpy())
    assert (dist <= 5.0).mean() >= 0.8 and in_group[j[dist <= 5.0]].mean() >= 0.8
    off = run_cell_pipeline(_config(urls, folder / "no_split", "cells.split_touching=false"), progress=False)
    assert len(off.objects) == len(cells) - len(added) and "split" not in off.objects.columns
    assert _score(crop, off)["recall"] < _score(crop, default_run)["recall"]


def test_the_autofluorescence_channel_and_the_shape_filter_remove_vessels_and_fibres(crop_files, default_run):
    crop, urls, folder = crop_files
    single = run_cell_pipeline(_config(urls, folder / "single", background=False), progress=False)
    raw = run_cell_pipeline(_config(urls, folder / "raw", "cells.shape_filter=false", background=False),
                            progress=False)
    p_two = _score(crop, default_run)["precision"]
    p_single = _score(crop, single)["precision"]
    p_raw = _score(crop, raw)["precision"]
    assert p_raw < p_single < p_two  # shape filter helps, the background channel helps more
    # the dropped maxima sit in elongated or large foreground objects
    dropped = raw.objects[~raw.objects.component.isin(single.objects.component)]
    assert len(dropped) and ((dropped.component_elongation > 6) | (dropped.component_volume_um3 > 40 * np.pi / 6 * 1000)).all()


def test_a_crop_keeps_cells_at_the_volume_border(crop_files, default_run):
    crop, urls, folder = crop_files
    run = default_run.run
    outside = 1 - crop.tissue.mean()
    assert run["masked_fraction"] == pytest.approx(outside, abs=0.05)
    assert not run["mask_warning"]
    t = crop.truth[crop.truth.inside & crop.truth.cut_by_border]
    assert len(t) > 10
    det = default_run.objects[["z_um", "y_um", "x_um"]].to_numpy()
    hit = detection_scores(det, t[["z_um", "y_um", "x_um"]].to_numpy(), 5.0)[0]["recall"]
    assert hit >= 0.85
    # treated as a whole brain, the border becomes a tissue edge: a shell along it is removed
    whole = run_cell_pipeline(_config(urls, folder / "whole", "mask.whole_brain=true", "cells.edge_um=20"),
                              progress=False)
    assert whole.run["masked_fraction"] > run["masked_fraction"] + 0.1
    lost = detection_scores(whole.objects[["z_um", "y_um", "x_um"]].to_numpy(), t[["z_um", "y_um", "x_um"]].to_numpy(),
                            5.0)[0]["recall"]
    assert lost < 0.5 * hit


def test_rerun_is_cached_and_a_new_k_recomputes_only_what_follows(crop_files, default_run):
    crop, urls, folder = crop_files
    again = run_cell_pipeline(_config(urls, folder / "run"), progress=False)
    assert all(r.cached for r in again.records), [r.name for r in again.records if not r.cached]
    pd.testing.assert_frame_equal(again.objects, default_run.objects)
    other = run_cell_pipeline(_config(urls, folder / "run_k4", "cells.threshold_k=4",
                                      f"output.cache={folder / 'run' / 'cache'}"), progress=False)
    state = {r.name: r.cached for r in other.records}
    assert state["detection_response"] and state["threshold_stats"] and state["channel_levels"]
    assert not state["find_cells"] and not state["foreground_components"]
    # a higher k leaves fewer maxima above the threshold
    assert other.run["cells_before_shape_filter"] < default_run.run["cells_before_shape_filter"]


def test_evaluate_cli_scores_points_in_voxels_and_micrometres(crop_files, default_run, tmp_path, capsys):
    crop, _, folder = crop_files
    t = crop.truth[crop.truth.inside]
    t[["z", "y", "x"]].to_csv(tmp_path / "vox.csv", index=False)
    t[["z_um", "y_um", "x_um"]].rename(columns={"z_um": "axis-0", "y_um": "axis-1", "x_um": "axis-2"}).to_csv(
        tmp_path / "um.csv", index=False)
    run_dir = str(folder / "run")
    assert main(["evaluate", run_dir, str(tmp_path / "vox.csv")]) == 0
    by_vox = json.loads((folder / "run" / "evaluation.json").read_text())
    assert main(["evaluate", run_dir, str(tmp_path / "um.csv"), "--units", "um"]) == 0
    by_um = json.loads((folder / "run" / "evaluation.json").read_text())
    expected, _ = detection_scores(default_run.objects[["z_um", "y_um", "x_um"]].to_numpy(),
                                   t[["z_um", "y_um", "x_um"]].to_numpy(), 5.0)
    for result in (by_vox, by_um):
        assert result["matched"] == expected["matched"] and result["precision"] == pytest.approx(expected["precision"])
        assert {r["region_id"] for r in result["regions"]} <= set(crop.regions.id)
    assert "precision" in capsys.readouterr().out


def test_contradicting_settings_name_the_key(crop_files, tmp_path):
    _, urls, _ = crop_files
    with pytest.raises(ConfigError, match="cells.threshold_value"):
        run_cell_pipeline(_config(urls, tmp_path / "bad", 'cells.threshold="absolute"'), progress=False)
    with pytest.raises(ConfigError, match="cells.split_k"):
        _config(urls, tmp_path / "bad_k", 'cells.split_k=["one"]')
    assert _config(urls, tmp_path / "one_k", "cells.split_k=1.5").cells.split_k == [1.5]
    with pytest.raises(ConfigError, match="pipeline.kind"):
        run_cell_pipeline(load_config(None, [f"input.url={urls['scan']}", f"output.folder={tmp_path}"]),
                          progress=False)


def test_sweep_reuses_the_upstream_cache_and_tabulates_scores(crop_files, default_run, tmp_path):
    from voxelflow.cli.sweep_cmd import parse_vary, sweep
    from voxelflow.pipelines.config import to_toml

    crop, urls, folder = crop_files
    config = _config(urls, folder / "run")
    path = tmp_path / "cells.toml"
    path.write_text(to_toml(config))
    pts = tmp_path / "pts.csv"
    crop.truth[crop.truth.inside][["z", "y", "x"]].to_csv(pts, index=False)
    table = sweep(str(path), parse_vary(["cells.threshold_k=2.5,5"]), points=str(pts))
    assert list(table["cells.threshold_k"]) == [2.5, 5.0]
    # the levels, response and threshold statistics come from the base run's cache
    assert (table.steps_cached >= 5).all()
    assert table.objects.iloc[0] > table.objects.iloc[1]
    assert table.recall.iloc[0] > table.recall.iloc[1]
    assert (folder / "run" / "sweep.csv").exists()
    # the base run's report now shows the sweep: one row per setting with its objects and recall
    page = (folder / "run" / "report.html").read_text()
    sweep_html = page[page.index("<h2>Parameter sweep</h2>"):]
    sweep_html = sweep_html[sweep_html.index('<table class="sweep">'):sweep_html.index("</table>")]
    for _, row in table.iterrows():
        assert f"<td>{row['cells.threshold_k']:g}</td><td>{row.objects}</td><td>{row.precision:.3f}</td>" in sweep_html
    with pytest.raises(ConfigError, match="--vary"):
        parse_vary(["cells.threshold_k"])


def test_the_example_configuration_is_a_cell_run():
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "examples" / "cells.toml"
    config = load_config(example)
    assert config.pipeline.kind == "cells" and config.cells.diameter_um == 10.0
    assert config.input.background_channel == 1 and config.mask.whole_brain is False
