"""A real inference engine chunk by chunk: an ONNX conv net through onnxruntime.

The reference is onnxruntime run once on the whole array (padded by the halo
the same way the chunks are, or unpadded and compared away from the borders).
"""

import pickle

import dask.array as da
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models_helpers import conv_net, run_whole
from ops_helpers import chunkings
from voxelflow.errors import InvalidInputError, InvalidPathError
from voxelflow.io.models import load_model
from voxelflow.io.models.onnx import OnnxModel
from voxelflow.ops import predict


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    return conv_net(tmp_path_factory.mktemp("onnx") / "net.onnx")


def image(shape, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, shape).astype(np.float32)
    x[..., : shape[-1] // 3] += 2.0  # a brighter slab, so both classes occur
    return x


@settings(max_examples=12)
@given(st.data())
def test_chunked_onnx_equals_onnxruntime_on_the_whole_padded_array(net, data):
    shape = tuple(data.draw(st.integers(4, 20)) for _ in range(3))
    chunks = data.draw(chunkings(shape, max_parts=3))
    pad_mode = data.draw(st.sampled_from(["reflect", "constant", "edge"]))
    batch_size = data.draw(st.integers(1, 3))
    x = image(shape, data.draw(st.integers(0, 1000)))
    model = load_model(net)
    halo = 2  # two 3x3x3 convolutions
    out = predict(da.from_array(x, chunks=chunks), model, halo=halo, dtype="float32", pad_mode=pad_mode,
                  batch_size=batch_size).compute()
    ref = run_whole(net, np.pad(x, halo, mode=pad_mode))[:, halo:-halo, halo:-halo, halo:-halo]
    assert out.shape == (2, *shape)
    np.testing.assert_allclose(out, ref, rtol=0, atol=2e-6)


def test_chunked_onnx_equals_unpadded_whole_array_away_from_borders(net):
    x = image((24, 40, 36), 3)
    out = predict(da.from_array(x, chunks=(8, 13, 12)), OnnxModel(net), halo=2, dtype="float32").compute()
    ref = run_whole(net, x)
    inner = (slice(None),) + (slice(2, -2),) * 3
    np.testing.assert_allclose(out[inner], ref[inner], rtol=0, atol=2e-6)
    classes = predict(da.from_array(x, chunks=(8, 13, 12)), OnnxModel(net), halo=2, output="classes").compute()
    agree = classes[inner[1:]] == np.argmax(ref[inner], axis=0)
    # argmax may flip only where the two probabilities tie within float error
    assert agree.all() or np.abs(ref[0] - ref[1])[inner[1:]][~agree].max() < 1e-5


def test_halo_below_the_receptive_field_is_visible(net):
    x = image((16, 16, 16), 4)
    out = predict(da.from_array(x, chunks=8), OnnxModel(net), halo=1, dtype="float32", pad_mode="constant")
    ref = run_whole(net, np.pad(x, 2))[:, 2:-2, 2:-2, 2:-2]
    assert np.abs(out.compute() - ref).max() > 1e-3


def test_model_properties_halo_metadata_pickling_and_tokens(tmp_path):
    path = conv_net(tmp_path / "meta.onnx", halo_metadata="2", classes=3)
    model = OnnxModel(path)
    assert model.channels == 3 and model.halo == (2, 2, 2) and model.spatial_ndim == 3 and model.in_channels == 1
    x = image((10, 12, 14), 5)
    out = predict(da.from_array(x, chunks=5), model, dtype="float32", pad_mode="constant").compute()
    ref = run_whole(path, np.pad(x, 2))[:, 2:-2, 2:-2, 2:-2]
    np.testing.assert_allclose(out, ref, atol=2e-6)
    clone = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(clone(x), model(x))
    assert clone.__dask_tokenize__() == OnnxModel(path).__dask_tokenize__()
    assert clone.__dask_tokenize__() != OnnxModel(conv_net(tmp_path / "other.onnx", seed=1)).__dask_tokenize__()


def test_2d_network(tmp_path):
    path = conv_net(tmp_path / "net2d.onnx", spatial_ndim=2)
    x = image((30, 40), 6)
    out = predict(da.from_array(x, chunks=(7, 11)), load_model(path), halo=2, dtype="float32",
                  pad_mode="symmetric").compute()
    ref = OnnxModel(path)(np.pad(x, 2, mode="symmetric"))[:, 2:-2, 2:-2]
    np.testing.assert_allclose(out, ref, atol=2e-6)


def identity_net(path):
    """An identity network whose channel count is not fixed in the file."""
    import onnx
    from onnx import TensorProto, helper

    dims = ["n", "c", "z", "y", "x"]
    graph = helper.make_graph(
        [helper.make_node("Identity", ["input"], ["output"])], "identity",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, dims)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_channels_when_the_file_leaves_them_open(tmp_path):
    path = identity_net(tmp_path / "dyn.onnx")
    with pytest.raises(InvalidInputError, match="pass channels="):
        OnnxModel(path)
    model = OnnxModel(path, channels=1)
    assert model.channels == 1 and model.in_channels is None
    x = image((6, 7, 8))
    np.testing.assert_array_equal(predict(x, model, dtype="float32").compute(), x[None])


def test_bad_files_and_blocks(tmp_path, net):
    with pytest.raises(InvalidPathError, match="missing.onnx"):
        OnnxModel(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(InvalidInputError, match="junk.onnx is not a valid ONNX model"):
        OnnxModel(junk)
    with pytest.raises(InvalidInputError, match="no output named"):
        OnnxModel(net, output="logits2")
    with pytest.raises(InvalidInputError, match="3 spatial axes"):
        OnnxModel(net)(np.zeros((4, 4), np.float32))
    with pytest.raises(InvalidInputError, match="1 input channels"):
        OnnxModel(net)(np.zeros((2, 4, 4, 4), np.float32))
    with pytest.raises(InvalidInputError, match="cannot tell the model format"):
        load_model(tmp_path / "weights.bin")
