"""A self-contained HTML report of a pipeline run, with its figures as PNG files.

:func:`make_report` reads the outputs of a run folder (``objects.parquet``,
``regions.csv``, the run description and the image / density map as OME-Zarr; layout
in :mod:`voxelflow.steps.node`) and writes

- ``mip_z.png``, ``mip_y.png``, ``mip_x.png``: maximum-intensity projections of a
  coarse level of the input image along z, y and x, detected objects drawn as red
  rings. Each image pixel is a ``k x k`` block of PNG pixels (``k`` integer, the
  axes fill the whole figure), so a PNG pixel maps back to exactly one voxel
  column;
- ``density.png``: the density map (CD) summed along each axis;
- ``counts.png``: objects per atlas region, next to the planted truth when given;
- ``sizes.png``: histogram of object sizes in voxels;
- ``report.html``: all of the above embedded as base64 ``data:`` URIs plus the run
  summary, so the one file can be mailed or archived without its folder.

Examples
--------
>>> from voxelflow.report import make_report
>>> html = make_report("runs/demo", truth=planted_counts)  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from voxelflow.errors import InvalidInputError, InvalidPathError, OmeZarrError
from voxelflow.steps.node import DENSITY_IMAGE, OBJECTS_TABLE, REGIONS_CSV, read_run

__all__ = ["DEFAULT_DENSITY_NAMES", "DEFAULT_IMAGE_NAMES", "make_report"]

#: Names tried, in order, for the input image OME-Zarr in a run folder. A run description
#: ``outputs`` mapping with an ``image`` entry (a path relative to the folder) wins.
DEFAULT_IMAGE_NAMES = ("image.ome.zarr", "input.ome.zarr")
#: Names tried, in order, for the density map OME-Zarr; the run description's ``outputs.density`` wins.
DEFAULT_DENSITY_NAMES = (DENSITY_IMAGE,)

_SPATIAL = ("z", "y", "x")
# The coarse level for projections is the smallest whose largest side still has
# this many voxels: enough to see plaques, small enough to read in a second.
_MIP_TARGET_SIDE = 256
_DISPLAY_SIDE = 512
_MAX_MARKERS = 20000
_MAX_BARS = 40
_DPI = 100


def make_report(
    run_dir,
    *,
    truth: pd.DataFrame | None = None,
    image=None,
    image_factors: tuple[float, float, float] | None = None,
    density=None,
    objects: pd.DataFrame | None = None,
    regions: pd.DataFrame | None = None,
    channel: int = 0,
    title: str | None = None,
) -> Path:
    """Write ``report.html`` and the figure PNGs of a run into ``run_dir``.

    Parameters
    ----------
    run_dir : str or os.PathLike
        Local run folder; the report files are written into it.
    truth : pandas.DataFrame, optional
        Planted region counts: a ``count`` column and an ``id`` or ``acronym``
        column matching ``regions``. Drawn next to the detected counts.
    image : array-like or str, optional
        The input image (IN), shape (z, y, x) or with leading non-spatial axes
        (the first index is taken), numpy or dask; or the URL of an OME-Zarr image.
        Default: the OME-Zarr named in the run description's ``outputs.image`` or one of
        :data:`DEFAULT_IMAGE_NAMES`. From an OME-Zarr the coarsest level with a
        side of at least 256 voxels is read.
    image_factors : tuple of 3 float, optional
        How many object-table voxels one voxel of an array ``image`` spans along
        (z, y, x) (e.g. ``(4, 4, 4)`` for a level downsampled by 4). Default 1;
        derived from the pyramid when ``image`` is an OME-Zarr.
    density : array-like or str, optional
        The density map (CD), shape (z, y, x), or the URL of its OME-Zarr.
        Default: the run description's ``outputs.density`` or :data:`DEFAULT_DENSITY_NAMES`.
    objects : pandas.DataFrame, optional
        The object table (LC) with ``z, y, x`` (voxels of the full-resolution
        image) and ``voxels``. Default: ``run_dir/objects.parquet``.
    regions : pandas.DataFrame, optional
        Region counts (RC) with ``acronym`` and ``count``. Default:
        ``run_dir/regions.csv`` when it exists.
    channel : int
        Channel index used when the image has a ``c`` axis.
    title : str, optional
        Heading of the report; default: the run folder name.

    Returns
    -------
    pathlib.Path
        Path of the written ``report.html``.

    Raises
    ------
    InvalidPathError
        If ``run_dir`` is not a folder, or no object table is given and
        ``objects.parquet`` is missing.
    InvalidInputError
        If a table lacks a required column or an array is not 3-D.
    """
    run = Path(run_dir)
    if not run.is_dir():
        raise InvalidPathError(f"run folder {str(run)!r} does not exist or is not a folder")
    meta = read_run(run)
    objects = _read_objects(run) if objects is None else objects
    _require_columns(objects, ("z", "y", "x", "voxels"), "objects")
    if regions is None and (run / REGIONS_CSV).is_file():
        regions = pd.read_csv(run / REGIONS_CSV)

    figures: list[tuple[str, str, Path]] = []
    notes: list[str] = []
    img, factors = _optional(lambda: _resolve_image(run, meta, image, image_factors, channel),
                             image is None, "image", notes, (None, None))
    if img is not None:
        for axis, name in enumerate(_SPATIAL):
            path = run / f"mip_{name}.png"
            _plot_mip(img, factors, objects, axis, path)
            figures.append(("Projections", f"Maximum along {name}", path))
    den = _optional(lambda: _resolve_density(run, meta, density), density is None, "density map", notes, None)
    if den is not None:
        path = run / "density.png"
        _plot_density(den, path)
        figures.append(("Density map", "Objects per coarse voxel, summed along each axis", path))
    table_html = ""
    if regions is not None:
        merged = _merge_truth(regions, truth)
        path = run / "counts.png"
        _plot_counts(merged, path)
        figures.append(("Counts per region", "Detected objects per atlas region", path))
        table_html = _region_table_html(merged)
    path = run / "sizes.png"
    _plot_sizes(objects, path)
    figures.append(("Object sizes", "Histogram of object sizes", path))

    out = run / "report.html"
    out.write_text(_html(title or run.name, objects, meta, figures, table_html, notes), encoding="utf-8")
    return out


# --- inputs -------------------------------------------------------------------


def _optional(load, discovered: bool, what: str, notes: list, missing):
    """Run ``load``; an output found through the run description that cannot be read becomes a note.

    A run folder that was moved can name an input image that no longer exists; the
    report is still worth writing, and says what it left out and why. Arrays or URLs
    passed explicitly must load, so their errors propagate.
    """
    if not discovered:
        return load()
    try:
        return load()
    except (OmeZarrError, InvalidPathError, InvalidInputError, OSError) as exc:
        notes.append(f"{what} not shown: {exc}")
        return missing


def _read_objects(run: Path) -> pd.DataFrame:
    path = run / OBJECTS_TABLE
    if not path.is_file():
        raise InvalidPathError(
            f"no object table: {str(path)!r} is missing and no `objects` DataFrame was given"
        )
    return pd.read_parquet(path)


def _require_columns(df: pd.DataFrame, columns, what: str) -> None:
    if not isinstance(df, pd.DataFrame):
        raise InvalidInputError(f"{what} must be a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InvalidInputError(f"{what} table lacks column(s) {missing}; has {list(df.columns)}")


def _named_output(run: Path, meta: dict, key: str, names):
    """The run description's ``outputs[key]`` (relative to ``run``, or an absolute path/URL), else a default name."""
    outputs = meta.get("outputs") if isinstance(meta.get("outputs"), dict) else {}
    value = outputs.get(key)
    if isinstance(value, str) and value:
        if "://" in value or Path(value.split("?")[0]).is_absolute():
            return value
        return str(run / value)
    for name in names:
        if (run / name).exists():
            return str(run / name)
    return None


def _resolve_image(run, meta, image, image_factors, channel):
    if image is None:
        image = _named_output(run, meta, "image", DEFAULT_IMAGE_NAMES)
        if image is None:
            return None, None
    if isinstance(image, (str, Path)):
        arr, factors = _open_coarse(str(image), channel)
        return arr, factors if image_factors is None else np.asarray(image_factors, float)
    arr = _as_3d(np.asarray(image) if not hasattr(image, "compute") else image, "image", channel)
    factors = np.ones(3) if image_factors is None else np.asarray(image_factors, float)
    if factors.shape != (3,) or np.any(factors <= 0):
        raise InvalidInputError(f"image_factors must be 3 positive numbers, got {image_factors!r}")
    return arr, factors


def _resolve_density(run, meta, density):
    if density is None:
        density = _named_output(run, meta, "density", DEFAULT_DENSITY_NAMES)
        if density is None:
            return None
    if isinstance(density, (str, Path)):
        from voxelflow.io.ome_zarr import open_ome_zarr

        arr, ome = open_ome_zarr(str(density), level=0)
        return _as_3d(arr, "density", 0, ome.axes)
    return _as_3d(density, "density", 0)


def _open_coarse(url: str, channel: int):
    """Open the coarsest pyramid level of ``url`` with a side >= the display target."""
    from voxelflow.io.ome_zarr import open_ome_zarr

    full, meta = open_ome_zarr(url, level=0)
    full3 = _as_3d(full, "image", channel, meta.axes)
    chosen, chosen_meta = full3, meta
    for level in range(len(meta.levels) - 1, 0, -1):
        arr, lmeta = open_ome_zarr(url, level=level)
        arr3 = _as_3d(arr, "image", channel, lmeta.axes)
        if max(arr3.shape) >= min(_MIP_TARGET_SIDE, max(full3.shape)):
            chosen, chosen_meta = arr3, lmeta
            break
    # Voxel-size ratios, not shape ratios: odd sides make the latter slightly off.
    return chosen, _spatial_scale(chosen_meta) / _spatial_scale(meta)


def _spatial_scale(meta) -> np.ndarray:
    axes = [a.lower() for a in meta.axes]
    return np.array([meta.scale[axes.index(a)] for a in _SPATIAL], dtype=float)


def _as_3d(arr, what: str, channel: int, axes=None):
    """Reduce ``arr`` to its (z, y, x) axes, taking ``channel`` on ``c`` and 0 elsewhere."""
    if axes is None:
        axes = tuple(f"dim{i}" for i in range(arr.ndim - 3)) + _SPATIAL
    axes = tuple(a.lower() for a in axes)
    if arr.ndim != len(axes) or not set(_SPATIAL) <= set(axes):
        raise InvalidInputError(
            f"{what} must have z, y, x axes (plus optional leading axes); got shape {arr.shape}"
            + (f" with axes {axes}" if axes else "")
        )
    index = []
    for name, size in zip(axes, arr.shape):
        if name in _SPATIAL:
            index.append(slice(None))
        elif name == "c":
            if not 0 <= channel < size:
                raise InvalidInputError(f"channel {channel} out of range for {what} with {size} channels")
            index.append(channel)
        else:
            index.append(0)
    sub = arr[tuple(index)]
    kept = [a for a in axes if a in _SPATIAL]
    return sub.transpose([kept.index(a) for a in _SPATIAL])


# --- figures ------------------------------------------------------------------


def _figure(**kwargs):
    # A bare Figure renders with Agg and leaves pyplot's global backend and figure
    # registry alone, so a report can be made from inside a napari/Qt session.
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def _compute(arr) -> np.ndarray:
    return np.asarray(arr.compute() if hasattr(arr, "compute") else arr)


def _display_range(img: np.ndarray) -> tuple[float, float]:
    lo, hi = np.percentile(img, [0.5, 99.9]) if img.size else (0.0, 1.0)
    if hi <= lo:
        hi = lo + 1.0
    return float(lo), float(hi)


def _plot_mip(img, factors, objects: pd.DataFrame, axis: int, path: Path) -> None:
    mip = _compute(img.max(axis=axis)).astype(np.float64)
    h, w = mip.shape
    k = max(1, min(8, _DISPLAY_SIDE // max(h, w)))
    fig = _figure(figsize=(w * k / _DPI, h * k / _DPI), dpi=_DPI)
    ax = fig.add_axes((0, 0, 1, 1))
    lo, hi = _display_range(mip)
    ax.imshow(mip, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest",
              extent=(-0.5, w - 0.5, h - 0.5, -0.5))
    rows, cols = [a for a in range(3) if a != axis]
    shown = objects.nlargest(_MAX_MARKERS, "voxels") if len(objects) > _MAX_MARKERS else objects
    if len(shown):
        # Centroids are in full-resolution voxels; voxel i of the coarse level covers
        # full-resolution voxels [i*f, (i+1)*f), hence the half-voxel shift.
        r = (shown[_SPATIAL[rows]].to_numpy(float) + 0.5) / factors[rows] - 0.5
        c = (shown[_SPATIAL[cols]].to_numpy(float) + 0.5) / factors[cols] - 0.5
        radius_px = np.cbrt(3 * shown["voxels"].to_numpy(float) / (4 * math.pi))
        radius_px = np.maximum(radius_px * k / max(factors[rows], factors[cols]) + 2, 3)
        size_pt2 = (2 * radius_px * 72 / _DPI) ** 2
        ax.scatter(c, r, s=size_pt2, facecolors="none", edgecolors="red", linewidths=1)
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    ax.axis("off")
    fig.savefig(path, dpi=_DPI)


def _plot_density(den, path: Path) -> None:
    den = _compute(den).astype(np.float64)
    fig = _figure(figsize=(12, 4), dpi=_DPI)
    axes = fig.subplots(1, 3)
    for axis, ax in enumerate(axes):
        proj = den.sum(axis=axis)
        im = ax.imshow(proj, cmap="magma", interpolation="nearest")
        rows, cols = [_SPATIAL[a] for a in range(3) if a != axis]
        ax.set_title(f"sum along {_SPATIAL[axis]}")
        ax.set_xlabel(cols)
        ax.set_ylabel(rows)
        fig.colorbar(im, ax=ax, shrink=0.8, label="objects")
    fig.tight_layout()
    fig.savefig(path)


def _merge_truth(regions: pd.DataFrame, truth: pd.DataFrame | None) -> pd.DataFrame:
    _require_columns(regions, ("acronym", "count"), "regions")
    merged = regions.copy()
    if truth is None:
        return merged
    _require_columns(truth, ("count",), "truth")
    key = "id" if "id" in truth.columns and "id" in regions.columns else "acronym"
    _require_columns(truth, (key,), "truth")
    t = truth[[key, "count"]].rename(columns={"count": "truth"})
    merged = merged.merge(t, on=key, how="left")
    merged["rel_error"] = (merged["count"] - merged["truth"]) / merged["truth"].where(merged["truth"] > 0)
    return merged


def _plot_counts(merged: pd.DataFrame, path: Path) -> None:
    shown = merged.nlargest(_MAX_BARS, "count") if len(merged) > _MAX_BARS else merged
    n = len(shown)
    fig = _figure(figsize=(8, 1.5 + 0.3 * n), dpi=_DPI)
    ax = fig.subplots()
    pos = np.arange(n)
    has_truth = "truth" in shown.columns
    height = 0.4 if has_truth else 0.8
    ax.barh(pos - (height / 2 if has_truth else 0), shown["count"], height, label="detected")
    if has_truth:
        ax.barh(pos + height / 2, shown["truth"].fillna(0), height, label="planted truth")
        ax.legend(loc="lower right")
    ax.set_yticks(pos, shown["acronym"].astype(str))
    ax.invert_yaxis()
    ax.set_xlabel("objects (including sub-regions)")
    ax.set_title("Counts per region" + (f" (top {_MAX_BARS})" if len(merged) > _MAX_BARS else ""))
    fig.tight_layout()
    fig.savefig(path)


def _plot_sizes(objects: pd.DataFrame, path: Path) -> None:
    sizes = objects["voxels"].to_numpy(float)
    fig = _figure(figsize=(6, 4), dpi=_DPI)
    ax = fig.subplots()
    if sizes.size and sizes.max() / max(sizes.min(), 1) > 50:
        bins = np.logspace(np.log10(max(sizes.min(), 1)), np.log10(sizes.max()), 40)
        ax.set_xscale("log")
    else:
        bins = 40
    ax.hist(sizes, bins=bins, color="tab:blue")
    ax.set_xlabel("object size (voxels)")
    ax.set_ylabel("objects")
    ax.set_title(f"{len(sizes)} objects")
    fig.tight_layout()
    fig.savefig(path)


# --- HTML ---------------------------------------------------------------------


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(value, dict):
        rows = []
        for k, v in value.items():
            rows += _flatten(v, f"{prefix}.{k}" if prefix else str(k))
        return rows
    text = json.dumps(value) if not isinstance(value, str) else value
    return [(prefix, text if len(text) <= 200 else text[:197] + "...")]


def _kv_table(rows: list[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _region_table_html(merged: pd.DataFrame) -> str:
    cols = [c for c in ("acronym", "name", "count", "count_self", "truth", "rel_error",
                        "volume_mm3", "density_per_mm3") if c in merged.columns]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = []
    for _, row in merged[cols].iterrows():
        cells = []
        for c in cols:
            v = row[c]
            if c == "rel_error":
                text = "" if pd.isna(v) else f"{100 * v:+.1f}%"
            elif isinstance(v, float):
                text = "" if pd.isna(v) else f"{v:.4g}"
            else:
                text = str(v)
            cells.append(f"<td>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


_CSS = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 2px 8px; text-align: left; font-size: 90%; }
figure { display: inline-block; margin: 0.5em; vertical-align: top; }
figure img { max-width: 100%; image-rendering: pixelated; }
"""


def _steps_table(steps: list) -> str:
    rows = [s for s in steps if isinstance(s, dict)]
    cols = [c for c in ("name", "cached", "seconds") if any(c in r for r in rows)]
    head = "".join(f"<th>{c}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(r.get(c, '')))}</td>" for c in cols) + "</tr>" for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _html(title: str, objects: pd.DataFrame, meta: dict, figures, table_html: str, notes) -> str:
    summary = [("objects", str(len(objects)))]
    if len(objects):
        summary.append(("median size (voxels)", f"{objects['voxels'].median():.4g}"))
    parts = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        _kv_table(summary),
        *(f"<p><em>{html.escape(note)}</em></p>" for note in notes),
    ]
    section = None
    for heading, caption, path in figures:
        if heading != section:
            parts.append(f"<h2>{html.escape(heading)}</h2>")
            section = heading
        parts.append(
            f'<figure><img alt="{html.escape(caption)}" src="{_data_uri(path)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
        if heading == "Counts per region" and table_html:
            parts.append(table_html)
    if isinstance(meta.get("steps"), list):
        parts += ["<h2>Steps</h2>", _steps_table(meta["steps"])]
    rest = {k: v for k, v in meta.items() if k != "steps"}
    if rest:
        parts += ["<h2>Run</h2>", _kv_table(_flatten(rest))]
    parts.append("</body></html>")
    return "\n".join(parts)
