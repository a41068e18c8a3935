"""URL-first paths over fsspec: local folders, ``memory://``, ``s3://``, ``gs://``, ...

:class:`VPath` is the one path type the rest of voxelflow passes around. It knows
nothing about arrays; it only locates bytes and moves them atomically.

Examples
--------
>>> from voxelflow.paths import VPath
>>> p = VPath("memory://demo") / "a" / "b.txt"
>>> p.write_text("hello")
>>> p.read_text()
'hello'
>>> p.parent.url
'memory://demo/a'
"""

from __future__ import annotations

import errno
import os
import posixpath
import time
import uuid
from typing import Any

import fsspec

from voxelflow.errors import InvalidPathError

__all__ = ["VPath", "as_vpath"]


class VPath:
    """A location on a local or remote file system.

    Parameters
    ----------
    url : str or os.PathLike or VPath
        A local path (relative paths are made absolute, ``~`` is expanded) or an
        fsspec URL such as ``memory://root/x`` or ``s3://bucket/key``.
    storage_options : dict, optional
        Passed to the fsspec file system (credentials, endpoint, ...).

    Raises
    ------
    InvalidPathError
        If ``url`` is not a string/path or names an unknown protocol.
    """

    __slots__ = ("fs", "path", "protocol", "storage_options")

    def __init__(self, url: str | os.PathLike | VPath, storage_options: dict | None = None):
        if isinstance(url, VPath):
            self.fs, self.path, self.protocol = url.fs, url.path, url.protocol
            self.storage_options = dict(url.storage_options)
            return
        if not isinstance(url, (str, os.PathLike)):
            raise InvalidPathError(
                f"expected a path or URL string, got {type(url).__name__}: {url!r}"
            )
        url = os.fspath(url)
        if not url:
            raise InvalidPathError("expected a path or URL, got an empty string")
        if "://" not in url:
            url = os.path.abspath(os.path.expanduser(url))
        self.storage_options = dict(storage_options or {})
        try:
            fs, path = fsspec.core.url_to_fs(url, **self.storage_options)
        except (ValueError, ImportError) as exc:
            raise InvalidPathError(f"cannot open {url!r}: {exc}") from exc
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        self.fs, self.path, self.protocol = fs, path.rstrip("/") or path, protocol

    # --- naming ------------------------------------------------------------

    @property
    def is_local(self) -> bool:
        """True for the local file system."""
        return self.protocol in ("file", "local")

    @property
    def url(self) -> str:
        """The full URL (plain absolute path for local files)."""
        if self.is_local:
            return self.path
        return f"{self.protocol}://{self.path.lstrip('/')}"

    @property
    def name(self) -> str:
        """Last component of the path."""
        return posixpath.basename(self.path)

    @property
    def parent(self) -> VPath:
        """The containing folder."""
        return self._with_path(posixpath.dirname(self.path))

    def __truediv__(self, other: str) -> VPath:
        other = str(other).strip("/")
        if not other:
            return self
        return self._with_path(posixpath.join(self.path, other))

    def _with_path(self, path: str) -> VPath:
        new = object.__new__(VPath)
        new.fs, new.path, new.protocol = self.fs, path, self.protocol
        new.storage_options = self.storage_options
        return new

    def __fspath__(self) -> str:
        if not self.is_local:
            raise InvalidPathError(f"{self.url} is not a local path")
        return self.path

    def __str__(self) -> str:
        return self.url

    def __repr__(self) -> str:
        return f"VPath({self.url!r})"

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, VPath) and (self.protocol, self.path) == (other.protocol, other.path)

    def __hash__(self) -> int:
        return hash((self.protocol, self.path))

    # --- queries -----------------------------------------------------------

    def exists(self) -> bool:
        return self.fs.exists(self.path)

    def isdir(self) -> bool:
        return self.fs.isdir(self.path)

    def isfile(self) -> bool:
        return self.fs.isfile(self.path)

    def ls(self) -> list[str]:
        """Names (not paths) of the entries of this folder, sorted; empty if missing."""
        if not self.isdir():
            return []
        entries = self.fs.ls(self.path, detail=False)
        names = {posixpath.basename(e.rstrip("/")) for e in entries}
        names.discard("")
        return sorted(names)

    def size(self) -> int:
        """Total size in bytes of the file or of every file below this folder."""
        if not self.exists():
            return 0
        if self.isfile():
            return int(self.fs.size(self.path))
        return int(self.fs.du(self.path, total=True))

    # --- changes -----------------------------------------------------------

    def mkdirs(self) -> None:
        """Create this folder and its parents (no error if it exists)."""
        self.fs.makedirs(self.path, exist_ok=True)

    def rm(self) -> None:
        """Delete this file or folder tree; no error if it does not exist.

        Entries that vanish or appear while the tree is removed (a writer that failed
        and is still finishing or cleaning up its temporary files) are no error
        either: the removal is retried a few times.
        """
        for attempt in range(5):
            if not self.exists():
                return
            try:
                self.fs.rm(self.path, recursive=True)
                return
            except OSError as exc:
                if attempt == 4 or exc.errno not in (errno.ENOENT, errno.ENOTEMPTY):
                    raise
                time.sleep(0.05)

    def open(self, mode: str = "rb", **kwargs):
        return self.fs.open(self.path, mode, **kwargs)

    def read_bytes(self) -> bytes:
        return self.fs.cat_file(self.path)

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    def write_bytes(self, data: bytes) -> None:
        """Write ``data`` so a reader sees either the old content or all of the new.

        Locally the bytes go to a temporary file in the same folder, are fsynced,
        and renamed over the target. Object stores get one ``put``, which is
        atomic per object.
        """
        if self.is_local:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            tmp = f"{self.path}.tmp-{uuid.uuid4().hex}"
            try:
                with open(tmp, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self.path)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        else:
            self.fs.pipe_file(self.path, data)

    def write_text(self, text: str, encoding: str = "utf-8") -> None:
        self.write_bytes(text.encode(encoding))

    # --- zarr --------------------------------------------------------------

    def zarr_store(self, read_only: bool = False, *, complete: bool = False):
        """A zarr 3 store rooted at this path (``LocalStore`` or ``FsspecStore``).

        Parameters
        ----------
        read_only : bool
        complete : bool
            The arrays under this path were written with every chunk (zarr's
            ``write_empty_chunks``): reading an absent chunk raises
            :class:`~voxelflow.errors.MissingChunkError` instead of returning the
            fill value, so a lost file is never read as zeros.
        """
        store = self._zarr_store(read_only)
        if not complete:
            return store
        from voxelflow.zarr_stores import CompleteChunkStore

        return CompleteChunkStore(store, self.url)

    def _zarr_store(self, read_only: bool):
        import zarr.storage

        if self.is_local:
            return zarr.storage.LocalStore(self.path, read_only=read_only)
        fs = self.fs
        if getattr(fs, "async_impl", False):
            if not getattr(fs, "asynchronous", False):
                # zarr drives the store from its own event loop; a sync-mode instance (s3fs,
                # gcsfs) is bound to fsspec's loop and fails there, so open an async one.
                fs, _ = fsspec.core.url_to_fs(self.url, asynchronous=True, **self.storage_options)
        else:
            from fsspec.implementations.asyn_wrapper import AsyncFileSystemWrapper

            fs = AsyncFileSystemWrapper(fs, asynchronous=True)
        return zarr.storage.FsspecStore(fs, path=self.path, read_only=read_only)


def as_vpath(url: str | os.PathLike | VPath, storage_options: dict | None = None) -> VPath:
    """Return ``url`` as a :class:`VPath` (unchanged if it already is one)."""
    if isinstance(url, VPath) and not storage_options:
        return url
    return VPath(url, storage_options)

