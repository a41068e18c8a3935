"""Exceptions raised by voxelflow.

Every error voxelflow raises on bad input is a subclass of :class:`VoxelflowError`
and also of the matching built-in (``ValueError``, ``OSError``, ``TypeError``,
``ImportError``), so generic ``except ValueError`` code keeps working. Messages
name the offending input and what was expected.
"""

from __future__ import annotations


class VoxelflowError(Exception):
    """Base class of every voxelflow error."""


class InvalidInputError(VoxelflowError, ValueError):
    """An argument has the wrong value, shape, dtype or type."""


class InvalidPathError(VoxelflowError, OSError):
    """A path or URL cannot be parsed, reached or read."""


class OptionalDependencyError(VoxelflowError, ImportError):
    """A feature needs an optional extra (``viewer``, ``bias``, ``s3``) that is not installed."""


class MissingChunkError(VoxelflowError, OSError):
    """A chunk of an array written with every chunk is absent (a lost file, not an empty chunk)."""


# --- cache -------------------------------------------------------------------


class CacheError(VoxelflowError, OSError):
    """Base class of cache-node errors."""


class NotACacheNodeError(CacheError):
    """The path exists but is not a cache node (a file, or a non-empty foreign directory)."""


class NotCommittedError(CacheError):
    """A cache node was read before its result was committed (or its marker is unreadable)."""


class NoResultError(CacheError):
    """A cache node was committed without a saved result (``cdir_commit`` with no ``save``)."""


class CacheLockedError(CacheError):
    """Another live process holds the lock of a cache node."""


class NewerFormatError(CacheError):
    """A cache node was committed in a format version newer than this voxelflow reads.

    Attributes
    ----------
    version : int or None
        The format version of the node's commit marker.
    """

    def __init__(self, message: str, version: int | None = None):
        super().__init__(message)
        self.version = version


class CacheKeyError(VoxelflowError, TypeError):
    """A cache key is not JSON-serialisable."""


class UnsupportedObjectError(VoxelflowError, TypeError):
    """``save`` was given an object type it cannot store."""


# --- OME-Zarr ----------------------------------------------------------------


class OmeZarrError(VoxelflowError, ValueError):
    """An OME-Zarr image is missing, malformed or inconsistent."""


class SliceSyntaxError(OmeZarrError):
    """A ``?slices=[...]`` suffix cannot be parsed or is out of range."""


# --- other input formats ------------------------------------------------------


class ImageFormatError(VoxelflowError, ValueError):
    """A TIFF, Imaris or N5 input is truncated, corrupt, incomplete or inconsistent."""


# --- pipeline ----------------------------------------------------------------


class ConfigError(VoxelflowError, ValueError):
    """A pipeline configuration key is missing or has a bad value."""


class SchedulerError(VoxelflowError, ConnectionError):
    """A Dask scheduler address cannot be reached (nothing listening, refused, timed out)."""


class EmptyResultError(VoxelflowError, ValueError):
    """A pipeline stage produced nothing where something was required."""


class RunFolderBusyError(VoxelflowError, OSError):
    """Another process is running a pipeline into the same run folder."""


# --- atlas registration ------------------------------------------------------


class OrientationError(InvalidInputError):
    """An anatomical orientation code is malformed or does not fit the data."""


class AtlasError(VoxelflowError, ValueError):
    """An atlas folder or atlas file set is incomplete or inconsistent."""


class RegistrationError(VoxelflowError, RuntimeError):
    """Registration failed: it diverged, folded the deformation or had nothing to register.

    Attributes
    ----------
    result : object or None
        The failed registration (transforms and QC metrics) when there is one,
        so callers can still write QC images.
    """

    def __init__(self, message: str, result=None):
        super().__init__(message)
        self.result = result
