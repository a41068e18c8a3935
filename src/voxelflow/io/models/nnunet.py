"""nnU-Net v2 trained model folders as ``predict`` callables (``nnunet`` extra).

The folder is what nnU-Net training leaves (``nnUNet_results/DatasetXXX_Name/
Trainer__Plans__Configuration``): ``dataset.json``, ``plans.json`` and
``fold_*/checkpoint_*.pth``. Each block runs through nnU-Net's own predictor
(its preprocessing, sliding window and resampling) and comes back as class
probabilities ``(C, Z, Y, X)``, one channel per label of ``dataset.json``, so
``predict(..., output="classes")`` gives the segmentation and
``model_mask`` its foreground. nnU-Net's sliding window looks at a patch
around each voxel: give a halo of about half its patch size.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading

import numpy as np

from voxelflow.errors import InvalidInputError, InvalidPathError, OptionalDependencyError

__all__ = ["NnunetModel"]


def _predictor_class():
    try:
        from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    except ImportError as exc:
        raise OptionalDependencyError("nnU-Net models need nnunetv2: pip install 'voxelflow[nnunet]'") from exc
    return nnUNetPredictor


class NnunetModel:
    """An nnU-Net v2 model applied to numpy blocks; returns class probabilities.

    Parameters
    ----------
    folder : str or os.PathLike
        Trained model folder (``dataset.json``, ``plans.json``, ``fold_*``).
    folds : sequence of int or str
        Folds to ensemble (``("all",)`` for a model trained on all data).
    checkpoint : str
        Checkpoint file name in each fold folder.
    spacing : sequence of 3 float, optional
        Voxel size of the blocks (z, y, x) in the unit the model was trained
        with; default the configuration's target spacing (no resampling).
    device : str
        ``"cpu"`` or ``"cuda"``.
    tile_step_size : float
        nnU-Net's sliding-window step as a fraction of the patch.
    use_mirroring : bool
        Test-time mirroring (slower, smoother).
    halo : int or sequence of int, optional
        Default halo; half the configuration's patch size when not given.

    Attributes
    ----------
    channels : int
        Number of labels (background included).
    halo : tuple of int
    """

    def __init__(self, folder, *, folds=(0,), checkpoint: str = "checkpoint_final.pth", spacing=None,
                 device: str = "cpu", tile_step_size: float = 0.5, use_mirroring: bool = False, halo=None):
        _predictor_class()
        self.folder = os.fspath(folder)
        try:
            with open(os.path.join(self.folder, "dataset.json")) as f:
                dataset = json.load(f)
            with open(os.path.join(self.folder, "plans.json")) as f:
                plans = json.load(f)
        except OSError as exc:
            raise InvalidPathError(f"{self.folder} is not an nnU-Net model folder: {exc}") from exc
        self.folds = tuple(folds)
        self.checkpoint = checkpoint
        digest = hashlib.sha256()
        for fold in self.folds:
            path = os.path.join(self.folder, f"fold_{fold}", checkpoint)
            if not os.path.isfile(path):
                raise InvalidPathError(f"{path} does not exist (folds={self.folds}, checkpoint={checkpoint!r})")
            with open(path, "rb") as f:
                digest.update(f.read())
        self._identity = digest.hexdigest()
        self.channels = len(dataset["labels"])
        config = self._configuration(plans)
        self.spacing = tuple(float(s) for s in (spacing if spacing is not None else config["spacing"]))
        patch = config["patch_size"]
        self.halo = tuple(np.broadcast_to(np.asarray(halo if halo is not None else [p // 2 for p in patch], int),
                                          (len(patch),)).tolist())
        self.device = device
        self.tile_step_size = float(tile_step_size)
        self.use_mirroring = bool(use_mirroring)
        self._lock = threading.Lock()
        self._predictor = None

    def _configuration(self, plans):
        # the folder name is Trainer__Plans__Configuration
        name = os.path.basename(os.path.normpath(self.folder)).split("__")[-1]
        configs = plans.get("configurations", {})
        if name not in configs:
            three_d = [k for k in configs if k.startswith("3d")]
            if not three_d:
                raise InvalidInputError(f"{self.folder}: plans.json has no 3-D configuration ({list(configs)})")
            name = three_d[0]
        config = dict(configs[name])
        parent = config.get("inherits_from")
        while parent and ("patch_size" not in config or "spacing" not in config):
            config = {**configs[parent], **config}
            parent = configs[parent].get("inherits_from")
        return config

    def _get(self):
        with self._lock:
            if self._predictor is None:
                import torch

                predictor = _predictor_class()(
                    tile_step_size=self.tile_step_size, use_gaussian=True, use_mirroring=self.use_mirroring,
                    perform_everything_on_device=False, device=torch.device(self.device), verbose=False,
                    verbose_preprocessing=False, allow_tqdm=False,
                )
                predictor.initialize_from_trained_model_folder(self.folder, use_folds=self.folds,
                                                               checkpoint_name=self.checkpoint)
                self._predictor = predictor
            return self._predictor

    def __call__(self, block: np.ndarray) -> np.ndarray:
        """Class probabilities of one block.

        Parameters
        ----------
        block : ndarray, shape (Z, Y, X) or (C_in, Z, Y, X)

        Returns
        -------
        ndarray of float32, shape (channels, Z, Y, X)
        """
        block = np.asarray(block, dtype=np.float32)
        if block.ndim == 3:
            block = block[None]
        if block.ndim != 4:
            raise InvalidInputError(f"nnU-Net blocks must be (Z, Y, X) or (C, Z, Y, X), got {block.shape}")
        _, probs = self._get().predict_single_npy_array(block, {"spacing": list(self.spacing)}, None, None, True)
        return np.asarray(probs, dtype=np.float32)

    def __getstate__(self):
        state = self.__dict__.copy()
        del state["_lock"], state["_predictor"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._predictor = None

    def __dask_tokenize__(self):
        return ("voxelflow.NnunetModel", self._identity, self.folds, self.spacing, self.tile_step_size,
                self.use_mirroring)

    def __repr__(self) -> str:
        return f"NnunetModel({self.folder!r}, folds={self.folds}, channels={self.channels})"
