"""The npe2 reader plugin: napari opens images, run folders and caches through voxelflow."""

from __future__ import annotations

import numpy as np
import pytest
from viewer_helpers import (
    BOXES,
    SCALE,
    close_to,
    look_at,
    make_run_folder,
    shot,
    to_screen,
)

npe2 = pytest.importorskip("npe2")


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("viewer-plugin")
    return str(root), make_run_folder(root)


def test_manifest_declares_the_reader():
    pm = npe2.PluginManager.instance()
    pm.discover()
    manifest = pm.get_manifest("voxelflow")
    [reader] = manifest.contributions.readers
    assert reader.accepts_directories and "*.ome.zarr.zip" in reader.filename_patterns


def test_npe2_reads_image_run_folder_and_cache(run_folder):
    root, run = run_folder
    kinds = {}
    for path in (f"{root}/scan.ome.zarr", run, f"{root}/cache"):
        layers = npe2.read([path], stack=False, plugin_name="voxelflow")
        kinds[path] = [ld[2] for ld in layers]
    assert kinds[f"{root}/scan.ome.zarr"] == ["image"]
    assert kinds[run] == ["image", "image", "labels", "labels", "points"]
    assert kinds[f"{root}/cache"] == ["image", "image", "labels", "labels", "points"]


def test_npe2_picks_the_reader_for_a_zip_archive_by_its_name(tmp_path):
    from voxelflow.io.ome_zarr import write_ome_zarr

    zipped = str(write_ome_zarr(np.arange(4 * 8 * 8, dtype=np.uint16).reshape(4, 8, 8),
                                tmp_path / "small.ome.zarr.zip", zip=True))
    pm = npe2.PluginManager.instance()
    pm.discover()
    readers = [r.command for r in pm.iter_compatible_readers([zipped])]
    assert "voxelflow.get_reader" in readers
    [(data, kwargs, kind)] = npe2.read([zipped], stack=False, plugin_name="voxelflow")
    assert kind == "image" and kwargs["name"] == "small" and data.shape == (4, 8, 8)


def test_reader_declines_what_it_cannot_show(tmp_path):
    from voxelflow.viewer.reader import get_reader

    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("x")
    assert get_reader(str(tmp_path / "notes")) is None
    assert get_reader(str(tmp_path / "missing.ome.zarr")) is None
    assert get_reader([str(tmp_path), str(tmp_path)]) is None


@pytest.mark.viewer
def test_napari_open_with_the_plugin_draws_objects_in_place(viewer, run_folder):
    _, run = run_folder
    layers = viewer.open(run, plugin="voxelflow")
    assert [ly.name for ly in layers] == ["scan", "density", "bright", "components", "objects"]
    scan, density, bright, components, objects = layers
    assert not density.visible
    assert not bright.visible and list(components.scale) == list(SCALE)
    scan.visible = False
    components.opacity = 1.0
    _, z, y0, y1, x0, x1 = BOXES[1]
    viewer.dims.set_point(0, z * SCALE[0])
    look_at(viewer, (32 * SCALE[1], 32 * SCALE[2]), zoom=8.0)
    pic = shot(viewer)
    centre = ((y0 + y1 - 1) / 2 * SCALE[1], (x0 + x1 - 1) / 2 * SCALE[2])
    edge = (y0 * SCALE[1] + 0.3, (x0 + x1 - 1) / 2 * SCALE[2])  # inside the box, outside the ring
    assert close_to(pic[to_screen(viewer, pic, edge)], components.get_color(2))
    # The object's point is drawn around its centroid: yellow ring pixels near the box centre.
    r, c = to_screen(viewer, pic, centre)
    window = pic[r - 40:r + 41, c - 40:c + 41].astype(int)
    assert (np.abs(window - [255, 208, 0]).max(axis=-1) < 40).sum() > 30
