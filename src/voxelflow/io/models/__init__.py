"""Load trained models from files into ``predict`` callables.

Each format is an optional extra; nothing here is imported by ``import voxelflow``.

==========================  ===================================  ============
spec                        model                                extra
==========================  ===================================  ============
``path/to/net.onnx``        :class:`.onnx.OnnxModel`             ``onnx``
``cellpose:NAME_OR_PATH``   :class:`.cellpose.CellposeModel`     ``cellpose``
``path/to/nnunet_folder``   :class:`.nnunet.NnunetModel`         ``nnunet``
==========================  ===================================  ============

An nnU-Net folder is a trained model folder (``plans.json``, ``dataset.json``
and ``fold_*/checkpoint_*.pth``).
"""

from __future__ import annotations

import os

from voxelflow.errors import InvalidInputError
from voxelflow.paths import as_vpath

__all__ = ["load_model"]


def load_model(spec: str | os.PathLike, **kwargs):
    """Load a model file (or folder) as a callable for :func:`voxelflow.ops.predict`.

    Parameters
    ----------
    spec : str or os.PathLike
        See the table in this module's docstring. A leading ``model:`` is ignored
        (the pipeline's ``mask = "model:PATH"`` form).
    **kwargs
        Passed to the adapter.

    Raises
    ------
    voxelflow.errors.InvalidInputError
        The spec names no known model format.
    voxelflow.errors.OptionalDependencyError
        The format's extra is not installed.
    """
    text = os.fspath(spec)
    if text.startswith("model:"):
        text = text[len("model:"):]
    if text.startswith("cellpose:"):
        from voxelflow.io.models.cellpose import CellposeModel

        return CellposeModel(text[len("cellpose:"):], **kwargs)
    if text.lower().endswith(".onnx"):
        from voxelflow.io.models.onnx import OnnxModel

        return OnnxModel(text, **kwargs)
    path = as_vpath(text)
    if path.isdir() and (path / "plans.json").exists() and (path / "dataset.json").exists():
        from voxelflow.io.models.nnunet import NnunetModel

        return NnunetModel(text, **kwargs)
    raise InvalidInputError(
        f"cannot tell the model format of {text!r}: expected a .onnx file, 'cellpose:NAME_OR_PATH', "
        "or an nnU-Net trained model folder (plans.json, dataset.json, fold_*/)"
    )
