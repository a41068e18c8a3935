"""The figures of the report: projections with object rings, density sums, counts per region, sizes."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from voxelflow.report._inputs import SPATIAL, require_columns

_DISPLAY_SIDE = 512
_MAX_MARKERS = 20000
_MAX_BARS = 40
_DPI = 100


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


def plot_mip(img, factors, objects: pd.DataFrame, axis: int, path: Path) -> None:
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
        r = (shown[SPATIAL[rows]].to_numpy(float) + 0.5) / factors[rows] - 0.5
        c = (shown[SPATIAL[cols]].to_numpy(float) + 0.5) / factors[cols] - 0.5
        radius_px = np.cbrt(3 * shown["voxels"].to_numpy(float) / (4 * math.pi))
        radius_px = np.maximum(radius_px * k / max(factors[rows], factors[cols]) + 2, 3)
        size_pt2 = (2 * radius_px * 72 / _DPI) ** 2
        ax.scatter(c, r, s=size_pt2, facecolors="none", edgecolors="red", linewidths=1)
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    ax.axis("off")
    fig.savefig(path, dpi=_DPI)


def plot_density(den, path: Path) -> None:
    den = _compute(den).astype(np.float64)
    fig = _figure(figsize=(12, 4), dpi=_DPI)
    axes = fig.subplots(1, 3)
    for axis, ax in enumerate(axes):
        proj = den.sum(axis=axis)
        im = ax.imshow(proj, cmap="magma", interpolation="nearest")
        rows, cols = [SPATIAL[a] for a in range(3) if a != axis]
        ax.set_title(f"sum along {SPATIAL[axis]}")
        ax.set_xlabel(cols)
        ax.set_ylabel(rows)
        fig.colorbar(im, ax=ax, shrink=0.8, label="objects")
    fig.tight_layout()
    fig.savefig(path)


def merge_truth(regions: pd.DataFrame, truth: pd.DataFrame | None) -> pd.DataFrame:
    require_columns(regions, ("acronym", "count"), "regions")
    merged = regions.copy()
    if truth is None:
        return merged
    require_columns(truth, ("count",), "truth")
    key = "id" if "id" in truth.columns and "id" in regions.columns else "acronym"
    require_columns(truth, (key,), "truth")
    t = truth[[key, "count"]].rename(columns={"count": "truth"})
    merged = merged.merge(t, on=key, how="left")
    merged["rel_error"] = (merged["count"] - merged["truth"]) / merged["truth"].where(merged["truth"] > 0)
    return merged


def plot_counts(merged: pd.DataFrame, path: Path) -> None:
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


def plot_sizes(objects: pd.DataFrame, path: Path) -> None:
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
