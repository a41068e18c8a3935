"""Write OME-Zarr images and label images with pyramids computed in one pass.

All levels are stored by ONE ``dask.array.store`` call over one graph: level k is
``block_reduce`` of level k-1, so the upstream graph of the array being written
runs exactly once and each input voxel is computed once for the whole pyramid.
The group metadata that makes the folder an OME-Zarr image is written last, so
an interrupted write never looks like a valid image; the image is written beside
its target and swapped in at the end (:mod:`voxelflow.io.ome_zarr.replace`), so an
image it replaces stays whole until then.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import threading
import uuid
import zipfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import dask.array as da
import numpy as np
import zarr

from voxelflow.cache._gate import GuardedTargets, in_process_scheduler
from voxelflow.errors import InvalidInputError, InvalidPathError, OmeZarrError, VoxelflowError
from voxelflow.io.blockreduce import METHODS, block_reduce, block_reduce_numpy, normalize_factors
from voxelflow.io.ome_zarr import metadata as md
from voxelflow.io.ome_zarr.fastread import ChunkReader
from voxelflow.io.ome_zarr.read import read_metadata
from voxelflow.io.ome_zarr.replace import check_replaceable, write_beside
from voxelflow.io.ome_zarr.slices import split_slices
from voxelflow.io.ome_zarr.stores import is_zip
from voxelflow.paths import VPath, as_vpath

__all__ = ["default_chunks", "write_labels", "write_ome_zarr"]

DEFAULT_CHUNK_BYTES = 8 * 2**20
_DEFAULT_AXES = {2: ("y", "x"), 3: ("z", "y", "x"), 4: ("c", "z", "y", "x"), 5: ("t", "c", "z", "y", "x")}
_ORDER = {"t": 0, "c": 1, "z": 2, "y": 2, "x": 2}
_LABEL_METHODS = ("mode", "nearest", "max", "min")


# --- argument checking --------------------------------------------------------


def _as_dask(arr) -> da.Array:
    if isinstance(arr, da.Array):
        return arr
    if not hasattr(arr, "shape") or not hasattr(arr, "dtype"):
        raise InvalidInputError(f"expected a numpy or dask array, got {type(arr).__name__}")
    return da.from_array(np.asarray(arr), chunks=-1)


def _check_axes(axes, ndim: int) -> tuple[str, ...]:
    if not 2 <= ndim <= 5:
        raise InvalidInputError(f"OME-Zarr images have 2 to 5 dimensions, got an array with {ndim}")
    if axes is None:
        return _DEFAULT_AXES[ndim]
    axes = tuple(axes)
    if len(axes) != ndim:
        raise InvalidInputError(f"axes {axes} has {len(axes)} names but the array has {ndim} dimensions")
    if any(a not in _ORDER for a in axes) or len(set(axes)) != ndim:
        raise InvalidInputError(f"axes {axes} must be distinct names from 't', 'c', 'z', 'y', 'x'")
    if [_ORDER[a] for a in axes] != sorted(_ORDER[a] for a in axes):
        raise InvalidInputError(f"axes {axes} must be ordered time, channel, then space axes (NGFF)")
    n_space = sum(_ORDER[a] == 2 for a in axes)
    if not 2 <= n_space <= 3:
        raise InvalidInputError(f"axes {axes} must contain 2 or 3 space axes (z, y, x)")
    return axes


def _per_axis(value, axes: tuple[str, ...], what: str, default, cast):
    """Expand a scalar / per-axis sequence / {axis: value} dict to one value per axis."""
    if value is None:
        return tuple(default(a) for a in axes)
    if isinstance(value, dict):
        unknown = set(value) - set(axes)
        if unknown:
            raise InvalidInputError(f"{what} names axes {sorted(unknown)} that are not in {axes}")
        return tuple(cast(value[a]) if a in value else default(a) for a in axes)
    if isinstance(value, (str, int, float, np.number)):
        return tuple(cast(value) if md.axis_type(a) == "space" else default(a) for a in axes)
    value = tuple(value)
    if len(value) != len(axes):
        raise InvalidInputError(f"{what} {value} has {len(value)} entries but the axes are {axes}")
    return tuple(default(a) if v is None else cast(v) for v, a in zip(value, axes))


def _positive_float(v) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise InvalidInputError(f"scale values must be numbers, got {v!r}") from None
    if not math.isfinite(f) or f <= 0:
        raise InvalidInputError(f"scale values must be positive and finite, got {v!r}")
    return f


def _finite_float(v) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise InvalidInputError(f"translation values must be numbers, got {v!r}") from None
    if not math.isfinite(f):
        raise InvalidInputError(f"translation values must be finite, got {v!r}")
    return f


def _unit(v) -> str:
    if not isinstance(v, str) or not v:
        raise InvalidInputError(f"units must be unit names such as 'micrometer', got {v!r}")
    return v


def _level_factors(factors, levels: int, axes: tuple[str, ...]) -> list[tuple[int, ...]]:
    """Factors from each level to the next: an int applies to the space axes only."""
    if isinstance(levels, bool) or not isinstance(levels, (int, np.integer)) or levels < 1:
        raise InvalidInputError(f"levels must be an int >= 1, got {levels!r}")
    if isinstance(factors, (int, np.integer)) and not isinstance(factors, bool):
        one = tuple(int(factors) if md.axis_type(a) == "space" else 1 for a in axes)
        return [normalize_factors(one, len(axes))] * (levels - 1)
    if isinstance(factors, Sequence) and factors and all(isinstance(f, Sequence) for f in factors):
        if len(factors) != levels - 1:
            raise InvalidInputError(
                f"{len(factors)} per-level factors given for {levels} levels; expected {levels - 1}"
            )
        return [normalize_factors(f, len(axes)) for f in factors]
    return [normalize_factors(factors, len(axes))] * (levels - 1)


def default_chunks(shape: tuple[int, ...], dtype, axes: tuple[str, ...]) -> tuple[int, ...]:
    """Chunks of about ``DEFAULT_CHUNK_BYTES``: one channel/time plane, space axes halved from the largest."""
    chunk = [1 if md.axis_type(a) != "space" else max(1, s) for a, s in zip(axes, shape)]
    space = [i for i, a in enumerate(axes) if md.axis_type(a) == "space"]
    itemsize = np.dtype(dtype).itemsize
    while math.prod(chunk) * itemsize > DEFAULT_CHUNK_BYTES:
        big = max(space, key=lambda i: chunk[i])
        if chunk[big] == 1:
            break
        chunk[big] = -(-chunk[big] // 2)
    return tuple(chunk)


def _chunk_shape(chunks, arr: da.Array, axes: tuple[str, ...], from_dask: bool) -> tuple[int, ...]:
    if chunks is None:
        if from_dask:
            return tuple(max(1, c[0]) for c in arr.chunks)
        return default_chunks(arr.shape, arr.dtype, axes)
    if isinstance(chunks, (int, np.integer)):
        chunks = tuple(1 if md.axis_type(a) != "space" else int(chunks) for a in axes)
    chunks = tuple(chunks)
    if len(chunks) != len(axes) or any(not isinstance(c, (int, np.integer)) or c < 1 for c in chunks):
        raise InvalidInputError(f"chunks {chunks} must be {len(axes)} positive ints (axes {axes})")
    return tuple(min(int(c), max(1, s)) for c, s in zip(chunks, arr.shape))


def _shard_shape(shards, chunks: tuple[int, ...], axes, version: str) -> tuple[int, ...] | None:
    if shards is None:
        return None
    if version != "0.5":
        raise InvalidInputError("sharding needs zarr v3, i.e. version='0.5' (NGFF 0.4 uses zarr v2)")
    if isinstance(shards, (int, np.integer)):
        shards = tuple(c * int(shards) if md.axis_type(a) == "space" else c for c, a in zip(chunks, axes))
    shards = tuple(shards)
    if len(shards) != len(chunks) or any(
        not isinstance(s, (int, np.integer)) or s < 1 or s % c for s, c in zip(shards, chunks)
    ):
        raise InvalidInputError(f"shards {shards} must be positive multiples of the chunk shape {chunks}")
    return tuple(int(s) for s in shards)


# --- storage ------------------------------------------------------------------


def _compressor(zarr_format: int):
    # LZ4 with byte shuffle: compresses microscopy noise reasonably at a few GB/s.
    if zarr_format == 3:
        return zarr.codecs.BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")
    import numcodecs

    return numcodecs.Blosc(cname="lz4", clevel=5, shuffle=numcodecs.Blosc.SHUFFLE)


def _store_root(store) -> str | None:
    store = getattr(store, "_store", store)  # unwrap StrictChunkStore
    if isinstance(store, zarr.storage.LocalStore):
        return str(store.root)
    if isinstance(store, zarr.storage.ZipStore):
        return str(store.path)
    if isinstance(store, zarr.storage.FsspecStore):
        return store.path
    return None


def _reads_from(arr: da.Array, path: VPath) -> bool:
    """True if the graph of ``arr`` reads a zarr array stored at or below ``path``."""
    prefix = path.path.rstrip("/")
    for node in dict(arr.__dask_graph__()).values():
        obj = getattr(node, "value", node)
        if isinstance(getattr(obj, "zarray", None), zarr.Array):  # reads checked by io or the cache
            obj = obj.zarray
        if isinstance(obj, (zarr.Array, ChunkReader)):
            root = obj.root if isinstance(obj, ChunkReader) else _store_root(obj.store)
            if root is not None and (root.rstrip("/") + "/").startswith(prefix + "/"):
                return True
    return False


def _check_target(path: VPath, overwrite: bool, arr: da.Array) -> None:
    """Refuse a target that may not be replaced (see :func:`check_replaceable`) or that ``arr`` reads from."""
    if check_replaceable(path, overwrite) and _reads_from(arr, path):
        raise OmeZarrError(
            f"cannot overwrite {path.url}: the array being written is computed from it; write to a new path"
        )


_STORE_POOL: ThreadPoolExecutor | None = None
_STORE_POOL_LOCK = threading.Lock()


def _store_pool() -> ThreadPoolExecutor:
    """Threads that wait on zarr's event loop while the calling task keeps computing."""
    global _STORE_POOL
    with _STORE_POOL_LOCK:
        if _STORE_POOL is None:
            _STORE_POOL = ThreadPoolExecutor(max(2, os.cpu_count() or 2), thread_name_prefix="voxelflow-store")
        return _STORE_POOL


def _forget_store_pool() -> None:
    # A forked child inherits the pool object but not its threads.
    global _STORE_POOL, _STORE_POOL_LOCK
    _STORE_POOL, _STORE_POOL_LOCK = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_store_pool)


def _write_and_reduce(block, target, factors, method, ledger=None, block_info=None):
    """Store one level-0 chunk and return its block reduction (one task, one pass over the chunk).

    The store runs on a helper thread while this thread reduces: zarr encodes and writes
    a chunk on its own threads and would otherwise leave this one idle for that time.
    With a ``ledger``, chunks it lists as done were read back from the target and are
    only reduced; every newly stored chunk is recorded in it.
    """
    index = tuple(block_info[0]["chunk-location"])
    location = block_info[0]["array-location"]
    # Chunks that are views into a larger array (e.g. from_array) are strided; one
    # contiguous copy serves both the store (which would copy anyway) and a faster reduction.
    block = np.ascontiguousarray(block)
    if ledger is not None and index in ledger.done:
        return block_reduce_numpy(block, factors, method)
    stored = _store_pool().submit(target.__setitem__, tuple(slice(a, b) for a, b in location), block)
    try:
        reduced = block_reduce_numpy(block, factors, method)
    finally:
        stored.result()
    if ledger is not None:
        ledger.record(index)
    return reduced


def _read_back_done(arr: da.Array, stored: zarr.Array, done) -> da.Array:
    """``arr`` with the chunks listed in ``done`` read from ``stored`` instead of computed.

    The source tasks of those chunks are no longer needed and are culled, so a resumed
    write reads only the input it has not written yet.
    """
    import operator

    from dask.highlevelgraph import HighLevelGraph

    name = f"read-back-{uuid.uuid4().hex}"
    starts = [np.cumsum((0, *ch)) for ch in arr.chunks]
    layer = {}
    for index in np.ndindex(*arr.numblocks):
        if index in done:
            where = tuple(slice(int(s[i]), int(s[i + 1])) for s, i in zip(starts, index))
            layer[(name, *index)] = (operator.getitem, stored, where)
        else:
            layer[(name, *index)] = (arr.name, *index)
    graph = HighLevelGraph.from_collections(name, layer, dependencies=[arr])
    return da.Array(graph, name, arr.chunks, meta=arr._meta)


def _fused_level0(arr: da.Array, factors, method, grids, target, *, ledger=None, stored=None):
    """Level 1 as a dask array whose tasks also write level 0, or None if chunks do not allow it.

    One task per level-0 chunk stores it and reduces it while it is still in cache:
    no second pass over level 0 from memory, no level-0 chunk held between a store task
    and a reduction task. Needs chunks that are whole stored chunks (or shards) and
    whole reduction blocks. With a ``ledger`` (see :class:`voxelflow.io.chunk_ledger.ChunkLedger`),
    chunks already written are read back from ``stored`` rather than recomputed or rewritten.
    """
    if not factors:
        return None
    grid, f = grids[0], factors[0]
    if any(g % fa and g < s for g, fa, s in zip(grid, f, arr.shape)):
        return None  # a stored chunk would split reduction blocks
    # One task per stored chunk (or shard): parallel, and never a partial chunk write.
    if arr.chunks != da.core.normalize_chunks(grid, arr.shape):
        arr = arr.rechunk(grid)
    if ledger is not None and ledger.done:
        arr = _read_back_done(arr, stored, ledger.done)
    out_chunks = tuple(tuple(-(-c // fa) for c in ch) for ch, fa in zip(arr.chunks, f))
    return arr.map_blocks(
        _write_and_reduce,
        target,
        f,
        method,
        ledger,
        chunks=out_chunks,
        dtype=arr.dtype,
        meta=np.empty((0,) * arr.ndim, dtype=arr.dtype),
        name=f"write-level0-reduce-{uuid.uuid4().hex}",
    )


def _pyramid(arr: da.Array, factors: list[tuple[int, ...]], method: str, write_chunks: list[tuple[int, ...]],
             copy: bool = True):
    if factors and copy:
        # Chunks that are views into a larger array (e.g. from_array) are strided; one
        # contiguous copy serves both the store (which would copy anyway) and a much
        # faster reduction. Freshly computed chunks are passed through untouched.
        arr = arr.map_blocks(np.ascontiguousarray, dtype=arr.dtype, meta=np.empty((0,) * arr.ndim, arr.dtype))
    levels = []
    for k, grid in enumerate(write_chunks):
        if k:
            arr = block_reduce(arr, factors[k - 1], method)
        if not all(all(c % g == 0 for c in ch[:-1]) for ch, g in zip(arr.chunks, grid)):
            arr = arr.rechunk(grid)
        levels.append(arr)
    return levels


def _open_level_arrays(group: zarr.Group, shapes, dtype, chunks, shards, url: str) -> list[zarr.Array]:
    """The level arrays of a resumed write, checked against the job."""
    targets = []
    for k, shape in enumerate(shapes):
        try:
            target = group[str(k)]
        except KeyError:
            raise OmeZarrError(f"{url}: level {k} of the interrupted write is missing; delete the folder") from None
        level_chunks = tuple(min(c, max(1, s)) for c, s in zip(chunks, shape))
        if tuple(target.shape) != tuple(shape) or target.dtype != dtype or tuple(target.chunks) != level_chunks:
            raise OmeZarrError(f"{url}: level {k} of the interrupted write does not match this job; delete the folder")
        targets.append(target)
    return targets


def _write_arrays(arr: da.Array, root: VPath, *, version, axes, chunks, shards, factors, method,
                  ledger=None) -> list[tuple]:
    """Create and fill the level arrays under ``root``; returns the level shapes.

    With a ``ledger`` that is not fresh, the arrays already exist and the level-0 chunks
    it lists are kept (read back for the lower levels, never rewritten).
    """
    zarr_format = 3 if version == "0.5" else 2
    shapes = [tuple(arr.shape)]
    for f in factors:
        shapes.append(tuple(-(-s // g) for s, g in zip(shapes[-1], f)))
    store = root.zarr_store()
    resume = ledger is not None and not ledger.fresh
    # A fresh ledger emptied the folder already and keeps its own files there: "a", not "w".
    mode = "r+" if resume else ("a" if ledger is not None else "w")
    group = zarr.open_group(store, mode=mode, zarr_format=zarr_format)
    targets, grids = [], []
    if resume:
        targets = _open_level_arrays(group, shapes, arr.dtype, chunks, shards, root.url)
    for k, shape in enumerate(shapes):
        level_chunks = tuple(min(c, max(1, s)) for c, s in zip(chunks, shape))
        level_shards = None
        if shards is not None:
            level_shards = tuple(min(sh, -(-max(1, s) // c) * c) for sh, c, s in zip(shards, level_chunks, shape))
        grids.append(level_shards or level_chunks)
        if resume:
            continue
        kwargs = {"dimension_names": list(axes)} if zarr_format == 3 else {
            "chunk_key_encoding": {"name": "v2", "separator": "/"}
        }
        targets.append(
            group.create_array(
                str(k),
                shape=shape,
                dtype=arr.dtype,
                chunks=level_chunks,
                shards=level_shards,
                compressors=_compressor(zarr_format),
                fill_value=0,
                config={"write_empty_chunks": True},
                **kwargs,
            )
        )
    in_process = in_process_scheduler([arr])
    # Gates hold a lock and cannot travel to distributed workers.
    guarded = GuardedTargets(targets) if in_process else None
    writable = guarded.targets if in_process else targets
    fused = _fused_level0(arr, factors, method, grids, writable[0], ledger=ledger, stored=targets[0])
    if fused is None:
        if ledger is not None:
            raise InvalidInputError("a resumable write needs at least 2 levels and chunks made of whole "
                                    f"reduction blocks; got chunks {grids[0]} and factors {factors}")
        sources = _pyramid(arr, factors, method, grids)
    else:
        sources, writable = _pyramid(fused, factors[1:], method, grids[1:], copy=False), writable[1:]
    if not in_process:
        da.store(sources, writable, lock=False, compute=True)
        return shapes
    try:
        da.store(sources, writable, lock=False, compute=True)
    except BaseException:
        guarded.close_and_wait()
        raise
    return shapes


def _level_geometry(scale0, translation0, factors, method):
    scales, translations = [tuple(scale0)], [tuple(translation0)]
    for f in factors:
        prev_s, prev_t = scales[-1], translations[-1]
        # A block's value sits at the block centre, except 'nearest' which keeps its first voxel.
        shift = (0.0,) * len(f) if method == "nearest" else tuple((g - 1) / 2 * s for g, s in zip(f, prev_s))
        scales.append(tuple(s * g for s, g in zip(prev_s, f)))
        translations.append(tuple(t + d for t, d in zip(prev_t, shift)))
    return scales, translations


def _write_group(arr, target: VPath, attrs_for, *, version, axes, chunks, shards, factors, method) -> None:
    try:
        shapes = _write_arrays(
            arr, target, version=version, axes=axes, chunks=chunks, shards=shards, factors=factors, method=method
        )
        group = zarr.open_group(target.zarr_store(), mode="r+")
        # The metadata that makes this an OME-Zarr image goes last.
        group.attrs.update(attrs_for([str(k) for k in range(len(shapes))]))
    except BaseException:
        # Only the folder being written is removed; it holds nothing valid yet.
        target.rm()
        raise


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


def _write_zip(target: VPath, write_into) -> None:
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


# --- public API -----------------------------------------------------------------


def write_ome_zarr(
    arr,
    url,
    *,
    axes: Sequence[str] | None = None,
    scale=None,
    units=None,
    levels: int = 1,
    factors=2,
    method: str = "mean",
    chunks=None,
    version: str = "0.5",
    shards=None,
    zip: bool = False,
    overwrite: bool = False,
    storage_options: dict | None = None,
    translation=None,
    channel_names: Sequence[str] | None = None,
    name: str | None = None,
) -> VPath:
    """Write an array as an OME-Zarr image with an optional pyramid.

    Parameters
    ----------
    arr : numpy.ndarray or dask.array.Array, 2 to 5 dimensions
        Any numeric or bool dtype; stored unchanged (never rescaled).
    url : str or VPath
        Target folder (``*.ome.zarr``) or zip archive (``*.ome.zarr.zip``), local or fsspec URL.
    axes : sequence of str, optional
        Names from ``t, c, z, y, x`` in that order; default by ``arr.ndim``:
        ``yx``, ``zyx``, ``czyx``, ``tczyx``.
    scale : float, sequence or dict, optional
        Voxel size of level 0: a number applies to every space axis; a sequence
        gives one per axis; a dict maps axis names. Default 1.
    units : str, sequence or dict, optional
        Units (e.g. ``'micrometer'``) like ``scale``; a string applies to the space axes.
    levels : int
        Number of pyramid levels including level 0.
    factors : int, sequence of int, or sequence of sequences
        Down-sampling from each level to the next. An int applies to the space
        axes only (``2`` for ``zyx`` is ``(2, 2, 2)``); a sequence gives one factor
        per axis (``(1, 2, 2)`` keeps Z); a sequence of ``levels - 1`` sequences
        gives per-level factors.
    method : {'mean', 'max', 'min', 'mode', 'nearest'}
        Down-sampling method (see :func:`voxelflow.io.blockreduce.block_reduce`): ``mean``
        for images, ``max`` for sparse bright objects, ``mode``/``nearest`` for labels.
    chunks : int or sequence of int, optional
        Zarr chunk shape of level 0 (an int applies to the space axes, other axes get 1);
        lower levels use the same shape clipped to their size. Default: the dask
        chunk shape, or ~8 MiB chunks for numpy input.
    version : {'0.5', '0.4'}
        NGFF version: 0.5 writes zarr v3, 0.4 writes zarr v2.
    shards : int or sequence of int, optional
        Zarr v3 shard shape (multiples of ``chunks``; an int is chunks per shard along
        each space axis). Keeps file counts low on HPC file systems. 0.5 only.
    zip : bool
        Write a zip archive (``url`` must end in ``.zip``; a ``.zip`` url implies it).
    overwrite : bool
        Replace an existing image at ``url`` (never a folder that is not a zarr group, nor a
        zip that is not an OME-Zarr archive). The new image is written beside the old one
        and swapped in at the end, so a failure leaves the old image whole.
    storage_options : dict, optional
        fsspec options for remote URLs.
    translation : float, sequence or dict, optional
        Physical position of voxel 0 of level 0; default 0.
    channel_names : sequence of str, optional
        Written as ``omero.channels[].label`` (one per ``c`` entry).
    name : str, optional
        ``multiscales[0].name``.

    Returns
    -------
    VPath
        The written image.

    Raises
    ------
    InvalidInputError
        Bad axes, scale, factors, chunks, shards, method, version or dtype (checked
        before anything is written).
    OmeZarrError
        The target exists (without ``overwrite``) or is not an image that may be replaced.

    Examples
    --------
    >>> import numpy as np
    >>> vol = np.random.default_rng(0).integers(0, 1000, (64, 128, 128), dtype=np.uint16)
    >>> write_ome_zarr(vol, "memory://doc/demo.ome.zarr", scale=(4, 1, 1), units="micrometer",
    ...                levels=3, factors=(1, 2, 2)).url
    'memory://doc/demo.ome.zarr'
    """
    from_dask = isinstance(arr, da.Array)
    arr = _as_dask(arr)
    if arr.dtype.kind not in "biuf":
        raise InvalidInputError(f"OME-Zarr images must be numeric or bool, got dtype {arr.dtype}")
    if version not in ("0.4", "0.5"):
        raise InvalidInputError(f"version must be '0.4' or '0.5', got {version!r}")
    if method not in METHODS:
        raise InvalidInputError(f"unknown method {method!r}; expected one of {METHODS}")
    axes = _check_axes(axes, arr.ndim)
    scale0 = _per_axis(scale, axes, "scale", lambda a: 1.0, _positive_float)
    translation0 = _per_axis(translation, axes, "translation", lambda a: 0.0, _finite_float)
    units_ = _per_axis(units, axes, "units", lambda a: None, _unit)
    level_factors = _level_factors(factors, levels, axes)
    chunk_shape = _chunk_shape(chunks, arr, axes, from_dask)
    shard_shape = _shard_shape(shards, chunk_shape, axes, version)
    if channel_names is not None:
        channel_names = [str(n) for n in channel_names]
        if "c" not in axes or len(channel_names) != arr.shape[axes.index("c")]:
            raise InvalidInputError(f"{len(channel_names)} channel_names given but the image has axes {axes} "
                                    f"and shape {arr.shape}")
    base, slice_text = split_slices(str(url) if not isinstance(url, VPath) else url.url)
    if slice_text is not None:
        raise InvalidInputError(f"cannot write to a ?slices= selection: {url}")
    target = as_vpath(base, storage_options) if not isinstance(url, VPath) else url
    if is_zip(target):
        zip = True
    elif zip:
        raise InvalidInputError(f"zip output needs a URL ending in '.zip', got {target.url}")
    _check_target(target, overwrite, arr)

    scales, translations = _level_geometry(scale0, translation0, level_factors, method)

    def attrs_for(paths):
        return md.image_attrs(version, axes, units_, paths, scales, translations, name, method, channel_names)

    def write_into(folder: VPath):
        _write_group(arr, folder, attrs_for, version=version, axes=axes, chunks=chunk_shape,
                     shards=shard_shape, factors=level_factors, method=method)

    try:
        if zip:
            _write_zip(target, write_into)
        else:
            write_beside(target, write_into)
    except OSError as exc:
        if isinstance(exc, VoxelflowError):
            raise
        raise InvalidPathError(f"cannot write {target.url}: {exc}; an image that was there is unchanged") from exc
    return target


def write_labels(
    labels,
    image_url,
    name: str,
    *,
    levels: int | None = None,
    factors=None,
    method: str = "mode",
    chunks=None,
    shards=None,
    overwrite: bool = False,
    storage_options: dict | None = None,
) -> VPath:
    """Write a label image under ``<image>/labels/<name>`` without touching the image.

    Parameters
    ----------
    labels : numpy.ndarray or dask.array.Array of integers
        Either the image shape without its ``c`` axis (e.g. ``(z, y, x)`` for a
        ``czyx`` image) or the full image shape with a ``c`` axis of length 1.
        0 is background.
    image_url : str or VPath
        An existing OME-Zarr image folder (not a zip archive).
    name : str
        Label image name (a folder name).
    levels : int, optional
        Pyramid levels; default the image's number of levels.
    factors : optional
        As in :func:`write_ome_zarr`; default the image's own factors between levels,
        so every label level lines up with the image level of the same index.
    method : {'mode', 'nearest', 'max', 'min'}
        Down-sampling that never invents label ids.
    chunks, shards : optional
        As in :func:`write_ome_zarr`; default the image's level-0 chunking.
    overwrite : bool
        Replace an existing label image of that name (written beside it, swapped in at the end).
    storage_options : dict, optional
        fsspec options.

    Returns
    -------
    VPath
        The label image folder.

    Raises
    ------
    InvalidInputError
        Non-integer labels, a shape that does not match the image, a method that
        could invent ids, or a bad name.
    OmeZarrError
        The image is not a readable OME-Zarr folder, or the label image exists.
    """
    image = as_vpath(image_url, storage_options)
    if is_zip(image):
        raise OmeZarrError(f"cannot add labels to the zip archive {image.url}; write them before zipping")
    if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
        raise InvalidInputError(f"label name must be a plain folder name, got {name!r}")
    if method not in _LABEL_METHODS:
        raise InvalidInputError(f"label method must be one of {_LABEL_METHODS} (never invents ids), got {method!r}")
    arr = _as_dask(labels)
    if arr.dtype.kind not in "iub":
        raise InvalidInputError(f"labels must have an integer dtype, got {arr.dtype}")
    info, group = read_metadata(image)
    img_axes, shape0 = info["axes"], info["shapes"][0]
    if arr.ndim == len(img_axes):
        keep = list(range(len(img_axes)))
        if "c" in img_axes and arr.shape[img_axes.index("c")] != 1:
            raise InvalidInputError(f"labels with a channel axis must have 1 channel, got shape {arr.shape}")
    else:
        keep = [i for i, a in enumerate(img_axes) if a != "c"]
    axes = tuple(img_axes[i] for i in keep)
    expected = tuple(1 if img_axes[i] == "c" else shape0[i] for i in keep)
    if tuple(arr.shape) != expected:
        raise InvalidInputError(f"labels shape {arr.shape} does not match the image: expected {expected} for axes {axes}")
    n_levels = len(info["levels"]) if levels is None else levels
    if factors is None:
        image_factors = [
            tuple(max(1, round(b / a)) for a, b in zip(s0, s1)) for s0, s1 in zip(info["scales"], info["scales"][1:])
        ]
        factors = [tuple(f[i] for i in keep) for f in image_factors][: n_levels - 1]
        if len(factors) < n_levels - 1:
            raise InvalidInputError(f"the image has {len(info['levels'])} levels; pass factors for {n_levels} levels")
        if not factors:
            factors = 2
    level_factors = _level_factors(factors, n_levels, axes)
    if chunks is None:
        img_chunks = group[info["levels"][0]].chunks
        chunks = tuple(img_chunks[i] for i in keep)
    chunk_shape = _chunk_shape(chunks, arr, axes, from_dask=False)
    shard_shape = _shard_shape(shards, chunk_shape, axes, info["version"])
    version = info["version"] if info["version"] in ("0.4", "0.5") else "0.4"

    labels_dir = image / "labels"
    target = labels_dir / name
    _check_target(target, overwrite, arr)
    scale0 = tuple(info["scales"][0][i] for i in keep)
    translation0 = tuple(info["translations"][0][i] for i in keep)
    units = tuple(info["units"][i] for i in keep)
    scales, translations = _level_geometry(scale0, translation0, level_factors, method)

    def attrs_for(paths):
        return md.label_attrs(version, axes, units, paths, scales, translations, name, method)

    def write_into(folder: VPath):
        _write_group(arr, folder, attrs_for, version=version, axes=axes, chunks=chunk_shape,
                     shards=shard_shape, factors=level_factors, method=method)

    write_beside(target, write_into)
    _register_label(labels_dir, name, version)
    return target


def _register_label(labels_dir: VPath, name: str, version: str) -> None:
    """Add ``name`` to the ``labels`` group list (created if needed), keeping other entries."""
    zarr_format = 3 if version == "0.5" else 2
    store = labels_dir.zarr_store()
    try:
        group = zarr.open_group(store, mode="r+")
        _, section = md.ome_section(group.attrs.asdict(), labels_dir.url)
        names = [n for n in section.get("labels", []) if n != name]
    except (FileNotFoundError, OmeZarrError, zarr.errors.BaseZarrError):
        group = zarr.open_group(store, mode="a", zarr_format=zarr_format)
        names = []
    group.attrs.update(md.labels_group_attrs(version, [*names, name]))
