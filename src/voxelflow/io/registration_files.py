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

__all__ = ["write_registration", "read_registration", "transforms_to_text", "transforms_from_text", "png_bytes"]


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


def transforms_to_text(affine, deformable) -> dict:
    """The transforms as ITK text-format strings (``{"affine": str, "deformable": str or None}``).

    JSON-storable (a cache payload) and readable back by :func:`transforms_from_text`
    or, written to a ``.tfm`` file, by any ITK tool.
    """
    import tempfile
    from pathlib import Path

    sitk = _simpleitk()
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, transform in (("affine", affine), ("deformable", deformable)):
            if transform is None:
                out[name] = None
                continue
            path = Path(tmp) / f"{name}.tfm"
            sitk.WriteTransform(transform, str(path))
            out[name] = path.read_text()
    return out


def transforms_from_text(texts: dict):
    """Inverse of :func:`transforms_to_text`: ``(AffineTransform, BSplineTransform or None)``.

    Raises
    ------
    InvalidPathError
        If a text is not an ITK transform of the expected kind.
    """
    import tempfile
    from pathlib import Path

    sitk = _simpleitk()
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, kind in (("affine", sitk.AffineTransform), ("deformable", sitk.BSplineTransform)):
            text = texts.get(name)
            if text is None:
                out.append(None)
                continue
            path = Path(tmp) / f"{name}.tfm"
            path.write_text(text)
            try:
                out.append(kind(sitk.ReadTransform(str(path))))
            except RuntimeError as exc:
                raise InvalidPathError(f"stored {name} transform is not readable: {exc}") from None
    if out[0] is None:
        raise InvalidPathError("stored registration has no affine transform")
    return out[0], out[1]


def png_bytes(rgb) -> bytes:
    """An RGB (H, W, 3) uint8 or grey (H, W) uint8 array encoded as a PNG file's bytes."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buf, format="PNG")
    return buf.getvalue()


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
