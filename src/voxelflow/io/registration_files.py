"""Registration transforms on disk: ITK transform files plus a JSON description.

A registration folder (a run's ``registration/``) holds ``affine.tfm`` and,
when the registration has a deformable stage, ``deformable.tfm`` (ITK text
transforms; fixed = the scan grid in the atlas orientation, moving = the atlas)
and ``registration.json`` (grids, orientation codes, QC figures, parameters,
atlas part, and ``deformable``: whether ``deformable.tfm`` belongs to it). Any
ITK-based tool reads the transform files back (``SimpleITK.ReadTransform``,
``itk.transformread``). The JSON is written last, so a folder with a
``registration.json`` is complete. It is strict JSON: a non-finite number
(``metric_mask_um = inf``) is written as the string ``"inf"`` (``"-inf"``,
``"nan"``), which Python's ``float()`` reads back.
"""

from __future__ import annotations

import json

import numpy as np

from voxelflow.errors import InvalidPathError, OptionalDependencyError
from voxelflow.io.ome_zarr.replace import write_beside
from voxelflow.paths import as_vpath

__all__ = ["registration_folder_files", "write_registration", "read_registration", "transforms_to_text",
           "transforms_from_text", "png_bytes"]


def registration_folder_files(texts: dict, meta: dict) -> dict[str, bytes]:
    """The files of a registration folder, name -> bytes, ``registration.json`` last.

    Parameters
    ----------
    texts : dict
        ``{"affine": str, "deformable": str or None}`` (:func:`transforms_to_text`).
    meta : dict
        JSON-serialisable description (numpy scalars and tuples are converted);
        ``deformable`` is set from ``texts``.
    """
    files = {f"{name}.tfm": texts[name].encode() for name in ("affine", "deformable") if texts.get(name) is not None}
    meta = dict(meta, deformable=texts.get("deformable") is not None)
    files["registration.json"] = json.dumps(_strict_json(meta), indent=1, default=_jsonable, allow_nan=False).encode()
    return files


def write_registration(folder, affine, deformable, meta: dict) -> None:
    """Write the transforms and ``meta`` as the folder ``folder``.

    The folder is written beside a folder already there and swapped in whole,
    so an earlier registration stays readable until the new one is complete.

    Parameters
    ----------
    folder : str, os.PathLike or VPath
    affine : SimpleITK.AffineTransform
    deformable : SimpleITK.BSplineTransform or None
    meta : dict
        JSON-serialisable description (numpy scalars and tuples are converted).
    """
    files = registration_folder_files(transforms_to_text(affine, deformable), meta)

    def write_into(work) -> None:
        work.mkdirs()
        for name, data in files.items():
            (work / name).write_bytes(data)

    root = as_vpath(folder)
    root.parent.mkdirs()
    write_beside(root, write_into)


def read_registration(folder):
    """Read a registration folder (a run's ``registration/`` or what :func:`write_registration` wrote).

    Returns
    -------
    affine : SimpleITK.AffineTransform
    deformable : SimpleITK.BSplineTransform or None
    meta : dict

    Raises
    ------
    InvalidPathError
        If a file is missing or unreadable, or ``deformable.tfm`` is missing
        from a registration that has one: reading the affine part alone would
        put every point off by the deformation.
    """
    root = as_vpath(folder)
    if not (root / "registration.json").isfile() or not (root / "affine.tfm").isfile():
        raise InvalidPathError(f"{root.url!r} holds no saved registration (registration.json and affine.tfm)")
    try:
        meta = json.loads((root / "registration.json").read_text())
    except json.JSONDecodeError as exc:
        raise InvalidPathError(f"{(root / 'registration.json').url} is not valid JSON: {exc}") from None
    has_file = (root / "deformable.tfm").isfile()
    # folders written before ``deformable`` was recorded: their parameters say whether a B-spline ran
    expected = meta.get("deformable", (meta.get("parameters") or {}).get("deformable", has_file))
    if expected and not has_file:
        raise InvalidPathError(f"{(root / 'deformable.tfm').url} is missing: this registration has a deformable "
                               "stage, and its affine part alone would map every point off by the deformation")
    if has_file and not expected:
        raise InvalidPathError(f"{(root / 'deformable.tfm').url} does not belong to this registration "
                               "(registration.json records no deformable stage)")
    texts = {"affine": (root / "affine.tfm").read_text(),
             "deformable": (root / "deformable.tfm").read_text() if has_file else None}
    affine, deformable = transforms_from_text(texts)
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


def _strict_json(value):
    """``value`` with every non-finite float (nested in dicts, lists, tuples, arrays) as ``"inf"``, ``"-inf"``, ``"nan"``."""
    if isinstance(value, dict):
        return {k: _strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_strict_json(v) for v in (value.tolist() if isinstance(value, np.ndarray) else value)]
    if isinstance(value, (float, np.floating)) and not np.isfinite(value):
        return str(float(value))
    return value


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
