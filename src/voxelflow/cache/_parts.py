"""Finished parts of a pending node, kept across a kill so a long computation resumes.

A node being computed may record the results of finished parts of its work
(chunk groups of a full-resolution pass) in ``<node>/parts/<name>/``: one file
per part, written atomically, plus ``ledger.json`` (the number of parts). When
the computation is restarted after a crash, re-initialising the node keeps this
folder (every other partial content is cleared), so only unfinished parts are
computed again. Committing the node deletes it: a committed node holds only
its result.

The ``name`` must identify the work exactly (e.g. the node's key and a hash of
the pass's input graph); parts of another name are never read.
"""

from __future__ import annotations

import json
import pickle
import re

import numcodecs

from voxelflow.errors import CacheError
from voxelflow.paths import VPath, as_vpath

__all__ = ["PARTS_NAME", "PartStore", "part_store", "parts_progress"]

#: Folder of a pending node that holds finished parts.
PARTS_NAME = "parts"

_PART = re.compile(r"^p(\d{7})\.pkl$")
_CODEC = numcodecs.Blosc(cname="zstd", clevel=1, shuffle=numcodecs.Blosc.SHUFFLE)


class PartStore:
    """Results of the parts ``0 .. total - 1`` of one computation in a pending node.

    Picklable (it travels to Dask worker processes, which write their parts
    themselves). Implements ``voxelflow.ops``' chunk-results protocol.

    Parameters
    ----------
    url : str
        Folder ``<node>/parts/<name>``.
    total : int
        Number of parts.
    storage_options : dict, optional
        fsspec options.
    """

    def __init__(self, url: str, total: int, storage_options: dict | None = None):
        self.url = url
        self.total = int(total)
        self.storage_options = storage_options

    def _path(self) -> VPath:
        return as_vpath(self.url, self.storage_options)

    def done(self) -> set[int]:
        """Indices of the stored parts."""
        path = self._path()
        if not path.isdir():
            return set()
        return {int(m.group(1)) for name in path.ls() if (m := _PART.match(name))}

    def load(self, part: int):
        """The stored result of ``part``."""
        data = (self._path() / f"p{part:07d}.pkl").read_bytes()
        return pickle.loads(_CODEC.decode(data))

    def save(self, part: int, value) -> None:
        """Store the result of ``part`` (atomically: a reader sees all of it or nothing)."""
        data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        (self._path() / f"p{part:07d}.pkl").write_bytes(_CODEC.encode(data))


def part_store(node_url: str, name: str, total: int, storage_options: dict | None = None) -> PartStore:
    """Open (creating it) the part store ``name`` of ``total`` parts in the pending node ``node_url``.

    Raises
    ------
    CacheError
        If the store exists with another number of parts (it then cannot belong
        to the same computation).
    """
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise CacheError(f"part store name {name!r}: expected letters, digits, '_', '.', '-'")
    folder = as_vpath(node_url, storage_options) / PARTS_NAME / name
    ledger = folder / "ledger.json"
    if ledger.exists():
        known = json.loads(ledger.read_text())["total"]
        if known != total:
            raise CacheError(f"{folder.url} holds parts of a computation of {known} parts, not {total}")
    else:
        folder.mkdirs()
        ledger.write_text(json.dumps({"total": int(total)}))
    return PartStore(folder.url, total, storage_options)


def parts_progress(node_url: str, storage_options: dict | None = None) -> tuple[int, int]:
    """``(finished, total)`` parts over every part store of a pending node (``(0, 0)`` if none)."""
    root = as_vpath(node_url, storage_options) / PARTS_NAME
    done = total = 0
    if not root.isdir():
        return 0, 0
    for name in root.ls():
        ledger = root / name / "ledger.json"
        if ledger.exists():
            total += json.loads(ledger.read_text())["total"]
            done += sum(1 for n in (root / name).ls() if _PART.match(n))
    return done, total
