"""``voxelflow train-classifier``: a cell / not-cell classifier from annotated points.

Candidates are the objects of a table (``object_table`` columns: ``id``, centroid
``z, y, x`` and bounding box in voxels, ``voxels``) and their label image; without
``--objects`` the table is computed from the label image (e.g. the foreground
components of a cell run, ``<cache>/components``, whose objects the
``cells.classifier`` setting classifies).
Annotated points (napari Points layers saved as CSV, or CSV files with ``z, y, x``
and a ``label`` column) are matched to the nearest candidate within
``--max-distance-um``; features of the matched candidates train a random
forest, whose cross-validated balanced accuracy is printed. The classifier is
saved with its feature list and library versions (``voxelflow.io.classifier``).

Example::

    voxelflow train-classifier --objects run/objects.parquet --labels run/cache/label/out0/data.ome.zarr \\
        --signal scan.ome.zarr?slices=[0] --background scan.ome.zarr?slices=[1] \\
        --cells cells.csv --not-cells other.csv --out cells.classifier
"""

from __future__ import annotations

import io

import numpy as np


def register(subparsers) -> None:
    p = subparsers.add_parser("train-classifier", help="train a cell classifier from annotated points",
                              description=__doc__, formatter_class=_raw())
    p.add_argument("--objects", default=None,
                   help="object table (.parquet or .csv); default: the table of the label image (object_table)")
    p.add_argument("--labels", required=True, help="label image (OME-Zarr) the table describes")
    p.add_argument("--signal", required=True, help="signal channel (OME-Zarr, ?slices=[c] picks a channel)")
    p.add_argument("--background", default=None, help="background / autofluorescence channel (optional)")
    p.add_argument("--points", action="append", default=[], help="CSV of points with a label column (repeatable)")
    p.add_argument("--cells", action="append", default=[], help="CSV of points that are cells (repeatable)")
    p.add_argument("--not-cells", action="append", default=[], help="CSV of points that are not cells (repeatable)")
    p.add_argument("--unit", choices=("um", "voxel"), default="um",
                   help="unit of the point coordinates (napari world coordinates are um)")
    p.add_argument("--max-distance-um", type=float, default=6.0, help="largest point-to-centroid distance")
    p.add_argument("--radius-um", type=float, default=10.0, help="half side of the feature cube around objects")
    p.add_argument("--cv", type=int, default=5, help="cross-validation folds")
    p.add_argument("--out", required=True, help="classifier file to write")
    p.set_defaults(func=run)


def _raw():
    import argparse

    return argparse.RawDescriptionHelpFormatter


def _read_table(url):
    import pandas as pd

    from voxelflow.errors import InvalidPathError
    from voxelflow.paths import as_vpath

    path = as_vpath(url)
    try:
        data = path.read_bytes()
    except (OSError, ValueError) as exc:
        raise InvalidPathError(f"cannot read the object table {path.url}: {exc}") from exc
    if path.url.endswith(".parquet"):
        return pd.read_parquet(io.BytesIO(data))
    return pd.read_csv(io.BytesIO(data))


def run(args) -> int:
    from voxelflow.errors import InvalidInputError
    from voxelflow.io.annotations import read_points
    from voxelflow.io.classifier import save_classifier
    from voxelflow.ops import match_points, object_features, object_table, train_classifier
    from voxelflow.pipelines.inputs import open_scan

    signal = open_scan(args.signal)
    labels = open_scan(args.labels)
    table = _read_table(args.objects) if args.objects else object_table(labels.image, kind="os")
    background = open_scan(args.background).image if args.background else None
    voxel_size = tuple(signal.scale)
    points, is_cell = [], []
    for files, label in ((args.points, None), (args.cells, True), (args.not_cells, False)):
        for f in files:
            p, y = read_points(f, voxel_size=voxel_size, unit=args.unit, label=label)
            points.append(p)
            is_cell.append(y)
    if not points:
        raise InvalidInputError("no annotations: give --points, or --cells and --not-cells")
    points, is_cell = np.concatenate(points), np.concatenate(is_cell)
    ids = match_points(table, points, voxel_size=voxel_size, max_distance_um=args.max_distance_um)
    hit = ids != 0
    # a candidate annotated twice keeps its first annotation
    ids, first = np.unique(ids[hit], return_index=True)
    labels_of = is_cell[hit][first]
    rows = table[table["id"].isin(ids)]
    features = object_features(rows, labels.image, signal.image, background, voxel_size=voxel_size,
                               radius_um=args.radius_um)
    order = features.set_index("id").loc[ids].reset_index()
    clf = train_classifier(order, labels_of, cv=args.cv, radius_um=args.radius_um)
    save_classifier(clf, args.out)
    print(
        f"voxelflow train-classifier: cross-validated balanced accuracy {clf.cv_score:.3f} "
        f"({min(args.cv, min(clf.n_train.values()))} folds; {clf.n_train['cell']} cells, "
        f"{clf.n_train['not_cell']} not cells; {int((~hit).sum())} of {len(points)} points matched no object) "
        f"-> {args.out}"
    )
    return 0
