"""Small ONNX networks built with the ``onnx`` helper API (no torch), for the model tests and benchmark."""

from __future__ import annotations

import numpy as np


def conv_net(path, *, spatial_ndim: int = 3, in_channels: int = 1, hidden: int = 4, classes: int = 2,
             kernel: int = 3, seed: int = 0, halo_metadata: str | None = None, dynamic_channels: bool = False):
    """Write a 2-layer conv net (conv-relu-conv-softmax, 'same' zero padding) to ``path``.

    The receptive-field radius is ``kernel - 1`` voxels (two convolutions of
    radius ``kernel // 2``). Weights are random but fixed by ``seed``.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    k = (kernel,) * spatial_ndim
    w1 = rng.normal(0, 0.5, (hidden, in_channels, *k)).astype(np.float32)
    b1 = rng.normal(0, 0.1, hidden).astype(np.float32)
    w2 = rng.normal(0, 0.5, (classes, hidden, *k)).astype(np.float32)
    b2 = rng.normal(0, 0.1, classes).astype(np.float32)
    pads = [kernel // 2] * (2 * spatial_ndim)
    spatial = ["z", "y", "x"][-spatial_ndim:]
    nodes = [
        helper.make_node("Conv", ["input", "w1", "b1"], ["h1"], pads=pads),
        helper.make_node("Relu", ["h1"], ["h2"]),
        helper.make_node("Conv", ["h2", "w2", "b2"], ["logits"], pads=pads),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "voxelflow-test-net",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", in_channels, *spatial])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT,
                                       ["n", "c" if dynamic_channels else classes, *spatial])],
        [numpy_helper.from_array(a, name) for a, name in ((w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if halo_metadata is not None:
        helper.set_model_props(model, {"voxelflow.halo": halo_metadata})
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def run_whole(path, x: np.ndarray) -> np.ndarray:
    """onnxruntime on the whole array at once: ``(C, *x.shape)`` float32."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x[None, None].astype(np.float32)})[0][0]


def dark_net(path, *, level: float, spatial_ndim: int = 3, slope: float = 0.05):
    """A 2-class 'segmentation' net: class 1 where a 3x3(x3) mean is below ``level`` (dark = outside tissue).

    p1 = sigmoid(slope * (level - mean)), p0 = 1 - p1; receptive-field radius 1.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    k = (3,) * spatial_ndim
    w = np.full((1, 1, *k), -slope / 3**spatial_ndim, np.float32)
    b = np.array([slope * level], np.float32)
    spatial = ["z", "y", "x"][-spatial_ndim:]
    nodes = [
        helper.make_node("Conv", ["input", "w", "b"], ["logit"], pads=[1] * (2 * spatial_ndim)),
        helper.make_node("Sigmoid", ["logit"], ["p1"]),
        helper.make_node("Sub", ["one", "p1"], ["p0"]),
        helper.make_node("Concat", ["p0", "p1"], ["probabilities"], axis=1),
    ]
    graph = helper.make_graph(
        nodes, "dark",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 1, *spatial])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["n", 2, *spatial])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b"),
         numpy_helper.from_array(np.ones((1,), np.float32), "one")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, {"voxelflow.halo": "1"})
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def assert_same_instances(ours: np.ndarray, ref: np.ndarray) -> None:
    """Two label images are equal up to a renumbering of their non-zero ids."""
    assert ours.shape == ref.shape
    np.testing.assert_array_equal(ours == 0, ref == 0)
    fg = ref != 0
    pairs = np.unique(np.stack([ours[fg], ref[fg]], axis=1), axis=0)
    assert len(pairs) == len(np.unique(pairs[:, 0])) == len(np.unique(pairs[:, 1])), "an object is split or merged"
