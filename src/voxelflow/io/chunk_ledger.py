"""A record of the chunks a long write has finished, so a killed write resumes where it stopped.

The ledger lives in the (local) folder being written: ``.voxelflow-ledger.json``
holds a fingerprint of the job (source, shapes, chunking, parameters) and a
random id of the start, and ``.voxelflow-ledger.done`` one line per finished chunk
index, prefixed with that id and appended with a single ``write`` on a file opened
with ``O_APPEND`` (atomic for lines this short, also from several processes). A
line is appended only after its chunk is stored, so every index listed is on disk
in full; a half-written last line (a kill during the append) is ignored. A ledger
whose fingerprint differs from the new job's is discarded with the folder content:
a different job never reuses chunks. Lines with another start's id are ignored,
so a task of an abandoned start that records its chunk late (after its write
failed and the folder was restarted) cannot mark a chunk of the new start done.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass

from voxelflow.paths import VPath

__all__ = ["ChunkLedger"]

META = ".voxelflow-ledger.json"
DONE = ".voxelflow-ledger.done"


@dataclass(frozen=True)
class ChunkLedger:
    """Finished chunks of one write job in ``folder`` (picklable: paths only).

    Attributes
    ----------
    folder : str
        Local folder being written.
    start : str
        Random id of the start of this job in ``folder``; kept by resumed runs.
    done : frozenset of tuple of int
        Chunk indices finished before this process opened the ledger.
    fresh : bool
        True when the folder was (re)started empty for this job.
    """

    folder: str
    start: str
    done: frozenset
    fresh: bool

    @classmethod
    def open(cls, folder: str, fingerprint: dict) -> ChunkLedger:
        """Resume the job in ``folder`` if its fingerprint matches, else start it empty.

        Parameters
        ----------
        folder : str
            Local folder; created if absent.
        fingerprint : dict
            JSON-serialisable description of the job.
        """
        wanted = json.dumps(fingerprint, sort_keys=True)
        meta = os.path.join(folder, META)
        try:
            with open(meta, encoding="utf-8") as fh:
                stored = json.load(fh)
            start = stored["start"] if stored["job"] == wanted else None
        except (FileNotFoundError, ValueError, TypeError, KeyError):
            start = None
        if isinstance(start, str):
            return cls(folder, start, frozenset(_read_done(os.path.join(folder, DONE), start)), fresh=False)
        VPath(folder).rm()
        os.makedirs(folder)
        start = uuid.uuid4().hex
        tmp = meta + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump({"job": wanted, "start": start}, fh)
        os.replace(tmp, meta)
        return cls(folder, start, frozenset(), fresh=True)

    def record(self, index: tuple[int, ...]) -> None:
        """Append ``index`` as finished (call only after its chunk is fully stored)."""
        line = (self.start + " " + ",".join(str(int(i)) for i in index) + "\n").encode()
        fd = os.open(os.path.join(self.folder, DONE), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    def remove(self) -> None:
        """Delete the ledger files (the job is complete)."""
        for name in (DONE, META):
            try:
                os.remove(os.path.join(self.folder, name))
            except FileNotFoundError:
                pass


def _read_done(path: str, start: str) -> set[tuple[int, ...]]:
    try:
        with open(path, "rb") as fh:
            text = fh.read().decode("ascii", "replace")
    except FileNotFoundError:
        return set()
    done = set()
    for line in text.split("\n")[:-1]:  # the part after the last newline is an interrupted append
        owner, _, index = line.partition(" ")
        if owner != start:
            continue  # recorded by an abandoned start of the folder
        try:
            done.add(tuple(int(v) for v in index.split(",")))
        except ValueError:
            continue
    return done
