"""Run a model on every chunk of an image with a halo of context (IN -> probabilities, classes or OS).

A model is any callable ``model(block) -> ndarray`` on numpy arrays; file
formats (ONNX, cellpose, nnU-Net) are loaded into such callables by
:mod:`voxelflow.io.models`. Each chunk is handed to the model together with
``halo`` voxels of its neighbours on every side; at the array border the block
is padded (``pad_mode``, as ``numpy.pad``) so every block the model sees has
the chunk's shape plus ``2 * halo``, and the output is cropped back to the
chunk. The padding is chosen so that, for a model whose output at a voxel
depends only on the input within ``halo`` voxels of it, the chunked result
equals the model run once on ``numpy.pad(image, halo, pad_mode)`` and cropped:
whatever the chunking, up to floating-point differences of the engine.

A task holds ``batch_size`` padded blocks and their outputs, so memory per
worker is bounded by ``batch_size * (chunk + 2 * halo)`` voxels (times the
model's own working memory), whatever the volume. Each task reads its padded
region itself, straight from the image's source when the image's chunks are
reads (a store, an in-memory array, element-wise steps on them; see
:mod:`voxelflow.ops._region_reads`), so no input chunk stays in memory waiting
for its neighbours.

Model protocol
--------------
``model(block)``
    ``block`` has shape ``(n0 + 2 h0, ...)``, or ``(C_in, n0 + 2 h0, ...)``
    with ``channel_axis=0``, and the image's dtype. Returns an array of shape
    ``spatial`` or ``(C, *spatial)`` where ``spatial`` is the block's spatial
    shape, or smaller by the same number of voxels (at most the halo) on both
    sides of an axis (a network without padding).
``model.channels`` (optional)
    Output channel count, or None when the output has no channel axis;
    the ``channels`` argument overrides it.
``model.halo`` (optional)
    Default halo in voxels (an int or one per spatial axis).
``model.batch(blocks)`` (optional)
    Run a list of equally shaped blocks at once (a batch axis for a network).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence

import dask.array as da
import numpy as np
from dask._task_spec import Task
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

from voxelflow.errors import InvalidInputError
from voxelflow.ops._ccpass import block_groups, release_free_heap
from voxelflow.ops._halo import iter_blocks, padded_region
from voxelflow.ops._region_reads import region_reader
from voxelflow.ops._stitch import chunk_stride, instance_graph, instance_tile, tile_geometry

__all__ = ["predict", "resolve_halo"]

OUTPUTS = ("probabilities", "classes", "instances")
PAD_MODES = ("reflect", "symmetric", "edge", "constant")
PROBABILITY_DTYPES = ("float16", "float32", "uint8")


def resolve_halo(ndim: int, halo=None, halo_um=None, voxel_size=None, default=0) -> tuple[int, ...]:
    """Halo in voxels per spatial axis, from voxels or from micrometres and the voxel size.

    Parameters
    ----------
    ndim : int
        Number of spatial axes.
    halo : int or sequence of int, optional
        Halo in voxels.
    halo_um : float or sequence of float, optional
        Halo in micrometres; needs ``voxel_size``. Rounded up to whole voxels.
    voxel_size : float or sequence of float, optional
        Voxel size in micrometres per spatial axis (e.g. ``(5, 2, 2)``).
    default : int or sequence of int
        Used when neither ``halo`` nor ``halo_um`` is given (e.g. the model's ``halo``).

    Returns
    -------
    tuple of int, length ``ndim``
    """
    if halo is not None and halo_um is not None:
        raise InvalidInputError("give the halo either in voxels (halo=) or in micrometres (halo_um=), not both")
    if halo_um is not None:
        if voxel_size is None:
            raise InvalidInputError("halo_um needs voxel_size (micrometres per voxel along each axis)")
        um = _per_axis(halo_um, ndim, "halo_um", float)
        size = _per_axis(voxel_size, ndim, "voxel_size", float)
        if any(s <= 0 for s in size):
            raise InvalidInputError(f"voxel_size must be positive, got {voxel_size!r}")
        # 1e-9 keeps an exact multiple (4 um at 2 um/voxel) from rounding up to 3 voxels
        depth = tuple(math.ceil(u / s - 1e-9) for u, s in zip(um, size))
    else:
        depth = _per_axis(default if halo is None else halo, ndim, "halo", int)
    if any(h < 0 for h in depth):
        raise InvalidInputError(f"the halo must be non-negative, got {depth}")
    return depth


def _per_axis(value, ndim, what, kind):
    values = np.atleast_1d(np.asarray(value))
    if values.ndim != 1 or values.size not in (1, ndim):
        raise InvalidInputError(f"{what} must be a number or {ndim} numbers, got {value!r}")
    if kind is int and not np.issubdtype(values.dtype, np.integer):
        raise InvalidInputError(f"{what} must be whole voxels, got {value!r}")
    return tuple(kind(v) for v in np.broadcast_to(values, (ndim,)))


def predict(
    image,
    model,
    *,
    halo: int | Sequence[int] | None = None,
    halo_um: float | Sequence[float] | None = None,
    voxel_size: float | Sequence[float] | None = None,
    output: str = "probabilities",
    channels: int | None = None,
    channel_axis: int | None = None,
    batch_size: int = 1,
    dtype=None,
    pad_mode: str = "reflect",
    threshold: float = 0.5,
    iou: float = 0.5,
):
    """Run ``model`` on every chunk of ``image`` plus a halo and crop the halo off.

    Parameters
    ----------
    image : dask.array.Array or numpy.ndarray, shape (Z, Y, X) or (Y, X), or (C, Z, Y, X)/(C, Y, X) with ``channel_axis=0``
        Intensity image (IN). Chunks of the spatial axes are the tiles; a
        channel axis is gathered into one chunk.
    model : callable
        See the module's *Model protocol*.
    halo, halo_um, voxel_size
        Context around each chunk, in voxels, or in micrometres with the voxel
        size (see :func:`resolve_halo`). Defaults to ``model.halo`` or 0. Use
        at least the model's receptive-field radius.
    output : {'probabilities', 'classes', 'instances'}
        ``'probabilities'``: the model's output cropped to the chunk, as
        ``dtype`` (float16 by default; ``'uint8'`` stores ``round(255 * p)``
        of values clipped to [0, 1]). ``'classes'``: the argmax over the
        channel axis, or ``p >= threshold`` for a single-channel output, or the
        model's integer output as it is; uint8 (uint16 above 256 classes).
        ``'instances'``: the model returns integer instance labels of the
        padded block; they are stitched exactly across chunks (see
        :mod:`voxelflow.ops._stitch`).
    channels : int, optional
        Output channel count (overrides ``model.channels``); None = the output
        has no channel axis.
    channel_axis : {None, 0}
        Whether ``image`` has a leading channel axis.
    batch_size : int
        Chunks per task, handed to ``model.batch`` at once when the model has it.
    dtype : str or numpy dtype, optional
        Output dtype of probabilities (``'float16'``, ``'float32'``, ``'uint8'``)
        or of classes (``'uint8'``, ``'uint16'``).
    pad_mode : {'reflect', 'symmetric', 'edge', 'constant'}
        How blocks are padded beyond the array border (``numpy.pad`` modes;
        ``'constant'`` pads with 0).
    threshold : float
        Foreground threshold for ``output='classes'`` on a single-channel output.
    iou : float
        For ``'instances'``: minimum intersection over union, inside the
        overlap of two padded blocks, for two chunks' labels to be one object.
        At least 0.5 (one-to-one matching).

    Returns
    -------
    dask.array.Array or InstanceTiles
        Probabilities: shape ``(C, *spatial)`` with ``channels`` (channel axis
        one chunk), else ``spatial``; classes: ``spatial``; chunks of the
        image's spatial axes. Instances: an :class:`~voxelflow.ops._stitch.InstanceTiles`
        (provisional labels + matches); ``tiles.stitch()`` gives ``(os, n)``
        in memory, or store ``tiles.labels`` and call
        :func:`~voxelflow.ops._stitch.stitch`.

    Raises
    ------
    voxelflow.errors.InvalidInputError
        Bad image, halo or option; when computed, a model output of the wrong
        shape, channel count or dtype, or non-finite probabilities.

    Examples
    --------
    >>> import dask.array as da, numpy as np
    >>> from scipy import ndimage as ndi
    >>> image = da.from_array(np.random.default_rng(0).random((32, 32, 32), dtype=np.float32), chunks=16)
    >>> smooth = lambda block: ndi.uniform_filter(block, 3)
    >>> out = predict(image, smooth, halo=1, dtype="float32", pad_mode="symmetric")  # scipy's 'reflect'
    >>> bool(np.array_equal(out.compute(), ndi.uniform_filter(image.compute(), 3)))
    True
    """
    image = _as_image(image, channel_axis)
    spatial_chunks = image.chunks[1:] if channel_axis == 0 else image.chunks
    ndim = len(spatial_chunks)
    if output not in OUTPUTS:
        raise InvalidInputError(f"output must be one of {OUTPUTS}, got {output!r}")
    if pad_mode not in PAD_MODES:
        raise InvalidInputError(f"pad_mode must be one of {PAD_MODES}, got {pad_mode!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise InvalidInputError(f"batch_size must be a positive int, got {batch_size!r}")
    if not callable(model):
        raise InvalidInputError(f"model must be callable (block -> array), got {type(model).__name__}")
    depth = resolve_halo(ndim, halo, halo_um, voxel_size, getattr(model, "halo", 0) or 0)
    if channels is None:
        channels = getattr(model, "channels", None)
    if channels is not None and (not isinstance(channels, (int, np.integer)) or channels < 1):
        raise InvalidInputError(f"channels must be a positive int or None, got {channels!r}")
    out_dtype = _output_dtype(output, dtype, channels)
    if output == "instances" and not 0.5 <= iou <= 1:
        raise InvalidInputError(f"iou must be between 0.5 and 1, got {iou!r}")
    if output == "instances":
        for ax, (h, c) in enumerate(zip(depth, spatial_chunks)):
            if h == 0 and len(c) > 1:
                raise InvalidInputError(
                    f"output='instances' needs a halo of at least 1 voxel along axis {ax}, which has several "
                    "chunks: without overlap the chunks' labels cannot be matched"
                )

    shape = tuple(int(sum(c)) for c in spatial_chunks)
    blocks = {b.index: b for b in iter_blocks(spatial_chunks)}
    groups = block_groups(tuple(len(c) for c in spatial_chunks), batch_size)
    lead = ((0,), (image.shape[0],)) if channel_axis == 0 else ((), ())
    geometry = tile_geometry(spatial_chunks, depth) if output == "instances" else None
    stride = chunk_stride(spatial_chunks) if output == "instances" else 0
    grid = tuple(len(c) for c in spatial_chunks)

    token = tokenize(image, _model_token(model), depth, output, channels, channel_axis, batch_size, out_dtype, pad_mode,
                     threshold, iou)
    group_name = f"vf-predict-group-{token}"
    reader = region_reader(image)
    dsk = dict(reader.nodes)
    for g, group in enumerate(groups):
        cuts, jobs = [], []
        boxes = [padded_region(blocks[idx], depth, shape) for idx in group]
        # consecutive chunks along the last axis: their padded regions make one box
        box_lo = tuple(min(lo[a] for lo, _ in boxes) for a in range(ndim))
        box_hi = tuple(max(hi[a] for _, hi in boxes) for a in range(ndim))
        for idx, (lo, hi) in zip(group, boxes):
            block = blocks[idx]
            cuts.append(tuple(slice(a - o, b - o) for a, b, o in zip(lo, hi, box_lo)))
            widths = tuple((a - (s - h), (e + h) - b) for a, b, s, e, h in zip(lo, hi, block.start, block.stop, depth))
            if output == "instances":
                flat = int(np.ravel_multi_index(idx, grid))
                origin = tuple(s - h for s, h in zip(block.start, depth))
                jobs.append((widths, "instances", (geometry[flat], origin, flat, stride)))
            else:
                jobs.append((widths, "dense", (depth, block.shape, output, out_dtype, threshold)))
        box = reader.box(lead[0] + box_lo, lead[1] + box_hi)
        dsk[(group_name, g)] = Task((group_name, g), _run_group, box, cuts, jobs, model, pad_mode, channels,
                                    channel_axis)

    if output == "instances":
        tile_keys = [None] * len(blocks)
        for g, group in enumerate(groups):
            for i, idx in enumerate(group):
                key = (f"vf-predict-tile-{token}", *idx)
                tile_keys[int(np.ravel_multi_index(idx, grid))] = key
                dsk[key] = (_pick, (group_name, g), i)
        return instance_graph(dsk, tile_keys, geometry, spatial_chunks, stride, iou, reader.dependencies, token)

    out_name = f"vf-predict-{token}"
    with_channels = output == "probabilities" and channels is not None
    for g, group in enumerate(groups):
        for i, idx in enumerate(group):
            key = (out_name, 0, *idx) if with_channels else (out_name, *idx)
            dsk[key] = (_pick, (group_name, g), i)
    chunks = ((channels,), *spatial_chunks) if with_channels else spatial_chunks
    graph = HighLevelGraph.from_collections(out_name, dsk, dependencies=reader.dependencies)
    meta = np.empty((0,) * len(chunks), dtype=out_dtype)
    return da.Array(graph, out_name, chunks, dtype=out_dtype, meta=meta)


def _model_token(model):
    """What names a model in task keys.

    Models that know their identity (the file adapters hash their bytes) give
    ``__dask_tokenize__``; any other callable gets a fresh token per call, because
    hashing an arbitrary object makes dask pickle it by value, which replaced the
    methods of a class defined in ``__main__`` or in a function by copies.
    """
    if hasattr(model, "__dask_tokenize__"):
        return model.__dask_tokenize__()
    return uuid.uuid4().hex


def _as_image(image, channel_axis) -> da.Array:
    if isinstance(image, np.ndarray):
        image = da.from_array(image, chunks=image.shape if image.size else "auto")
    if not isinstance(image, da.Array):
        raise InvalidInputError(f"image must be a dask or numpy array, got {type(image).__name__}")
    if channel_axis not in (None, 0):
        raise InvalidInputError(f"channel_axis must be None or 0 (a leading channel axis), got {channel_axis!r}")
    spatial = image.ndim - (channel_axis is not None)
    if spatial not in (2, 3):
        raise InvalidInputError(
            f"image must have 2 or 3 spatial axes{' after its channel axis' if channel_axis == 0 else ''}, "
            f"got shape {image.shape}"
        )
    if image.dtype.kind not in "biuf":
        raise InvalidInputError(f"image must have a boolean, integer or float dtype, got {image.dtype}")
    if any(np.isnan(size) for sizes in image.chunks for size in sizes):
        raise InvalidInputError("image has unknown chunk sizes; call compute_chunk_sizes() first")
    return image


def _output_dtype(output, dtype, channels):
    if output == "instances":
        return np.dtype(np.int64)
    if output == "probabilities":
        name = "float16" if dtype is None else np.dtype(dtype).name
        if name not in PROBABILITY_DTYPES:
            raise InvalidInputError(f"probabilities are stored as one of {PROBABILITY_DTYPES}, got {dtype!r}")
        return np.dtype(name)
    need = np.dtype(np.uint16) if channels is not None and channels > 256 else np.dtype(np.uint8)
    out = need if dtype is None else np.dtype(dtype)
    if out.kind != "u" or np.iinfo(out).max < np.iinfo(need).max:
        raise InvalidInputError(f"classes of {channels or 2} channels need an unsigned dtype of at least {need}, "
                                f"got {dtype!r}")
    return out


def _pick(results, i):
    return results[i]


def _run_group(box, cuts, jobs, model, pad_mode, channels, channel_axis):
    """Cut each chunk's region out of the group's box, pad it, run the model (batched when it can), finish each output."""
    lead = 1 if channel_axis == 0 else 0
    padded = []
    for cut, (widths, _, _) in zip(cuts, jobs):
        region = box[(slice(None),) * lead + cut]
        pad = ((0, 0),) * lead + widths
        padded.append(np.pad(region, pad, mode=pad_mode) if any(w for ab in widths for w in ab) else region)
    del box
    outputs = _call_model(model, padded)
    results = []
    for block, out, (_, kind, args) in zip(padded, outputs, jobs):
        out = _check_output(np.asarray(out), block.shape[lead:], channels)
        results.append((_finish_instances if kind == "instances" else _finish_dense)(out, *args))
    del padded, outputs
    release_free_heap()
    return results


def _call_model(model, blocks):
    batch = getattr(model, "batch", None)
    if batch is None or len(blocks) == 1:
        return [model(b) for b in blocks]
    out = [None] * len(blocks)
    by_shape: dict = {}
    for i, b in enumerate(blocks):
        by_shape.setdefault(b.shape, []).append(i)
    for members in by_shape.values():
        for i, result in zip(members, batch([blocks[i] for i in members])):
            out[i] = result
    return out


def _check_output(out, spatial, channels):
    want = len(spatial) + (channels is not None)
    if out.ndim != want or (channels is not None and out.shape[0] != channels):
        expected = ("(C, " if channels is not None else "(") + ", ".join(map(str, spatial)) + ")"
        raise InvalidInputError(
            f"the model returned shape {out.shape} for a block of spatial shape {tuple(spatial)}; expected "
            f"{expected} with C = channels = {channels} (set channels= to the model's output channel count, "
            "or None for no channel axis)"
        )
    got = out.shape[1:] if channels is not None else out.shape
    for n_in, n_out in zip(spatial, got):
        if n_out > n_in or (n_in - n_out) % 2:
            raise InvalidInputError(
                f"the model returned spatial shape {tuple(got)} for a block of {tuple(spatial)}; an output may "
                "only be smaller by the same number of voxels on both sides"
            )
    return out


def _finish_dense(out, depth, core_shape, output, dtype, threshold):
    """Crop the halo off a dense output and convert it to ``dtype``."""
    has_channels = out.ndim == len(depth) + 1
    spatial = out.shape[1:] if has_channels else out.shape
    crop = []
    for n_out, n, h in zip(spatial, core_shape, depth):
        # a model without padding returns fewer voxels: skip only what is left of the halo
        first = h - (n + 2 * h - n_out) // 2
        if first < 0:
            raise InvalidInputError(
                f"the model returned spatial shape {tuple(spatial)} for blocks of {tuple(core_shape)} plus a halo "
                f"of {tuple(depth)}: it drops more voxels than the halo; raise the halo"
            )
        crop.append(slice(first, first + n))
    values = out[(slice(None),) * has_channels + tuple(crop)]
    if output == "classes":
        return _classes(values, has_channels, dtype, threshold)
    if not np.isfinite(values).all():
        raise InvalidInputError("the model returned NaN or infinite probabilities")
    if dtype == np.uint8:
        return np.rint(np.clip(values, 0, 1) * 255).astype(np.uint8)
    return values.astype(dtype)


def _classes(values, has_channels, dtype, threshold):
    if has_channels and values.shape[0] > 1:
        return np.argmax(values, axis=0).astype(dtype)
    if has_channels:
        values = values[0]
    if values.dtype.kind in "iub":
        if values.size and (values.min() < 0 or values.max() > np.iinfo(dtype).max):
            raise InvalidInputError(f"the model's class ids do not fit {dtype}")
        return values.astype(dtype)
    return (values >= threshold).astype(dtype)


def _finish_instances(out, tile, origin, flat, stride):
    if out.ndim != len(origin):
        raise InvalidInputError(f"output='instances' needs labels without a channel axis, got shape {out.shape}")
    expected = tuple(b - a + 2 * (a - o) for a, b, o in zip(tile["start"], tile["stop"], origin))
    if out.shape != expected:
        raise InvalidInputError(
            f"output='instances' needs labels of the padded block's shape {expected}, got {out.shape}"
        )
    return instance_tile(out, origin, tile, flat, stride)
