"""Registration transforms on disk: SimpleITK transform files plus a JSON description.

A registration folder holds ``affine.tfm`` (ITK text transform), optionally
``deformable.h5`` (the B-spline, ITK HDF5 transform) and ``registration.json``
(grids, QC figures, parameters, orientation). Any ITK-based tool reads the
transform files back (``SimpleITK.ReadTransform``, ``itk.transformread``).
The JSON is written last, so a folder with a ``registration.json`` is complete.
"""

from __future__ import annotations

import json

import numpy as np

from voxelflow.errors import InvalidPathError, OptionalDependencyError
from voxelflow.paths import as_vpath

__all__ = ["write_registration", "read_registration"]


def write_registration(folder, affine, deformable, meta: dict) -> None:
    """Write the transforms and ``meta`` into ``folder`` (a local path; created if missing).

    Parameters
    ----------
    folder : str or os.PathLike
    affine : SimpleITK.AffineTransform
    deformable : SimpleITK.BSplineTransform or None
    meta : dict
        JSON-serialisable description (numpy scalars and tuples are converted).
    """
    sitk = _simpleitk()
    root = as_vpath(folder)
    root.mkdirs()
    sitk.WriteTransform(affine, str(root / "affine.tfm"))
    if deformable is not None:
        sitk.WriteTransform(deformable, str(root / "deformable.h5"))
    elif (root / "deformable.h5").exists():
        (root / "deformable.h5").rm()
    meta = dict(meta, deformable=deformable is not None)
    (root / "registration.json").write_text(json.dumps(meta, indent=1, default=_jsonable))


def read_registration(folder):
    """Read what :func:`write_registration` wrote.

    Returns
    -------
    affine : SimpleITK.AffineTransform
    deformable : SimpleITK.BSplineTransform or None
    meta : dict

    Raises
    ------
    InvalidPathError
        If a file is missing or unreadable.
    """
    sitk = _simpleitk()
    root = as_vpath(folder)
    if not (root / "registration.json").isfile() or not (root / "affine.tfm").isfile():
        raise InvalidPathError(f"{root.url!r} holds no saved registration (registration.json and affine.tfm)")
    try:
        meta = json.loads((root / "registration.json").read_text())
    except json.JSONDecodeError as exc:
        raise InvalidPathError(f"{(root / 'registration.json').url} is not valid JSON: {exc}") from None
    try:
        affine = sitk.AffineTransform(sitk.ReadTransform(str(root / "affine.tfm")))
        deformable = None
        if meta.get("deformable"):
            deformable = sitk.BSplineTransform(sitk.ReadTransform(str(root / "deformable.h5")))
    except RuntimeError as exc:
        raise InvalidPathError(f"cannot read the transforms in {root.url!r}: {exc}") from None
    return affine, deformable, meta


def _jsonable(value):
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, (tuple, np.ndarray)):
        return list(value)
    return str(value)


def _simpleitk():
    try:
        import SimpleITK
    except ImportError as exc:
        raise OptionalDependencyError("registration transforms need SimpleITK: pip install 'voxelflow[registration]'") from exc
    return SimpleITK
