"""nnU-Net v2 adapter, with nnunetv2 and torch installed (the ``nnunet`` extra).

Runs only where the extra is installed::

    python -m venv /tmp/vf-extras && /tmp/vf-extras/bin/pip install torch==2.13.0 \\
        && /tmp/vf-extras/bin/pip install -e '.[test,nnunet,cellpose]' \\
        && /tmp/vf-extras/bin/python -m pytest tests/io/test_nnunet_adapter.py tests/io/test_cellpose_adapter.py

The dataset is written by ``export_nnunet``; nnU-Net's own fingerprint
extraction and experiment planning read it and plan a 3-D configuration, and a
trained-model folder is assembled from those plans with the network nnU-Net
builds for them (weights not trained: the test checks the wiring, shapes and
probabilities, not segmentation quality).
"""

import json
import os
import pickle
import shutil
import subprocess
import sys

import dask.array as da
import numpy as np
import pytest

nnunetv2 = pytest.importorskip("nnunetv2")
torch = pytest.importorskip("torch")

from voxelflow.io.models import load_model  # noqa: E402
from voxelflow.io.models.nnunet import NnunetModel  # noqa: E402
from voxelflow.io.training_export import Crop, export_nnunet  # noqa: E402
from voxelflow.ops import model_mask, predict  # noqa: E402

SPACING = (5.0, 2.0, 2.0)


def _entry(name, env, *args):
    code = ("import sys; from nnunetv2.experiment_planning.plan_and_preprocess_entrypoints import "
            f"{name} as f; sys.argv = ['nnunet'] + {list(args)!r}; f()")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("nnunet")
    rng = np.random.default_rng(0)
    crops = []
    for i in range(4):
        labels = np.zeros((16, 40, 40), np.int32)
        labels[4:10, 10:20, 10:22] = 1
        image = (rng.normal(100, 10, (1, 16, 40, 40)) + 200 * (labels > 0)).astype(np.float32)
        crops.append(Crop(f"crop_{i:03d}", image, labels))
    export_nnunet(crops, root / "raw", dataset_id=501, name="Cells", spacing=SPACING, channel_names=["signal"])
    env = {**os.environ, "nnUNet_raw": str(root / "raw"), "nnUNet_preprocessed": str(root / "pre"),
           "nnUNet_results": str(root / "results")}
    _entry("extract_fingerprint_entry", env, "-d", "501", "-np", "1")
    _entry("plan_experiment_entry", env, "-d", "501")
    plans_file = root / "pre" / "Dataset501_Cells" / "nnUNetPlans.json"
    plans = json.loads(plans_file.read_text())
    dataset = json.loads((root / "raw" / "Dataset501_Cells" / "dataset.json").read_text())
    folder = root / "results" / "Dataset501_Cells" / "nnUNetTrainer__nnUNetPlans__3d_fullres"
    (folder / "fold_0").mkdir(parents=True)
    shutil.copy(plans_file, folder / "plans.json")
    (folder / "dataset.json").write_text(json.dumps(dataset))
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    manager = PlansManager(plans)
    config = manager.get_configuration("3d_fullres")
    torch.manual_seed(0)
    net = nnUNetTrainer.build_network_architecture(manager, config, 1, 2, enable_deep_supervision=False)
    torch.save({"network_weights": net.state_dict(), "trainer_name": "nnUNetTrainer",
                "inference_allowed_mirroring_axes": (0, 1, 2),
                "init_args": {"plans": plans, "configuration": "3d_fullres", "fold": 0, "dataset_json": dataset,
                              "device": "cpu"}}, folder / "fold_0" / "checkpoint_final.pth")
    return folder, config


def test_folder_loads_and_returns_probabilities(model_folder):
    folder, config = model_folder
    model = load_model(folder)
    assert isinstance(model, NnunetModel) and model.channels == 2
    assert model.spacing == tuple(float(s) for s in config.spacing)
    assert model.halo == tuple(p // 2 for p in config.patch_size)
    block = np.random.default_rng(1).normal(100, 10, (16, 40, 40)).astype(np.float32)
    probs = model(block)
    assert probs.shape == (2, 16, 40, 40) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=0), 1, atol=1e-4)
    clone = pickle.loads(pickle.dumps(model))
    np.testing.assert_allclose(clone(block), probs, atol=1e-5)
    assert clone.__dask_tokenize__() == model.__dask_tokenize__()


def test_chunked_predict_and_mask_with_an_nnunet_model(model_folder):
    folder, _ = model_folder
    model = NnunetModel(folder)
    x = np.random.default_rng(2).normal(100, 10, (20, 48, 48)).astype(np.float32)
    halo = (4, 8, 8)
    single = predict(da.from_array(x, chunks=x.shape), model, halo=halo, dtype="float32").compute()
    padded = np.pad(x, [(h, h) for h in halo], mode="reflect")
    direct = model(padded)[:, 4:-4, 8:-8, 8:-8]
    np.testing.assert_allclose(single, direct, atol=1e-5)
    chunked = predict(da.from_array(x, chunks=(10, 24, 24)), model, halo=halo, output="classes").compute()
    assert chunked.shape == x.shape and set(np.unique(chunked)) <= {0, 1}
    mask = model_mask(da.from_array(x, chunks=(10, 24, 24)), model, halo=halo).compute()
    assert mask.shape == x.shape and mask.dtype == bool
