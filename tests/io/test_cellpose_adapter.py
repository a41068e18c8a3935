"""cellpose adapter, with cellpose and torch installed (the ``cellpose`` extra).

Runs only where the extra is installed (command in tests/io/test_nnunet_adapter.py).
cellpose's pretrained networks are downloaded from a model hub on first use,
which this machine cannot reach, so the network inside cellpose's model is an
oracle: for every tile cellpose hands it, it returns the flows and cell
probabilities of the tile's thresholded connected components, computed with
cellpose's own ``masks_to_flows_gpu``. Everything else is cellpose's real
``CellposeModel.eval`` (3-D tiling over the three orientations, flow dynamics,
mask assembly) driven through the adapter and ``predict``.
"""

import dask.array as da
import numpy as np
import pytest
from scipy import ndimage as ndi

models = pytest.importorskip("cellpose.models")
torch = pytest.importorskip("torch")

from cellpose import dynamics  # noqa: E402

from models_helpers import assert_same_instances  # noqa: E402
from voxelflow.io.models import load_model  # noqa: E402
from voxelflow.io.models.cellpose import CellposeModel  # noqa: E402
from voxelflow.ops import predict  # noqa: E402


class OracleNet(torch.nn.Module):
    """Flows of the thresholded components of each tile, in cellpose's output layout."""

    def __init__(self):
        super().__init__()
        self.device = torch.device("cpu")
        self.dtype = torch.float32

    def forward(self, tiles):
        out = []
        for tile in tiles.numpy():
            masks = ndi.label(tile[0] > 0.5)[0]
            flows = np.asarray(dynamics.masks_to_flows_gpu(masks, device=self.device)[0])
            prob = np.where(masks > 0, 10.0, -10.0)
            out.append(np.concatenate([5 * flows, prob[None]]))
        return torch.from_numpy(np.stack(out).astype(np.float32)), torch.zeros((len(out), 256))


def oracle_adapter(**kwargs):
    adapter = CellposeModel("oracle", normalize=False, min_size=5, **kwargs)
    net = object.__new__(models.CellposeModel)
    net.net, net.device, net.backbone, net.timing = OracleNet(), torch.device("cpu"), "sam_vitl", False
    adapter._net = net  # the network cellpose would load from its model hub
    return adapter


def spheres(shape, centres, radius=5):
    zz, yy, xx = np.indices(shape)
    x = np.zeros(shape, np.float32)
    for z, y, c in centres:
        x[((zz - z) * 1.5) ** 2 + (yy - y) ** 2 + (xx - c) ** 2 <= radius**2] = 1.0
    return x


def test_adapter_returns_cellpose_masks_of_a_block():
    x = spheres((12, 48, 48), [(6, 12, 12), (6, 30, 30), (4, 12, 36)])
    masks = oracle_adapter(diameter=30)(x)
    assert masks.shape == x.shape and masks.dtype == np.int64
    assert_same_instances(masks, ndi.label(x > 0.5)[0])


def test_chunked_cellpose_instances_are_stitched_exactly():
    x = spheres((12, 64, 64), [(6, 12, 12), (6, 30, 31), (4, 12, 44), (7, 50, 20), (5, 48, 50)])
    adapter = oracle_adapter(diameter=30)
    whole = adapter(x)
    tiles = predict(da.from_array(x, chunks=(12, 32, 32)), adapter, halo=(4, 12, 12), output="instances",
                    pad_mode="constant")
    stitched, n = tiles.stitch()
    ours = stitched.compute(scheduler="sync")
    assert n == len(np.unique(whole)) - 1 == 5
    # the oracle's flows come from thresholded components, so the components are the answer;
    # chunk by chunk with a halo, cellpose finds them exactly and stitching gives each one id
    # (cellpose run once on this whole 12-plane volume drops about half of two spheres, which
    # lie near its z border: its masks depend on the image extent)
    assert_same_instances(ours, ndi.label(x > 0.5)[0])


def test_spec_and_default_halo():
    adapter = CellposeModel("cpsam", diameter=10, anisotropy=2.5)
    assert adapter.halo == (8, 20, 20) and adapter.channels is None
    assert isinstance(load_model("cellpose:cpsam", diameter=10), CellposeModel)
