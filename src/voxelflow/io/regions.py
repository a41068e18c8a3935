"""The region-table schema shared by the atlas readers and the atlas ops (no file access).

A region table is a pandas DataFrame with columns ``id`` (int64), ``acronym``
(str), ``name`` (str) and ``parent`` (int64 id of the parent region, -1 for a
root), one row per region.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from voxelflow.errors import InvalidInputError

__all__ = ["region_depths", "validate_region_table"]


def validate_region_table(table: pd.DataFrame, source: str = "region table") -> pd.DataFrame:
    """Check a region table and return it with canonical dtypes.

    Raises
    ------
    InvalidInputError
        On missing columns, repeated or negative ids, unknown parents or cycles.
    """
    missing = [c for c in ("id", "acronym", "name", "parent") if c not in table.columns]
    if missing:
        raise InvalidInputError(f"{source}: missing columns {missing}")
    try:
        ids = table["id"].to_numpy(dtype=np.int64)
        parents = table["parent"].to_numpy(dtype=np.int64)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{source}: 'id' and 'parent' must be integers") from None
    if np.any(ids < 0):
        raise InvalidInputError(f"{source}: region ids must be non-negative")
    dup = pd.Index(ids)[pd.Index(ids).duplicated()]
    if len(dup):
        raise InvalidInputError(f"{source}: repeated region ids {sorted(set(dup.tolist()))[:10]}")
    known = set(ids.tolist())
    orphans = sorted({int(p) for p in parents if p != -1 and int(p) not in known})
    if orphans:
        raise InvalidInputError(f"{source}: parent ids {orphans[:10]} are not regions of the table")
    out = pd.DataFrame({
        "id": ids,
        "acronym": table["acronym"].astype(str).to_numpy(),
        "name": table["name"].astype(str).to_numpy(),
        "parent": parents,
    })
    region_depths(out, source=source)
    return out


def region_depths(regions: pd.DataFrame, source: str = "region table") -> np.ndarray:
    """Depth of every region (0 for roots), in row order.

    Raises
    ------
    InvalidInputError
        If following parents never reaches a root (a cycle).
    """
    ids = regions["id"].to_numpy(dtype=np.int64)
    pos = pd.Series(np.arange(len(ids)), index=ids)
    parent_pos = pos.reindex(regions["parent"].to_numpy()).fillna(-1).to_numpy(dtype=np.int64)
    depth = np.zeros(len(ids), dtype=np.int64)
    current = parent_pos.copy()
    for _ in range(len(ids) + 1):
        alive = current >= 0
        if not alive.any():
            return depth
        depth[alive] += 1
        current[alive] = parent_pos[current[alive]]
    raise InvalidInputError(f"{source}: the parent links contain a cycle")
