"""Reading atlas files: region hierarchies and locally downloaded BrainGlobe atlases.

This is the I/O half of atlas counting (the pure half is
:mod:`voxelflow.ops._atlas`). Nothing here downloads: a BrainGlobe atlas must
already be on disk (``~/.brainglobe/<atlas_name>``, or any copy of it).

The tables read are checked by :func:`voxelflow.io.regions.validate_region_table`.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from voxelflow.errors import InvalidInputError, InvalidPathError
from voxelflow.io.regions import validate_region_table
from voxelflow.paths import VPath, as_vpath

__all__ = ["read_region_table", "read_brainglobe_atlas", "BrainGlobeAtlas"]

_PARENT_ALIASES = ("parent", "parent_id", "parent_structure_id")


@dataclass(frozen=True)
class BrainGlobeAtlas:
    """A BrainGlobe atlas folder read into memory.

    Attributes
    ----------
    annotation : numpy.ndarray, shape (Z, Y, X), integer
        Region id of every atlas voxel (0 = outside the brain).
    scale : tuple of float
        Atlas voxel size per axis in micrometres (``metadata.json`` resolution).
    regions : pandas.DataFrame
        Region table (id, acronym, name, parent).
    name : str
        Atlas name from ``metadata.json`` (the folder name if absent).
    """

    annotation: np.ndarray
    scale: tuple[float, ...]
    regions: pd.DataFrame
    name: str


def read_region_table(path, storage_options: dict | None = None) -> pd.DataFrame:
    """Read a region hierarchy from a CSV file, a JSON file or a BrainGlobe folder.

    Accepted inputs:

    - CSV with columns ``id, acronym, name`` and a parent column (``parent``,
      ``parent_id`` or ``parent_structure_id``; empty means root);
    - JSON list of objects with ``id, acronym, name`` and either a parent field
      or a BrainGlobe ``structure_id_path`` (ids from the root down to the
      region itself); nested Allen-style objects with ``children`` lists, or an
      object whose ``msg`` holds such a list, are flattened;
    - a BrainGlobe atlas folder (its ``structures.json``).

    Parameters
    ----------
    path : str, os.PathLike or VPath
        Local path or fsspec URL.
    storage_options : dict, optional
        fsspec options for remote URLs.

    Returns
    -------
    pandas.DataFrame
        Columns ``id`` (int64), ``acronym``, ``name`` (str), ``parent`` (int64,
        -1 for roots), in file order.

    Raises
    ------
    InvalidPathError
        If the path does not exist or has an unknown suffix.
    InvalidInputError
        If columns are missing, ids repeat, a parent id is unknown or the
        hierarchy has a cycle.
    """
    p = as_vpath(path, storage_options)
    if p.isdir():
        p = p / "structures.json"
    if not p.isfile():
        raise InvalidPathError(f"region table {p.url!r} does not exist")
    suffix = p.name.rsplit(".", 1)[-1].lower() if "." in p.name else ""
    if suffix == "csv":
        table = _from_csv(p)
    elif suffix == "json":
        table = _from_records(_flatten(json.loads(p.read_text())), p.url)
    else:
        raise InvalidPathError(f"region table {p.url!r} must be a .csv or .json file or a BrainGlobe folder")
    return validate_region_table(table, source=p.url)


def read_brainglobe_atlas(folder, storage_options: dict | None = None) -> BrainGlobeAtlas:
    """Read a locally stored BrainGlobe atlas folder.

    The folder must hold ``metadata.json`` (with ``resolution`` in
    micrometres), ``structures.json`` and ``annotation.tiff``.

    Parameters
    ----------
    folder : str, os.PathLike or VPath
    storage_options : dict, optional

    Returns
    -------
    BrainGlobeAtlas

    Raises
    ------
    InvalidPathError
        If a file is missing.
    InvalidInputError
        If the metadata or the annotation is malformed.
    """
    import tifffile

    root = as_vpath(folder, storage_options)
    for part in ("metadata.json", "structures.json", "annotation.tiff"):
        if not (root / part).isfile():
            raise InvalidPathError(f"BrainGlobe atlas folder {root.url!r} lacks {part}")
    meta = json.loads((root / "metadata.json").read_text())
    resolution = meta.get("resolution") if isinstance(meta, dict) else None
    if not isinstance(resolution, list) or not all(isinstance(r, (int, float)) and r > 0 for r in resolution):
        raise InvalidInputError(f"{(root / 'metadata.json').url}: 'resolution' must be a list of positive numbers")
    annotation = tifffile.imread(io.BytesIO((root / "annotation.tiff").read_bytes()))
    if annotation.ndim != len(resolution) or not np.issubdtype(annotation.dtype, np.integer):
        raise InvalidInputError(
            f"{(root / 'annotation.tiff').url}: expected an integer image with {len(resolution)} axes, "
            f"got {annotation.dtype} of shape {annotation.shape}"
        )
    regions = read_region_table(root / "structures.json")
    return BrainGlobeAtlas(annotation, tuple(float(r) for r in resolution), regions, str(meta.get("name", root.name)))


def _from_csv(p: VPath) -> pd.DataFrame:
    table = pd.read_csv(io.BytesIO(p.read_bytes()), keep_default_na=False, na_values=[""])
    table.columns = [str(c).strip() for c in table.columns]
    parent_col = next((c for c in _PARENT_ALIASES if c in table.columns), None)
    if parent_col is None:
        raise InvalidInputError(f"{p.url}: needs a parent column (one of {_PARENT_ALIASES})")
    for col in ("acronym", "name"):
        if col not in table.columns:
            raise InvalidInputError(f"{p.url}: missing column {col!r}")
    table["parent"] = table[parent_col].fillna(-1)
    return table


def _flatten(doc) -> list[dict]:
    if isinstance(doc, dict) and "msg" in doc:
        doc = doc["msg"]
    if not isinstance(doc, list):
        raise InvalidInputError("a JSON region table must be a list of region objects")
    out = []
    stack = [(item, None) for item in reversed(doc)]
    while stack:
        item, parent = stack.pop()
        if not isinstance(item, dict):
            raise InvalidInputError(f"JSON region entries must be objects, got {item!r}")
        entry = dict(item)
        children = entry.pop("children", None) or []
        if parent is not None and not any(k in entry for k in _PARENT_ALIASES):
            entry["parent"] = parent
        out.append(entry)
        stack.extend((child, entry.get("id")) for child in reversed(children))
    return out


def _from_records(records: list[dict], source: str) -> pd.DataFrame:
    rows = []
    for r in records:
        missing = [k for k in ("id", "acronym", "name") if k not in r]
        if missing:
            raise InvalidInputError(f"{source}: region {r.get('id', r)!r} lacks {missing}")
        parent = next((r[k] for k in _PARENT_ALIASES if k in r), None)
        if parent is None and "structure_id_path" in r:
            path = r["structure_id_path"]
            if not isinstance(path, list) or not path or path[-1] != r["id"]:
                raise InvalidInputError(f"{source}: structure_id_path of region {r['id']} must end with its id")
            parent = path[-2] if len(path) > 1 else None
        rows.append({"id": r["id"], "acronym": r["acronym"], "name": r["name"],
                     "parent": -1 if parent is None else parent})
    return pd.DataFrame(rows, columns=["id", "acronym", "name", "parent"])
