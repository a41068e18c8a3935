"""``voxelflow view``: listing a cache, checking a path, screenshots, the thread hand-off."""

from __future__ import annotations

import numpy as np
import pytest
from viewer_helpers import BOXES, coloured_regions, make_run_folder

from voxelflow.cli import main


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("viewer-cli")
    return str(root), make_run_folder(root)


def test_list_prints_the_committed_steps(run_folder, capsys):
    root, _ = run_folder
    assert main(["view", f"{root}/cache", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"committed results in {root}/cache:"
    listed = [line.split()[1:3] for line in lines[1:]]
    assert listed == [["a_coarse", "IN->IN"], ["bright", "IN->BS"], ["centroids", "OS->LC"],
                      ["components", "BS->OS"],
                      ["extra/ramp", "saved"], ["extra/settings", "saved"]]


def test_bad_paths_and_options_are_clear_errors(run_folder, tmp_path, capsys):
    root, _ = run_folder
    assert main(["view", str(tmp_path / "missing")]) == 2
    assert "nothing exists" in capsys.readouterr().err
    assert main(["view", f"{root}/scan.ome.zarr", "--steps", "a"]) == 2
    assert "apply to a cache root" in capsys.readouterr().err
    assert main(["view", f"{root}/cache", "--steps", "nope", "--no-show"]) == 2
    assert "no committed step 'nope'" in capsys.readouterr().err


@pytest.mark.viewer
def test_view_hands_the_threads_over_before_loading(run_folder, capsys):
    from distributed import Client, LocalCluster

    root, _ = run_folder
    cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None)
    client = Client(cluster)
    try:
        assert main(["view", f"{root}/cache", "--steps", "components,centroids", "--no-show"]) == 0
        assert client.status == "closed"
    finally:
        client.close()
        cluster.close()
    out = capsys.readouterr().out
    assert "labels  components  (8, 64, 64)" in out and "points  centroids  (3, 3)" in out


@pytest.mark.viewer
def test_screenshot_of_a_run_folder_shows_the_planted_objects(run_folder, tmp_path):
    from skimage.io import imread

    _, run = run_folder
    png = tmp_path / "run.png"
    assert main(["view", run, "--screenshot", str(png)]) == 0
    pic = imread(png)[..., :3]
    # napari opens at the middle plane (z=3 of 0..7): boxes 1 and 2, coloured labels with a ring.
    boxes = coloured_regions(pic)
    assert len(boxes) == 2
    (r0, c0, r1, c1), (s0, d0, s1, d1) = boxes  # sorted by top row: box 1 then box 2
    planted = [b for b in BOXES if b[1] == 3]
    (_, _, ay0, ay1, ax0, ax1), (_, _, by0, by1, bx0, bx1) = planted
    # Both boxes are 0.5 um voxels in y and x: drawn sizes keep the planted ratios and layout.
    px = (r1 - r0) / (ay1 - ay0)
    assert (c1 - c0) / (ax1 - ax0) == pytest.approx(px, rel=0.1)
    assert (s1 - s0) / (by1 - by0) == pytest.approx(px, rel=0.1)
    assert (s0 - r0) / (by0 - ay0) == pytest.approx(px, rel=0.1)
    assert (d0 - c0) / (bx0 - ax0) == pytest.approx(px, rel=0.1)
    assert np.abs(pic[(r0 + r1) // 2, c0 + 2].astype(int) - pic[(s0 + s1) // 2, d0 + 2]).max() > 30


def test_interactive_choice_by_number_or_name(run_folder, monkeypatch):
    from voxelflow.cli.view_cmd import _ask
    from voxelflow.viewer.sources import list_cached_steps

    root, _ = run_folder
    steps = [s for s in list_cached_steps(f"{root}/cache") if s.viewable]
    monkeypatch.setattr("builtins.input", lambda prompt: " 4, centroids ,")
    assert _ask(steps) == ["components", "centroids"]
    monkeypatch.setattr("builtins.input", lambda prompt: "")
    assert _ask(steps) is None
