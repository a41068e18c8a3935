"""The beta-amyloid plaque pipeline: scan in, object table and counts per region out.

Stages, each a cached :mod:`voxelflow.steps` step (node name in brackets):

1. open the scan (``?slices=`` or ``input.channel`` picks the channel) and
   max-pool it to a coarse level [``coarse``];
2. N4 bias field on the coarse level [``bias_field``] (needs SimpleITK; with
   ``pipeline.bias = "auto"`` it is skipped cleanly when that is missing),
   applied at full resolution inside the foreground step;
3. a negative mask on the coarse grid [``negative_mask``]: by default the
   outside of the tissue plus a shell of ``edge_um`` micrometres along its edge
   (where lightsheet scans show bright artefacts); or a user mask OME-Zarr
   (any resolution covering the scan), or a user function of the coarse image;
4. threshold [``threshold_value`` when relative, ``foreground``], exact
   connected-component labelling [``label``] (or, with ``pipeline.split =
   "watershed"``, a distance-transform watershed that splits touching plaques
   [``watershed``]), the object table at full resolution [``objects_raw``] and
   a size filter with physical coordinates [``objects``];
5. atlas regions of every object [``objects_regions``], per-region counts,
   volumes and densities [``region_counts``], and a density map [``density``].

:func:`run_plaque_pipeline` writes into the run folder ``objects.parquet``,
``objects.csv``, ``regions.csv`` (when an atlas is given), ``density.ome.zarr``
and ``run.json`` (configuration, versions, per-step timings, peak memory);
every intermediate stays in the cache as OME-Zarr / parquet.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import dask.array as da
import numpy as np
import pandas as pd
import scipy.ndimage as ndi

from voxelflow import steps
from voxelflow.errors import (
    ConfigError,
    EmptyResultError,
    InvalidInputError,
    InvalidPathError,
    OptionalDependencyError,
)
from voxelflow.io.atlas_files import read_region_table
from voxelflow.ops import apply_bias_field, assign_regions, scale_nearest
from voxelflow.ops import threshold as threshold_op
from voxelflow.paths import VPath, as_vpath
from voxelflow.pipelines.progress import ClusterProgressBar
from voxelflow.runtime.compute import distributed_client, process_peak_memory_mb, worker_peak_memory_mb
from voxelflow.steps import Step, StepRecord, keyed, record_steps
from voxelflow.steps.node import CACHE_FOLDER, output_image, write_run

__all__ = [
    "PlaqueResult",
    "open_scan",
    "auto_negative_mask",
    "run_plaque_pipeline",
    "OBJECT_COLUMNS",
]

#: Columns of ``objects.csv`` (those present; intensity stats need the scan).
OBJECT_COLUMNS = (
    "id", "z", "y", "x", "z_um", "y_um", "x_um", "voxels", "volume_um3",
    "intensity_mean", "intensity_max", "intensity_sum", "region_id", "region_acronym",
    "touches_border", "z0", "y0", "x0", "z1", "y1", "x1",
)


@dataclass
class PlaqueResult:
    """Everything a run produced.

    Attributes
    ----------
    objects : pandas.DataFrame
        The filtered object table (LC) with physical coordinates and regions.
    regions : pandas.DataFrame or None
        Region counts (RC), None without an atlas.
    density : dask.array.Array
        Density map (CD): objects per coarse voxel, shape ceil(scan / density_factors).
    run : dict
        The contents of ``run.json``.
    out_dir : VPath
        The run folder.
    records : list of StepRecord
        What each step did (cached or computed, seconds).
    """

    objects: pd.DataFrame
    regions: pd.DataFrame | None
    density: da.Array
    run: dict
    out_dir: VPath
    records: list[StepRecord] = field(default_factory=list)


# --- input ------------------------------------------------------------------------------


# coarse helper results are shown hidden so they do not cover the full-resolution layers
_HIDDEN_LAYERS = frozenset({"coarse", "bias_field", "negative_mask", "density"})

def open_scan(url: str, channel: int | None = None, level: int = 0, storage_options: dict | None = None):
    """Open one channel of a scan as a (z, y, x) dask array keyed by its source.

    Parameters
    ----------
    url : str
        OME-Zarr path or URL, optionally with ``?slices=[...]``.
    channel : int, optional
        Channel index when the opened image still has a ``c`` axis.
    level : int
        Pyramid level.

    Returns
    -------
    arr : dask.array.Array, shape (Z, Y, X)
        Lazy, chunked as stored, named after the URL, level, shape, dtype and the
        modification time of the stored metadata (so a rewritten scan is a new input).
    meta : OmeMeta
        Metadata of the opened level; ``meta.scale`` is per axis of the original image.
    scale : tuple of 3 float
        Physical voxel size (z, y, x).
    translation : tuple of 3 float
        Physical position of voxel 0.

    Raises
    ------
    InvalidPathError
        If the input does not exist.
    InvalidInputError
        If the channel is missing, out of range or needed but not given, or the
        image is not 3-D after picking it.
    """
    from voxelflow.io.ome_zarr import open_ome_zarr

    base = url.split("?", 1)[0]
    path = as_vpath(base, storage_options)
    if not path.exists():
        raise InvalidPathError(f"input scan {base!r} does not exist")
    arr, meta = open_ome_zarr(url, level=level, storage_options=storage_options)
    axes = [a.lower() for a in meta.axes]
    scale = list(meta.scale)
    translation = list(getattr(meta, "translation", None) or [0.0] * len(axes))
    if "c" in axes:
        ci = axes.index("c")
        n = arr.shape[ci]
        names = f" ({', '.join(meta.channel_names)})" if meta.channel_names else ""
        if channel is None:
            if n != 1:
                raise InvalidInputError(
                    f"input {url!r} has {n} channels{names}; pick one with input.channel or ?slices=[c, ...]"
                )
            channel = 0
        if not 0 <= channel < n:
            raise InvalidInputError(f"input.channel = {channel} is out of range: {url!r} has {n} channels{names}")
        arr = arr[(slice(None),) * ci + (channel,)]
        for lst in (axes, scale, translation):
            del lst[ci]
    elif channel not in (None, 0):
        raise InvalidInputError(f"input.channel = {channel} given, but {url!r} has no channel axis (axes {meta.axes})")
    if "t" in axes and arr.shape[axes.index("t")] == 1:
        ti = axes.index("t")
        arr = arr[(slice(None),) * ti + (0,)]
        for lst in (axes, scale, translation):
            del lst[ti]
    if tuple(axes) != ("z", "y", "x"):
        raise InvalidInputError(f"input {url!r} must be a 3-D (z, y, x) image after picking the channel; axes are {tuple(axes)}")
    arr = keyed(arr, json.dumps([url, level, channel, arr.shape, str(arr.dtype), _stamp(path)]))
    return arr, meta, tuple(float(s) for s in scale), tuple(float(t) for t in translation)


def _stamp(path: VPath) -> str:
    """Modification stamp of the image metadata (NGFF 0.5 zarr.json or 0.4 .zattrs)."""
    for name in ("zarr.json", ".zattrs", ".zgroup"):
        p = path / name
        try:
            info = p.fs.info(p.path)
        except (FileNotFoundError, OSError):
            continue
        return str(info.get("mtime") or info.get("LastModified") or info.get("ETag") or info.get("size"))
    return ""


# --- pipeline-specific steps --------------------------------------------------------


def auto_negative_mask(coarse, scale, edge_um: float) -> np.ndarray:
    """Default negative mask: outside the tissue, plus a shell of ``edge_um`` along its edge.

    The tissue is the largest bright component of the coarse image after an
    Otsu threshold on log intensity (holes filled); the shell is every coarse
    tissue voxel closer than ``edge_um`` plus one coarse voxel size to the
    outside, so every full-resolution voxel shallower than ``edge_um`` is
    removed even though the coarse grid is max-pooled. Lightsheet scans show
    bright artefacts right at the tissue edge, so they fall in the shell.

    Parameters
    ----------
    coarse : array, shape (z, y, x)
        A coarse (max-pooled) level of the scan.
    scale : tuple of 3 float
        Physical voxel size of ``coarse``.
    edge_um : float
        Shell depth in micrometres.

    Returns
    -------
    numpy.ndarray of bool, shape of ``coarse``
        True where objects must be discarded.
    """
    from skimage.filters import threshold_otsu

    img = np.log1p(np.asarray(coarse, dtype=np.float32))
    if img.size == 0 or float(img.max()) == float(img.min()):
        return np.zeros(img.shape, dtype=bool)
    tissue = img > threshold_otsu(img)
    lab, n = ndi.label(tissue)
    if n > 1:
        tissue = lab == (np.argmax(np.bincount(lab.ravel())[1:]) + 1)
    tissue = ndi.binary_fill_holes(tissue)
    if edge_um > 0:
        # pad so the volume border counts as outside when the tissue touches it
        depth = ndi.distance_transform_edt(np.pad(tissue, 1), sampling=scale)[1:-1, 1:-1, 1:-1]
        # one coarse voxel of slack: max pooling widens the tissue and a coarse
        # voxel spans full-resolution voxels of many depths
        tissue &= depth > edge_um + max(scale)
    return ~tissue


def user_mask_on_grid(mask, shape) -> da.Array:
    """A user mask of any resolution resampled (nearest) onto a grid of ``shape``; nonzero = discard."""
    m = da.asarray(mask)
    if m.ndim != 3:
        raise InvalidInputError(f"pipeline.mask must be a 3-D image, got shape {m.shape}")
    return scale_nearest(m != 0, output_shape=tuple(shape))


def call_mask_function(fn: Callable, coarse, scale) -> np.ndarray:
    """Run a user mask function ``fn(coarse, scale) -> bool array of coarse's shape``."""
    out = np.asarray(fn(np.asarray(coarse), tuple(scale)))
    if out.shape != tuple(coarse.shape):
        raise InvalidInputError(
            f"mask function {getattr(fn, '__name__', fn)!r} returned shape {out.shape}; "
            f"expected the coarse shape {tuple(coarse.shape)}"
        )
    return out.astype(bool)


def threshold_value(coarse, field, negative, factor: float) -> float:
    """``factor`` x the median bias-corrected coarse intensity inside the kept tissue.

    Raises
    ------
    EmptyResultError
        If the negative mask leaves no tissue.
    """
    img = np.asarray(coarse, dtype=np.float64)
    if field is not None:
        img = img / np.maximum(np.asarray(field, dtype=np.float64), 1e-6)
    keep = ~np.asarray(negative, dtype=bool)
    if not keep.any():
        raise EmptyResultError(
            "the negative mask removes the whole scan; lower pipeline.edge_um or check pipeline.mask"
        )
    return float(factor * np.median(img[keep]))


def foreground(img, field, negative, value: float, factors) -> da.Array:
    """Binary segmentation (BS) at full resolution: bias-corrected scan above ``value``, outside the mask."""
    if field is not None:
        img = apply_bias_field(img, field)
    bs = threshold_op(img, value)
    neg = scale_nearest(
        da.asarray(negative), factors, output_shape=img.shape, output_chunks=img.chunks
    )
    return bs & ~neg.astype(bool)


def filter_objects(lc: pd.DataFrame, min_voxels: int, max_voxels, scale, translation) -> pd.DataFrame:
    """Keep objects of ``min_voxels <= voxels <= max_voxels``; add ``z_um, y_um, x_um, volume_um3``."""
    keep = lc["voxels"] >= min_voxels
    if max_voxels is not None:
        keep &= lc["voxels"] <= max_voxels
    out = lc.loc[keep].reset_index(drop=True)
    for axis, s, t in zip("zyx", scale, translation):
        out[f"{axis}_um"] = out[axis] * s + t
    out["volume_um3"] = out["voxels"] * float(np.prod(scale))
    return out


def _bias_available() -> bool:
    """Whether SimpleITK can be imported, without importing it (0.5 s) on fully cached runs."""
    import importlib.util

    if "SimpleITK" in sys.modules:
        return sys.modules["SimpleITK"] is not None
    return importlib.util.find_spec("SimpleITK") is not None


# --- the run --------------------------------------------------------------------------------


def _progress_printer(stream, bar):
    end_bar_line = getattr(bar, "end_line", None)  # the cluster bar ends its line only when it polls

    def show(record: StepRecord) -> None:
        state = "cached" if record.cached else ("lazy" if record.key is None else "computed")
        name = VPath(record.node).name if record.node else record.name
        if end_bar_line is not None:
            end_bar_line()
        print(f"  {name:<18} {record.seconds:7.2f} s  {state}", file=stream, flush=True)

    return show


def _versions() -> dict:
    import dask
    import scipy
    import zarr

    import voxelflow

    return {
        "voxelflow": voxelflow.__version__, "python": sys.version.split()[0], "numpy": np.__version__,
        "dask": dask.__version__, "zarr": zarr.__version__, "pandas": pd.__version__, "scipy": scipy.__version__,
    }


def _resolve_mask_setting(mask) -> Any:
    if callable(mask):
        return mask
    if mask in (None, "none"):
        return None
    if mask == "auto":
        return "auto"
    return str(mask)


def run_plaque_pipeline(
    config: dict,
    *,
    mask: str | Callable | None = None,
    viewer=None,
    progress: bool = True,
    stream=None,
) -> PlaqueResult:
    """Run the plaque pipeline of a validated configuration.

    Parameters
    ----------
    config : dict
        Dotted keys as returned by :func:`voxelflow.pipelines.config.load_config`.
    mask : str or callable, optional
        Overrides ``pipeline.mask``: ``'auto'``, ``'none'``, an OME-Zarr path,
        or ``fn(coarse: ndarray, scale: tuple) -> bool ndarray`` (True = discard).
    viewer : napari.Viewer, optional
        Every step result is added to it.
    progress : bool
        Print one line per step and dask progress bars (local scheduler).
    stream : file, optional
        Where progress goes (default ``sys.stderr``).

    Returns
    -------
    PlaqueResult

    Raises
    ------
    InvalidPathError, InvalidInputError, ConfigError
        Missing input, wrong channel, atlas of another physical extent, bad mask.
    EmptyResultError
        No object survives thresholding and the size filter.
    """
    stream = stream or sys.stderr
    t_start = time.perf_counter()
    out_dir = VPath(config["output.folder"])
    cache = VPath(config["output.cache"] or (out_dir / CACHE_FOLDER).url)
    mask_setting = _resolve_mask_setting(config["pipeline.mask"] if mask is None else mask)

    img, meta, scale, translation = open_scan(config["input.url"], config["input.channel"], config["input.level"])
    full_store = {
        "chunks": tuple(min(c, s) for c, s in zip(config["output.chunks"], img.shape)),
        "levels": config["output.levels"],
        "scale": scale,
    }
    atlas = _open_atlas(config, img.shape, scale) if config["atlas.url"] else None
    out_dir.mkdirs()
    cf = tuple(config["pipeline.coarse_factors"])
    coarse_scale = tuple(s * f for s, f in zip(scale, cf))
    coarse_store = {"scale": coarse_scale}

    def ctx(name, storage=None, is_label=False):
        va = {"viewer": viewer, "name": name} if viewer is not None else None
        if va is not None and is_label:
            va["is_label"] = True
        if va is not None and name in _HIDDEN_LAYERS:
            va["visible"] = False
        return {"cache_url": (cache / name).url, "storage_options": storage, "viewer_args": va}

    bar = _progress_bar(progress, stream)
    listener = _progress_printer(stream, bar) if progress else None
    records: list[StepRecord] = []
    try:
        with record_steps(listener) as records, bar:
            coarse = steps.downsample(img, cf, method="max", **ctx("coarse", coarse_store))

            negative = _negative_mask(mask_setting, coarse, coarse_scale, config, ctx, coarse_store)

            field = None
            bias = config["pipeline.bias"]
            if bias is True or (bias == "auto" and _bias_available()):
                try:
                    field = steps.estimate_bias_field(coarse, mask=~negative, spacing=coarse_scale,
                                                      **ctx("bias_field", coarse_store))
                except OptionalDependencyError:
                    if bias is True:
                        raise
                    print("  bias correction skipped: SimpleITK is not installed", file=stream)
            elif progress and bias == "auto":
                print("  bias correction skipped: SimpleITK is not installed", file=stream)

            value = config["pipeline.threshold"]
            if value is None:
                value = Step(threshold_value, kind="IN->IN")(
                    coarse, field, negative, config["pipeline.threshold_factor"], **ctx("threshold_value")
                )
            bs = Step(foreground, kind="IN->BS")(img, field, negative, value, cf, **ctx("foreground", full_store))
            if config["pipeline.split"] == "watershed":
                os_arr = steps.watershed_split(
                    bs, config["pipeline.split_min_distance"], connectivity=config["pipeline.connectivity"],
                    sampling=scale, **ctx("watershed", full_store, True),
                )
            else:
                os_arr, _ = steps.label(bs, connectivity=config["pipeline.connectivity"],
                                        **ctx("label", full_store, True))
            raw = steps.object_table(os_arr, intensity=img, connectivity=config["pipeline.connectivity"], kind="os",
                                     **ctx("objects_raw"))
            objects = Step(filter_objects, kind="LC->LC")(
                raw, config["pipeline.min_voxels"], config["pipeline.max_voxels"], scale, translation,
                **ctx("objects"),
            )
            if len(objects) == 0:
                raise EmptyResultError(
                    f"no objects found: {len(raw)} above the threshold {value:.6g}, none of size "
                    f">= pipeline.min_voxels = {config['pipeline.min_voxels']}; lower pipeline.threshold "
                    "(or pipeline.threshold_factor) or pipeline.min_voxels"
                )
            regions = None
            if atlas is not None:
                objects, regions = _atlas_counts(objects, atlas, scale, img.shape, ctx)
            df = tuple(config["pipeline.density_factors"])
            density = steps.density_map(objects, img.shape, df,
                                        **ctx("density", {"scale": tuple(s * f for s, f in zip(scale, df))}))
    except BaseException as exc:
        _write_failure(out_dir, config, records, exc, t_start)
        raise

    run = _write_outputs(out_dir, config, objects, regions, cache, records, meta, img, scale, value, len(raw),
                         field is not None, t_start)
    return PlaqueResult(objects, regions, density, run, out_dir, records)


def _progress_bar(progress: bool, stream):
    """A bar for the computations of the steps: dask's on local schedulers, voxelflow's on a cluster."""
    import contextlib

    from dask.diagnostics import ProgressBar

    if not progress:
        return contextlib.nullcontext()
    client = distributed_client()
    if client is not None:
        return ClusterProgressBar(client, stream=stream)
    # the bar thread is joined after every compute: a short dt keeps that wait small
    return ProgressBar(minimum=2.0, dt=0.05, out=stream)


def _negative_mask(setting, coarse, coarse_scale, config, ctx, coarse_store):
    if setting is None:
        return da.zeros(coarse.shape, dtype=bool, chunks=coarse.chunks)
    if setting == "auto":
        return Step(auto_negative_mask, kind="IN->BS")(
            coarse, coarse_scale, config["pipeline.edge_um"], **ctx("negative_mask", coarse_store)
        )
    if callable(setting):
        return Step(call_mask_function, kind="IN->BS", name="negative_mask")(
            setting, coarse, coarse_scale, **ctx("negative_mask", coarse_store)
        )
    if setting.startswith("model:"):
        from voxelflow.io.models import load_model
        from voxelflow.ops import model_mask

        return Step(model_mask, kind="IN->BS", name="negative_mask")(
            coarse, load_model(setting), mode=config["pipeline.mask_mode"],
            threshold=config["pipeline.mask_threshold"], **ctx("negative_mask", coarse_store)
        )
    from voxelflow.io.ome_zarr import open_ome_zarr

    if not VPath(setting.split("?", 1)[0]).exists():
        raise InvalidPathError(f"pipeline.mask {setting!r} does not exist; expected 'auto', 'none' or an OME-Zarr")
    user, umeta = open_ome_zarr(setting)
    user = keyed(user, json.dumps([setting, _stamp(VPath(setting.split("?", 1)[0]))]))
    return Step(user_mask_on_grid, kind="BS->BS", name="negative_mask")(
        user, coarse.shape, **ctx("negative_mask", coarse_store)
    )


def _open_atlas(config, shape, scale):
    """Open and check the atlas before any voxel work: it must cover the scan's physical extent."""
    from voxelflow.io.ome_zarr import open_ome_zarr

    url = config["atlas.url"]
    if not VPath(url.split("?", 1)[0]).exists():
        raise InvalidPathError(f"atlas.url {url!r} does not exist")
    if not config["atlas.regions"]:
        raise ConfigError("atlas.regions: expected a region table (CSV/JSON with id, acronym, name, parent) "
                          "when atlas.url is set")
    labels, ameta = open_ome_zarr(url)
    if labels.ndim != 3:
        raise InvalidInputError(f"atlas {url!r} must be a 3-D label image, got axes {ameta.axes}")
    labels = keyed(labels, json.dumps([url, _stamp(VPath(url.split("?", 1)[0]))]))
    ascale = tuple(float(s) for s in ameta.scale)
    img_ext = np.asarray(shape) * np.asarray(scale)
    atl_ext = np.asarray(labels.shape) * np.asarray(ascale)
    # an atlas made by down-sampling with a partial last block is up to one atlas voxel larger
    if (np.abs(img_ext - atl_ext) > np.asarray(ascale)).any():
        raise InvalidInputError(
            f"atlas {url!r} covers {tuple(float(v) for v in np.round(atl_ext, 1))} um (z, y, x) but the scan "
            f"covers {tuple(float(v) for v in np.round(img_ext, 1))} um; the atlas must be registered to the "
            "scan (same physical extent, any resolution)"
        )
    return labels, ascale, read_region_table(config["atlas.regions"])


def add_regions(objects: pd.DataFrame, labels, atlas_scale, scale, shape, regions: pd.DataFrame) -> pd.DataFrame:
    """The object table with ``region_id`` (atlas voxel under the centroid) and ``region_acronym``."""
    rid = assign_regions(objects, labels, atlas_scale, scale, image_shape=shape)
    acronyms = dict(zip(regions["id"], regions["acronym"]))
    out = objects.assign(region_id=rid.to_numpy())
    out["region_acronym"] = [acronyms.get(int(r), "") for r in out["region_id"]]
    return out


def _atlas_counts(objects, atlas, scale, shape, ctx):
    labels, ascale, regions_table = atlas
    assigned = Step(add_regions, kind="LC->LC")(objects, labels, ascale, scale, shape, regions_table,
                                                 **ctx("objects_regions"))
    counts = steps.count_by_region(assigned, labels, ascale, regions_table, **ctx("region_counts"))
    return assigned, counts


def _write_failure(out_dir, config, records, exc, t_start) -> None:
    """A ``run.json`` saying what failed and which steps finished (they resume from the cache)."""
    run = {
        "status": "failed",
        "error": f"{type(exc).__name__}: {exc}",
        "config": config,
        "versions": _versions(),
        "steps": [{"name": r.name, "cached": r.cached, "seconds": round(r.seconds, 4), "node": r.node}
                  for r in records],
        "seconds_total": round(time.perf_counter() - t_start, 3),
        "peak_memory_mb": process_peak_memory_mb(),
        "peak_worker_memory_mb": worker_peak_memory_mb(),
    }
    write_run(out_dir, run)


def _write_outputs(out_dir, config, objects, regions, cache, records, meta, img, scale, value, n, biased, t_start):
    (out_dir / "objects.parquet").write_bytes(objects.to_parquet(index=False))
    cols = [c for c in OBJECT_COLUMNS if c in objects.columns]
    (out_dir / "objects.csv").write_text(objects[cols].to_csv(index=False))
    base, _, query = config["input.url"].partition("?")
    # absolute, so the run folder can be opened from anywhere (viewer, report)
    image = VPath(base).url + (f"?{query}" if query else "")
    outputs = {"objects": "objects.parquet", "objects_csv": "objects.csv", "image": image}
    if regions is not None:
        (out_dir / "regions.csv").write_text(regions.to_csv(index=False))
        outputs["regions"] = "regions.csv"
    density_src = output_image(cache / "density")
    density_dst = out_dir / "density.ome.zarr"
    if density_src.exists():
        density_dst.rm()
        density_src.fs.copy(density_src.path, density_dst.path, recursive=True)
        outputs["density"] = "density.ome.zarr"
    run = {
        "status": "ok",
        "config": config,
        "versions": _versions(),
        "input": {"url": config["input.url"], "shape": list(img.shape), "dtype": str(img.dtype),
                  "scale_um": list(scale), "chunks": [list(c[:1]) for c in img.chunks]},
        "threshold": value,
        "bias_corrected": biased,
        "objects_above_threshold": int(n),
        "objects": int(len(objects)),
        "steps": [
            {"name": r.name, "cached": r.cached, "seconds": round(r.seconds, 4), "node": r.node, "outputs": r.outputs}
            for r in records
        ],
        "seconds_total": round(time.perf_counter() - t_start, 3),
        "peak_memory_mb": process_peak_memory_mb(),
        "peak_worker_memory_mb": worker_peak_memory_mb(),
        "cache": cache.url,
        "outputs": outputs,
    }
    write_run(out_dir, run)
    return run
