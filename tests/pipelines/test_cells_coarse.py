"""The cell pipeline's coarse grid follows pipeline.coarse_um / coarse_max_voxels on anisotropic voxels."""

import numpy as np
import pytest

from voxelflow.io import write_ome_zarr
from voxelflow.pipelines.cells import run_cell_pipeline
from voxelflow.pipelines.config import load_config
from voxelflow.synth_cells import make_synthetic_cells, score_cells

SHAPE = (24, 160, 160)
SPACING = (5.0, 2.0, 2.0)


@pytest.fixture(scope="module")
def pyramid_scan(tmp_path_factory):
    """A two-channel crop stored with levels of 5 x 2 x 2, 5 x 4 x 4 and 5 x 8 x 8 um (z kept)."""
    folder = tmp_path_factory.mktemp("cells_coarse")
    crop = make_synthetic_cells(SHAPE, seed=5, spacing=SPACING)
    url = str(folder / "scan.ome.zarr")
    write_ome_zarr(np.stack([crop.image, crop.background]), url, axes="czyx", scale=(1.0,) + SPACING,
                   units="micrometer", levels=3, factors=(1, 1, 2, 2), chunks=(1, 12, 80, 80))
    return crop, url, folder


def _run(url, out, *extra):
    config = load_config(None, [f"input.url={url}?slices=[0]", "input.background_channel=1", f"output.folder={out}",
                                'pipeline.kind="cells"', "cells.diameter_um=10", *extra])
    return run_cell_pipeline(config, progress=False)


@pytest.mark.parametrize("coarse_um, level, scale", [(4.0, 1, [5.0, 4.0, 4.0]), (8.0, 2, [5.0, 8.0, 8.0]),
                                                     (10.0, 2, [10.0, 8.0, 8.0])])
def test_the_coarse_level_follows_the_micrometre_setting(pyramid_scan, tmp_path, coarse_um, level, scale):
    crop, url, _ = pyramid_scan
    result = _run(url, tmp_path / "run", f"pipeline.coarse_um={coarse_um}")
    coarse = result.run["coarse"]
    # z is 5 um already: y and x are pooled to the wanted size, z only when it asks for 10 um
    # (no axis coarser than asked; from the stored level that needs the fewest voxels read)
    assert coarse["level"] == level and coarse["scale_um"] == scale
    expected = [-(-n * s0 // s) for n, s0, s in zip(SHAPE, SPACING, scale)]
    assert coarse["shape"] == expected
    # the tissue mask of that grid, up-sampled by whole factors, keeps the detection working
    s = score_cells(crop, result.objects[["z_um", "y_um", "x_um"]].to_numpy())
    assert s["precision"] >= 0.9 and s["recall"] >= 0.9


def test_a_voxel_budget_picks_the_finest_level_that_fits(pyramid_scan, tmp_path):
    _, url, _ = pyramid_scan
    budget = int(np.prod([SHAPE[0], SHAPE[1] // 4, SHAPE[2] // 4]))  # level 2 fits, level 1 does not
    result = _run(url, tmp_path / "run", f"pipeline.coarse_max_voxels={budget}")
    coarse = result.run["coarse"]
    assert coarse["level"] == 2 and coarse["factors"] == [1, 1, 1] and coarse["scale_um"] == [5.0, 8.0, 8.0]
    assert coarse["read_voxels"] == budget  # the stored level is read, not the full-resolution scan
