"""Write and read the payload of a cache node (no caching logic here).

==================  ==================  =====================================================
object              file in the node    loaded back as
==================  ==================  =====================================================
numpy.ndarray       ``data.ome.zarr``   numpy.ndarray (same shape and dtype); arrays of
                    (``result.npy``)    strings, dates or records go to ``result.npy``
dask.array.Array    ``data.ome.zarr``   lazy dask array with the chunks it was saved with
:class:`Image`      ``data.ome.zarr``   lazy dask array of its full-resolution level
pandas.DataFrame    ``result.parquet``  pandas.DataFrame (index, dtypes and column order kept)
pandas.Series       ``result.parquet``  pandas.Series (stored as a one-column table)
JSON value          ``result.json``     the value after a JSON round trip (tuples -> lists)
:class:`ChildNodes` (child nodes)       the results of the child nodes (a tuple, or the one)
==================  ==================  =====================================================

Every array of numbers has one layout, whichever front end writes it: a zarr 3 group
``data.ome.zarr`` whose full-resolution array is ``0``. Arrays of 2 to 5
dimensions carry OME-Zarr (NGFF 0.5) multiscales metadata, so any OME-Zarr
reader opens them: :func:`voxelflow.save` writes one level with unit voxel
size and axes ``yx``, ``zyx``, ``czyx`` or ``tczyx``; an :class:`Image` (how steps
store their images) is written by a writer of a higher layer with its pyramid
and voxel size in micrometres. Arrays of other dimensions have the group and
array ``0`` without OME metadata. Nodes written by voxelflow 0.1 (``result.npy``,
``result.zarr``) still load.

:class:`ChildNodes` makes a node whose result is made of committed child nodes
(a step with several outputs).

Dask arrays are written block by block straight into the zarr array, so their
graph is computed once and never held in memory whole. Zarr needs a regular
chunk grid; a dask array with irregular chunks is rechunked to its largest
chunk size for storage and the original chunks are recorded, so loading
returns the same chunking.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from voxelflow.cache._marker import BOOKKEEPING_PREFIX
from voxelflow.errors import CacheError, UnsupportedObjectError
from voxelflow.paths import VPath

__all__ = ["PAYLOAD_NAMES", "ChildNodes", "Image", "chunk_name", "payload_path", "plain_entry", "prepare_payload",
           "read_payload", "write_payload"]

PAYLOAD_NAMES = {
    "numpy": "result.npy",  # arrays of strings, dates or records (and every numpy array of voxelflow 0.1)
    "dask": "result.zarr",  # written by voxelflow 0.1; read only
    "dataframe": "result.parquet",
    "series": "result.parquet",
    "json": "result.json",
    "ome-zarr": "data.ome.zarr",
}


@dataclass(frozen=True)
class Image:
    """An array to store as an OME-Zarr image folder (``data.ome.zarr``) in a node.

    Attributes
    ----------
    write : callable
        ``write(target: VPath) -> None`` writes the OME-Zarr image at ``target``
        (with its pyramid, voxel size and axes); level 0 is the result.
    every_chunk : bool
        The writer writes every chunk (also empty ones), so reading an absent
        chunk of level 0 raises instead of returning the fill value.
    """

    write: Callable[[VPath], None]
    every_chunk: bool = False


@dataclass(frozen=True)
class ChildNodes:
    """A node result made of the results of committed child nodes.

    Attributes
    ----------
    names : sequence of str
        Child folder names, in order.
    as_tuple : bool
        Load as a tuple (else the single child's result).
    """

    names: Sequence[str]
    as_tuple: bool

_SUPPORTED = "numpy arrays, dask arrays, pandas DataFrames and JSON values (dict, list, str, int, float, bool, None)"


def prepare_payload(obj: Any) -> tuple[str, Any]:
    """Check that ``obj`` can be stored and convert what can be converted up front.

    Everything that can fail because of the object itself fails here, before a
    node is touched, so a bad ``save`` never costs an already committed result.

    Returns
    -------
    kind : str
        ``"array"`` (numpy or dask), ``"children"`` or a key of :data:`PAYLOAD_NAMES`.
    data
        What :func:`write_payload` writes: the array, a ``pyarrow.Table`` for a
        DataFrame, the JSON text for a JSON value.

    Raises
    ------
    UnsupportedObjectError
        For other types, object dtypes, dask arrays of unknown shape or with
        non-numeric dtypes, masked arrays, DataFrames Parquet cannot hold, and
        values that are not strict JSON.
    """
    import dask.array as da
    import pandas as pd

    if isinstance(obj, Image):
        return "ome-zarr", obj
    if isinstance(obj, ChildNodes):
        if not obj.as_tuple and len(obj.names) != 1:
            raise UnsupportedObjectError(f"ChildNodes without as_tuple needs one child, got {list(obj.names)}")
        return "children", obj
    if isinstance(obj, np.ma.MaskedArray):
        raise UnsupportedObjectError("cannot save a numpy masked array; save .data and .mask separately")
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            raise UnsupportedObjectError(f"cannot save a numpy array of dtype {obj.dtype} (holds Python objects)")
        return ("array" if obj.dtype.kind in "biufc" else "numpy"), obj
    if isinstance(obj, da.Array):
        if any(math.isnan(c) for dim in obj.chunks for c in dim):
            raise UnsupportedObjectError(
                "cannot save a dask array with unknown chunk sizes; call .compute_chunk_sizes() first"
            )
        if obj.dtype.kind not in "biufc":
            raise UnsupportedObjectError(
                f"cannot save a dask array of dtype {obj.dtype}: zarr storage supports bool, integer, "
                "float and complex dtypes"
            )
        return "array", obj
    if isinstance(obj, (pd.DataFrame, pd.Series)):
        import pyarrow as pa

        kind = "dataframe"
        if isinstance(obj, pd.Series):
            kind, obj = "series", obj.to_frame(name=obj.name if obj.name is not None else 0)
        try:
            return kind, pa.Table.from_pandas(obj)
        except (pa.ArrowException, ValueError, TypeError) as exc:
            raise UnsupportedObjectError(f"cannot store this {type(obj).__name__} as Parquet: {exc}") from exc
    try:
        return "json", json.dumps(obj, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise UnsupportedObjectError(
            f"cannot save {type(obj).__module__}.{type(obj).__qualname__}: supported are {_SUPPORTED} ({exc})"
        ) from exc


def write_payload(folder: VPath, kind: str, data: Any) -> dict:
    """Write a prepared payload into ``folder`` and return the description kept in the commit marker.

    Parameters
    ----------
    folder : VPath
        The node folder (must exist).
    kind, data
        The output of :func:`prepare_payload`.

    Returns
    -------
    dict
        ``kind`` and ``name`` of the payload, plus ``shape``, ``dtype`` and ``chunks``
        for arrays and ``rows`` and ``columns`` for tables.
    """
    if kind == "children":
        return {"kind": kind, "name": None, "children": list(data.names), "tuple": bool(data.as_tuple)}
    if kind == "array":
        kind, loads_as = "ome-zarr", "numpy" if isinstance(data, np.ndarray) else "dask"
    target = folder / PAYLOAD_NAMES[kind]
    target.rm()
    info: dict[str, Any] = {"kind": kind, "name": target.name}
    if isinstance(data, Image):
        data.write(target)
        if data.every_chunk:
            info["every_chunk"] = True
    elif kind == "numpy":
        with target.open("wb") as f:
            np.save(f, data, allow_pickle=False)
        info.update(shape=list(data.shape), dtype=data.dtype.str)
    elif kind == "ome-zarr":
        _write_array(target, data)
        info.update(shape=list(data.shape), dtype=data.dtype.str, loads_as=loads_as, every_chunk=True)
        if loads_as == "dask":
            info["chunks"] = [list(d) for d in data.chunks]
    elif kind in ("dataframe", "series"):
        import pyarrow.parquet as pq

        with target.open("wb") as f:
            pq.write_table(data, f)
        info.update(rows=data.num_rows, columns=[c for c in data.column_names if not c.startswith("__index_level_")])
    else:
        target.write_text(data)
    return info


#: OME-Zarr axes of a saved array by its number of dimensions.
_AXES = {2: "yx", 3: "zyx", 4: "czyx", 5: "tczyx"}
_AXIS_TYPES = {"t": "time", "c": "channel"}


def ome_attributes(ndim: int, name: str) -> dict:
    """OME-Zarr 0.5 group attributes of a one-level image with unit voxel size (``{}`` outside 2-5 dimensions)."""
    if ndim not in _AXES:
        return {}
    axes = [{"name": a, "type": _AXIS_TYPES.get(a, "space")} for a in _AXES[ndim]]
    dataset = {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1.0] * ndim}]}
    return {"ome": {"version": "0.5", "multiscales": [{"name": name, "axes": axes, "datasets": [dataset]}]}}


#: Saved arrays keep every chunk, so an absent chunk file is damage, never zeros (see voxelflow.zarr_stores).
_EVERY_CHUNK = {"write_empty_chunks": True}


def _write_array(target: VPath, arr) -> None:
    """Write a numpy or dask array as array ``0`` of a zarr group; the group's metadata is written last."""
    import zarr

    from voxelflow.zarr_stores import WriteGate

    # a failed write must not keep writing into a node that is being cleared or retried
    store = WriteGate(target.zarr_store())
    try:
        group = zarr.open_group(store=store, mode="w", zarr_format=3)
        if isinstance(arr, np.ndarray):
            z = group.create_array("0", shape=arr.shape, dtype=arr.dtype,
                                   chunks=tuple(max(n, 1) for n in arr.shape), config=_EVERY_CHUNK,
                                   compressors=_compressors())
            if arr.size:
                z[...] = arr
        else:
            _write_dask(group, arr)
        group.attrs.update(ome_attributes(arr.ndim, target.parent.name))
    except BaseException:
        store.close_and_wait()
        raise


def _compressors() -> list:
    """zstd (zarr's default), then the crc32c of the compressed chunk: a damaged chunk fails its checksum on load."""
    import zarr

    return [zarr.codecs.ZstdCodec(level=0), zarr.codecs.Crc32cCodec()]


def _write_dask(group, arr) -> None:
    import dask.array as da

    # zarr chunks must be >= 1 even along empty axes
    zchunks = tuple(max(max(dim), 1) for dim in arr.chunks)
    regular = all(all(c == dim[0] for c in dim[:-1]) and dim[-1] <= dim[0] for dim in arr.chunks)
    source = arr if regular else arr.rechunk(zchunks)
    z = group.create_array("0", shape=arr.shape, dtype=arr.dtype, chunks=zchunks, config=_EVERY_CHUNK,
                           compressors=_compressors())
    # Each dask block maps onto whole zarr chunks, so block writes never overlap and need no lock.
    da.store(source, z, lock=False)


def payload_path(folder: VPath, payload: Any) -> VPath:
    """The payload entry a marker's description names, proved to lie inside ``folder``.

    Raises
    ------
    CacheError
        The description is not an object, names an unknown kind, or a name that
        is not a plain entry of the node (``..``, a path, a bookkeeping file) or
        that is a link leading out of the node.
    """
    if not isinstance(payload, dict):
        raise CacheError(f"{folder}: the commit marker's payload description is not an object: {payload!r:.200}")
    kind, name = payload.get("kind"), payload.get("name")
    if kind not in PAYLOAD_NAMES:
        raise CacheError(f"{folder}: unknown payload kind {kind!r} in the commit marker; this voxelflow reads "
                         f"{', '.join(sorted(PAYLOAD_NAMES))}")
    if not plain_entry(name):
        raise CacheError(f"{folder}: the commit marker names the payload {name!r}, which is not an entry of the "
                         "node; refusing to read outside it")
    target = folder / name
    if target.is_local:
        real_folder = os.path.realpath(folder.path)
        if os.path.commonpath([real_folder, os.path.realpath(target.path)]) != real_folder:
            raise CacheError(f"{folder}: payload {name!r} is a link to {os.path.realpath(target.path)}, outside "
                             "the node; refusing to read it")
    return target


def plain_entry(name: Any) -> bool:
    """True if ``name`` is one entry of a folder (no path, not ``..``, not a bookkeeping file)."""
    return (isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\\" not in name
            and not name.startswith(BOOKKEEPING_PREFIX))


def read_payload(folder: VPath, payload: dict, token: str) -> Any:
    """Load what :func:`write_payload` stored in ``folder``.

    Parameters
    ----------
    folder : VPath
    payload : dict
        The description returned by :func:`write_payload`.
    token : str
        Identifies this commit; names the dask graph of a loaded dask array so
        loading the same commit twice gives the same keys.

    Raises
    ------
    CacheError
        The description does not name a payload inside ``folder`` (see
        :func:`payload_path`); reading a lazily loaded array's damaged chunk raises
        it too, naming the node.
    """
    target = payload_path(folder, payload)
    kind = payload["kind"]
    if kind == "numpy":
        with target.open("rb") as f:
            return np.load(f, allow_pickle=False)
    if kind == "dask":
        import zarr

        z = zarr.open_array(store=target.zarr_store(read_only=True), mode="r")
        chunks = tuple(tuple(dim) for dim in payload["chunks"])
        return _lazy(z, chunks, f"voxelflow-load-{token}", folder)
    if kind in ("dataframe", "series"):
        import pandas as pd

        with target.open("rb") as f:
            table = pd.read_parquet(f, engine="pyarrow")
        return table.iloc[:, 0] if kind == "series" else table
    if kind == "ome-zarr":
        z = _level0(target, complete=payload.get("every_chunk") is True)
        if payload.get("loads_as") == "numpy":
            return np.asarray(CheckedPayload(z, folder)[...]).astype(np.dtype(payload["dtype"]), copy=False)
        chunks = tuple(tuple(dim) for dim in payload["chunks"]) if "chunks" in payload else z.chunks
        return _lazy(z, chunks, f"voxelflow-load-{token}", folder)
    return json.loads(target.read_text())


def _level0(target: VPath, complete: bool = False):
    """The full-resolution zarr array of an array payload: the first OME-Zarr level (NGFF 0.4 or 0.5), else ``0``.

    ``complete``: the payload was written with every chunk, so an absent chunk raises.
    """
    import zarr

    group = zarr.open_group(store=target.zarr_store(read_only=True, complete=complete), mode="r")
    attrs = dict(group.attrs)
    section = attrs.get("ome", attrs)
    if "multiscales" not in section:
        if "0" not in group:
            raise UnsupportedObjectError(f"{target} has neither OME-Zarr multiscales metadata nor an array '0'")
        return group["0"]
    try:
        level0 = section["multiscales"][0]["datasets"][0]["path"]
    except (KeyError, IndexError, TypeError) as exc:
        raise UnsupportedObjectError(f"{target} has malformed OME-Zarr multiscales metadata") from exc
    if not isinstance(level0, str) or not all(plain_entry(part) for part in level0.split("/")):
        raise CacheError(f"{target}: level path {level0!r} is not inside the image")
    return group[level0]


def _lazy(z, chunks, name: str, folder: VPath):
    import dask.array as da

    return da.from_array(CheckedPayload(z, folder), chunks=chunks, name=name, lock=False, asarray=False,
                         meta=np.empty((0,) * z.ndim, z.dtype))


class CheckedPayload:
    """A stored zarr array whose reads report damaged chunks as :class:`CacheError` naming the node.

    Attributes
    ----------
    zarray : zarr.Array
    node : VPath
    """

    def __init__(self, zarray, node: VPath):
        self.zarray, self.node = zarray, node
        self.shape, self.dtype, self.ndim = zarray.shape, zarray.dtype, zarray.ndim

    def __getitem__(self, key) -> np.ndarray:
        try:
            return self.zarray[key]
        except Exception as exc:  # noqa: BLE001  any failure below zarr means damaged stored bytes
            raise CacheError(
                f"committed node {self.node} has a damaged payload chunk (array {self.zarray.path or 'result.zarr'!r}"
                f"{chunk_name(self.zarray, key)} at {key!r:.120}): {type(exc).__name__}: {exc}"
            ) from exc


def chunk_name(zarray, key) -> str:
    """`` (chunk i/j/k)`` or `` (shard i/j/k)``: the stored unit a dask block read starts in, or ``""``."""
    if not isinstance(key, tuple) or len(key) != zarray.ndim or not all(isinstance(k, slice) for k in key):
        return ""
    unit, grid = ("shard", zarray.shards) if zarray.shards else ("chunk", zarray.chunks)
    return f" ({unit} {'/'.join(str((k.start or 0) // g) for k, g in zip(key, grid))})"

