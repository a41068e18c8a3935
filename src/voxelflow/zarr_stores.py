"""zarr 3 store wrappers that need no knowledge of images: a store whose absent chunks are errors.

zarr returns the fill value for a chunk that has no file, which is how it saves
space for empty chunks. voxelflow writes every chunk of its own arrays
(``write_empty_chunks``), so for them an absent chunk means a lost file, and
reading it as zeros would be a silently wrong result.
"""

from __future__ import annotations

from zarr.storage import WrapperStore

from voxelflow.errors import MissingChunkError

__all__ = ["METADATA_KEYS", "CompleteChunkStore"]

#: Names of zarr metadata documents (absent ones are normal: zarr probes for several formats).
METADATA_KEYS = ("zarr.json", ".zarray", ".zattrs", ".zgroup", ".zmetadata")


class CompleteChunkStore(WrapperStore):
    """Wrap a store so that reading a chunk that does not exist raises :class:`MissingChunkError`.

    Parameters
    ----------
    store : zarr.abc.store.Store
    url : str
        Where the store is, for the error message.

    Attributes
    ----------
    error : type
        The exception raised for an absent chunk (a subclass may name its own).
    """

    error: type[Exception] = MissingChunkError

    def __init__(self, store, url: str = ""):
        super().__init__(store)
        self._url = url

    def _with_store(self, store):
        return type(self)(store, self._url)

    def _check(self, key: str, value):
        if value is None and key.rsplit("/", 1)[-1] not in METADATA_KEYS:
            raise self.error(f"chunk {key!r} of {self._url} is missing (deleted or never written)")
        return value

    async def get(self, key, prototype, byte_range=None):
        return self._check(key, await self._store.get(key, prototype, byte_range))

    async def get_partial_values(self, prototype, key_ranges):
        key_ranges = list(key_ranges)
        values = await self._store.get_partial_values(prototype, key_ranges)
        return [self._check(key, v) for (key, _), v in zip(key_ranges, values)]
