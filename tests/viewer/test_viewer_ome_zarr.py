"""OME-Zarr images, channels, labels, zip and ``?slices=`` drawn in a real napari canvas."""

from __future__ import annotations

import numpy as np
import pytest
from viewer_helpers import close_to, look_at, shot, to_screen, write_ngff

from voxelflow.errors import OmeZarrError
from voxelflow.io.ome_zarr import write_ome_zarr
from voxelflow.viewer import add_ome_zarr, ome_zarr_layers


def _scan():
    rng = np.random.default_rng(3)
    img = rng.integers(90, 110, size=(2, 8, 64, 64)).astype(np.uint16)
    img[0, 3, 10:20, 40:50] = 4000  # channel 0: one bright box
    img[1] += 1000  # channel 1: a different range
    lab = np.zeros((8, 64, 64), np.uint32)
    lab[3, 30:40, 8:24] = 12
    return img, lab


@pytest.fixture(params=["0.4", "0.5"])
def ngff(request, tmp_path):
    img, lab = _scan()
    url = write_ngff(tmp_path / "scan.ome.zarr", img, axes="czyx", fmt=request.param,
                     scale={"c": 1.0, "z": 2.0, "y": 0.5, "x": 0.5}, labels={"plaques": lab})
    return url, img, lab


@pytest.mark.viewer
def test_image_written_by_ome_zarr_py_opens_with_channels_labels_and_physical_scale(viewer, ngff):
    url, img, lab = ngff
    layers = add_ome_zarr(viewer, url)
    assert [ly.name for ly in layers] == ["scan [0]", "scan [1]", "scan [plaques]"]
    ch0, ch1, labels = layers
    assert type(labels).__name__ == "Labels" and ch0.multiscale
    assert list(ch0.scale) == [2.0, 0.5, 0.5] and list(labels.scale) == [2.0, 0.5, 0.5]
    assert str(ch0.units[0]) == "micrometer"
    # Contrast per channel from the coarsest level, not the uint16 range.
    assert ch0.contrast_limits[1] <= 4000 and ch1.contrast_limits[0] >= 1000
    ch1.visible = False
    labels.opacity = 1.0
    viewer.dims.set_point(0, 3 * 2.0)
    look_at(viewer, (16, 16), zoom=10.0)
    pic = shot(viewer)
    assert close_to(pic[to_screen(viewer, pic, (35 * 0.5, 16 * 0.5))], labels.get_color(12))
    box_colour = ch0.colormap.map(np.array([1.0]))[0]  # channel 0's colormap at full brightness
    assert close_to(pic[to_screen(viewer, pic, (15 * 0.5, 45 * 0.5))], box_colour)  # bright box
    assert pic[to_screen(viewer, pic, (5 * 0.5, 5 * 0.5))].max() < 60  # background
    # Another plane: neither object.
    viewer.dims.set_point(0, 6 * 2.0)
    pic = shot(viewer)
    assert pic[to_screen(viewer, pic, (15 * 0.5, 45 * 0.5))].max() < 60
    assert not close_to(pic[to_screen(viewer, pic, (35 * 0.5, 16 * 0.5))], labels.get_color(12))


def test_merged_channels_and_coarse_level_contrast(ngff):
    url, img, _ = ngff
    (data, kwargs, kind), _labels = ome_zarr_layers(url, split_channels=False)
    assert kind == "image" and kwargs["axis_labels"] == ["c", "z", "y", "x"]
    assert data[0].shape == img.shape and kwargs["scale"] == [1.0, 2.0, 0.5, 0.5]
    coarse = np.asarray(data[-1])
    assert kwargs["contrast_limits"] == pytest.approx(list(np.percentile(coarse, [0.1, 99.9])))
    (_, kwargs, _), = ome_zarr_layers(url, labels=False)
    for c, (lo, hi) in enumerate(kwargs["contrast_limits"]):
        assert (lo, hi) == pytest.approx(tuple(np.percentile(coarse[c], [0.1, 99.9])))


@pytest.mark.viewer
def test_zip_with_slices_is_cropped_and_placed_at_its_physical_offset(viewer, tmp_path):
    img, lab = _scan()
    url = str(write_ome_zarr(img, tmp_path / "scan.ome.zarr.zip", axes="czyx", zip=True, levels=2,
                             factors=(1, 1, 2, 2), scale={"z": 2.0, "y": 0.5, "x": 0.5}))
    [layer] = add_ome_zarr(viewer, url + "?slices=[0, 2:6, 8:, 32:]")
    assert layer.data[0].shape == (4, 56, 32) and layer.data[1].shape == (4, 28, 16)
    assert list(layer.translate) == [4.0, 4.0, 16.0]
    np.testing.assert_array_equal(np.asarray(layer.data[0][1]), img[0, 3, 8:, 32:])
    viewer.dims.set_point(0, 3 * 2.0)
    look_at(viewer, (16, 24), zoom=10.0)
    pic = shot(viewer)
    # The bright box sits at its place in the whole image, whatever the crop.
    assert pic[to_screen(viewer, pic, (15 * 0.5, 45 * 0.5))].min() > 240
    assert pic[to_screen(viewer, pic, (25 * 0.5, 45 * 0.5))].max() < 60


def test_slices_crop_the_label_images_too(ngff):
    url, img, lab = ngff
    _c0, (labels, kwargs, kind) = ome_zarr_layers(url + "?slices=[0, 3, 25:45, :30]")
    assert kind == "labels" and kwargs["translate"][-2:] == [12.5, 0.0]
    np.testing.assert_array_equal(np.asarray(labels[0]), lab[3, 25:45, :30])


def test_a_label_image_opened_alone_is_a_labels_layer(ngff):
    url, _img, lab = ngff
    [(data, kwargs, kind)] = ome_zarr_layers(url + "/labels/plaques")
    assert kind == "labels" and "contrast_limits" not in kwargs
    np.testing.assert_array_equal(np.asarray(data[0]), lab)


def test_not_an_image_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(OmeZarrError, match="not an OME-Zarr image|nothing exists"):
        ome_zarr_layers(str(tmp_path / "empty"))


def test_remote_image_with_labels_over_fsspec():
    from voxelflow.io.ome_zarr import write_labels

    img, lab = _scan()
    url = "memory://viewer-test/scan.ome.zarr"
    write_ome_zarr(img[0], url, scale=(2.0, 0.5, 0.5), levels=2, factors=(1, 2, 2), overwrite=True)
    write_labels(lab, url, "plaques")
    layers = ome_zarr_layers(url + "?slices=[3]")
    assert [(kw["name"], t) for _, kw, t in layers] == [("scan", "image"), ("scan [plaques]", "labels")]
    np.testing.assert_array_equal(np.asarray(layers[0][0][0]), img[0, 3])
    np.testing.assert_array_equal(np.asarray(layers[1][0][0]), lab[3])
    assert layers[1][1]["scale"] == [0.5, 0.5] and layers[1][1]["translate"] == [0.0, 0.0]
