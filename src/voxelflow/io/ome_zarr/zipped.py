"""Write an OME-Zarr image as a zip archive: into a local folder first, zipped, moved into place."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
import zipfile

from voxelflow.paths import VPath

__all__ = ["write_zip"]


def _zip_folder(folder: str, archive: str) -> None:
    """Zip ``folder`` (stored, not recompressed) with the root metadata as the last members."""
    members = []
    for dirpath, _, files in os.walk(folder):
        for name in files:
            full = os.path.join(dirpath, name)
            members.append(os.path.relpath(full, folder).replace(os.sep, "/"))
    members.sort(key=lambda m: (m in ("zarr.json", ".zattrs", ".zgroup"), m))
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for m in members:
            zf.write(os.path.join(folder, m), m)


def write_zip(target: VPath, write_into) -> None:
    """Write an image to a local temporary folder, zip it, and move the archive into place."""
    tmp_parent = target.parent.path if target.is_local else None
    if tmp_parent:
        os.makedirs(tmp_parent, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=tmp_parent)
    try:
        folder = os.path.join(workdir, "image")
        write_into(VPath(folder))
        archive = os.path.join(workdir, f"{uuid.uuid4().hex}.zip")
        _zip_folder(folder, archive)
        if target.is_local:
            os.replace(archive, target.path)
        else:
            target.fs.put_file(archive, target.path)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

