"""Reading region hierarchies (CSV, JSON, the ``structures.json`` of a BrainGlobe folder).

This is the I/O half of atlas counting (the pure half is
:mod:`voxelflow.ops._atlas`). Whole BrainGlobe atlas folders (template,
annotation, hemispheres, metadata) are read by
:func:`voxelflow.io.brainglobe.read_brainglobe_folder`, which uses this table reader.

The tables read are checked by :func:`voxelflow.io.regions.validate_region_table`.
"""

from __future__ import annotations

import io
import json

import pandas as pd

from voxelflow.errors import InvalidInputError, InvalidPathError
from voxelflow.io.regions import validate_region_table
from voxelflow.paths import VPath, as_vpath

__all__ = ["read_region_table"]

_PARENT_ALIASES = ("parent", "parent_id", "parent_structure_id")


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
