"""The on-disk layout of step nodes and run folders: the one module that spells it.

A *step node* is the cache node of one step call (its ``cache_url``)::

    <node>/step.json    name, kind ("IN->BS"), key, tuple, outputs, seconds
    <node>/parts/       while the step is computed: finished chunk groups of its long
                        passes (one folder per pass) and the image outputs being written
                        (``<key>-out<i>.ome.zarr``, with a ledger of finished chunks),
                        kept across a kill, deleted at commit
    <node>/out0/        one child cache node per output, in order (out0, out1, ...):
                        images (2-5 dimensions) as an OME-Zarr image with a pyramid,
                        other arrays, tables and values as voxelflow.save stores them
                        (the payloads of voxelflow.cache: data.ome.zarr, parquet, JSON)

The node itself is committed with a :class:`voxelflow.cache.ChildNodes`
payload, so ``voxelflow.load(node)`` returns the step's result (a tuple for a
step returning several values); step nodes written by voxelflow 0.1 have no such
payload and :func:`load` reads them through ``step.json``. Children keep their own key (``<key>/<i>``),
so an interrupted call resumes with the outputs it had already written.

A *run folder* is what a pipeline run writes::

    run.json            configuration, versions, steps, timings, outputs
    objects.parquet     the object table (LC); objects.csv: its main columns
    regions.csv         counts per atlas region (RC), when an atlas is given
    density.ome.zarr    the density map (CD)
    cache/              the step nodes (unless output.cache names another root)

The viewer, the report and the command line read both through this module.
"""

from __future__ import annotations

import json
from typing import Any

import dask.array as da
import numpy as np
import pandas as pd

from voxelflow import cache
from voxelflow.cache import PARTS_NAME, PAYLOAD_NAMES, ChildNodes, Image, cdir_init, part_store, save
from voxelflow.errors import InvalidInputError, NoResultError
from voxelflow.paths import VPath, as_vpath
from voxelflow.steps.keys import keyed

__all__ = [
    "CACHE_FOLDER",
    "DENSITY_IMAGE",
    "ATLAS_DENSITY_IMAGE",
    "OBJECTS_CSV",
    "OBJECTS_TABLE",
    "REGIONS_CSV",
    "FAILED_RUN_FILE",
    "RUN_FILE",
    "STEP_FILE",
    "is_run_folder",
    "load",
    "output_image",
    "read_run",
    "read_step",
    "read_step_result",
    "write_run",
    "write_step",
]

#: Per-call description written into every step node.
STEP_FILE = "step.json"
#: Description of a pipeline run, in its run folder.
RUN_FILE = "run.json"
#: What the last failed run of a folder did (its finished steps resume from the cache).
FAILED_RUN_FILE = "run-failed.json"
OBJECTS_TABLE = "objects.parquet"
OBJECTS_CSV = "objects.csv"
REGIONS_CSV = "regions.csv"
DENSITY_IMAGE = "density.ome.zarr"
#: Objects per atlas voxel (or block) in atlas space, atlas orientation (runs that register an atlas).
ATLAS_DENSITY_IMAGE = "atlas_density.ome.zarr"
CACHE_FOLDER = "cache"


def _output(node: str | VPath, i: int) -> VPath:
    return as_vpath(node) / f"out{i}"


def output_image(node: str | VPath, i: int = 0) -> VPath:
    """The OME-Zarr image of output ``i`` of a step node (meaningful when that output is an image)."""
    return _output(node, i) / PAYLOAD_NAMES["ome-zarr"]


def stored_kind(value: Any) -> str:
    """How a step output is stored: ``image``, ``array``, ``table``, ``series`` or ``value``.

    Arrays of 2 to 5 dimensions are images (OME-Zarr with a pyramid); other
    arrays are stored as plain arrays.
    """
    if isinstance(value, (da.Array, np.ndarray)):
        return "image" if 2 <= value.ndim <= 5 else "array"
    if isinstance(value, pd.DataFrame):
        return "table"
    if isinstance(value, pd.Series):
        return "series"
    return "value"


def _image_work(node_url: str, key: str, i: int) -> str | None:
    """Where image output ``i`` of a local step node is written before it is committed (None: not resumable)."""
    node = as_vpath(node_url)
    return (node / PARTS_NAME / f"{key[:16]}-out{i}.ome.zarr").path if node.is_local else None


def _write_output(value: Any, url: str, storage: dict, work: str | None = None, job: str | None = None) -> str:
    """Write one output into the child node ``url`` (opened by the caller); return its stored kind.

    An image is written in ``work`` (kept across a kill, see :func:`_image_work`) when its
    layout allows a resumable write (:func:`voxelflow.io.write_ome_zarr`'s ``resume``), so a
    rerun stores only the chunks not yet written.
    """
    kind = stored_kind(value)
    if kind == "image":
        from voxelflow.io import write_ome_zarr

        # the writer writes every chunk, so a chunk file lost later reads as an error, never as zeros
        save(url, Image(lambda target: write_ome_zarr(value, target.url, overwrite=True, resume=work, job=job,
                                                      **storage), every_chunk=True))
        return kind
    if kind == "value":
        if isinstance(value, np.generic):
            value = value.item()
        try:
            json.dumps(value)
        except TypeError as exc:
            raise InvalidInputError(
                f"step output of type {type(value).__name__} cannot be cached; return arrays, "
                "pandas DataFrames, JSON values, or a tuple of those"
            ) from exc
    save(url, value)
    return kind


def write_step(node_url: str, desc: dict, result: Any, storage: dict) -> None:
    """Store the result of a step call in its node (opened with ``cdir_init`` under ``desc["key"]``) and commit it.

    Parameters
    ----------
    node_url : str
    desc : dict
        ``step``, ``kind``, ``key`` and ``seconds`` of the call; ``tuple`` and
        ``outputs`` are added here.
    result : array, DataFrame, Series, JSON value or tuple of those
    storage : dict
        Keyword arguments of :func:`voxelflow.io.write_ome_zarr` for images.
    """
    items = list(result) if isinstance(result, tuple) else [result]
    kinds = []
    for i, value in enumerate(items):
        child = _output(node_url, i).url
        # a resumed node reuses only the outputs already committed under this key
        if cdir_init(child, key=f"{desc['key']}/{i}").commit is None:
            kinds.append(_write_output(value, child, storage, _image_work(node_url, desc["key"], i),
                                       f"{desc['key']}/{i}"))
        else:
            kinds.append(stored_kind(value))
    desc = {**desc, "tuple": isinstance(result, tuple), "outputs": kinds}
    step_file = as_vpath(node_url) / STEP_FILE
    step_file.write_text(json.dumps({k: desc[k] for k in ("step", "kind", "key", "tuple", "outputs", "seconds")},
                                    indent=1))
    save(node_url, ChildNodes([f"out{i}" for i in range(len(items))], as_tuple=isinstance(result, tuple)))


def part_factory(node_url: str, key: str):
    """Part stores for the chunk passes of a step being computed in ``node_url``.

    Each pass gets ``<node>/parts/<key>-<token>/`` (see :func:`voxelflow.cache.part_store`),
    named after the step key and the pass's graph token, so parts are reused only
    by the same pass of the same step call.
    """

    def factory(token: str, total: int):
        return part_store(node_url, f"{key[:16]}-{token[:32]}", total)

    return factory


def read_step(node: str | VPath) -> dict | None:
    """The ``step.json`` description of a step node, or None for a node that is not one."""
    path = as_vpath(node) / STEP_FILE
    return json.loads(path.read_text()) if path.isfile() else None


def read_step_result(node_url: str, desc: dict) -> Any:
    """The result of a committed step node, lazily read back.

    Images come back as dask arrays named after ``<key>/<i>``, so anything
    computed from them is keyed by the step that made them.
    """
    outs = []
    for i, kind in enumerate(desc["outputs"]):
        if kind == "image":
            from voxelflow.io import open_ome_zarr

            arr, _ = open_ome_zarr(output_image(node_url, i).url)
            outs.append(keyed(arr, f"{desc['key']}/{i}"))
            continue
        value = cache.load(_output(node_url, i))
        if kind == "array":
            value = keyed(da.asarray(value), f"{desc['key']}/{i}")
        if kind == "series" and isinstance(value, pd.DataFrame):
            value = value.iloc[:, 0]  # stored as a one-column table by voxelflow 0.1
        outs.append(value)
    return tuple(outs) if desc["tuple"] else outs[0]


def load(url: str | VPath, *, storage_options: dict | None = None) -> Any:
    """:func:`voxelflow.load`: the result of any committed node, step nodes of every voxelflow version included.

    Parameters
    ----------
    url : str or VPath
        A node saved with :func:`voxelflow.save` or a step node.
    storage_options : dict, optional
        fsspec options for remote URLs.

    Returns
    -------
    object
        What :func:`voxelflow.cache.load` returns; for a step node written by
        voxelflow 0.1 (committed without a result of its own) the step's result
        read through its ``step.json``: a tuple for a step with several outputs.

    Raises
    ------
    NotCommittedError, CacheError
        As :func:`voxelflow.cache.load`.
    """
    try:
        return cache.load(url, storage_options=storage_options)
    except NoResultError:
        path = as_vpath(url, storage_options)
        desc = read_step(path)
        if desc is None:
            raise
        return read_step_result(path, desc)


def step_output_paths(node: str | VPath, desc: dict) -> list[tuple[str, VPath]]:
    """``(kind, where)`` of every output: the OME-Zarr image for images, the child node otherwise."""
    return [(kind, output_image(node, i) if kind == "image" else _output(node, i))
            for i, kind in enumerate(desc.get("outputs", ()))]


def is_step_output(path: VPath, step_dirs: list[str]) -> bool:
    """True for a folder inside one of the step nodes ``step_dirs`` (their outputs belong to them)."""
    return any(path.path.startswith(d.rstrip("/") + "/") for d in step_dirs)


def is_run_folder(names) -> bool:
    """True for a folder listing that holds a run description or an object table."""
    return RUN_FILE in names or OBJECTS_TABLE in names


def read_run(folder: str | VPath) -> dict:
    """The ``run.json`` of a run folder, or ``{}`` when it has none.

    Raises
    ------
    InvalidInputError
        If the file is not valid JSON.
    """
    path = as_vpath(folder) / RUN_FILE
    if not path.isfile():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"{path.url!r} is not valid JSON: {exc}") from exc


def write_run(folder: str | VPath, run: dict, name: str = RUN_FILE) -> None:
    """Write ``run.json`` (or the failure record ``run-failed.json``) into a run folder, atomically."""
    (as_vpath(folder) / name).write_text(json.dumps(run, indent=1, default=str))
