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
- ``sweep.png`` and a table: the settings of a ``voxelflow sweep`` written into the
  folder (``sweep.csv``) against the objects found, and precision / recall / F1
  when the sweep was scored against reference points;
- ``atlas_density.png``: the atlas-space density map summed along each atlas axis,
  and the atlas-registration QC pictures of ``registration/`` (checkerboard and edge
  overlays in three planes) with the QC metrics, when the run registered an atlas;
- ``report.html``: all of the above embedded as base64 ``data:`` URIs plus the run
  summary, so the one file can be mailed or archived without its folder.

Examples
--------
>>> from voxelflow.report import make_report
>>> html = make_report("runs/demo", truth=planted_counts)  # doctest: +SKIP
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from voxelflow.errors import InvalidPathError
from voxelflow.report._figures import merge_truth, plot_counts, plot_density, plot_mip, plot_sizes
from voxelflow.report._html import region_table_html, registration_table_html, render_html
from voxelflow.report._inputs import (
    DEFAULT_DENSITY_NAMES,
    DEFAULT_IMAGE_NAMES,
    SPATIAL,
    optional,
    read_objects,
    require_columns,
    resolve_density,
    resolve_image,
)
from voxelflow.report._sweep import plot_sweep, read_sweep, sweep_table_html
from voxelflow.steps.node import ATLAS_DENSITY_IMAGE, REGIONS_CSV, read_run

__all__ = ["DEFAULT_DENSITY_NAMES", "DEFAULT_IMAGE_NAMES", "make_report"]


def registration_qc_html(run: Path) -> str:
    """The QC metrics of ``registration/registration.json`` as an HTML table ("" without one)."""
    path = run / "registration" / "registration.json"
    if not path.is_file():
        return ""
    desc = json.loads(path.read_text())
    return registration_table_html(desc.get("qc", {}), desc.get("part"))


def registration_figures(run: Path) -> list[tuple[str, str, Path]]:
    """The registration QC pictures of a run (``registration/qc_*.png``), as report figures."""
    folder = run / "registration"
    out = []
    for kind, caption in (("checker", "Checkerboard of the scan and the registered atlas template"),
                          ("edges", "Edges of the registered atlas template (magenta) on the scan"),
                          ("scan", "Registration channel (registration did not finish)")):
        for axis in range(3):
            path = folder / f"qc_{kind}_axis{axis}.png"
            if path.is_file():
                out.append(("Atlas registration", f"{caption}, middle plane along axis {axis}", path))
    return out


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
    objects = read_objects(run) if objects is None else objects
    require_columns(objects, ("z", "y", "x", "voxels"), "objects")
    if regions is None and (run / REGIONS_CSV).is_file():
        regions = pd.read_csv(run / REGIONS_CSV)

    figures: list[tuple[str, str, Path]] = []
    notes: list[str] = []
    img, factors = optional(lambda: resolve_image(run, meta, image, image_factors, channel),
                             image is None, "image", notes, (None, None))
    if img is not None:
        for axis, name in enumerate(SPATIAL):
            path = run / f"mip_{name}.png"
            plot_mip(img, factors, objects, axis, path)
            figures.append(("Projections", f"Maximum along {name}", path))
    den = optional(lambda: resolve_density(run, meta, density), density is None, "density map", notes, None)
    if den is not None:
        path = run / "density.png"
        plot_density(den, path)
        figures.append(("Density map", "Objects per coarse voxel, summed along each axis", path))
    table_html = ""
    if regions is not None:
        merged = merge_truth(regions, truth)
        path = run / "counts.png"
        plot_counts(merged, path)
        figures.append(("Counts per region", "Detected objects per atlas region", path))
        table_html = region_table_html(merged)
    path = run / "sizes.png"
    plot_sizes(objects, path)
    figures.append(("Object sizes", "Histogram of object sizes", path))
    tables = {}
    sweep = read_sweep(run)
    if sweep is not None:
        path = run / "sweep.png"
        plot_sweep(sweep, path)
        figures.append(("Parameter sweep", "Objects found (bars) and scores against the reference points (lines) "
                        "for every setting of the sweep", path))
        tables["Parameter sweep"] = sweep_table_html(sweep)
    atlas_den = None
    if (run / ATLAS_DENSITY_IMAGE).exists():
        atlas_den = optional(lambda: np.nan_to_num(np.asarray(resolve_density(run, {}, str(run / ATLAS_DENSITY_IMAGE)))),
                             True, "atlas density map", notes, None)
    if atlas_den is not None:
        path = run / "atlas_density.png"
        plot_density(atlas_den, path)
        figures.append(("Atlas-space density map", "Objects per atlas voxel (atlas axes), summed along each axis; "
                        "blocks the scan did not image count as 0 here", path))
    reg_figures = registration_figures(run)
    figures += reg_figures
    if reg_figures:
        tables["Atlas registration"] = registration_qc_html(run)

    out = run / "report.html"
    out.write_text(render_html(title or run.name, objects, meta, figures, table_html, notes, tables),
                   encoding="utf-8")
    return out
