"""Step images carry their position: every voxel of a coarse or full-resolution step image is centred on the
scan voxels it was computed from, also for a scan whose OME-Zarr has a translation (so the viewer draws every
layer over the scan)."""

import numpy as np
import pytest

from pipeline_helpers import SMALL_BRAIN, SMALL_SHAPE, small_overrides
from voxelflow.io.ome_zarr import open_ome_zarr, write_ome_zarr
from voxelflow.pipelines.config import load_config
from voxelflow.pipelines.plaque import run_plaque_pipeline
from voxelflow.steps.node import output_image, read_step
from voxelflow.synth import make_synthetic_brain

SCAN_TRANSLATION = (120.0, -37.5, 1000.0)  # um, z y x


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("translated")
    brain = make_synthetic_brain(SMALL_SHAPE, 5, **SMALL_BRAIN)
    scan = folder / "scan.ome.zarr"
    write_ome_zarr(brain.image[None], str(scan), scale=(1.0, *brain.scale), translation=(0.0, *SCAN_TRANSLATION),
                   levels=2, factors=(1, 1, 2, 2), chunks=(1, 32, 64, 64), overwrite=True)
    atlas = folder / "atlas.ome.zarr"
    write_ome_zarr(brain.atlas, str(atlas), scale=brain.atlas_scale, method="nearest", overwrite=True)
    regions = folder / "regions.csv"
    regions.write_text(brain.regions.to_csv(index=False))
    paths = {"scan": str(scan), "atlas": str(atlas), "regions": str(regions)}
    out = folder / "run"
    # the bias field is fitted on blocks of the coarse grid when that grid exceeds bias_max_voxels
    overrides = small_overrides(paths, out) + ["pipeline.coarse_um=8.0", "pipeline.bias=true",
                                               "pipeline.bias_max_voxels=512"]
    run_plaque_pipeline(load_config(None, overrides), progress=False)
    return out, np.asarray(brain.scale, dtype=float)


def _positions(out, scan_scale, scan_translation) -> dict:
    """Factors over the scan of every step image, after checking each is centred on its blocks."""
    seen = {}
    for step_file in sorted((out / "cache").glob("*/step.json")):
        node = step_file.parent
        desc = read_step(str(node))
        # images on the scan's grid; untyped steps hold per-plane statistics, tables carry no position
        if desc["outputs"][0] != "image" or desc["kind"] is None:
            continue
        name = node.name
        _, meta = open_ome_zarr(output_image(str(node)).url)
        scale, translation = np.asarray(meta.scale[-3:]), np.asarray(meta.translation[-3:])
        factors = scale / scan_scale
        assert np.allclose(factors, np.round(factors)) and (factors >= 1).all(), (name, scale)
        np.testing.assert_allclose(translation, np.asarray(scan_translation) + (factors - 1) / 2 * scan_scale,
                                   err_msg=name)
        seen[name] = tuple(int(f) for f in np.round(factors))
    return seen


def test_every_step_image_is_centred_on_the_scan_voxels_it_came_from(run):
    out, scan_scale = run
    # block j covers scan voxels j f .. j f + f - 1, centred at t + (j f + (f - 1) / 2) s
    seen = _positions(out, scan_scale, SCAN_TRANSLATION)
    # the full-resolution steps, the coarse grid (read from the scan's second level) and the density map
    assert seen["label"] == (1, 1, 1) and seen["foreground"] == (1, 1, 1)
    assert seen["coarse"] == (4, 8, 8) and seen["density"] == (8, 16, 16)
    assert seen["bias_field"] == (8, 16, 16)  # 8 x 8 x 8 blocks of the 16 x 16 x 16 coarse grid


def test_the_cell_recipe_places_its_step_images_too(tmp_path):
    from voxelflow.pipelines.cells import run_cell_pipeline
    from voxelflow.synth_cells import make_synthetic_cells

    spacing = (5.0, 2.0, 2.0)
    crop = make_synthetic_cells((24, 160, 160), seed=5, spacing=spacing)
    url = str(tmp_path / "scan.ome.zarr")
    write_ome_zarr(np.stack([crop.image, crop.background]), url, axes="czyx", scale=(1.0,) + spacing,
                   translation=(0.0, *SCAN_TRANSLATION), units="micrometer", levels=3, factors=(1, 1, 2, 2),
                   chunks=(1, 12, 80, 80))
    config = load_config(None, [f"input.url={url}?slices=[0]", "input.background_channel=1",
                                f"output.folder={tmp_path / 'run'}", 'pipeline.kind="cells"', "cells.diameter_um=10",
                                "pipeline.coarse_um=8.0"])
    run_cell_pipeline(config, progress=False)
    seen = _positions(tmp_path / "run", np.asarray(spacing), SCAN_TRANSLATION)
    assert seen["coarse"] == (1, 4, 4) and seen["negative_mask"] == (1, 4, 4)
    assert seen["response"] == (1, 1, 1) and seen["components"] == (1, 1, 1) and "density" in seen
