"""``voxelflow evaluate RUN POINTS.csv``: precision, recall and F1 of a run against annotated points.

Detected objects (``RUN/objects.parquet``) and reference points (a CSV from
napari's Points layer or any table with ``z, y, x`` or ``axis-0, axis-1,
axis-2`` columns) are paired one to one within ``--max-distance-um``
micrometres (default half of ``cells.diameter_um`` for a cell run, else 5 um).
Points are in voxels of the scan (``--units voxels``, converted with the run's
voxel size) or in micrometres (``--units um``, the frame of the ``z_um``
columns). With an atlas in the run, scores are also given per region (the
region under each reference point; a spurious detection counts in its own
region). The result is printed and written to ``RUN/evaluation.json``.
"""

from __future__ import annotations

import json

import numpy as np

from voxelflow.errors import InvalidInputError, InvalidPathError
from voxelflow.paths import VPath


def register(subparsers) -> None:
    p = subparsers.add_parser("evaluate", help="score a run against annotated points (precision, recall, F1)",
                              description=__doc__)
    p.add_argument("run", help="run folder (with run.json and objects.parquet)")
    p.add_argument("points", help="CSV of reference points")
    p.add_argument("--units", choices=("voxels", "um"), default="voxels", help="units of the points (default voxels)")
    p.add_argument("--max-distance-um", type=float, default=None, help="matching distance in micrometres")
    p.set_defaults(func=run)


def read_points(path: str):
    """Reference points (N, 3) from a CSV with ``z, y, x`` or napari's ``axis-0, axis-1, axis-2`` columns."""
    import pandas as pd

    p = VPath(path)
    if not p.exists():
        raise InvalidPathError(f"points file {path!r} does not exist")
    with p.open("rb") as f:
        table = pd.read_csv(f)
    for cols in (["z", "y", "x"], ["axis-0", "axis-1", "axis-2"], ["z_um", "y_um", "x_um"]):
        if set(cols) <= set(table.columns):
            return table[cols].to_numpy(np.float64)
    raise InvalidInputError(f"points file {path!r} needs columns z, y, x (or napari's axis-0, axis-1, axis-2); "
                            f"it has {list(table.columns)}")


def evaluate_run(run_folder: str, points, units: str = "voxels", max_distance_um: float | None = None) -> dict:
    """Scores of a run's objects against reference points.

    Parameters
    ----------
    run_folder : str
    points : array, shape (N, 3)
        Reference points in ``units``.
    units : {'voxels', 'um'}
    max_distance_um : float, optional

    Returns
    -------
    dict
        The overall scores of :func:`voxelflow.ops.detection_scores` plus
        ``max_distance_um``, ``units`` and ``regions`` (list of per-region rows, or None).
    """
    import pandas as pd

    from voxelflow import ops
    from voxelflow.steps.node import read_run

    folder = VPath(run_folder)
    run = read_run(folder)
    if not run or not (folder / "objects.parquet").exists():
        raise InvalidPathError(f"{run_folder!r} is not a finished run folder (run.json and objects.parquet)")
    with (folder / "objects.parquet").open("rb") as f:
        objects = pd.read_parquet(f)
    scale = np.asarray(run["input"]["scale_um"], dtype=np.float64)
    config = run.get("config", {})
    if max_distance_um is None:
        d = config.get("cells.diameter_um") if config.get("pipeline.kind") == "cells" else None
        max_distance_um = d / 2 if d else 5.0
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    if units == "voxels":
        det_um = objects[["z", "y", "x"]].to_numpy(np.float64) * scale
        ref_um = pts * scale
        ref_vox = pts
    elif units == "um":
        det_um = objects[["z_um", "y_um", "x_um"]].to_numpy(np.float64)
        ref_um = pts
        offset = objects[["z_um", "y_um", "x_um"]].to_numpy() - objects[["z", "y", "x"]].to_numpy() * scale
        ref_vox = (pts - (offset[0] if len(offset) else 0.0)) / scale
    else:
        raise InvalidInputError(f"units must be 'voxels' or 'um', got {units!r}")
    det_regions = ref_regions = None
    if config.get("atlas.url") and "region_id" in objects.columns:
        from voxelflow.io import open_ome_zarr

        labels, meta = open_ome_zarr(config["atlas.url"])
        ref_table = pd.DataFrame(ref_vox, columns=["z", "y", "x"])
        ref_regions = ops.assign_regions(ref_table, labels, tuple(meta.scale), tuple(scale)).to_numpy()
        det_regions = objects["region_id"].to_numpy()
    overall, per = ops.detection_scores(det_um, ref_um, max_distance_um, detected_regions=det_regions,
                                        reference_regions=ref_regions)
    result = {**overall, "max_distance_um": float(max_distance_um), "units": units,
              "regions": None if per is None else per.to_dict(orient="records")}
    (folder / "evaluation.json").write_text(json.dumps(result, indent=1, default=float))
    return result


def run(args) -> int:
    result = evaluate_run(args.run, read_points(args.points), args.units, args.max_distance_um)
    if result["regions"]:
        print(f"{'region':>10}{'reference':>11}{'detected':>10}{'matched':>9}{'P':>7}{'R':>7}{'F1':>7}")
        for r in result["regions"]:
            print(f"{int(r['region_id']):>10}{r['reference']:>11}{r['detected']:>10}{r['matched']:>9}"
                  f"{r['precision']:>7.3f}{r['recall']:>7.3f}{r['f1']:>7.3f}")
    print(f"voxelflow evaluate: {result['matched']} of {result['reference']} points matched by "
          f"{result['detected']} objects within {result['max_distance_um']:g} um: precision "
          f"{result['precision']:.3f}, recall {result['recall']:.3f}, F1 {result['f1']:.3f}")
    return 0
