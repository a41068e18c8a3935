"""Atlas registration end to end: counts of planted objects per region and hemisphere through ``voxelflow run``.

Every case is a synthetic experiment (:func:`voxelflow.synth_atlas.write_synthetic_experiment`):
a BrainGlobe atlas folder, a two-channel scan (autofluorescence warped from the
atlas by a random rotation up to 15 degrees, scaling 0.85-1.15, translation and
a smooth deformation, with bias, plane steps, stripes, vessels and noise, at
2-4x finer anisotropic voxels in a random other orientation code; plaques
planted at least 2 atlas voxels from any region or hemisphere boundary) and a
configuration with ``atlas.brainglobe``. ``voxelflow run CONFIG --no-report``
runs in its own process with the default registration parameters; then
``regions.csv`` and ``objects.csv`` are compared with the planted truth.

``--margin`` sets how close to a boundary objects may be planted (2 atlas voxels
by default; 0 plants them anywhere in the brain, so the counts then also show
the registration's errors at region boundaries). ``--kind cells`` runs the cell
pipeline on nuclei planted over the autofluorescence instead of the plaque
pipeline.

``counts``: whole brains, one seed per pair. Printed per pair: planted and
found objects, the largest relative count error over regions with at least
``--min-count`` planted objects (``count_self`` of ``regions.csv``), the same
over every region and hemisphere (objects per region and side), the largest
absolute count difference over all regions, the objects whose region and side
are right (matched to the nearest planted centre), wall and CPU seconds of the
run and the load average. ``--table`` prints the per-region counts of each pair.
Objects take their region in atlas space (the annotation voxel at their
transformed centroid), the rule the truth is defined by, so every error is the
registration's (or the detection's).

``partial``: partial brains on ``--pairs`` seeds: one hemisphere (left on even
seeds, right on odd ones; ``atlas.coverage = "auto"`` finds it) and an anterior
crop (``atlas.crop_um``, the box the scan was cut to). Printed as well: Dice
per region between the warped annotation (the run's ``atlas_labels`` cache node,
coarse scan grid) and the true annotation on that grid (mean over regions, and
over regions above 1,000 voxels of the grid at 200 um, scaled with the
resolution), the brain voxels whose warped hemisphere is right, and the atlas
part the run registered (``side_found``, from ``run.json``).

Run: ``python benchmarks/bench_register_counts.py counts --pairs 5`` and
``python benchmarks/bench_register_counts.py partial --pairs 3``. Report the
figures with ``uptime`` load: the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from voxelflow.synth_atlas import dice_per_region, write_synthetic_experiment

#: The anterior part of the brain (atlas axis 0 runs from anterior): cerebellum and midbrain lie behind it.
ANTERIOR_BOX = [0.0, 7000.0, 0.0, 8000.0, 0.0, 11400.0]


def run_voxelflow(config: Path) -> dict:
    """``voxelflow run CONFIG --no-report --quiet`` in its own process: wall and CPU seconds, load before/after."""
    load_before = os.getloadavg()[0]
    c0 = os.times()
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "voxelflow", "run", str(config), "--no-report", "--quiet"],
                          capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    c1 = os.times()
    if proc.returncode != 0:
        raise RuntimeError(f"voxelflow run {config} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return {"seconds": round(seconds, 1), "cpu_seconds": round(c1.children_user + c1.children_system
                                                                - c0.children_user - c0.children_system, 1),
            "load": (round(load_before, 1), round(os.getloadavg()[0], 1))}


def per_side(objects: pd.DataFrame) -> pd.DataFrame:
    """Objects per region (index) and hemisphere (columns 1 left, 2 right)."""
    table = objects.groupby(["region_id", "hemisphere"]).size().unstack(fill_value=0)
    return table.reindex(columns=[1, 2], fill_value=0)


def count_errors(truth: pd.DataFrame, regions: pd.DataFrame, objects: pd.DataFrame, min_count: int) -> dict:
    """Counts of ``regions.csv`` / ``objects.csv`` against the planted ``truth`` (see the module doc)."""
    got = regions.set_index("id")["count_self"].fillna(0).astype(int)
    planted = truth.groupby("region_id").size()
    counted = got.reindex(planted.index, fill_value=0)
    rel = (counted - planted).abs() / planted
    sides = per_side(truth)
    found_sides = per_side(objects).reindex(sides.index, fill_value=0)
    big = sides >= min_count
    rel_sides = ((found_sides - sides).abs() / sides.where(big))
    every = got.index.union(planted.index)
    diff = (got.reindex(every, fill_value=0) - planted.reindex(every, fill_value=0)).abs().max()
    found = objects[["z", "y", "x"]].to_numpy(dtype=np.float64)
    centres = truth[["z", "y", "x"]].to_numpy(dtype=np.float64)
    nearest = np.argmin(np.linalg.norm(found[:, None] - centres[None], axis=2), axis=1)
    matched = truth.iloc[nearest]
    table = pd.DataFrame({"planted": planted, "counted": counted, "planted_left": sides[1],
                          "counted_left": found_sides[1], "planted_right": sides[2], "counted_right": found_sides[2]})
    return {
        "planted": len(truth), "found": len(objects),
        "regions": int((planted >= min_count).sum()),
        "max_region_error": float(rel[planted >= min_count].max()),
        "region_sides": int(big.to_numpy().sum()),
        "max_region_side_error": float(np.nanmax(rel_sides.to_numpy())),
        "max_abs_difference": int(diff),
        "region_right": float((objects["region_id"].to_numpy() == matched["region_id"].to_numpy()).mean()),
        "hemisphere_right": float((objects["hemisphere"].to_numpy() == matched["hemisphere"].to_numpy()).mean()),
        "table": table,
    }


def warped_accuracy(exp: dict, run: Path) -> dict:
    """Dice and hemisphere agreement of the run's warped annotation / hemispheres on the coarse scan grid."""
    from voxelflow.io.ome_zarr import open_ome_zarr
    from voxelflow.steps.node import output_image

    labels, meta = open_ome_zarr(output_image(run / "cache" / "atlas_labels").url)
    hemis, _ = open_ome_zarr(output_image(run / "cache" / "atlas_hemispheres").url)
    labels, hemis = np.asarray(labels), np.asarray(hemis)
    truth, truth_hemi = exp["synthetic"].truth_on_grid(labels.shape, meta.scale)
    dice = dice_per_region(truth, labels)
    large = 1000 * (200.0 / exp["synthetic"].atlas.resolution[0]) ** 3
    brain = truth > 0
    return {"dice_mean": float(dice.dice.mean()), "dice_large": float(dice[dice.voxels > large].dice.mean()),
            "hemisphere": float((hemis[brain] == truth_hemi[brain]).mean())}


def run_case(root: Path, seed: int, resolution: float, n_objects: int, min_count: int, part: str,
             margin_vox: float = 2.0, kind: str = "plaque") -> dict:
    """Write one experiment (``part``: 'whole', 'left', 'right' or 'anterior'), run it and measure it."""
    kwargs, lines = {}, ""
    if part in ("left", "right"):
        kwargs["side"] = part
        lines = 'coverage = "auto"\n'
    elif part == "anterior":
        kwargs["box_um"] = ANTERIOR_BOX
        lines = f"crop_um = {ANTERIOR_BOX}\n"
    exp = write_synthetic_experiment(root, resolution=resolution, seed=seed, n_objects=n_objects, orientation=None,
                                     factors=None, margin_vox=margin_vox, kind=kind, **kwargs)
    config = exp["config"]
    config.write_text(config.read_text().replace("registration_channel = 0\n", "registration_channel = 0\n" + lines))
    timing = run_voxelflow(config)
    run = config.parent / "run"
    out = {"seed": seed, "part": part, "orientation": exp["synthetic"].orientation}
    out.update(count_errors(exp["truth"], pd.read_csv(run / "regions.csv"), pd.read_csv(run / "objects.csv"),
                            min_count))
    if part != "whole":
        out.update(warped_accuracy(exp, run))
        out["side_found"] = json.loads((run / "run.json").read_text())["registration"]["atlas_part"]["side"]
    out.update(timing)
    return out


def _line(r: dict) -> str:
    return " ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items() if k != "table")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=("counts", "partial"))
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--first-seed", type=int, default=20)
    ap.add_argument("--resolution", type=float, default=200.0)
    ap.add_argument("--objects", type=int, default=400)
    ap.add_argument("--min-count", type=int, default=10)
    ap.add_argument("--margin", type=float, default=2.0,
                    help="objects at least this many atlas voxels from any region or hemisphere boundary")
    ap.add_argument("--kind", choices=("plaque", "cells"), default="plaque", help="pipeline and planted objects")
    ap.add_argument("--table", action="store_true", help="print the per-region counts of every case")
    args = ap.parse_args()
    print(f"load average {os.getloadavg()}", flush=True)
    rows = []
    for seed in range(args.first_seed, args.first_seed + args.pairs):
        parts = ("whole",) if args.mode == "counts" else (("left", "right")[seed % 2], "anterior")
        for part in parts:
            with tempfile.TemporaryDirectory() as tmp:
                r = run_case(Path(tmp), seed, args.resolution, args.objects, args.min_count, part, args.margin,
                             args.kind)
            rows.append(r)
            print(_line(r), flush=True)
            if args.table:
                print(r["table"].to_string(), flush=True)
    for key in ("max_region_error", "max_region_side_error"):
        print(f"WORST {key}={max(r[key] for r in rows):.4f}")
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
