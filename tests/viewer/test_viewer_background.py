"""The background (autofluorescence) channel of a cell run is its own layer, in the run folder and its cache."""

from __future__ import annotations

import numpy as np
import pytest
from viewer_helpers import look_at, shot, to_screen

from voxelflow.pipelines.cells import run_cell_pipeline
from voxelflow.pipelines.config import load_config
from voxelflow.synth_cells import make_synthetic_cells, write_synthetic_cells
from voxelflow.viewer.add import add_layers
from voxelflow.viewer.sources import layers_for_path, list_cached_steps

SHAPE = (16, 96, 96)
SPACING = (5.0, 2.0, 2.0)


@pytest.fixture(scope="module")
def cell_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("viewer-cells")
    crop = make_synthetic_cells(SHAPE, seed=3, spacing=SPACING)
    urls = write_synthetic_cells(crop, folder / "data")
    config = load_config(None, [f"input.url={urls['scan']}?slices=[0]", "input.background_channel=1",
                                f"output.folder={folder / 'run'}", 'pipeline.kind="cells"', "cells.diameter_um=10"])
    run_cell_pipeline(config, progress=False)
    return crop, folder / "run"


def _finest(data):
    return np.asarray(data[0] if isinstance(data, list) else data)


def _check_background_layer(layer, crop, name):
    data, kwargs, layer_type = layer
    assert layer_type == "image" and kwargs["name"] == name
    np.testing.assert_array_equal(_finest(data), crop.background)  # the second channel, not the signal
    assert kwargs["scale"] == list(SPACING)
    lo, hi = kwargs["contrast_limits"]
    bg = crop.background
    # from the data, not the uint16 range
    assert bg.min() <= lo < np.median(bg) < hi <= bg.max()


def test_the_run_folder_shows_the_autofluorescence_channel_as_its_own_layer(cell_run):
    crop, run = cell_run
    layers = layers_for_path(str(run))
    names = [kw["name"] for _, kw, _ in layers]
    assert names.count("autofluorescence") == 1
    (scan,) = [ld for ld in layers if ld[1]["name"] == "scan"]
    np.testing.assert_array_equal(_finest(scan[0]), crop.image)
    _check_background_layer(layers[names.index("autofluorescence")], crop, "autofluorescence")
    assert names.index("scan") < names.index("autofluorescence") < names.index("objects")


def test_the_cache_of_the_run_shows_it_as_a_step(cell_run):
    crop, run = cell_run
    steps = {s.name: s for s in list_cached_steps(str(run / "cache"))}
    assert steps["background_channel"].outputs == ("reference",) and steps["background_channel"].viewable
    assert steps["channel_levels"].outputs[2] == "value"  # the factor, beside the levels of both channels
    (layer,) = layers_for_path(str(run / "cache"), steps=["background_channel"])
    _check_background_layer(layer, crop, "background_channel")
    every = layers_for_path(str(run / "cache"))
    assert [kw["name"] for _, kw, _ in every].count("background_channel") == 1


def test_napari_draws_the_autofluorescence_where_the_channel_is_bright(viewer, cell_run):
    crop, run = cell_run
    added = add_layers(viewer, layers_for_path(str(run)))
    layer = viewer.layers["autofluorescence"]
    assert layer in added and layer.colormap.name == "magenta"
    for other in viewer.layers:
        other.visible = other is layer
    z = SHAPE[0] // 2
    viewer.dims.set_point(0, z * SPACING[0])
    plane = crop.background[z].astype(float)
    lo, hi = layer.contrast_limits
    bright = np.unravel_index(np.argmax(plane), plane.shape)
    dark = np.unravel_index(np.argmin(plane), plane.shape)
    assert plane[bright] >= hi and plane[dark] <= lo + 0.1 * (hi - lo)
    look_at(viewer, (SHAPE[1], SHAPE[2]), zoom=3.0)
    pic = shot(viewer)
    r, g, b = (int(v) for v in pic[to_screen(viewer, pic, (bright[0] * SPACING[1], bright[1] * SPACING[2]))])
    assert r > 200 and b > 200 and g < 60  # saturated magenta
    assert pic[to_screen(viewer, pic, (dark[0] * SPACING[1], dark[1] * SPACING[2]))].max() < 60
