"""Steps for learned models: dense prediction, instance prediction stitched exactly, cell classification.

``predict``
    :func:`voxelflow.ops.predict` for probabilities or classes (``IN->IN``);
    the model is part of the key through its content (file adapters hash
    their bytes).
``predict_instances``
    An instance model run chunk by chunk and stitched exactly (``IN->OS``).
    The model runs once per chunk: the provisional labels are stored in a
    scratch Zarr array while the matches are gathered in the same pass, then
    remapped to final ids from that array (memory per task: a chunk plus its
    halo). The scratch folder lives under Dask's ``temporary-directory`` (or
    the system temporary folder) and is removed when the process exits.
``classify_cells``
    Object features plus a saved classifier: the LC table with ``p_cell`` and
    ``is_cell`` (``LC->LC``); the classifier file's content is part of the key.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import tempfile

import dask
import dask.array as da
import numpy as np

from voxelflow.errors import InvalidPathError
from voxelflow.paths import as_vpath
from voxelflow.steps.step import Step

__all__ = ["predict", "predict_instances", "classify_cells", "classifier_stamp"]

predict = Step("voxelflow.ops:predict", kind="IN->IN")


def _instances(image, model, halo=None, halo_um=None, voxel_size=None, channel_axis=None, batch_size=1,
               pad_mode="reflect", iou=0.5):
    """Instance labels (OS) of ``model`` on ``image``, stitched exactly (see :func:`voxelflow.ops.predict`)."""
    import zarr

    from voxelflow.ops import predict as predict_op
    from voxelflow.ops import stitch
    from voxelflow.zarr_stores import CompleteChunkStore

    tiles = predict_op(image, model, halo=halo, halo_um=halo_um, voxel_size=voxel_size, output="instances",
                       channel_axis=channel_axis, batch_size=batch_size, pad_mode=pad_mode, iou=iou)
    labels = tiles.labels
    base = dask.config.get("temporary-directory", None)
    if base:
        os.makedirs(base, exist_ok=True)  # Dask creates its own scratch folder only when it first spills
    folder = tempfile.mkdtemp(prefix="voxelflow-tiles-", dir=base)
    atexit.register(shutil.rmtree, folder, True)
    regular = tuple(max(c) for c in labels.chunks)
    # every chunk is written with a checksum and read strictly: a damaged or lost tile is an error, not zeros
    scratch = zarr.create_array(store=CompleteChunkStore(zarr.storage.LocalStore(folder), folder),
                                shape=labels.shape, chunks=regular, dtype=np.int64, fill_value=0,
                                compressors=[zarr.codecs.ZstdCodec(level=0), zarr.codecs.Crc32cCodec()],
                                config={"write_empty_chunks": True})
    aligned = all(all(c == r for c in sizes[:-1]) for sizes, r in zip(labels.chunks, regular))
    store = da.store(labels, scratch, lock=not aligned, compute=False)
    _, matches = dask.compute(store, tiles.matches)
    os_arr, _ = stitch(da.from_zarr(scratch, chunks=labels.chunks), matches)
    return os_arr


predict_instances = Step(_instances, kind="IN->OS", name="predict_instances")


def classifier_stamp(path) -> str:
    """SHA-256 of a classifier file, so a step's key changes when the file does.

    Raises
    ------
    voxelflow.errors.InvalidPathError
        The file cannot be read.
    """
    source = as_vpath(path)
    try:
        return hashlib.sha256(source.read_bytes()).hexdigest()
    except (OSError, ValueError) as exc:
        raise InvalidPathError(f"cannot read the classifier {source.url}: {exc}") from exc


def _classify(table, os_arr, signal, background=None, classifier="", stamp="", voxel_size=1.0, radius_um=10.0,
              cube=None, threshold=None):
    """The LC table with ``p_cell`` and ``is_cell`` from a saved classifier (``stamp``: its SHA-256)."""
    from voxelflow.io.classifier import load_classifier
    from voxelflow.ops import classify_objects, object_features

    clf = load_classifier(classifier)
    features = object_features(table, os_arr, signal, background, voxel_size=voxel_size, radius_um=radius_um,
                               cube=cube)
    return classify_objects(table, features, clf, threshold)


classify_cells = Step(_classify, kind="LC->LC", name="classify_cells")
