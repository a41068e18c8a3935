"""Helpers of the adversarial suite: checksums of inputs and outputs, tiny images, failure injection."""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import io
import json
import os
import threading
from pathlib import Path

import fsspec
import numpy as np

META_NAMES = {"zarr.json", ".zarray", ".zattrs", ".zgroup", ".zmetadata"}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def digest(location) -> dict[str, str]:
    """Checksum of every file (and symlink target, and empty folder) under a local path or fsspec URL.

    Returns an empty dict when nothing exists there.
    """
    text = os.fspath(location) if not isinstance(location, str) else location
    if "://" in text:
        fs, root = fsspec.core.url_to_fs(text)
        if not fs.exists(root):
            return {}
        if fs.isfile(root):
            return {"": _sha(fs.cat_file(root))}
        root = root.rstrip("/")
        return {p[len(root):]: _sha(fs.cat_file(p)) for p in sorted(fs.find(root))}
    path = Path(text)
    if path.is_symlink():
        return {"": "link:" + os.readlink(path)}
    if not path.exists():
        return {}
    if path.is_file():
        return {"": _sha(path.read_bytes())}
    out = {}
    for dirpath, dirnames, filenames in os.walk(path):
        rel = os.path.relpath(dirpath, path)
        rel = "" if rel == "." else rel
        if not dirnames and not filenames:
            out[(rel or ".") + "/"] = "dir"
        for name in dirnames:
            full = os.path.join(dirpath, name)
            if os.path.islink(full):
                out[os.path.join(rel, name)] = "link:" + os.readlink(full)
        for name in filenames:
            full = os.path.join(dirpath, name)
            if os.path.islink(full):
                out[os.path.join(rel, name)] = "link:" + os.readlink(full)
            else:
                with open(full, "rb") as f:
                    out[os.path.join(rel, name)] = _sha(f.read())
    return out


@contextlib.contextmanager
def unchanged(*locations):
    """Assert that every location has the same files with the same bytes after the block."""
    before = {str(loc): digest(loc) for loc in locations}
    yield before
    after = {str(loc): digest(loc) for loc in locations}
    for loc in before:
        assert after[loc] == before[loc], f"{loc} changed: {_diff(before[loc], after[loc])}"


def _diff(a: dict, b: dict) -> str:
    gone = sorted(set(a) - set(b))
    new = sorted(set(b) - set(a))
    changed = sorted(k for k in set(a) & set(b) if a[k] != b[k])
    return f"removed {gone[:5]}, added {new[:5]}, changed {changed[:5]}"


def tiny_volume(shape=(6, 10, 12), dtype=np.uint16, seed=0) -> np.ndarray:
    """Random voxels (every chunk different from every other)."""
    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
    if info is None:
        return rng.normal(100, 10, shape).astype(dtype)
    return rng.integers(max(info.min, 0), min(info.max, 60000), shape, endpoint=True).astype(dtype)


def write_tiny_image(folder, version="0.5", name="img.ome.zarr", data=None, chunks=(4, 4, 4), levels=1, **kw):
    """Write a tiny voxelflow OME-Zarr image; returns (url, data)."""
    from voxelflow import write_ome_zarr

    data = tiny_volume() if data is None else data
    url = os.path.join(str(folder), name) if "://" not in str(folder) else f"{folder}/{name}"
    write_ome_zarr(data, url, chunks=chunks, version=version, levels=levels, scale=(2.0, 1.0, 1.0), **kw)
    return url, data


def chunk_files(image, level="0") -> list[Path]:
    """Chunk files (not metadata) of one level of a local image, sorted."""
    root = Path(image) / level
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name not in META_NAMES)


def array_meta_file(image, level="0") -> Path:
    root = Path(image) / level
    return root / "zarr.json" if (root / "zarr.json").exists() else root / ".zarray"


def group_meta_file(image) -> Path:
    root = Path(image)
    return root / "zarr.json" if (root / "zarr.json").exists() else root / ".zattrs"


def edit_json(path: Path, change) -> None:
    doc = json.loads(path.read_text())
    out = change(doc)
    path.write_text(json.dumps(doc if out is None else out))


def multiscale(doc: dict) -> dict:
    """``multiscales[0]`` of group attributes (0.4 or 0.5 layout)."""
    if "attributes" in doc:
        return doc["attributes"]["ome"]["multiscales"][0]
    return doc["multiscales"][0]


# --- failure injection -----------------------------------------------------------------------


class InjectedFault(OSError):
    """The OSError raised by :class:`FaultInjector` (ENOSPC, like a full disk)."""


class FaultInjector:
    """Count file-system calls of given kinds and make the ``fail_at``-th one raise.

    Kinds: ``write`` (opening a file for writing, writing bytes to an object store),
    ``rename``, ``mkdir``, ``rm``. Local calls are intercepted at the ``os``/``open``
    level (so fsspec, zarr and numpy all go through them); ``memory://`` calls at
    the fsspec ``MemoryFileSystem`` level.
    """

    def __init__(self, monkeypatch, fail_at: int | None = None, kinds=("write", "rename", "mkdir", "rm")):
        self.fail_at = fail_at
        self.kinds = set(kinds)
        self.calls: list[str] = []
        self.failed: str | None = None
        self._guard = threading.Lock()
        self._install(monkeypatch)

    def hit(self, kind: str, what: str) -> None:
        if kind not in self.kinds:
            return
        with self._guard:
            self.calls.append(f"{kind} {what}")
            n = len(self.calls)
        if self.fail_at is not None and n == self.fail_at:
            self.failed = f"{kind} {what}"
            raise InjectedFault(28, f"injected fault on {kind} ({what})")

    def _install(self, mp) -> None:
        real_open, real_os_open = builtins.open, os.open
        inj = self

        def fake_open(file, mode="r", *args, **kwargs):
            if isinstance(file, (str, bytes, os.PathLike)) and any(c in mode for c in "wax+"):
                inj.hit("write", os.fspath(file))
            return real_open(file, mode, *args, **kwargs)

        def fake_os_open(path, flags, *args, **kwargs):
            if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
                inj.hit("write", os.fspath(path))
            return real_os_open(path, flags, *args, **kwargs)

        mp.setattr(builtins, "open", fake_open)
        mp.setattr(io, "open", fake_open)
        mp.setattr(os, "open", fake_os_open)
        for name, kind in (("replace", "rename"), ("rename", "rename"), ("link", "rename"),
                           ("mkdir", "mkdir"), ("unlink", "rm"), ("remove", "rm"), ("rmdir", "rm")):
            real = getattr(os, name)

            def wrapper(*args, _real=real, _kind=kind, **kwargs):
                inj.hit(_kind, str(args[0]) if args else "")
                return _real(*args, **kwargs)

            mp.setattr(os, name, wrapper)
        from fsspec.implementations.memory import MemoryFileSystem

        for name, kind in (("_open", "write"), ("pipe_file", "write"), ("mv", "rename"), ("makedirs", "mkdir"),
                           ("mkdir", "mkdir"), ("rm_file", "rm"), ("rm", "rm"), ("rmdir", "rm"), ("cp_file", "write")):
            real = getattr(MemoryFileSystem, name)

            def method(self, path, *args, _real=real, _kind=kind, _name=name, **kwargs):
                if _name != "_open" or any(c in (args[0] if args else kwargs.get("mode", "rb")) for c in "wa+x"):
                    inj.hit(_kind, f"memory {path}")
                return _real(self, path, *args, **kwargs)

            mp.setattr(MemoryFileSystem, name, method)
