"""voxelflow next to the peers and the in-memory limit, on planted-truth volumes.

For each size (default 128x256x256 and 256x512x512, float32, 64^3 chunks, zarr v2):

* chain (threshold -> label -> object table -> count), disk to DataFrame:
  voxelflow vs cvpl-tools 1.0.0 (see ``peer_cvpl.py``), both on a LocalCluster of
  one worker process with 2 threads;
* labelling alone (threshold -> label, the labelled array computed and reduced to
  its maximum, nothing stored): voxelflow ``label`` vs ``dask_image.ndmeasure.label``,
  same cluster;
* the in-memory limit: ``cc3d`` (connected_components + statistics) and
  ``scipy.ndimage`` (label + find_objects + center_of_mass + sum_labels) on the whole
  array, single-threaded, array already in memory (no I/O; loading not timed).

Every case runs in its own subprocess; peak memory is the summed RSS of its process
tree. Object counts are printed next to the planted truth. Usage::

    python benchmarks/bench_peers.py                 # both sizes, all cases
    python benchmarks/bench_peers.py --sizes 128,256,256 --skip-peer-above 10
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit, ensure_volume, local_cluster, run_measured, threshold_for

SIZES = ((128, 256, 256), (256, 512, 512))
SINGLE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


# --- the cases (run inside a subprocess) ---------------------------------------------


def _case_voxelflow_chain(path, threshold, threads):
    import dask.array as da

    from voxelflow.ops._counts import count_objects
    from voxelflow.ops._objects import object_table
    from voxelflow.ops._threshold import threshold as vf_threshold

    cluster, client = local_cluster(1, threads)
    try:
        img = da.from_zarr(path)
        t0 = time.perf_counter()
        # object_table labels a BS in the same pass that gathers the statistics
        # (ids equal to label()'s), so no labelled volume is computed or stored.
        lc = object_table(vf_threshold(img, threshold), connectivity=1)
        count = count_objects(lc)
        seconds = time.perf_counter() - t0
    finally:
        client.close()
        cluster.close()
    return {"seconds": seconds, "n_objects": int(count), "object_voxels": int(lc["voxels"].sum())}


def _case_voxelflow_label(path, threshold, threads):
    import dask.array as da

    from voxelflow.ops._label import label

    cluster, client = local_cluster(1, threads)
    try:
        t0 = time.perf_counter()
        os_arr, n = label(da.from_zarr(path) > threshold, connectivity=1)
        top = int(os_arr.max().compute())
        seconds = time.perf_counter() - t0
    finally:
        client.close()
        cluster.close()
    return {"seconds": seconds, "n_objects": int(n), "max_label": top}


def _case_dask_image_label(path, threshold, threads):
    import dask.array as da
    from dask_image.ndmeasure import label

    cluster, client = local_cluster(1, threads)
    try:
        t0 = time.perf_counter()
        lab, n = label(da.from_zarr(path) > threshold)
        top, n = da.compute(lab.max(), n)
        seconds = time.perf_counter() - t0
    finally:
        client.close()
        cluster.close()
    return {"seconds": seconds, "n_objects": int(n), "max_label": int(top)}


def _load(path):
    import zarr

    return zarr.open_array(path, mode="r")[...]


def _case_cc3d(path, threshold, threads):
    import cc3d

    img = _load(path)
    t0 = time.perf_counter()
    labels, n = cc3d.connected_components(img > threshold, connectivity=6, return_N=True)
    t_label = time.perf_counter() - t0
    stats = cc3d.statistics(labels)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "label_seconds": t_label, "n_objects": int(n),
            "object_voxels": int(stats["voxel_counts"][1:].sum())}


def _case_scipy(path, threshold, threads):
    import numpy as np
    from scipy import ndimage as ndi

    img = _load(path)
    t0 = time.perf_counter()
    bs = img > threshold
    labels, n = ndi.label(bs)
    t_label = time.perf_counter() - t0
    index = np.arange(1, n + 1)
    ndi.find_objects(labels)
    ndi.center_of_mass(bs, labels, index)
    voxels = ndi.sum_labels(bs, labels, index)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "label_seconds": t_label, "n_objects": int(n),
            "object_voxels": int(voxels.sum())}


CASES = {
    "voxelflow_chain": _case_voxelflow_chain,
    "voxelflow_label": _case_voxelflow_label,
    "dask_image_label": _case_dask_image_label,
    "cc3d": _case_cc3d,
    "scipy": _case_scipy,
}


CASE_TIMEOUT = 300.0  # seconds; a slower case is reported as "timed out", with bounds


def _measure(case: str, volume, threads: int = 2, env=None, timeout: float = CASE_TIMEOUT) -> dict:
    argv = [sys.executable, str(Path(__file__).resolve()), "--case", case, "--volume", str(volume.path),
            "--threshold", str(threshold_for(volume.dtype)), "--threads", str(threads)]
    return run_measured(argv, env=env, timeout=timeout)


def measure_voxelflow_chain(volume, threads: int = 2) -> dict:
    """voxelflow's chain on ``volume`` in a subprocess; result dict with seconds and peak_rss_mb."""
    return _measure("voxelflow_chain", volume, threads)


# --- comparison ----------------------------------------------------------------------


def _row(size, task, tool, res, volume, reference=None) -> dict:
    """One result-table row; ratios against ``reference`` (voxelflow's result) when given."""
    row = {"size": size, "task": task, "tool": tool, "truth": volume.n_objects}
    if "timed_out_s" in res:
        # Bounds rather than a blank: the case took at least this long.
        row.update(seconds=f"> {res['timed_out_s']:.0f}", mvox_s=f"< {volume.mvox / res['timed_out_s']:.2g}",
                   peak_rss_mb=res["peak_rss_mb"], error=res["error"])
        if reference is not None and "error" not in reference:
            row["time_vs_voxelflow"] = f"> {res['timed_out_s'] / reference['seconds']:.0f}"
        return row
    if "error" in res:
        row["error"] = res["error"].splitlines()[-1][:160]
        return row
    row.update(seconds=round(res["seconds"], 3), mvox_s=round(volume.mvox / res["seconds"], 1),
               peak_rss_mb=res["peak_rss_mb"], objects=res.get("n_objects"),
               count_estimate=res.get("count_estimate"))
    if "object_voxels" in res:
        row["exact"] = res["n_objects"] == volume.n_objects and res["object_voxels"] == volume.object_voxels
    if reference is not None and "error" not in reference:
        row["time_vs_voxelflow"] = round(res["seconds"] / reference["seconds"], 2)
        row["mem_vs_voxelflow"] = round(res["peak_rss_mb"] / reference["peak_rss_mb"], 2)
    return row


def compare(volume, *, run_peer: bool = True, threads: int = 2, timeout: float = CASE_TIMEOUT,
            log=print) -> list[dict]:
    """All peer cases on one volume; rows for the result table (ratios relative to voxelflow)."""
    from peer_cvpl import measure_peer

    size = "x".join(map(str, volume.shape))
    log(f"== {size} ({volume.mvox:.1f} MVox, {volume.n_objects} planted objects)")
    rows = []

    def add(*row_args, **row_kwargs):
        rows.append(_row(size, *row_args, volume, **row_kwargs))
        log(format_row(rows[-1]))

    vf = _measure("voxelflow_chain", volume, threads)
    add("chain", "voxelflow", vf)
    if run_peer:
        add("chain", "cvpl-tools 1.0.0", measure_peer(volume, threads, timeout), reference=vf)
    vfl = _measure("voxelflow_label", volume, threads)
    add("label", "voxelflow", vfl)
    add("label", "dask-image", _measure("dask_image_label", volume, threads, timeout=timeout), reference=vfl)
    for tool in ("cc3d", "scipy"):
        add("chain in memory, 1 thread", tool, _measure(tool, volume, 1, env=SINGLE_THREAD), reference=vf)
    return rows


def format_row(row: dict) -> str:
    if "error" in row:
        bound = f" (time / voxelflow {row['time_vs_voxelflow']})" if "time_vs_voxelflow" in row else ""
        return f"  {row['task']:<26} {row['tool']:<18} FAILED: {row['error']}{bound}"
    ratio = ""
    if "time_vs_voxelflow" in row:
        ratio = f"  time x{row['time_vs_voxelflow']:<6} mem x{row['mem_vs_voxelflow']}"
    est = f" (estimate {row['count_estimate']:.1f})" if row.get("count_estimate") is not None else ""
    return (f"  {row['task']:<26} {row['tool']:<18} {row['seconds']:8.2f} s {row['mvox_s']:8.1f} MVox/s "
            f"{row['peak_rss_mb']:8.0f} MB  objects {row['objects']}{est} / truth {row['truth']}{ratio}")


def print_comparison(volume, vf: dict, peers: dict) -> None:
    """Print voxelflow's chain result and each peer's, with ratios and the planted truth."""
    size = "x".join(map(str, volume.shape))
    print(format_row(_row(size, "chain", "voxelflow", vf, volume)))
    for name, res in peers.items():
        print(format_row(_row(size, "chain", name, res, volume, reference=vf)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="*", default=[",".join(map(str, s)) for s in SIZES],
                        help="volume shapes z,y,x (default: 128,256,256 256,512,512)")
    parser.add_argument("--skip-peer-above", type=float, default=None, metavar="MVOX",
                        help="skip cvpl-tools on volumes larger than this many MVox (default: run all)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--case-timeout", type=float, default=CASE_TIMEOUT,
                        help=f"give up on a peer case after this many seconds (default {CASE_TIMEOUT:.0f})")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.add_argument("--case", choices=sorted(CASES), help=argparse.SUPPRESS)
    parser.add_argument("--volume", help=argparse.SUPPRESS)
    parser.add_argument("--threshold", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.case:
        emit(CASES[args.case](args.volume, args.threshold, args.threads))
        return 0
    rows = []
    for spec in args.sizes:
        volume = ensure_volume(tuple(int(s) for s in spec.split(",")))
        run_peer = args.skip_peer_above is None or volume.mvox <= args.skip_peer_above
        rows += compare(volume, run_peer=run_peer, threads=args.threads, timeout=args.case_timeout)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0 if all("error" not in r or "timed out" in r["error"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
