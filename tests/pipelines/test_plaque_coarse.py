"""The coarse grid of the plaque pipeline: budget/resolution knobs, pyramid levels, old settings.

* with the old grid (``coarse_factors=[2, 4, 4]``, N4 on that grid, the same edge
  shell depth) the objects equal those the previous pipeline wrote for the same scan
  (``tests/fixtures/plaque_previous``, made by commit b1f9df4 with the configuration
  of ``small_overrides``), both when the full-resolution volumes are stored and when
  objects come from the streaming pass;
* with a budget that a stored pyramid level fits, the mask, N4 fit and threshold
  read that level and no level-0 chunk (chunk reads counted);
* the old key together with the new ones is a clear configuration error;
* the density map is sized in micrometres (``pipeline.density_um``) and capped by the
  coarse voxel budget, so it does not grow with the scan; its counts are the
  histogram of the object centroids on that grid.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from pipeline_helpers import small_overrides, write_small_scan
from voxelflow import steps
from voxelflow.errors import ConfigError
from voxelflow.io.ome_zarr import fastread, open_ome_zarr
from voxelflow.pipelines.coarse import density_factors
from voxelflow.pipelines.config import load_config
from voxelflow.pipelines.plaque import run_plaque_pipeline

PREVIOUS = Path(__file__).resolve().parents[1] / "fixtures" / "plaque_previous" / "objects.parquet"


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    return write_small_scan(tmp_path_factory.mktemp("scan"))


@pytest.mark.parametrize("full_res", ["all", "none"])
def test_old_coarse_grid_gives_the_previous_objects(scan, tmp_path, full_res):
    brain, paths = scan
    # the edge shell is now edge_um plus two coarse voxels (4 um here) instead of one: 4 um now is 8 um before
    config = load_config(None, small_overrides(paths, tmp_path / "run") + [
        "pipeline.coarse_factors=[2, 4, 4]", "pipeline.bias_max_voxels=1000000", f'output.full_res="{full_res}"',
        "pipeline.edge_um=4.0"])
    result = run_plaque_pipeline(config, progress=False)
    previous = pd.read_parquet(PREVIOUS)
    got = pd.read_parquet(tmp_path / "run" / "objects.parquet")
    pd.testing.assert_frame_equal(got, previous)
    assert len(result.objects) == len(previous) > 20
    assert result.run["coarse"]["shape"] == [32, 32, 32]


def test_coarse_level_is_read_from_the_pyramid_without_level0(scan, tmp_path, monkeypatch):
    brain, paths = scan
    scan_path = Path(paths["scan"])
    reads: list[str] = []
    real_call = fastread.ChunkReader.__call__

    def counting(self, block_id):
        if Path(self.root).parent == scan_path:  # not the cache's own OME-Zarr outputs
            reads.append(Path(self.root).name)
        return real_call(self, block_id)

    monkeypatch.setattr(fastread.ChunkReader, "__call__", counting)
    at_full_res_pass = {}
    real_pass = steps.foreground_objects.fn

    def watched_pass(img, value, negative=None, field=None, connectivity=1):
        at_full_res_pass.update(level0=reads.count("0"), level1=reads.count("1"))
        return real_pass(img, value, negative, field, connectivity)

    monkeypatch.setattr(steps.foreground_objects, "_fn", watched_pass)
    # level 0 is 64x128x128 (1 M voxels), level 1 64x64x64: a 300 k budget fits level 1 as stored
    config = load_config(None, small_overrides(paths, tmp_path / "run") + [
        "pipeline.coarse_max_voxels=300000", 'output.full_res="none"'])
    result = run_plaque_pipeline(config, progress=False)
    coarse = result.run["coarse"]
    assert coarse["level"] == 1 and coarse["factors"] == [1, 1, 1] and coarse["shape"] == [64, 64, 64]
    assert coarse["scale_um"] == [2.0, 2.0, 2.0]
    # mask, N4 and threshold are done before the full-resolution pass: they read level 1 only
    assert at_full_res_pass["level0"] == 0
    assert at_full_res_pass["level1"] == 2 * 1 * 1  # (64, 64, 64) in chunks of (32, 64, 64)
    assert reads.count("0") == 2 * 2 * 2  # then the pass reads every level-0 chunk once
    assert len(result.objects) > 20


def test_micrometre_setting_picks_the_level_and_factors(scan, tmp_path):
    brain, paths = scan
    config = load_config(None, small_overrides(paths, tmp_path / "run") + [
        "pipeline.coarse_um=4", 'output.full_res="none"'])
    result = run_plaque_pipeline(config, progress=False)
    # 4 um from level 1 (2 um voxels) by factors of 2 reads 8x fewer voxels than from level 0
    assert result.run["coarse"]["level"] == 1
    assert result.run["coarse"]["factors"] == [2, 2, 2] and result.run["coarse"]["scale_um"] == [4.0, 4.0, 4.0]


def test_old_and_new_coarse_keys_together_are_refused():
    with pytest.raises(ConfigError, match="coarse_factors.*cannot be combined.*micrometres"):
        load_config(None, ['input.url="a"', 'output.folder="b"', "pipeline.coarse_factors=[2, 4, 4]",
                           "pipeline.coarse_um=25"])


def _density_config(um=None, budget=None, factors=None):
    return SimpleNamespace(pipeline=SimpleNamespace(density_um=um, coarse_max_voxels=budget, density_factors=factors))


def test_density_grid_is_physical_and_within_the_budget():
    scale = (4.0, 2.0, 2.0)
    # 25 um: whole voxels of at most 25 um on every axis, whatever the scan's size
    for shape in [(256, 1024, 1024), (512, 2048, 2048)]:
        assert density_factors(_density_config(), shape, scale) == (6, 12, 12)
    assert density_factors(_density_config(um=8), (64, 64, 64), scale) == (2, 4, 4)
    # a scan whose 25-um map would exceed the budget gets coarser voxels: the map stays within it
    for shape in [(1024, 2048, 4096), (4096, 8192, 8192)]:
        f = density_factors(_density_config(), shape, scale)
        assert np.prod([-(-n // k) for n, k in zip(shape, f)]) <= 2**23
        assert all(k * s >= 24 for k, s in zip(f, scale))
    f = density_factors(_density_config(budget=1000), (64, 64, 64), scale)
    assert np.prod([-(-n // k) for n, k in zip((64, 64, 64), f)]) <= 1000
    # a voxel size beyond the scan keeps one map voxel along that axis
    assert density_factors(_density_config(um=1e6), (8, 9, 10), scale) == (8, 9, 10)
    # the old setting is used as given
    assert density_factors(_density_config(factors=[4, 8, 8]), (512, 2048, 2048), scale) == (4, 8, 8)


def test_density_map_in_micrometres_counts_every_object(scan, tmp_path):
    brain, paths = scan
    overrides = [o for o in small_overrides(paths, tmp_path / "run") if "density_factors" not in o]
    config = load_config(None, overrides + ["pipeline.density_um=10", 'output.full_res="none"'])
    result = run_plaque_pipeline(config, progress=False)
    density, meta = open_ome_zarr(str(tmp_path / "run" / "density.ome.zarr"))
    # voxels of 2 x 1 x 1 um: 5 x 10 x 10 scan voxels per map voxel (10 um)
    shape = brain.image.shape
    assert density.shape == tuple(-(-n // f) for n, f in zip(shape, (5, 10, 10)))
    assert tuple(meta.scale[-3:]) == (10.0, 10.0, 10.0)
    objects = result.objects
    centre = np.floor(objects[["z", "y", "x"]].to_numpy() + 0.5) // np.array([5, 10, 10])
    expected = np.zeros(density.shape, np.int64)
    np.add.at(expected, tuple(centre.astype(int).T), 1)
    np.testing.assert_array_equal(density.compute(), expected)


def test_old_and_new_density_keys_together_are_refused():
    with pytest.raises(ConfigError, match="density_factors.*cannot be combined.*micrometres"):
        load_config(None, ['input.url="a"', 'output.folder="b"', "pipeline.density_factors=[4, 8, 8]",
                           "pipeline.density_um=25"])
