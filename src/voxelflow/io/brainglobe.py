"""Atlases for registration: a local BrainGlobe atlas folder, or a plain template + annotation.

Nothing here downloads. A BrainGlobe atlas folder (as ``brainglobe-atlasapi``
leaves it under ``~/.brainglobe/<name>_v<version>``) holds:

- ``metadata.json``: ``name``, ``resolution`` (micrometres per axis),
  ``shape``, ``orientation`` (3-letter code, see
  :mod:`voxelflow.ops._orientation`) and ``symmetric``;
- ``reference.tiff`` (the template), ``annotation.tiff`` (region ids, 0 =
  outside the brain), ``hemispheres.tiff`` (1 = left, 2 = right, 0 =
  outside; it may be absent for a symmetric atlas, whose hemispheres are then
  split at the midline as brainglobe-atlasapi does);
- ``structures.json``: the region hierarchy (``id``, ``acronym``, ``name``,
  ``structure_id_path``).

:func:`read_brainglobe_folder` reads and cross-checks all of it,
:func:`read_atlas_files` builds the same :class:`Atlas` from separate files
(TIFF or OME-Zarr template and annotation, CSV/JSON region table) and
:func:`write_brainglobe_folder` writes the folder layout (for synthetic atlases).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from voxelflow.errors import AtlasError, InvalidInputError, InvalidPathError, VoxelflowError
from voxelflow.io.atlas_files import read_region_table
from voxelflow.io.orientation_code import parse_orientation
from voxelflow.io.regions import validate_region_table
from voxelflow.paths import VPath, as_vpath

__all__ = [
    "Atlas",
    "read_brainglobe_folder",
    "read_atlas_files",
    "write_brainglobe_folder",
    "symmetric_hemispheres",
    "LEFT",
    "RIGHT",
]

#: Hemisphere values, as in BrainGlobe.
LEFT = 1
RIGHT = 2


@dataclass(frozen=True)
class Atlas:
    """A reference atlas in memory.

    Attributes
    ----------
    reference : numpy.ndarray, shape (Z, Y, X), numeric
        The template image registration aligns to the scan.
    annotation : numpy.ndarray, shape (Z, Y, X), unsigned/signed integer
        Region id of every voxel (0 = outside the brain).
    hemispheres : numpy.ndarray, shape (Z, Y, X), uint8
        1 = left, 2 = right, 0 = unknown/outside.
    regions : pandas.DataFrame
        Region table: ``id, acronym, name, parent``.
    resolution : tuple of 3 float
        Voxel size per axis in micrometres.
    orientation : str
        Orientation code of the arrays (e.g. ``'asr'``).
    name : str
    metadata : dict
        The rest of ``metadata.json`` (empty for plain files).
    """

    reference: np.ndarray
    annotation: np.ndarray
    hemispheres: np.ndarray
    regions: pd.DataFrame
    resolution: tuple[float, float, float]
    orientation: str
    name: str = "atlas"
    metadata: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(n) for n in self.annotation.shape)


def read_brainglobe_folder(folder, storage_options: dict | None = None) -> Atlas:
    """Read a local BrainGlobe atlas folder.

    Parameters
    ----------
    folder : str, os.PathLike or VPath
        The atlas folder (e.g. ``~/.brainglobe/allen_mouse_25um_v1.2``).
    storage_options : dict, optional
        fsspec options when ``folder`` is a URL.

    Returns
    -------
    Atlas

    Raises
    ------
    InvalidPathError
        If the folder or one of its required files is missing.
    AtlasError
        If ``metadata.json`` lacks or garbles ``resolution``, ``shape`` or
        ``orientation``; if an image has another shape than ``metadata.json``
        says; if the annotation is not integer; if hemisphere values are not
        0/1/2; if the annotation uses ids that ``structures.json`` lacks.
    """
    root = as_vpath(folder, storage_options)
    if not root.isdir():
        raise InvalidPathError(f"BrainGlobe atlas folder {root.url!r} does not exist")
    for part in ("metadata.json", "structures.json", "reference.tiff", "annotation.tiff"):
        if not (root / part).isfile():
            raise InvalidPathError(f"BrainGlobe atlas folder {root.url!r} lacks {part}")
    meta_path = root / "metadata.json"
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AtlasError(f"{meta_path.url} is not valid JSON: {exc}") from None
    if not isinstance(meta, dict):
        raise AtlasError(f"{meta_path.url} must hold a JSON object")
    resolution = _positive_triplet(meta.get("resolution"), f"{meta_path.url}: 'resolution'")
    shape = meta.get("shape")
    if not (isinstance(shape, list) and len(shape) == 3 and all(isinstance(n, int) and n > 0 for n in shape)):
        raise AtlasError(f"{meta_path.url}: 'shape' must be a list of 3 positive ints, got {shape!r}")
    if "orientation" not in meta:
        raise AtlasError(f"{meta_path.url}: 'orientation' is missing (a 3-letter code such as 'asr')")
    try:
        orientation = parse_orientation(meta["orientation"], f"{meta_path.url}: 'orientation'")
    except VoxelflowError as exc:
        raise AtlasError(str(exc)) from None
    shape = tuple(shape)
    reference = _read_tiff_checked(root / "reference.tiff", shape)
    annotation = _read_tiff_checked(root / "annotation.tiff", shape)
    if not np.issubdtype(annotation.dtype, np.integer):
        raise AtlasError(f"{(root / 'annotation.tiff').url}: region ids must be integers, got {annotation.dtype}")
    if (root / "hemispheres.tiff").isfile():
        hemispheres = _read_tiff_checked(root / "hemispheres.tiff", shape)
    elif meta.get("symmetric") is True:
        hemispheres = symmetric_hemispheres(shape, orientation)
    else:
        raise InvalidPathError(
            f"BrainGlobe atlas folder {root.url!r} lacks hemispheres.tiff and metadata.json does not say "
            "'symmetric': true"
        )
    hemispheres = _check_hemispheres(hemispheres, (root / "hemispheres.tiff").url)
    regions = read_region_table(root / "structures.json")
    _check_ids(annotation, regions, (root / "annotation.tiff").url)
    return Atlas(reference, annotation, hemispheres, regions, resolution, orientation,
                 str(meta.get("name", root.name)), meta)


def read_atlas_files(
    template,
    annotation,
    regions,
    *,
    orientation: str,
    resolution=None,
    hemispheres=None,
    name: str = "atlas",
) -> Atlas:
    """Build an :class:`Atlas` from separate files (TIFF or OME-Zarr images, CSV/JSON regions).

    Parameters
    ----------
    template, annotation : str or os.PathLike
        ``.tif``/``.tiff`` files or OME-Zarr images (folders or ``.zip``) of the
        same shape.
    regions : str, os.PathLike or pandas.DataFrame
        Region table (see :func:`voxelflow.io.atlas_files.read_region_table`).
    orientation : str
        Orientation code of the images.
    resolution : sequence of 3 float, optional
        Voxel size in micrometres; required for TIFF, taken from the metadata
        of OME-Zarr images (and then checked against this value if both are
        given).
    hemispheres : str or os.PathLike, optional
        Hemisphere image (1 left, 2 right). Without it the atlas is split at
        the left-right midline.
    name : str

    Returns
    -------
    Atlas

    Raises
    ------
    InvalidPathError, AtlasError
        Missing files, shapes that differ, no resolution, ids absent from the
        region table.
    """
    orientation = parse_orientation(orientation, "atlas orientation")
    ref, ref_res = _read_any(template)
    ann, ann_res = _read_any(annotation)
    found = ref_res or ann_res
    if resolution is None and found is None:
        raise AtlasError(f"atlas template {str(template)!r} has no voxel size; pass resolution (micrometres)")
    res = _positive_triplet(list(resolution if resolution is not None else found), "atlas resolution")
    for what, r in (("template", ref_res), ("annotation", ann_res)):
        if r is not None and not np.allclose(r, res, rtol=1e-6):
            raise AtlasError(f"atlas {what} voxel size {r} um differs from the resolution {res} um")
    if ref.shape != ann.shape or ref.ndim != 3:
        raise AtlasError(f"atlas template shape {ref.shape} and annotation shape {ann.shape} must be equal and 3-D")
    if not np.issubdtype(ann.dtype, np.integer):
        raise AtlasError(f"atlas annotation {str(annotation)!r}: region ids must be integers, got {ann.dtype}")
    if hemispheres is None:
        hemi = symmetric_hemispheres(ann.shape, orientation)
    else:
        hemi, _ = _read_any(hemispheres)
        if hemi.shape != ann.shape:
            raise AtlasError(f"atlas hemispheres shape {hemi.shape} differs from the annotation shape {ann.shape}")
    hemi = _check_hemispheres(hemi, str(hemispheres))
    table = validate_region_table(regions) if isinstance(regions, pd.DataFrame) else read_region_table(regions)
    _check_ids(ann, table, str(annotation))
    return Atlas(ref, ann, hemi, table, res, orientation, name, {})


def write_brainglobe_folder(atlas: Atlas, folder, structures: list[dict] | None = None) -> VPath:
    """Write ``atlas`` in the BrainGlobe folder layout (local path).

    Parameters
    ----------
    atlas : Atlas
    folder : str or os.PathLike
        Created if missing; existing files of the layout are replaced.
    structures : list of dict, optional
        Entries of ``structures.json``; by default built from
        ``atlas.regions`` (``structure_id_path`` from the parent links, grey
        ``rgb_triplet``).

    Returns
    -------
    VPath of the folder
    """
    import tifffile

    root = as_vpath(folder)
    root.mkdirs()
    if structures is None:
        structures = _structures_from_table(atlas.regions)
    meta = dict(atlas.metadata)
    meta.update({
        "name": atlas.name,
        "resolution": [float(r) for r in atlas.resolution],
        "shape": [int(n) for n in atlas.shape],
        "orientation": atlas.orientation,
    })
    meta.setdefault("symmetric", False)
    meta.setdefault("version", "0.0")
    (root / "metadata.json").write_text(json.dumps(meta, indent=1))
    (root / "structures.json").write_text(json.dumps(structures, indent=1))
    for fname, arr in (("reference.tiff", atlas.reference), ("annotation.tiff", atlas.annotation),
                       ("hemispheres.tiff", atlas.hemispheres)):
        buf = io.BytesIO()
        tifffile.imwrite(buf, np.ascontiguousarray(arr), photometric="minisblack")
        (root / fname).write_bytes(buf.getvalue())
    return root


def symmetric_hemispheres(shape, orientation: str) -> np.ndarray:
    """Hemisphere image of a symmetric atlas: the left-right axis split at its middle.

    As in brainglobe-atlasapi, for an axis starting on the right (``r``) the
    indices ``>= n // 2 + 1`` are left (1) and the rest right (2); an axis
    starting on the left is the mirror image.

    Returns
    -------
    numpy.ndarray, shape ``shape``, uint8
    """
    code = parse_orientation(orientation, "atlas orientation")
    axis = next(k for k, c in enumerate(code) if c in "lr")
    n = int(shape[axis])
    pos = np.arange(n)
    if code[axis] == "r":
        line = np.where(pos >= n // 2 + 1, LEFT, RIGHT)
    else:
        line = np.where(pos < n - (n // 2 + 1), LEFT, RIGHT)
    view = [1, 1, 1]
    view[axis] = n
    return np.broadcast_to(line.astype(np.uint8).reshape(view), tuple(int(s) for s in shape)).copy()


def _positive_triplet(value, what: str) -> tuple[float, float, float]:
    ok = isinstance(value, (list, tuple)) and len(value) == 3 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) and v > 0 for v in value)
    if not ok:
        raise AtlasError(f"{what} must be 3 positive numbers (micrometres), got {value!r}")
    return tuple(float(v) for v in value)


def _read_tiff_checked(path: VPath, shape: tuple) -> np.ndarray:
    import tifffile

    try:
        arr = tifffile.imread(io.BytesIO(path.read_bytes()))
    except Exception as exc:  # tifffile raises several types on corrupt files
        raise AtlasError(f"{path.url} is not a readable TIFF: {exc}") from None
    if arr.shape != shape:
        raise AtlasError(f"{path.url} has shape {arr.shape}, but metadata.json says {shape}")
    return arr


def _read_any(path) -> tuple[np.ndarray, tuple | None]:
    p = as_vpath(path)
    if not p.exists():
        raise InvalidPathError(f"atlas file {p.url!r} does not exist")
    if p.isfile() and p.name.lower().endswith((".tif", ".tiff")):
        import tifffile

        return tifffile.imread(io.BytesIO(p.read_bytes())), None
    from voxelflow.io.ome_zarr import open_ome_zarr

    try:
        arr, meta = open_ome_zarr(p.url)
    except VoxelflowError as exc:
        raise AtlasError(f"atlas file {p.url!r} is neither a TIFF nor a readable OME-Zarr: {exc}") from None
    if arr.ndim != 3:
        raise AtlasError(f"atlas image {p.url!r} must be 3-D, got axes {meta.axes}")
    return np.asarray(arr), tuple(float(s) for s in meta.scale)


def _check_hemispheres(hemi: np.ndarray, source: str) -> np.ndarray:
    if not np.issubdtype(hemi.dtype, np.integer):
        raise AtlasError(f"{source}: hemisphere values must be integers 0/1/2, got dtype {hemi.dtype}")
    values = np.unique(hemi)
    stray = sorted(set(values.tolist()) - {0, LEFT, RIGHT})
    if stray:
        raise AtlasError(f"{source}: hemisphere values must be 0, 1 (left) or 2 (right), found {stray[:10]}")
    return hemi.astype(np.uint8, copy=False)


def _check_ids(annotation: np.ndarray, regions: pd.DataFrame, source: str) -> None:
    import fastremap

    ids = np.asarray(fastremap.unique(np.ascontiguousarray(annotation)), dtype=np.int64)
    stray = sorted(set(ids[ids != 0].tolist()) - set(regions["id"].tolist()))
    if stray:
        raise AtlasError(f"{source}: region ids {stray[:10]} are not in the region table")


def _structures_from_table(regions: pd.DataFrame) -> list[dict]:
    try:
        table = validate_region_table(regions)
    except InvalidInputError as exc:
        raise AtlasError(str(exc)) from None
    parent = dict(zip(table["id"].tolist(), table["parent"].tolist()))
    out = []
    for rid, acronym, name in zip(table["id"].tolist(), table["acronym"], table["name"]):
        path = [rid]
        while parent[path[0]] != -1:
            path.insert(0, parent[path[0]])
        out.append({"id": rid, "acronym": acronym, "name": name, "structure_id_path": path,
                    "rgb_triplet": [128, 128, 128]})
    return out
