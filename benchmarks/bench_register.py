"""Atlas registration: accuracy over random synthetic pairs and speed at mouse-brain size.

``accuracy``: for each seed, a synthetic atlas (voxelflow.synth_atlas) is
warped into a scan with a known affine + smooth deformation, bias field,
noise, another orientation and a 2-4x finer anisotropic resolution; the scan
is block-averaged back to about the atlas resolution and registered with the
default parameters. Printed per pair: mean Dice over painted regions (and over
regions above 1,000 atlas voxels), mean landmark error (atlas voxels, 500
random points inside the brain), hemisphere agreement, seconds.

``counts``: for each seed, a synthetic experiment (atlas folder, two-channel
scan with planted plaques away from region boundaries, configuration) run end
to end through the plaque pipeline with the atlas registered by voxelflow;
printed: planted objects, per-region count error (largest relative error over
regions with at least 10 planted objects), objects whose region / hemisphere
is right.

``speed``: one pair at a given atlas resolution (50 um ~ 10 MVox), the scan
made directly at the atlas resolution (the registration input size is what
matters); wall time of the registration and peak RSS of the process.

Run: ``python benchmarks/bench_register.py accuracy --pairs 5 --resolution 200``
and ``python benchmarks/bench_register.py speed --resolution 50``. Report the
figures with ``uptime`` load: the machine is shared.
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import dask.array as da
import numpy as np

from voxelflow.io.blockreduce import block_reduce
from voxelflow.ops._atlas_map import register_scan, registration_factors
from voxelflow.ops._register import RegistrationParameters
from voxelflow.synth_atlas import dice_per_region, make_synthetic_atlas, make_synthetic_scan


def one_pair(resolution: float, seed: int, factors=None, params=None) -> dict:
    atlas = make_synthetic_atlas(resolution=resolution)
    scan = make_synthetic_scan(atlas, seed=seed, factors=factors)
    f = registration_factors(scan.scale, scan.orientation, atlas.resolution, atlas.orientation)
    coarse = block_reduce(da.from_array(scan.image, chunks=128), f, "mean").compute()
    cscale = tuple(s * k for s, k in zip(scan.scale, f))
    t0 = time.perf_counter()
    mapping = register_scan(coarse, cscale, scan.orientation, atlas, params or RegistrationParameters(),
                            check=False)
    seconds = time.perf_counter() - t0
    truth, truth_hemi = scan.truth_on_grid(coarse.shape, cscale)
    dice = dice_per_region(truth, mapping.labels_to_scan(atlas.annotation))
    brain = truth > 0
    hemi = float((mapping.labels_to_scan(atlas.hemispheres)[brain] == truth_hemi[brain]).mean())
    rng = np.random.default_rng(seed)
    inside = np.argwhere(brain)
    pick = inside[rng.choice(len(inside), 500)]
    pts = (pick + rng.uniform(0, 1, pick.shape)) * np.asarray(cscale)
    err = np.linalg.norm(mapping.scan_to_atlas(pts) - scan.scan_to_atlas(pts), axis=1) / float(resolution)
    qc = mapping.registration.qc
    return {
        "seed": seed, "orientation": scan.orientation, "scan_shape": scan.image.shape,
        "coarse_shape": coarse.shape, "max_deformation_vox": round(scan.max_displacement_vox, 2),
        "dice_mean": float(dice.dice.mean()), "dice_large": float(dice[dice.voxels > 1000].dice.mean()),
        "dice_min": float(dice.dice.min()), "landmark_vox": float(err.mean()), "landmark_max_vox": float(err.max()),
        "hemisphere": hemi, "seconds": seconds, "folded": qc["folded_fraction"],
        "jacobian": (round(qc["jacobian_min"], 3), round(qc["jacobian_max"], 3)),
    }


def counts_pair(resolution: float, seed: int) -> dict:
    import tempfile

    import pandas as pd

    from voxelflow.pipelines.config import load_config
    from voxelflow.pipelines.run import run_pipeline
    from voxelflow.synth_atlas import write_synthetic_experiment

    with tempfile.TemporaryDirectory() as tmp:
        exp = write_synthetic_experiment(tmp, resolution=resolution, seed=seed, n_objects=400, orientation=None,
                                         factors=None)
        t0 = time.perf_counter()
        result = run_pipeline(load_config(exp["config"]), progress=False)
        seconds = time.perf_counter() - t0
        truth = exp["truth"]
        got = result.regions.set_index("id")
        planted = truth.groupby("region_id").size()
        rel = [abs(got.loc[r, "count_self"] - n) / n for r, n in planted.items() if n >= 10]
        objects = result.objects
        found = objects[["z", "y", "x"]].to_numpy()
        nearest = np.argmin(np.linalg.norm(found[:, None] - truth[["z", "y", "x"]].to_numpy()[None], axis=2), axis=1)
        matched = truth.iloc[nearest]
        side = pd.Series(objects["hemisphere"].to_numpy() == matched["hemisphere"].to_numpy())
        return {"seed": seed, "orientation": exp["synthetic"].orientation, "planted": len(truth),
                "found": len(objects), "regions_10plus": len(rel), "max_rel_count_error": max(rel, default=0.0),
                "region_right": float((objects["region_id"].to_numpy() == matched["region_id"].to_numpy()).mean()),
                "hemisphere_right": float(side.mean()), "seconds": seconds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=("accuracy", "counts", "speed"))
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--resolution", type=float, default=200.0)
    ap.add_argument("--first-seed", type=int, default=10)
    args = ap.parse_args()
    print(f"load average {os.getloadavg()}")
    if args.mode == "accuracy":
        rows = []
        for seed in range(args.first_seed, args.first_seed + args.pairs):
            r = one_pair(args.resolution, seed)
            rows.append(r)
            print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()), flush=True)
        keys = ("dice_mean", "dice_large", "landmark_vox", "hemisphere", "seconds")
        print("MEAN " + " ".join(f"{k}={np.mean([r[k] for r in rows]):.3f}" for k in keys))
        print("WORST dice_mean={:.3f} dice_large={:.3f} landmark_vox={:.3f} hemisphere={:.4f}".format(
            min(r["dice_mean"] for r in rows), min(r["dice_large"] for r in rows),
            max(r["landmark_vox"] for r in rows), min(r["hemisphere"] for r in rows)))
    elif args.mode == "counts":
        for seed in range(args.first_seed, args.first_seed + args.pairs):
            print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in counts_pair(args.resolution, seed).items()), flush=True)
    else:
        r = one_pair(args.resolution, args.first_seed, factors=(1.0, 1.0, 1.0))
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(" ".join(f"{k}={v}" for k, v in r.items()))
        print(f"registration {r['seconds']:.1f} s, peak RSS {rss:.0f} MB, atlas {args.resolution:g} um, "
              f"coarse scan {r['coarse_shape']} ({np.prod(r['coarse_shape']) / 1e6:.1f} MVox)")
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
