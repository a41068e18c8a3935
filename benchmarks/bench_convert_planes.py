"""Convert a folder of uncompressed uint16 TIFF planes to a 4-level OME-Zarr; reading planes directly in a run.

Measured in one run, each case in its own subprocess (peak RSS of the process tree
sampled from outside):

* ``read``: every plane read once with tifffile (2 threads), the input's I/O floor;
* ``write0``: level 0 written once (``write_ome_zarr``, 1 level, same chunks) from
  16 planes of the scan held in memory and reused (the copy time is measured apart and subtracted);
* ``convert``: ``voxelflow convert`` of the folder to 4 levels. Goal: wall time
  <= 1.3 x (read + write0), peak RSS < 1 GB and independent of the plane count
  (also converted: the first half of the planes);
* ``run``: ``voxelflow run`` (plaque pipeline, no atlas) on the first ``--run-planes``
  planes read directly from the folder, and on the same crop of the converted
  OME-Zarr (``?slices=``): the ratio says when converting first pays off.

The planes are written once to ``benchmarks/.data/planes-<Y>x<X>-<Z>/`` and kept: lightsheet-like
content (noise, per-plane brightness steps, bright balls on a lattice). The files
are in the page cache after writing, so ``read`` measures decoding and copying, as
the convert does. Usage::

    python benchmarks/bench_convert_planes.py               # ~2 GB: 256 planes of 2048 x 2048
    python benchmarks/bench_convert_planes.py --quick       # 64 planes of 1024 x 1024
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import DATA, emit, machine, markdown_table, run_measured

SCALE_UM = (4.0, 1.8, 1.8)
SPACING = 24
RADIUS = 4


def _disk_masks(ny: int, nx: int) -> list[np.ndarray]:
    """Cross-sections of the lattice balls at |dz| = 0..RADIUS from their centre plane."""
    yy, xx = np.mgrid[:SPACING, :SPACING]
    d2 = (yy - SPACING // 2) ** 2 + (xx - SPACING // 2) ** 2
    masks = []
    for dz in range(RADIUS + 1):
        tile = d2 <= RADIUS**2 - dz**2
        masks.append(np.tile(tile, (-(-ny // SPACING), -(-nx // SPACING)))[:ny, :nx])
    return masks


class PlaneMaker:
    """Plane ``z`` of the synthetic scan, cheap to make: (Y, X) uint16."""

    def __init__(self, ny: int, nx: int):
        rng = np.random.default_rng(0)
        self.noise = [rng.integers(80, 200, (ny, nx), dtype=np.uint16) for _ in range(4)]
        self.masks = _disk_masks(ny, nx)
        self.stripes = (40 * (1 + np.sin(np.arange(nx) / 5.0))).astype(np.uint16)[None, :]

    def __call__(self, z: int) -> np.ndarray:
        plane = self.noise[z % 4] * np.uint16(1 + z % 3) + self.stripes  # per-plane brightness steps
        dz = abs(z % SPACING - SPACING // 2)
        if dz <= RADIUS:
            plane[self.masks[dz]] += np.uint16(3000 + 7 * (z % 50))
        return plane


def ensure_planes(nz: int, ny: int, nx: int) -> Path:
    import tifffile

    folder = DATA / f"planes-{ny}x{nx}-{nz}"
    done = folder / ".complete"
    if done.exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    make = PlaneMaker(ny, nx)
    for z in range(nz):
        tifffile.imwrite(folder / f"plane_Z{z:04d}.tif", make(z))
    done.write_text("ok")
    return folder


def subset(folder: Path, n: int) -> Path:
    """A folder of links to the first ``n`` planes."""
    out = folder.parent / f"{folder.name}-first{n}"
    if (out / ".complete").exists():
        return out
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    for z in range(n):
        os.symlink(folder / f"plane_Z{z:04d}.tif", out / f"plane_Z{z:04d}.tif")
    (out / ".complete").write_text("ok")
    return out


# --- cases (each runs in its own subprocess) ------------------------------------------


def case_read(folder: str) -> dict:
    import tifffile

    files = sorted(Path(folder).glob("*.tif"))
    t0 = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        total = sum(pool.map(lambda f: int(tifffile.imread(f).sum(dtype=np.uint64) > 0), files))
    return {"seconds": round(time.perf_counter() - t0, 3), "planes": total}


def _generated(nz: int, ny: int, nx: int, zc: int):
    """The scan's planes without reading them: 16 real planes made once, reused cyclically (a copy per plane)."""
    import dask.array as da

    make = PlaneMaker(ny, nx)
    cycle = [make(z) for z in range(16)]

    def block(block_info=None):
        lo, hi = block_info[None]["array-location"][0]
        return np.stack([cycle[z % 16] for z in range(lo, hi)])

    return da.map_blocks(block, chunks=((zc,) * (nz // zc) + ((nz % zc,) if nz % zc else ()), (ny,), (nx,)),
                         dtype=np.uint16, meta=np.empty((0, 0, 0), np.uint16))


def case_write0(out: str, nz: int, ny: int, nx: int) -> dict:
    import dask

    from voxelflow.io.convert import convert_chunks
    from voxelflow.io.ome_zarr import write_ome_zarr

    chunks = convert_chunks((nz, ny, nx), np.uint16, ("z", "y", "x"), (2, 2, 2))
    arr = _generated(nz, ny, nx, chunks[0])
    with dask.config.set(scheduler="threads", num_workers=2):
        t0 = time.perf_counter()
        arr.map_blocks(lambda b: np.zeros((1, 1, 1), np.uint8), dtype=np.uint8, chunks=(1, 1, 1)).compute()
        gen = time.perf_counter() - t0
        t0 = time.perf_counter()
        write_ome_zarr(arr, out, scale=SCALE_UM, units="micrometer", levels=1, chunks=chunks, overwrite=True)
        total = time.perf_counter() - t0
    return {"seconds": round(total - gen, 3), "seconds_with_generation": round(total, 3),
            "generation_s": round(gen, 3), "chunks": list(chunks)}


def case_convert(folder: str, out: str) -> dict:
    import dask

    from voxelflow.io.convert import convert_to_ome_zarr

    shutil.rmtree(out, ignore_errors=True)
    with dask.config.set(scheduler="threads", num_workers=2):
        t0 = time.perf_counter()
        convert_to_ome_zarr(folder, out, scale_um=SCALE_UM, levels=4, overwrite=True)
    return {"seconds": round(time.perf_counter() - t0, 3)}


def case_run(url: str, out: str, scale: bool) -> dict:
    from voxelflow.cli import main

    shutil.rmtree(out, ignore_errors=True)
    argv = ["run", os.devnull, "--set", f'input.url="{url}"', "--out", out, "--no-report", "--quiet",
            "--set", "pipeline.bias=false", "--set", "pipeline.mask=\"none\"", "--set", "pipeline.threshold=2000"]
    if scale:
        argv += ["--set", f"input.scale_um={list(SCALE_UM)}"]
    t0 = time.perf_counter()
    code = main(argv)
    seconds = time.perf_counter() - t0
    if code:
        raise SystemExit(f"voxelflow run exited with {code}")
    objects = json.loads((Path(out) / "run.json").read_text())["objects"]
    return {"seconds": round(seconds, 3), "objects": objects}


CASES = {"read": case_read, "write0": case_write0, "convert": case_convert, "run": case_run}


def _case(name: str, *args) -> dict:
    argv = [sys.executable, __file__, "--case", name, json.dumps(args)]
    result = run_measured(argv, timeout=3600)
    result["case"] = name
    print(f"  {name}: {json.dumps(result)}", flush=True)
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--planes", type=int, default=256, help="number of planes (default 256: ~2 GB)")
    parser.add_argument("--size", type=int, default=2048, help="plane side in pixels (default 2048)")
    parser.add_argument("--run-planes", type=int, default=64, help="planes of the voxelflow run comparison")
    parser.add_argument("--skip-run", action="store_true", help="no voxelflow run comparison")
    parser.add_argument("--quick", action="store_true", help="64 planes of 1024 x 1024")
    parser.add_argument("--case", default=None, help=argparse.SUPPRESS)
    parser.add_argument("args", nargs="?", default="[]", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.case:
        emit(CASES[args.case](*json.loads(args.args)))
        return 0
    nz, side = (64, 1024) if args.quick else (args.planes, args.size)
    run_planes = min(args.run_planes, nz)
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    folder = ensure_planes(nz, side, side)
    half = subset(folder, nz // 2)
    gb = nz * side * side * 2 / 1e9
    print(f"== {nz} planes of {side} x {side} uint16 ({gb:.2f} GB) in {folder} (ready in "
          f"{time.perf_counter() - t0:.0f} s); load {os.getloadavg()}", flush=True)
    work = DATA / "convert-out"
    work.mkdir(exist_ok=True)
    read = _case("read", str(folder))
    write0 = _case("write0", str(work / "level0.ome.zarr"), nz, side, side)
    convert = _case("convert", str(folder), str(work / "planes.ome.zarr"))
    convert_half = _case("convert", str(half), str(work / "half.ome.zarr"))
    rows = [
        {"case": "read every plane once (2 threads)", "s": read.get("seconds"), "peak MB": read.get("peak_rss_mb")},
        {"case": "write level 0 once (generation excluded)", "s": write0.get("seconds"),
         "peak MB": write0.get("peak_rss_mb")},
        {"case": f"convert, 4 levels ({nz} planes)", "s": convert.get("seconds"),
         "peak MB": convert.get("peak_rss_mb")},
        {"case": f"convert, 4 levels ({nz // 2} planes)", "s": convert_half.get("seconds"),
         "peak MB": convert_half.get("peak_rss_mb")},
    ]
    figures = {"machine": machine(), "load_before": load_before, "planes": nz, "side": side, "gb": round(gb, 2),
               "read": read, "write0": write0, "convert": convert, "convert_half": convert_half}
    if all("seconds" in r for r in (read, write0, convert)):
        ratio = convert["seconds"] / (read["seconds"] + write0["seconds"])
        figures["convert_vs_read_plus_write0"] = round(ratio, 2)
        rows.append({"case": "convert / (read + write level 0)", "s": round(ratio, 2), "peak MB": None})
    if not args.skip_run:
        crop = subset(folder, run_planes)
        direct = _case("run", str(crop), str(work / "run-planes"), True)
        zarr_url = f"{work / 'planes.ome.zarr'}?slices=[0:{run_planes}]"
        converted = _case("run", zarr_url, str(work / "run-zarr"), False)
        figures.update(run_planes=direct, run_ome_zarr=converted)
        rows += [{"case": f"voxelflow run on {run_planes} planes (folder)", "s": direct.get("seconds"),
                  "peak MB": direct.get("peak_rss_mb")},
                 {"case": "voxelflow run on the same crop of the OME-Zarr", "s": converted.get("seconds"),
                  "peak MB": converted.get("peak_rss_mb")}]
        if "seconds" in direct and "seconds" in converted:
            figures["run_planes_vs_ome_zarr"] = round(direct["seconds"] / converted["seconds"], 2)
            rows.append({"case": "run on planes / run on OME-Zarr", "s": figures["run_planes_vs_ome_zarr"],
                         "peak MB": None})
    figures["load_after"] = os.getloadavg()
    print(markdown_table(rows, [("case", "case"), ("s", "seconds (or ratio)"), ("peak MB", "peak RSS MB")]))
    print(f"load average before {figures['load_before']}, after {figures['load_after']}")
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / "bench_convert_planes.json").write_text(json.dumps(figures, indent=1))
    failed = [r["case"] for r in (read, write0, convert, convert_half) if "error" in r]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
