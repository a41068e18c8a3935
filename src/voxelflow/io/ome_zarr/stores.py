"""zarr 3 stores for OME-Zarr locations: folders, zip archives, and a strict chunk reader."""

from __future__ import annotations

import zipfile

from zarr.storage import FsspecStore, ZipStore

from voxelflow.errors import OmeZarrError
from voxelflow.paths import VPath
from voxelflow.zarr_stores import CompleteChunkStore

__all__ = ["StrictChunkStore", "is_zip", "open_read_store", "split_zip"]



def is_zip(path: VPath) -> bool:
    """True if the location names a zip archive (``*.zip``)."""
    return path.path.lower().endswith(".zip")


def split_zip(path: VPath) -> tuple[VPath, str]:
    """Split ``.../x.zip/inner/group`` into the archive and the group path inside it ('' if none)."""
    lowered = path.path.lower()
    at = lowered.find(".zip/")
    if at < 0:
        return path, ""
    archive = path.path[: at + 4]
    return path._with_path(archive), path.path[at + 5 :].strip("/")


def open_read_store(path: VPath):
    """A read-only zarr store over a folder or a zip archive at ``path``, and the group path in it.

    Zip archives are read member by member (chunk by chunk) without unpacking:
    local archives through :class:`zarr.storage.ZipStore`, remote ones through
    fsspec's zip file system over ranged reads of the remote file. A group inside
    an archive is addressed as ``archive.zip/labels/name``.

    Returns
    -------
    store : zarr store
    inner : str
        Path of the group inside the store ('' for its root).

    Raises
    ------
    OmeZarrError
        If nothing exists at ``path`` or a zip archive is truncated or corrupt.
    """
    path, inner = split_zip(path)
    try:
        exists = path.exists()
    except OSError as exc:
        raise OmeZarrError(f"cannot reach {path.url}: {exc}") from exc
    if not exists:
        raise OmeZarrError(f"no OME-Zarr image at {path.url}: nothing exists there")
    if not is_zip(path):
        return path.zarr_store(read_only=True), inner
    try:
        if path.is_local:
            store = ZipStore(path.path, mode="r")
            store._sync_open()
            return store, inner
        from fsspec.implementations.asyn_wrapper import AsyncFileSystemWrapper
        from fsspec.implementations.zip import ZipFileSystem

        zfs = ZipFileSystem(fo=path.open("rb"))
        return FsspecStore(AsyncFileSystemWrapper(zfs, asynchronous=True), path="", read_only=True), inner
    except (zipfile.BadZipFile, EOFError, ValueError) as exc:
        raise OmeZarrError(f"{path.url} is not a readable zip archive (truncated or corrupt?): {exc}") from exc


class StrictChunkStore(CompleteChunkStore):
    """Wrap a store so that reading a chunk that does not exist raises :class:`OmeZarrError` instead of filling.

    zarr fills absent chunks with the fill value, which hides lost files. voxelflow
    writes every chunk, so for its own images an absent chunk means damage.
    """

    error = OmeZarrError
