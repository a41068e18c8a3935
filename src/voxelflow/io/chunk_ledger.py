"""A record of the chunks a long write has finished, so a killed write resumes where it stopped.

The ledger lives in the (local) folder being written: ``.voxelflow-ledger.json``
holds a fingerprint of the job (source, shapes, chunking, parameters) and
``.voxelflow-ledger.done`` one line per finished chunk index, appended with a
single ``write`` on a file opened with ``O_APPEND`` (atomic for lines this short,
also from several processes). A line is appended only after its chunk is stored,
so every index listed is on disk in full; a half-written last line (a kill
during the append) is ignored. A ledger whose fingerprint differs from the new
job's is discarded with the folder content: a different job never reuses chunks.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass

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
    done : frozenset of tuple of int
        Chunk indices finished before this process opened the ledger.
    fresh : bool
        True when the folder was (re)started empty for this job.
    """

    folder: str
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
                same = fh.read() == wanted
        except (FileNotFoundError, UnicodeDecodeError):
            same = False
        if same:
            return cls(folder, frozenset(_read_done(os.path.join(folder, DONE))), fresh=False)
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
        tmp = meta + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(wanted)
        os.replace(tmp, meta)
        return cls(folder, frozenset(), fresh=True)

    def record(self, index: tuple[int, ...]) -> None:
        """Append ``index`` as finished (call only after its chunk is fully stored)."""
        line = (",".join(str(int(i)) for i in index) + "\n").encode()
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


def _read_done(path: str) -> set[tuple[int, ...]]:
    try:
        with open(path, "rb") as fh:
            text = fh.read().decode("ascii", "replace")
    except FileNotFoundError:
        return set()
    done = set()
    for line in text.split("\n")[:-1]:  # the part after the last newline is an interrupted append
        try:
            done.add(tuple(int(v) for v in line.split(",")))
        except ValueError:
            continue
    return done
