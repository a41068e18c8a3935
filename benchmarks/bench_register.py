"""Atlas registration: accuracy over random synthetic pairs and speed at mouse-brain size.

``accuracy``: for each seed, a synthetic atlas (voxelflow.synth_atlas) is
warped into a scan with a known affine + smooth deformation, bias field,
noise, another orientation and a 2-4x finer anisotropic resolution; the scan
is block-averaged back to about the atlas resolution (and, where that is coarser
than the finest registration level, towards that level too: the ``detail``
image registration optimises on, as the pipeline makes it) and registered with the
default parameters, through the pipeline's path (``register_scan``: the
48-code orientation check, reorientation, registration; the QC verdict of
``check_registration`` is printed as ``qc``). Printed per pair: mean Dice over
painted regions (and over regions above 1,000 voxels of the atlas annotation),
mean landmark error (atlas voxels, 500
random points inside the brain), hemisphere agreement (split by the registered
midline as the pipeline does; ``hemisphere_unfilled`` from the warped hemisphere
image alone, 0 outside the atlas brain), seconds and CPU seconds.

``speed``: one pair at a given atlas resolution (50 um ~ 10 MVox, 25 um ~
80 MVox), the scan made directly at the atlas resolution (the registration
input size is what matters). The pair is made once in its own process and
cached under ``benchmarks/.data``; the registration (orientation check
included, as the pipeline runs it) then runs in a fresh process: wall time,
CPU seconds (all threads), peak RSS of the process up to the end of the
registration (inputs included; the truth is loaded afterwards) and of the whole
process (sampled from outside),
Dice and landmark error against the planted truth, load average before and
after (the machine is shared: compare CPU seconds).

Run: ``python benchmarks/bench_register.py accuracy --pairs 5 --resolution 200``
and ``python benchmarks/bench_register.py speed --resolution 50``. Counts end to end
through ``voxelflow run``: ``benchmarks/bench_register_counts.py``. Report the
figures with ``uptime`` load: the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import dask.array as da
import numpy as np

from voxelflow.errors import RegistrationError
from voxelflow.io.blockreduce import block_reduce
from voxelflow.io.brainglobe import Atlas
from voxelflow.ops._atlas_map import detail_factors, register_scan, registration_factors
from voxelflow.ops._register import RegistrationParameters, check_registration
from voxelflow.synth_atlas import ATLAS_REGIONS, dice_per_region, make_synthetic_atlas, make_synthetic_scan

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA, emit, run_measured  # noqa: E402


def one_pair(resolution: float, seed: int, factors=None, params=None) -> dict:
    atlas = make_synthetic_atlas(resolution=resolution)
    scan = make_synthetic_scan(atlas, seed=seed, factors=factors)
    f = registration_factors(scan.scale, scan.orientation, atlas.resolution, atlas.orientation)
    coarse = block_reduce(da.from_array(scan.image, chunks=128), f, "mean").compute()
    cscale = tuple(s * k for s, k in zip(scan.scale, f))
    params = params or RegistrationParameters()
    fd = detail_factors(scan.scale, f, min(atlas.resolution), params)
    t0, c0 = time.perf_counter(), time.process_time()
    detail = None if fd is None else block_reduce(da.from_array(scan.image, chunks=128), fd, "mean").compute()
    dscale = None if fd is None else tuple(s * k for s, k in zip(scan.scale, fd))
    mapping = register_scan(coarse, cscale, scan.orientation, atlas, params, check=False, detail=detail,
                            detail_scale=dscale)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    try:
        check_registration(mapping.registration)
        verdict = "accepted"
    except RegistrationError as exc:
        verdict = f"refused: {exc}"
    truth, truth_hemi = scan.truth_on_grid(coarse.shape, cscale)
    dice = dice_per_region(truth, mapping.labels_to_scan(atlas.annotation))
    atlas_voxels = np.bincount(atlas.annotation.ravel())
    large = dice.id.map(lambda rid: atlas_voxels[rid] if rid < len(atlas_voxels) else 0) > 1000
    brain = truth > 0
    hemi = float((mapping.hemispheres_to_scan(atlas.hemispheres)[brain] == truth_hemi[brain]).mean())
    hemi_unfilled = float((mapping.labels_to_scan(atlas.hemispheres)[brain] == truth_hemi[brain]).mean())
    rng = np.random.default_rng(seed)
    inside = np.argwhere(brain)
    pick = inside[rng.choice(len(inside), 500)]
    pts = (pick + rng.uniform(0, 1, pick.shape)) * np.asarray(cscale)
    err = np.linalg.norm(mapping.scan_to_atlas(pts) - scan.scan_to_atlas(pts), axis=1) / float(resolution)
    qc = mapping.registration.qc
    return {
        "seed": seed, "orientation": scan.orientation, "scan_shape": scan.image.shape,
        "coarse_shape": coarse.shape, "detail_factors": fd, "max_deformation_vox": round(scan.max_displacement_vox, 2),
        "dice_mean": float(dice.dice.mean()), "dice_large": float(dice[large].dice.mean()),
        "dice_min": float(dice.dice.min()), "landmark_vox": float(err.mean()), "landmark_max_vox": float(err.max()),
        "hemisphere": hemi, "hemisphere_unfilled": hemi_unfilled, "seconds": seconds, "cpu_seconds": cpu,
        "folded": qc["folded_fraction"],
        "jacobian": (round(qc["jacobian_min"], 3), round(qc["jacobian_max"], 3)), "qc": verdict,
        "dice": {int(r): round(float(d), 3) for r, d in zip(dice.id, dice.dice)},
    }


def prepare_pair(resolution: float, seed: int, folder: Path) -> None:
    """Write the speed pair: atlas arrays, the coarse scan, its true labels and 500 landmarks (npy + JSON).

    Every array is written as soon as it is made and dropped (the 25 um pair stays well under 3 GB).
    """
    atlas = make_synthetic_atlas(resolution=resolution)
    scan = make_synthetic_scan(atlas, seed=seed, factors=(1.0, 1.0, 1.0))
    f = registration_factors(scan.scale, scan.orientation, atlas.resolution, atlas.orientation)
    cscale = np.asarray([s * k for s, k in zip(scan.scale, f)])
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("reference", "annotation", "hemispheres"):
        np.save(folder / f"{name}.npy", getattr(atlas, name))
    coarse = block_reduce(da.from_array(scan.image, chunks=128), f, "mean").compute()
    np.save(folder / "coarse.npy", coarse)
    shape = coarse.shape
    del coarse
    truth, truth_hemi = scan.truth_on_grid(shape, cscale)  # slab by slab
    np.save(folder / "truth.npy", truth)
    np.save(folder / "truth_hemi.npy", truth_hemi)
    del truth_hemi
    rng = np.random.default_rng(seed)
    pick = _nonzero_rows(truth > 0, rng, 500)
    landmarks = (pick + rng.uniform(0, 1, pick.shape)) * cscale
    np.save(folder / "landmarks.npy", landmarks)
    np.save(folder / "landmarks_atlas.npy", scan.scan_to_atlas(landmarks))
    (folder / "pair.json").write_text(json.dumps({
        "resolution": resolution, "orientation": scan.orientation, "atlas_orientation": atlas.orientation,
        "coarse_scale": cscale.tolist(), "max_deformation_vox": scan.max_displacement_vox}))


def _nonzero_rows(mask: np.ndarray, rng, n: int) -> np.ndarray:
    """``np.argwhere(mask)[rng.choice(count, n)]`` without the (count, 3) index array: (n, 3) int64."""
    cumulative = np.cumsum(mask.sum(axis=(1, 2), dtype=np.int64))
    ranks = rng.choice(int(cumulative[-1]), n)
    z = np.searchsorted(cumulative, ranks, side="right")
    within = ranks - np.concatenate([[0], cumulative])[z]
    rows = [np.concatenate([[k], np.argwhere(mask[k])[r]]) for k, r in zip(z, within)]
    return np.asarray(rows, dtype=np.int64).reshape(-1, 3)


def speed_case(folder: Path, profile: bool = False) -> dict:
    """Register the cached pair (in this fresh process) and measure it against its truth.

    The evaluation after the registration warps the annotation and the hemispheres onto the coarse
    grid (as the pipeline's ``atlas_labels`` step does; timed apart) and scores them slab by slab,
    one full-grid array at a time besides the truth. With ``profile`` the registration call's
    cProfile summary is written to ``profile_registration.txt`` beside the pair.
    """
    meta = json.loads((folder / "pair.json").read_text())
    load = {name: np.load(folder / f"{name}.npy") for name in ("reference", "annotation", "hemispheres", "coarse")}
    res = float(meta["resolution"])
    atlas = Atlas(load["reference"], load["annotation"], load["hemispheres"], ATLAS_REGIONS.copy(), (res,) * 3,
                  meta["atlas_orientation"])
    load_before = os.getloadavg()
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    t0, c0 = time.perf_counter(), time.process_time()
    mapping = register_scan(load.pop("coarse"), meta["coarse_scale"], meta["orientation"], atlas,
                            RegistrationParameters(), check=False)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    if profiler is not None:
        import io
        import pstats

        profiler.disable()
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(40)
        (folder / "profile_registration.txt").write_text(text.getvalue())
    load_after = os.getloadavg()
    rss_registration = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # the truth is not loaded yet
    t1 = time.perf_counter()
    labels = mapping.labels_to_scan(atlas.annotation)
    seconds_labels = time.perf_counter() - t1
    truth = np.load(folder / "truth.npy")
    dice = _dice_by_slabs(truth, labels)
    del labels
    t1 = time.perf_counter()
    hemispheres = mapping.hemispheres_to_scan(atlas.hemispheres)
    seconds_hemispheres = time.perf_counter() - t1
    truth_hemi = np.load(folder / "truth_hemi.npy")
    agree = brain = 0
    for z in range(0, truth.shape[0], 16):
        inside = truth[z:z + 16] > 0
        agree += int((hemispheres[z:z + 16][inside] == truth_hemi[z:z + 16][inside]).sum())
        brain += int(inside.sum())
    hemi = agree / brain
    err = np.linalg.norm(mapping.scan_to_atlas(np.load(folder / "landmarks.npy"))
                         - np.load(folder / "landmarks_atlas.npy"), axis=1)
    qc = mapping.registration.qc
    return {"resolution_um": res, "atlas_mvox": round(float(np.prod(atlas.shape)) / 1e6, 1),
            "scan_mvox": round(float(np.prod(truth.shape)) / 1e6, 1), "seconds": round(seconds, 1),
            "cpu_seconds": round(cpu, 1), "peak_rss_registration_mb": round(rss_registration),
            "seconds_affine": qc["seconds_affine"],
            "seconds_deformable": qc["seconds_deformable"], "working_spacing_um": qc["working_spacing_um"],
            "seconds_labels_to_scan": round(seconds_labels, 1),
            "seconds_hemispheres_to_scan": round(seconds_hemispheres, 1),
            "dice_mean": round(float(dice.dice.mean()), 3),
            "dice_large": round(float(dice[dice.voxels > 1000 * (200.0 / res) ** 3].dice.mean()), 3),
            "hemisphere": round(hemi, 4), "landmark_um": round(float(err.mean()), 1),
            "landmark_vox": round(float(err.mean()) / res, 2), "folded": qc["folded_fraction"],
            "dice": {int(r): round(float(d), 3) for r, d in zip(dice.id, dice.dice)},
            "load_before": [round(v, 1) for v in load_before], "load_after": [round(v, 1) for v in load_after]}


def _dice_by_slabs(truth: np.ndarray, predicted: np.ndarray, rows: int = 16):
    """``dice_per_region(truth, predicted)`` counted slab by slab along axis 0 (same table, little memory)."""
    import pandas as pd

    n = int(max(truth.max(), predicted.max())) + 1
    t_count = np.zeros(n, np.int64)
    p_count = np.zeros(n, np.int64)
    both = np.zeros(n, np.int64)
    for z in range(0, truth.shape[0], rows):
        t, p = truth[z:z + rows].ravel(), predicted[z:z + rows].ravel()
        t_count += np.bincount(t, minlength=n)
        p_count += np.bincount(p, minlength=n)
        both += np.bincount(t[t == p], minlength=n)
    ids = np.flatnonzero(t_count[1:]) + 1
    dice = [2.0 * float(both[i]) / float(t_count[i] + p_count[i]) for i in ids]
    return pd.DataFrame({"id": ids.astype(np.int64), "voxels": t_count[ids], "dice": dice})


def speed(resolution: float, seed: int, profile: bool = False) -> None:
    """Prepare (once) and register the speed pair, each in its own measured process."""
    folder = DATA / f"register_{resolution:g}um_seed{seed}"
    me = [sys.executable, __file__]
    if not (folder / "pair.json").exists():
        made = run_measured(me + ["prepare", "--resolution", str(resolution), "--first-seed", str(seed)],
                            timeout=3600)
        print(f"pair made: {made}", flush=True)
    got = run_measured(me + ["speed-case", "--resolution", str(resolution), "--first-seed", str(seed)]
                       + (["--profile"] if profile else []), timeout=7200)
    print(json.dumps(got))
    if "error" not in got:
        print(f"registration at {resolution:g} um: {got['seconds']} s wall, {got['cpu_seconds']} CPU s, peak RSS "
              f"{got['peak_rss_mb']:.0f} MB, Dice {got['dice_mean']} (large {got['dice_large']}), hemisphere "
              f"{got['hemisphere']:.2%}, landmark {got['landmark_um']} um; load {got['load_before']} -> "
              f"{got['load_after']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=("accuracy", "speed", "prepare", "speed-case"))
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--resolution", type=float, default=200.0)
    ap.add_argument("--first-seed", type=int, default=10)
    ap.add_argument("--profile", action="store_true",
                    help="speed: write the registration's cProfile summary beside the cached pair")
    args = ap.parse_args()
    print(f"load average {os.getloadavg()}")
    if args.mode == "accuracy":
        rows = []
        for seed in range(args.first_seed, args.first_seed + args.pairs):
            r = one_pair(args.resolution, seed)
            rows.append(r)
            print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()
                           if k != "dice"), flush=True)
        keys = ("dice_mean", "dice_large", "landmark_vox", "hemisphere", "seconds", "cpu_seconds")
        print("MEAN " + " ".join(f"{k}={np.mean([r[k] for r in rows]):.3f}" for k in keys))
        print("WORST dice_mean={:.3f} dice_large={:.3f} landmark_vox={:.3f} hemisphere={:.4f}".format(
            min(r["dice_mean"] for r in rows), min(r["dice_large"] for r in rows),
            max(r["landmark_vox"] for r in rows), min(r["hemisphere"] for r in rows)))
        met = [r["seed"] for r in rows if r["dice_mean"] >= 0.85 and r["dice_large"] >= 0.9
               and r["landmark_vox"] <= 1.0 and r["hemisphere"] >= 0.99 and r["qc"] == "accepted"]
        print(f"GOALS (Dice >= 0.85, >= 0.9 above 1000 atlas voxels, landmark <= 1 voxel, hemisphere >= 99 %, "
              f"QC accepted) met by {len(met)} of {len(rows)} pairs: seeds {met}")
    elif args.mode == "prepare":
        prepare_pair(args.resolution, args.first_seed, DATA / f"register_{args.resolution:g}um_seed{args.first_seed}")
        emit({"prepared": True})
    elif args.mode == "speed-case":
        emit(speed_case(DATA / f"register_{args.resolution:g}um_seed{args.first_seed}", args.profile))
    else:
        speed(args.resolution, args.first_seed, args.profile)
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
