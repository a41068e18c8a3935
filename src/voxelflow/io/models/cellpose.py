"""cellpose models as instance ``predict`` callables (``cellpose`` extra).

A block (``(Z, Y, X)``, or ``(C, Z, Y, X)`` with ``channel_axis=0``) goes
through ``cellpose.models.CellposeModel.eval`` and comes back as instance
labels, for ``predict(..., output="instances")``, which stitches them exactly
across chunks. Give a halo of at least the largest cell diameter in voxels
(the default when ``diameter`` is set: twice the diameter along y and x, and
that in micrometres converted with ``anisotropy`` along z).
"""

from __future__ import annotations

import hashlib
import math
import os
import threading

import numpy as np

from voxelflow.errors import InvalidInputError, OptionalDependencyError

__all__ = ["CellposeModel"]


def _cellpose_models():
    try:
        from cellpose import models
    except ImportError as exc:
        raise OptionalDependencyError("cellpose models need cellpose: pip install 'voxelflow[cellpose]'") from exc
    return models


class CellposeModel:
    """A cellpose model applied to numpy blocks; returns instance labels.

    Parameters
    ----------
    model : str
        A pretrained model name known to the installed cellpose (e.g.
        ``"cpsam"``; cellpose downloads its weights on first use) or a path to
        a trained model file.
    diameter : float, optional
        Cell diameter in pixels (y, x); None lets cellpose decide.
    do_3D : bool
        3-D segmentation of ``(Z, Y, X)`` blocks; False runs planes and stitches
        them with ``stitch_threshold``.
    anisotropy : float, optional
        z voxel size / y-x voxel size (e.g. 2.5 for 5 x 2 x 2 um).
    gpu : bool
        Use CUDA when cellpose finds it.
    halo : int or sequence of int, optional
        Overrides the default halo (see the module docstring).
    **eval_kwargs
        Passed to ``CellposeModel.eval`` (``flow_threshold``, ``cellprob_threshold``,
        ``min_size``, ``stitch_threshold``, ...).

    Attributes
    ----------
    channels : None
        Instance labels have no channel axis.
    halo : tuple of int or None
    """

    channels = None

    def __init__(self, model: str = "cpsam", *, diameter: float | None = None, do_3D: bool = True,
                 anisotropy: float | None = None, gpu: bool = False, halo=None, **eval_kwargs):
        _cellpose_models()
        self.model = str(model)
        self.diameter = diameter
        self.do_3D = bool(do_3D)
        self.anisotropy = anisotropy
        self.gpu = bool(gpu)
        self.eval_kwargs = dict(eval_kwargs)
        if halo is None and diameter is not None:
            d = 2 * math.ceil(diameter)
            halo = (math.ceil(d / (anisotropy or 1.0)), d, d)
        self.halo = None if halo is None else tuple(np.broadcast_to(np.asarray(halo, int), (3,)).tolist())
        if os.path.isfile(self.model):
            with open(self.model, "rb") as f:
                self._identity = hashlib.sha256(f.read()).hexdigest()
        else:
            self._identity = self.model
        self._lock = threading.Lock()
        self._net = None

    def _model(self):
        with self._lock:
            if self._net is None:
                models = _cellpose_models()
                try:
                    self._net = models.CellposeModel(gpu=self.gpu, pretrained_model=self.model)
                except (OSError, ValueError, RuntimeError) as exc:
                    raise InvalidInputError(f"cellpose cannot load the model {self.model!r}: {exc}") from exc
            return self._net

    def __call__(self, block: np.ndarray) -> np.ndarray:
        """Instance labels of one block.

        Parameters
        ----------
        block : ndarray, shape (Z, Y, X) or (C, Z, Y, X)

        Returns
        -------
        ndarray of int64, shape (Z, Y, X)
        """
        block = np.asarray(block)
        if block.ndim not in (3, 4):
            raise InvalidInputError(f"cellpose blocks must be (Z, Y, X) or (C, Z, Y, X), got {block.shape}")
        kwargs = dict(self.eval_kwargs)
        if block.ndim == 4:
            kwargs["channel_axis"] = 0
            kwargs["z_axis"] = 1
        else:
            kwargs["z_axis"] = 0
        masks = self._model().eval(block, diameter=self.diameter, do_3D=self.do_3D, anisotropy=self.anisotropy,
                                   **kwargs)[0]
        masks = np.asarray(masks, dtype=np.int64)
        if masks.shape != block.shape[-3:]:
            raise InvalidInputError(f"cellpose returned masks of shape {masks.shape} for a block of {block.shape}")
        return masks

    def __getstate__(self):
        state = self.__dict__.copy()
        del state["_lock"], state["_net"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._net = None

    def __dask_tokenize__(self):
        return ("voxelflow.CellposeModel", self._identity, self.diameter, self.do_3D, self.anisotropy,
                sorted(self.eval_kwargs.items()))

    def __repr__(self) -> str:
        return f"CellposeModel({self.model!r}, diameter={self.diameter}, do_3D={self.do_3D})"
