"""Run every benchmark of the peer/scale issue and write the result tables and plot.

Writes ``benchmarks/results/results.json``, ``results.md`` (Markdown tables, also
printed) and ``throughput.png`` (MVox/s and peak memory against volume size).
Synthetic volumes are cached under ``benchmarks/.data`` (about 6 GB for the full
run); the cvpl-tools venv is created on first use. Usage::

    python benchmarks/run_all.py            # full run (~20 min on 2 cores)
    python benchmarks/run_all.py --quick    # small sizes, checks that everything runs (~3 min)
    python benchmarks/run_all.py --with-team   # + bench_label.py, bench_ome_zarr.py, bench_convert_planes.py
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_peers
import bench_scale
from _common import RESULTS, ensure_volume, machine, markdown_table

QUICK = {
    "peer_sizes": ((64, 128, 128), (128, 128, 256)),
    "scale_sizes": ((64, 128, 256), (128, 256, 256)),
    "worker_size": (128, 256, 256),
    "graph_chunks": (10_000,),
}
FULL = {
    "peer_sizes": bench_peers.SIZES,
    "scale_sizes": bench_scale.SIZES,
    "worker_size": bench_scale.WORKER_SIZE,
    "graph_chunks": bench_scale.GRAPH_CHUNKS,
}

PEER_COLUMNS = [("size", "volume"), ("task", "task"), ("tool", "tool"), ("seconds", "s"),
                ("mvox_s", "MVox/s"), ("peak_rss_mb", "peak MB"), ("objects", "objects"),
                ("count_estimate", "count est."), ("truth", "truth"), ("exact", "exact"),
                ("time_vs_voxelflow", "time / voxelflow"),
                ("mem_vs_voxelflow", "memory / voxelflow"), ("error", "error")]
SCALE_COLUMNS = [("shape", "volume"), ("mvox", "MVox"), ("volume_gb", "GB"), ("workers", "workers"),
                 ("threads", "threads/worker"), ("memory_limit", "worker limit"), ("seconds", "s"),
                 ("mvox_s", "MVox/s"), ("peak_rss_mb", "peak MB"), ("client_mb", "client MB"), ("objects", "objects"),
                 ("truth", "truth"), ("exact", "exact"), ("workers_replaced", "restarts"), ("spilled_mb", "spilled MB"),
                 ("error", "error")]
GRAPH_COLUMNS = [("chunks", "chunks"), ("provisional_labels", "chunk labels"), ("contacts", "face contacts"),
                 ("objects", "objects"), ("seconds", "plan s"), ("client_peak_mb", "client MB"),
                 ("graph_pickled_mb", "graph MB"), ("max_spec_bytes", "max remap/task B"), ("error", "error")]


TEAM_BENCHMARKS = ("bench_label.py", "bench_ome_zarr.py", "bench_convert_planes.py")


def run_team_benchmarks(out: Path, quick: bool) -> None:
    """Run the kernel and OME-Zarr benchmarks, keeping their printout."""
    here = Path(__file__).resolve().parent
    for name in TEAM_BENCHMARKS:
        argv = [sys.executable, str(here / name)]
        if quick:
            argv += ["--size", "128"] if name == "bench_ome_zarr.py" else ["--quick"]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        text = done.stdout + (f"\nexit code {done.returncode}\n{done.stderr[-3000:]}" if done.returncode else "")
        (out / f"{Path(name).stem}.txt").write_text(text)
        print(f"== {name} (exit {done.returncode})\n{done.stdout}", flush=True)


def _drop_empty(columns, rows):
    return [(k, h) for k, h in columns if any(r.get(k) is not None for r in rows)]


def to_markdown(result: dict) -> str:
    m = result["machine"]
    parts = [(f"# voxelflow benchmarks\n\n{m['date']}, {m['cores']} cores, {m['memory_gb']} GB RAM, "
              f"Python {m['python']}; total {result['total_minutes']} min.\n"),
             "## Peers and in-memory limit (chain = threshold -> label -> object table -> count)\n",
             markdown_table(result["peers"], _drop_empty(PEER_COLUMNS, result["peers"])),
             "\n## Scale (OME-Zarr uint16, 64^3 chunks, threshold -> label -> object table -> count)\n",
             markdown_table(result["scale"]["sizes"], _drop_empty(SCALE_COLUMNS, result["scale"]["sizes"])),
             "\n### 1 vs 2 worker processes\n",
             markdown_table(result["scale"]["workers"], _drop_empty(SCALE_COLUMNS, result["scale"]["workers"])),
             "\n### Label graph (simulated merge plan + relabel task graph)\n",
             markdown_table(result["scale"]["graph"], _drop_empty(GRAPH_COLUMNS, result["scale"]["graph"]))]
    return "\n".join(parts) + "\n"


def plot(result: dict, path: Path) -> None:
    """Throughput and peak memory against volume size, one line per tool/task."""
    from matplotlib.figure import Figure

    series: dict[str, list[tuple[float, float, float]]] = {}
    for r in result["scale"]["sizes"]:
        if "error" not in r:
            series.setdefault("voxelflow chain (OME-Zarr uint16)", []).append((r["mvox"], r["mvox_s"],
                                                                                r["peak_rss_mb"]))
    for r in result["peers"]:
        if "error" in r:
            continue
        z, y, x = map(int, r["size"].split("x"))
        mvox = z * y * x / 1e6
        series.setdefault(f"{r['tool']} {r['task']} (zarr float32)", []).append((mvox, r["mvox_s"],
                                                                                  r["peak_rss_mb"]))
    fig = Figure(figsize=(15, 4.5), dpi=100)
    ax_t, ax_m = fig.subplots(1, 2)
    for name, pts in sorted(series.items()):
        pts.sort()
        xs, ts, ms = zip(*pts)
        ax_t.plot(xs, ts, marker="o", label=name)
        ax_m.plot(xs, ms, marker="o", label=name)
    for ax, ylabel in ((ax_t, "throughput (MVox/s)"), (ax_m, "peak memory, process tree (MB)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("volume size (MVox)")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
    ax_t.set_title("throughput vs volume size")
    ax_m.set_title("peak memory vs volume size")
    ax_m.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.tight_layout()
    fig.savefig(path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: check that every case runs")
    parser.add_argument("--skip-peer-above", type=float, default=None, metavar="MVOX",
                        help="skip cvpl-tools on volumes larger than this (default: run it on every size)")
    parser.add_argument("--case-timeout", type=float, default=bench_peers.CASE_TIMEOUT,
                        help="give up on a peer case (cvpl-tools, dask-image) after this many seconds")
    parser.add_argument("--out", type=Path, default=RESULTS, help="output folder (default benchmarks/results)")
    parser.add_argument("--with-team", action="store_true",
                        help=f"also run {', '.join(TEAM_BENCHMARKS)} (their own defaults), output to OUT/<name>.txt")
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    t0 = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)

    print("== peers and in-memory limit", flush=True)
    peers = []
    for shape in cfg["peer_sizes"]:
        volume = ensure_volume(shape)
        run_peer = args.skip_peer_above is None or volume.mvox <= args.skip_peer_above
        peers += bench_peers.compare(volume, run_peer=run_peer, timeout=args.case_timeout)
    print("== scale", flush=True)
    scale = bench_scale.run(cfg["scale_sizes"], cfg["worker_size"], cfg["graph_chunks"])

    if args.with_team:
        run_team_benchmarks(args.out, args.quick)

    result = {"machine": machine(), "quick": args.quick, "peers": peers, "scale": scale,
              "total_minutes": round((time.perf_counter() - t0) / 60, 1)}
    (args.out / "results.json").write_text(json.dumps(result, indent=1))
    md = to_markdown(result)
    (args.out / "results.md").write_text(md)
    plot(result, args.out / "throughput.png")
    print(md)
    print(f"wrote {args.out / 'results.md'}, results.json, throughput.png")
    rows = peers + scale["sizes"] + scale["workers"] + scale["graph"]
    return 0 if all("error" not in r or "timed out" in r["error"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
