"""What a path on disk holds, and the napari layer data to show it.

A path given to ``voxelflow view`` or to the napari reader is one of:

``image``
    An OME-Zarr image (folder or ``.zip``, optional ``?slices=[...]``).
``run``
    A pipeline run folder: a run description and/or an object table, with the
    OME-Zarr outputs (density map) next to them and the intermediates in the
    run's cache.
``cache``
    A cache root (or any folder holding cache nodes): its committed steps.
``table``
    A ``.parquet`` object table (LC).

No napari import happens here: everything returns ``(data, kwargs, layer_type)``
tuples (see :mod:`voxelflow.viewer.layers`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from voxelflow.errors import ImageFormatError, InvalidInputError, InvalidPathError, OmeZarrError
from voxelflow.paths import VPath, as_vpath
from voxelflow.steps import node as step_node
from voxelflow.viewer.layers import LayerData, object_layer, ome_zarr_layers, result_layers

__all__ = [
    "CachedStep",
    "classify_path",
    "image_reference_layers",
    "layers_for_path",
    "list_cached_steps",
    "run_folder_layers",
    "step_layers",
]

log = logging.getLogger(__name__)

_IMAGE_SUFFIXES = (".ome.zarr", ".ome.zarr.zip", ".zarr", ".zarr.zip")
_ZARR_META = ("zarr.json", ".zattrs", ".zgroup")
_LABEL_TYPES = ("OS", "BS")  # DESIGN.md data types shown as labels layers
_HIDDEN_TYPES = ("BS",)  # shown, but switched off: the OS layer covers it


@dataclass(frozen=True)
class CachedStep:
    """A committed result in a cache tree.

    Attributes
    ----------
    name : str
        Path of the node relative to the cache root, ``/``-separated (``"label"``,
        ``"plaque/threshold"``).
    url : str
        The node URL.
    committed : datetime
        Commit time (UTC).
    from_step : bool
        True for step nodes (see :mod:`voxelflow.steps.node`).
    kind : str or None
        The step's data types (``"BS->OS"``) if the step declared them.
    outputs : tuple of str
        What the node holds: ``image``/``table``/``value`` per step output, or the
        ``save`` payload kind (``numpy``, ``dask``, ``dataframe``, ``json``),
        ``ome-zarr`` for OME-Zarr images written into the node, or ``reference``
        for a step whose value names an input image (:func:`image_reference_layers`).
    """

    name: str
    url: str
    committed: datetime
    from_step: bool
    kind: str | None
    outputs: tuple[str, ...]

    @property
    def viewable(self) -> bool:
        """True if some output is an array or a table (not only JSON values)."""
        return any(o not in ("value", "json") for o in self.outputs)


def classify_path(url, storage_options: dict | None = None) -> str:
    """Tell what ``url`` is: ``'image'``, ``'run'``, ``'cache'`` or ``'table'``.

    Raises
    ------
    InvalidPathError
        If nothing exists at ``url`` or it is none of these.
    """
    base = str(url).partition("?")[0]
    path = as_vpath(base, storage_options)
    if _other_image_format(path, storage_options):
        return "image"
    if not path.exists():
        raise InvalidPathError(f"cannot view {base}: nothing exists there")
    if path.isfile():
        if path.name.endswith(".parquet"):
            return "table"
        if path.name.endswith(".zip"):
            return _checked_image(path)
        raise InvalidPathError(
            f"cannot view {base}: expected an OME-Zarr image, a run folder, a cache root or a .parquet table"
        )
    names = set(path.ls())
    if names & set(_ZARR_META):
        return _checked_image(path)
    if step_node.is_run_folder(names):
        return "run"
    if _holds_nodes(path, depth=2) and list_cached_steps(path):
        return "cache"
    raise InvalidPathError(
        f"cannot view {base}: it is not an OME-Zarr image, a run folder "
        f"({step_node.RUN_FILE}, {step_node.OBJECTS_TABLE}) "
        "or a cache root with committed results"
    )


def _other_image_format(path: VPath, storage_options: dict | None) -> bool:
    """True for an input image that is not OME-Zarr (TIFF planes or stack, Imaris, N5, BigStitcher XML)."""
    from voxelflow.io.open import detect_format

    if path.isdir() and (set(path.ls()) & set(_ZARR_META) or step_node.is_run_folder(set(path.ls()))):
        return False
    try:
        return detect_format(path, storage_options) != "ome-zarr"
    except InvalidPathError:
        return False


def _holds_nodes(folder: VPath, depth: int) -> bool:
    """Cheap test for a cache: a node at ``folder`` or within ``depth`` folder levels below.

    napari asks the reader about every folder a user opens; walking a large
    foreign tree to the bottom would stall it.
    """
    from voxelflow.cache import is_node

    if is_node(folder):
        return True
    if depth == 0:
        return False
    return any(_holds_nodes(folder / n, depth - 1) for n in folder.ls() if (folder / n).isdir())


def _checked_image(path: VPath) -> str:
    from voxelflow.io.ome_zarr.read import read_metadata

    try:
        read_metadata(path)
    except OmeZarrError as exc:
        raise InvalidPathError(f"cannot view {path.url}: {exc}") from exc
    return "image"


def list_cached_steps(root, storage_options: dict | None = None) -> list[CachedStep]:
    """The committed results below a cache root, depth first.

    The per-output child nodes of a step belong to their step and are not
    listed on their own.

    Parameters
    ----------
    root : str or VPath
        A cache root or any folder with cache nodes below it.
    """
    from voxelflow.cache import iter_tree

    root = as_vpath(root, storage_options)
    out: list[CachedStep] = []
    step_dirs: list[str] = []
    for entry in iter_tree(root):
        node = entry.node
        if node is None or node.commit is None:
            continue
        path = entry.path
        if step_node.is_step_output(path, step_dirs):
            continue
        name = path.path[len(root.path):].strip("/") or path.name
        desc = step_node.read_step(path)
        if desc is not None:
            step_dirs.append(path.path)
            outputs = tuple(desc.get("outputs", ()))
            if outputs == ("value",) and _image_reference(path, desc):
                outputs = ("reference",)
            out.append(CachedStep(name, path.url, node.commit, True, desc.get("kind"), outputs))
            continue
        payload = (node.marker or {}).get("payload")
        if payload:
            # arrays saved with save() keep the kind they load as (numpy, dask): they carry no voxel size
            out.append(CachedStep(name, path.url, node.commit, False, None,
                                  (payload.get("loads_as", payload["kind"]),)))
        elif _ome_zarr_children(path):
            out.append(CachedStep(name, path.url, node.commit, False, None, ("ome-zarr",)))
    return out


def _image_reference(node: VPath, desc: dict) -> dict | None:
    """The value of a one-value step node when it names an image (``{"image": url, "channel": ...}``)."""
    from voxelflow.cache import load

    ((_, where),) = step_node.step_output_paths(node, desc)
    value = load(where.url)
    return value if isinstance(value, dict) and isinstance(value.get("image"), str) else None


def image_reference_layers(reference: dict, name: str | None = None) -> list[LayerData]:
    """An input image a run names (e.g. its autofluorescence channel) as its own image layer.

    Parameters
    ----------
    reference : dict
        ``image`` (URL), optional ``channel`` (index or name in that image) and ``name``.
    name : str, optional
        Layer name; default the reference's ``name``.

    Returns
    -------
    list of (data, kwargs, layer_type)
        One image layer (its pyramid), contrast limits from the data, drawn in
        magenta over the scan (additive blending).
    """
    layers = ome_zarr_layers(reference["image"], labels=False, split_channels=False,
                             channel=reference.get("channel"), name=name or reference.get("name"))
    for _, kwargs, _ in layers:
        kwargs.update(colormap="magenta", blending="additive")
    return layers


def _ome_zarr_children(folder: VPath) -> list[VPath]:
    return [folder / n for n in folder.ls() if n.endswith(_IMAGE_SUFFIXES)]


def step_layers(step: CachedStep, *, scale: Sequence[float] | None = None) -> list[LayerData]:
    """Layer data for one cached result, each output with the right layer type.

    Images written by steps are OME-Zarr (their own scale); their layer type
    follows the step's output type: ``OS`` and ``BS`` are labels (``BS`` starts
    hidden), other types images. Arrays stored with ``save`` have no type: bool
    and integer arrays of 32 bits or more are shown as labels, others as images.
    Tables with ``z, y, x`` columns become points. JSON values are skipped.

    Parameters
    ----------
    step : CachedStep
    scale : sequence of float, optional
        Voxel size for ``save``-d arrays and tables, which carry none (see
        :func:`layers_for_path` for how a cache root places tables).
    """
    from voxelflow.cache import load

    node = VPath(step.url)
    out_type = _output_type(step.kind)
    layers: list[LayerData] = []
    if step.from_step:
        if step.outputs == ("reference",):  # a value naming an input image
            ((_, where),) = step_node.step_output_paths(node, {"outputs": ("value",)})
            return image_reference_layers(load(where.url), name=step.name)
        shown = [k for k in step.outputs if k in ("image", "array", "table")]
        outputs = step_node.step_output_paths(node, {"outputs": step.outputs})
        for i, (kind, where) in enumerate(outputs):
            name = step.name if len(shown) == 1 else f"{step.name}[{i}]"
            if kind == "image":
                for data, kwargs, layer_type in ome_zarr_layers(
                    where.url, is_label=False, name=name, labels=False
                ):
                    typed = i == 0 and out_type is not None
                    if (out_type in _LABEL_TYPES) if typed else _looks_like_labels(_dtype(data)):
                        data, kwargs, layer_type = _as_labels(data, kwargs)
                        if typed and out_type in _HIDDEN_TYPES:
                            kwargs["visible"] = False
                    layers.append((data, kwargs, layer_type))
            elif kind == "table":
                layers += _table_layers(load(where.url), name, scale)
            elif kind == "array":
                value = load(where.url)
                layers += result_layers(value, name, is_label=_looks_like_labels(value.dtype), scale=scale)
        return layers
    if step.outputs == ("ome-zarr",):
        for image in _ome_zarr_children(node):
            layers += ome_zarr_layers(image.url, name=f"{step.name}/{image.name}")
        return layers
    value = load(step.url)
    if isinstance(value, (np.ndarray,)) or hasattr(value, "dask"):
        return result_layers(value, step.name, is_label=_looks_like_labels(value.dtype), scale=scale)
    if hasattr(value, "columns"):
        return _table_layers(value, step.name, scale)
    return []


def _output_type(kind: str | None) -> str | None:
    return kind.replace("→", "->").split("->")[-1].strip() if kind else None


def _dtype(data):
    return (data[0] if isinstance(data, list) else data).dtype


def _as_labels(data, kwargs: dict) -> LayerData:
    kwargs = {k: v for k, v in kwargs.items() if k != "contrast_limits"}
    if _dtype(data).kind == "b":
        data = [d.astype(np.uint8) for d in data] if isinstance(data, list) else data.astype(np.uint8)
    return (data, kwargs, "labels")


def _looks_like_labels(dtype) -> bool:
    dtype = np.dtype(dtype)
    return dtype.kind == "b" or (np.issubdtype(dtype, np.integer) and dtype.itemsize >= 4)


def _table_layers(df, name: str, scale) -> list[LayerData]:
    if not {"y", "x"} <= set(df.columns) or len(df) == 0:
        return []
    axes = [a for a in ("z", "y", "x") if a in df.columns]
    use_scale = scale if scale is not None and len(scale) == len(axes) else None
    return [object_layer(df, scale=use_scale, name=name)]


def _select(steps: list[CachedStep], wanted: Sequence[str] | None) -> list[CachedStep]:
    if wanted is None:
        return [s for s in steps if s.viewable]
    chosen = []
    for w in wanted:
        match = [s for s in steps if s.name == w] or [s for s in steps if s.name.rsplit("/", 1)[-1] == w]
        if not match:
            committed = ", ".join(s.name for s in steps) or "none"
            raise InvalidInputError(f"no committed step {w!r} in the cache; committed: {committed}")
        chosen += [s for s in match if s not in chosen]
    return chosen


#: The registration's step holding the atlas voxels a scan imaged (atlas grid and orientation).
_ATLAS_COVERAGE_STEP = "atlas_coverage"


def run_folder_layers(url, storage_options: dict | None = None) -> list[LayerData]:
    """Layer data for a pipeline run folder.

    In drawing order: the input image (the run description's ``outputs.image``), the
    background (autofluorescence) channel the run names (``background``), the
    OME-Zarr images in the folder (density maps; hidden, as heat maps; the
    atlas-space density map in atlas axes and micrometres), the
    label (``OS``) and mask (``BS``, hidden) steps of the run's cache (the imaged
    atlas voxels named as atlas space), and the
    objects of the object table as points placed on the input image's voxel grid.
    """
    folder = as_vpath(url, storage_options)
    run = step_node.read_run(folder)
    layers: list[LayerData] = []
    image_geometry: dict = {}
    image_url = _in_run(folder, (run.get("outputs") or {}).get("image"))
    if image_url:
        # A scan without a stated voxel size was run with input.scale_um: the run records it.
        scan_scale = None if _is_ome_zarr(image_url) else (run.get("input") or {}).get("scale_um")
        try:
            image_layers = ome_zarr_layers(image_url, labels=False, scale_um=scan_scale)
        except (OmeZarrError, InvalidPathError, InvalidInputError, ImageFormatError) as exc:
            log.warning("run input image %s cannot be opened (%s); showing the results only", image_url, exc)
        else:
            layers += image_layers
            kw = image_layers[0][1]
            image_geometry = {"scale": kw["scale"], "translate": kw["translate"]}
    background = run.get("background")
    if isinstance(background, dict) and isinstance(background.get("image"), str):
        try:
            layers += image_reference_layers(background)
        except (OmeZarrError, InvalidPathError, InvalidInputError, ImageFormatError) as exc:
            log.warning("background channel %s cannot be opened (%s)", background["image"], exc)
    for image in _ome_zarr_children(folder):
        for data, kwargs, layer_type in ome_zarr_layers(image.url):
            if layer_type == "image":
                # Coarse maps would hide the scan: shown on request, drawn as a heat map.
                kwargs.update(colormap="inferno", blending="additive", opacity=0.6, visible=False)
            if image.name == step_node.ATLAS_DENSITY_IMAGE:
                # in the atlas's axes and micrometres: it does not lie over the scan
                kwargs["name"] = "atlas density (atlas space)"
            layers.append((data, kwargs, layer_type))
    cache = as_vpath(_in_run(folder, run.get("cache")) or (folder / step_node.CACHE_FOLDER).url, storage_options)
    if cache.isdir():
        for step in list_cached_steps(cache):
            if _output_type(step.kind) in _LABEL_TYPES:
                found = step_layers(step)
                if step.name == _ATLAS_COVERAGE_STEP:
                    # on the atlas grid, in the atlas's axes: it does not lie over the scan
                    for _, kwargs, _ in found:
                        kwargs["name"] = "atlas coverage (atlas space)"
                layers += found
    if (folder / step_node.OBJECTS_TABLE).isfile():
        import pandas as pd

        with (folder / step_node.OBJECTS_TABLE).open("rb") as f:
            objects = pd.read_parquet(f)
        if len(objects):
            scale = image_geometry.get("scale") or (run.get("input") or {}).get("scale_um")
            extra = {"translate": image_geometry["translate"]} if "translate" in image_geometry else {}
            if scale is not None and len(scale) != 3:
                scale, extra = None, {}
            layers.append(object_layer(objects, scale=scale, name="objects", **extra))
    return layers


def _is_ome_zarr(url) -> bool:
    """True if ``url`` (a run's input image) is OME-Zarr or cannot be told apart."""
    from voxelflow.io.open import detect_format

    try:
        return detect_format(str(url).partition("?")[0]) == "ome-zarr"
    except InvalidPathError:
        return True


def _size(data) -> int:
    return int((data[0] if isinstance(data, list) else data).size)


def _in_run(folder: VPath, value) -> str | None:
    """A location in a run description: absolute paths and URLs as they are, others relative to the run folder."""
    if not isinstance(value, str) or not value:
        return None
    if "://" in value or value.startswith("/"):
        return value
    return (folder / value).url


def layers_for_path(
    url,
    *,
    steps: Sequence[str] | None = None,
    split_channels: bool = True,
    storage_options: dict | None = None,
    scale_um=None,
) -> list[LayerData]:
    """Layer data for whatever ``url`` is (see :func:`classify_path`).

    Parameters
    ----------
    url : str or VPath
        An image (OME-Zarr, TIFF planes or stack, Imaris, N5, BigStitcher XML), a
        run folder, a cache root or a ``.parquet`` table.
    steps : sequence of str, optional
        For a cache root: the step names (relative paths, or their last part) to
        open; default every committed result that is an array or a table.
    split_channels : bool
        One layer per channel of multi-channel images.
    storage_options : dict, optional
        fsspec options.
    scale_um : optional
        Voxel size in micrometres of an image that does not state one.

    Raises
    ------
    InvalidPathError
        ``url`` does not exist or is none of the known kinds.
    InvalidInputError
        A requested step is not committed in the cache.
    """
    what = classify_path(url, storage_options)
    if what == "image":
        return ome_zarr_layers(url, split_channels=split_channels, storage_options=storage_options,
                               scale_um=scale_um)
    if what == "table":
        import pandas as pd

        with as_vpath(url, storage_options).open("rb") as f:
            df = pd.read_parquet(f)
        return _table_layers(df, as_vpath(url).name.removesuffix(".parquet"), None)
    if what == "run":
        return run_folder_layers(url, storage_options)
    layers: list[LayerData] = []
    for step in _select(list_cached_steps(url, storage_options), steps):
        layers += step_layers(step)
    return _stack(layers)


_DRAW_ORDER = {"image": 0, "labels": 1, "points": 2}


def _stack(layers: list[LayerData]) -> list[LayerData]:
    """Images under labels under points; tables placed on the grid of the objects.

    Cached tables hold voxel coordinates and no scale. Objects are measured on
    the full-resolution grid, so they take the scale and offset of the 3D layer
    with the most voxels (a labels layer on ties: the OS image itself).
    """
    grids = [(_size(data), t == "labels", kw) for data, kw, t in layers
             if t != "points" and len(kw.get("scale") or ()) == 3]
    grid = max(grids, key=lambda g: g[:2])[2] if grids else None
    out = []
    for data, kwargs, layer_type in sorted(layers, key=lambda ld: _DRAW_ORDER.get(ld[2], 3)):
        if layer_type == "points" and grid is not None and "scale" not in kwargs and data.shape[1] == 3:
            kwargs = {**kwargs, "scale": grid["scale"], "translate": grid.get("translate", [0.0] * 3)}
        out.append((data, kwargs, layer_type))
    return out
