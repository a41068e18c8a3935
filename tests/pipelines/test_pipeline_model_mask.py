"""pipeline.mask = "model:PATH": a segmentation model on the coarse level gives the negative mask."""

import numpy as np
import pytest

from models_helpers import dark_net
from pipeline_helpers import small_overrides, write_small_scan
from voxelflow.errors import InvalidPathError
from voxelflow.io.models.onnx import OnnxModel
from voxelflow.io.ome_zarr import open_ome_zarr
from voxelflow.pipelines.config import load_config
from voxelflow.pipelines.plaque import run_plaque_pipeline
from voxelflow.synth import score_detections


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    return write_small_scan(tmp_path_factory.mktemp("scan"))


def _stored(out, node):
    return open_ome_zarr(str(out / "cache" / node / "out0" / "data.ome.zarr"))[0].compute()


def _run(paths, out, *extra):
    return run_plaque_pipeline(load_config(None, small_overrides(paths, out) + ["pipeline.bias=false", *extra]),
                               progress=False)


def test_3d_onnx_model_masks_what_it_segments(scan, tmp_path):
    brain, paths = scan
    net = dark_net(tmp_path / "dark.onnx", level=250)  # the scan: ~100 outside tissue, ~400 inside
    result = _run(paths, tmp_path / "run", f'pipeline.mask="model:{net}"')
    coarse = _stored(tmp_path / "run", "coarse")
    negative = _stored(tmp_path / "run", "negative_mask").astype(bool)
    # reference: onnxruntime on the whole coarse level, padded as predict pads (reflect)
    ref = OnnxModel(net)(np.pad(coarse, 1, mode="reflect"))[1, 1:-1, 1:-1, 1:-1] >= 0.5
    np.testing.assert_array_equal(negative, ref)
    assert 0.05 < negative.mean() < 0.95
    score = score_detections(result.objects, brain.truth, brain.regions)
    assert score["recall"] >= 0.95
    # no object is kept whose voxels lie in the masked (dark) region
    factors = [n / m for n, m in zip(brain.image.shape, negative.shape)]  # the coarse grid of this run
    at = tuple(np.floor((result.objects[c].to_numpy() + 0.5) / f).astype(int) for c, f in zip("zyx", factors))
    assert not negative[at].any()


def test_triplanar_2d_model_and_caching(scan, tmp_path):
    brain, paths = scan
    net = dark_net(tmp_path / "dark2d.onnx", level=250, spatial_ndim=2)
    extra = [f'pipeline.mask="model:{net}"', 'pipeline.mask_mode="triplanar"']
    first = _run(paths, tmp_path / "run", *extra)
    coarse = _stored(tmp_path / "run", "coarse")
    negative = _stored(tmp_path / "run", "negative_mask").astype(bool)
    model = OnnxModel(net)
    probs = []
    for axis in range(3):
        padded = np.pad(coarse, [(0, 0) if a == axis else (1, 1) for a in range(3)], mode="reflect")
        planes = [model(np.take(padded, i, axis=axis))[1, 1:-1, 1:-1] for i in range(coarse.shape[axis])]
        probs.append(np.stack(planes, axis=axis))
    mean = sum(probs) / 3
    ref = mean >= 0.5
    assert (negative == ref).all() or np.abs(mean[negative != ref] - 0.5).max() < 1e-6
    again = _run(paths, tmp_path / "run", *extra)
    states = {r.node.rsplit("/", 1)[-1]: r.cached for r in again.records}
    assert states["negative_mask"] is True
    assert len(again.objects) == len(first.objects)


def test_missing_model_file_is_named(scan, tmp_path):
    _, paths = scan
    with pytest.raises(InvalidPathError, match="nowhere.onnx"):
        _run(paths, tmp_path / "run", f'pipeline.mask="model:{tmp_path / "nowhere.onnx"}"')
