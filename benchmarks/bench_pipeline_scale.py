"""The whole ``voxelflow run`` at whole-brain scale: time, memory, disk, exactness, resume.

For every generated scan (0.27, 2.1 and 8.6 GVox uint16 OME-Zarr with a pyramid, see
``_scan.py``; written once under ``--data``, default ``/work/bench-data``, and reused):

* ``run``: ``voxelflow run`` with the default configuration (bias "auto", mask "auto")
  in a fresh process: wall time, MVox/s, time per step (from ``run.json``), peak
  RSS of the process tree and of every process (sampled from outside every 20 ms),
  bytes written into the run folder, objects found vs planted plaques;
* ``read``: the floor no pipeline can beat, in a fresh process: level 0 read and
  decompressed by zarr with all cores (slab by slab), and by a thread pool
  decoding whole chunk files with numcodecs;
* ``memory`` (``--memory``): the run once more inside one process with its RSS sampled
  every 20 ms, tagged by step: where the memory goes;
* ``pass`` (``--pass-modes``): the streaming pass alone on the first ``--planes`` planes,
  with the run's cached mask, field and threshold, on 1 or 2 threads or local worker
  processes: wall time and CPU seconds of every process (what a worker costs);
* ``resume`` (``--resume``): SIGKILL the run during its full-resolution pass at
  ``--kills`` random moments, rerun each time, and compare the rerun's time with the
  unfinished share of the pass and its objects with a clean run's.

Every figure is printed with the ``uptime`` load average at the time (the machine
is shared). Usage::

    python benchmarks/bench_pipeline_scale.py                       # 0.27, 2.1, 8.6 GVox
    python benchmarks/bench_pipeline_scale.py --scans 0.27          # one scan
    python benchmarks/bench_pipeline_scale.py --scans 2.1 --resume  # + the resume benchmark
    python benchmarks/bench_pipeline_scale.py --memory              # + peak RSS during each step
    python benchmarks/bench_pipeline_scale.py --scans 2.1 --pass-modes t1,t2,p1,p2   # the pass: threads vs workers
    python benchmarks/bench_pipeline_scale.py --workers 1,2 --scans 0.27   # worker scaling
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS, RssSampler, emit, markdown_table, run_measured
from _scan import SHAPES, ensure_scan

DATA = Path(os.environ.get("VOXELFLOW_BENCH_DATA", "/work/bench-data"))


def load() -> str:
    """The 1-minute load average, with the number of cores, as ``uptime`` shows it."""
    one, five, _ = os.getloadavg()
    return f"{one:.2f}/{five:.2f} on {os.cpu_count()} cores"


def _children_cpu() -> float:
    """CPU seconds (user + system) of every finished child process of this one.

    Unlike wall time this does not grow when other jobs share the cores, so
    ``MVox per CPU-second`` is the per-core figure the projection uses.
    """
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


# --- cases (inside a subprocess) -------------------------------------------------------


def _case_read(url: str) -> dict:
    """Read and decompress every chunk of level 0: zarr slabs, then direct chunk decoding."""
    from concurrent.futures import ThreadPoolExecutor

    import numcodecs
    import numpy as np
    import zarr

    arr = zarr.open_array(f"{url}/0", mode="r")
    t0 = time.perf_counter()
    total = 0
    for z in range(0, arr.shape[0], arr.chunks[0]):
        total += int(arr[z:z + arr.chunks[0]].ravel()[::4096].sum())
    zarr_s = time.perf_counter() - t0
    meta = json.loads(Path(url, "0", ".zarray").read_text())
    codec = numcodecs.get_codec(meta["compressor"])
    files = [p for p in Path(url, "0").iterdir() if not p.name.startswith(".")]

    def decode(p):
        return int(np.frombuffer(codec.decode(p.read_bytes()), dtype="<u2")[::4096].sum())

    t0 = time.perf_counter()
    with ThreadPoolExecutor(os.cpu_count()) as pool:
        total2 = sum(pool.map(decode, files))
    direct_s = time.perf_counter() - t0
    return {"zarr_read_s": zarr_s, "direct_read_s": direct_s, "check": total == total2, "chunks": len(files)}


def _case_memory(url: str, out: str) -> dict:
    """``run_pipeline`` in this process with its RSS sampled every 20 ms: the peak during each step."""
    import threading

    import psutil

    from voxelflow.pipelines.config import load_config
    from voxelflow.pipelines.run import run_pipeline
    from voxelflow.steps import subscribe

    proc, samples, ends, stop = psutil.Process(), [], [], threading.Event()
    t0 = time.perf_counter()

    def sample():
        while not stop.is_set():
            samples.append((time.perf_counter() - t0, proc.memory_info().rss))
            time.sleep(0.02)

    subscribe(lambda r: ends.append((time.perf_counter() - t0, Path(r.record.node or r.record.name).name)))
    cfg = _config(url, Path(out), 0)
    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    run_pipeline(load_config(str(cfg), []), progress=False)
    stop.set()
    thread.join()
    steps, start = {}, 0.0
    for end, name in [*ends, (float("inf"), "(outputs)")]:
        window = [rss for t, rss in samples if start <= t <= end]
        steps[name] = round(max(window, default=0) / 2**20)
        start = end
    return {"step_peak_mb": steps, "peak_mb": round(max(rss for _, rss in samples) / 2**20)}


def _case_pass(url: str, cache: str, mode: str, planes: int) -> dict:
    """The streaming pass alone on the first ``planes`` planes, with a run's cached mask, field and threshold.

    ``mode``: ``t1``/``t2`` threads in this process, ``p1``/``p2`` local worker processes
    (started before the clock). CPU seconds (user, system) of every process.
    """
    import dask
    import numpy as np
    import psutil

    from voxelflow import load as load_node
    from voxelflow.ops import foreground_objects
    from voxelflow.pipelines.inputs import open_scan
    from voxelflow.runtime.compute import start_local_cluster

    full = open_scan(url, None, 0).image
    img = full[:planes]
    share = planes / full.shape[0]
    negative = np.asarray(load_node(f"{cache}/negative_mask"))
    negative = negative[: max(1, round(negative.shape[0] * share))]
    field = np.asarray(load_node(f"{cache}/bias_field"))
    field = field[: max(2, round(field.shape[0] * share))]
    value = load_node(f"{cache}/threshold_value")
    kind, n = mode[0], int(mode[1:])
    procs = {"client": psutil.Process()}
    client = cluster = None
    if kind == "p":
        client, cluster = start_local_cluster(n, 1, "3GB")
        procs.update({f"worker{i}": psutil.Process(pid) for i, pid in enumerate(client.run(os.getpid).values())})
    context = dask.config.set(scheduler="threads", num_workers=n) if kind == "t" else dask.config.set({})
    with context:
        foreground_objects(full[:64], value, negative[:1], field[:2], 1)  # imports, worker start-up
        before = {k: p.cpu_times() for k, p in procs.items()}
        t0 = time.perf_counter()
        table = foreground_objects(img, value, negative, field, 1)
        wall = time.perf_counter() - t0
    cpu = {k: [round(p.cpu_times().user - before[k].user, 2), round(p.cpu_times().system - before[k].system, 2)]
           for k, p in procs.items()}
    if client is not None:
        client.close()
        cluster.close()
    return {"mode": mode, "gvox": round(img.size / 1e9, 3), "wall_s": round(wall, 2), "cpu_user_sys": cpu,
            "cpu_total_s": round(sum(sum(v) for v in cpu.values()), 2), "objects": len(table)}


def measure_pass(scan, cache: Path, modes: str, planes: int) -> list[dict]:
    rows = []
    for mode in modes.split(","):
        load_before = load()
        res = run_measured([sys.executable, str(Path(__file__).resolve()), "--case", "pass", "--url", str(scan.path),
                            "--out", str(cache), "--mode", mode, "--planes", str(planes)])
        rows.append({"scan_gvox": round(scan.gvox, 2), "load_before": load_before, "load_after": load(), **res})
    return rows


def measure_memory(scan) -> dict:
    out = DATA / "runs" / f"memory-{scan.path.parent.name}"
    shutil.rmtree(out, ignore_errors=True)
    load_before = load()
    res = run_measured([sys.executable, str(Path(__file__).resolve()), "--case", "memory", "--url", str(scan.path),
                        "--out", str(out)])
    shutil.rmtree(out, ignore_errors=True)
    return {"scan_gvox": round(scan.gvox, 2), "load_before": load_before, "load_after": load(), **res}


# --- orchestration -------------------------------------------------------------------------


def _config(scan_url: str, out: Path, workers: int) -> Path:
    cfg = out.parent / f"{out.name}.toml"
    text = f'[input]\nurl = "{scan_url}"\n\n[output]\nfolder = "{out}"\n'
    if workers:
        text += f"\n[compute]\nworkers = {workers}\n"
    cfg.write_text(text)
    return cfg


def _vf_run_argv(cfg: Path) -> list[str]:
    return [sys.executable, "-m", "voxelflow", "run", str(cfg), "--no-report"]


class _PerProcessPeaks(RssSampler):
    """:class:`RssSampler` that also keeps the peak RSS of every process of the tree."""

    def __init__(self, pid: int, interval: float = 0.05):
        super().__init__(pid, interval)
        self.per_process: dict[int, tuple[str, int]] = {}

    def _sample(self):
        import psutil

        try:
            procs = [self._proc, *self._proc.children(recursive=True)]
        except psutil.Error:
            return 0, 0
        total = root = 0
        for p in procs:
            try:
                rss = p.memory_info().rss
                name = " ".join(p.cmdline()[1:4])[-60:]
            except psutil.Error:
                continue
            total += rss
            if p.pid == self._proc.pid:
                root = rss
            old = self.per_process.get(p.pid, ("", 0))[1]
            self.per_process[p.pid] = (name, max(old, rss))
        return total, root


def measure_run(scan, workers: int = 0, tag: str = "") -> dict:
    """``voxelflow run`` on a scan in a fresh process (fresh run folder)."""
    out = DATA / "runs" / f"run-{scan.path.parent.name}-w{workers}{tag}"
    shutil.rmtree(out, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    cfg = _config(str(scan.path), out, workers)
    load_before = load()
    cpu0 = _children_cpu()
    t0 = time.perf_counter()
    proc = subprocess.Popen(_vf_run_argv(cfg), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with _PerProcessPeaks(proc.pid) as rss:
        stdout, stderr = proc.communicate()
    wall = time.perf_counter() - t0
    cpu = _children_cpu() - cpu0
    row = {"scan_gvox": round(scan.gvox, 2), "shape": "x".join(map(str, scan.shape)), "workers": workers,
           "load_before": load_before, "load_after": load(), "wall_s": round(wall, 1),
           "mvox_s": round(scan.gvox * 1e3 / wall, 1), "cpu_s": round(cpu, 1),
           "mvox_per_cpu_s": round(scan.gvox * 1e3 / cpu, 1), "peak_rss_mb": round(rss.peak / 2**20),
           "peak_main_mb": round(rss.peak_root / 2**20),
           "per_process_peak_mb": sorted(round(v / 2**20) for _, v in rss.per_process.values()),
           "truth": scan.n_plaques}
    if proc.returncode != 0:
        row["error"] = "\n".join(stderr.strip().splitlines()[-12:])
        return row
    run = json.loads((out / "run.json").read_text())
    row.update(objects=run["objects"], exact=run["objects"] == scan.n_plaques,
               disk_written_mb=round(du(out) / 2**20),
               steps=_step_seconds(run),
               coarse=run.get("coarse"), seconds_in_run=run["seconds_total"])
    return row


def _step_seconds(run: dict) -> dict:
    """Seconds per step of a ``run.json``, by cache node name (``objects_raw``, ``bias_field``, ...)."""
    return {Path(s["node"]).name if s.get("node") else s["name"]: round(s["seconds"], 1) for s in run["steps"]}


def measure_read(scan) -> dict:
    load_before = load()
    res = run_measured([sys.executable, str(Path(__file__).resolve()), "--case", "read", "--url", str(scan.path)])
    if "error" in res:
        return {"scan_gvox": round(scan.gvox, 2), "error": res["error"]}
    return {"scan_gvox": round(scan.gvox, 2), "load_before": load_before, "load_after": load(),
            "zarr_read_s": round(res["zarr_read_s"], 1), "direct_read_s": round(res["direct_read_s"], 1),
            "zarr_read_mvox_s": round(scan.gvox * 1e3 / res["zarr_read_s"], 1),
            "direct_read_mvox_s": round(scan.gvox * 1e3 / res["direct_read_s"], 1),
            "compressed_gb": round(scan.bytes_on_disk / 1e9, 2), "peak_rss_mb": res["peak_rss_mb"]}


def _pass_progress(out: Path) -> tuple[int, int]:
    """(finished, total) chunk groups of the streaming pass recorded in its pending step node."""
    from voxelflow.cache import parts_progress

    try:
        return parts_progress(str(out / "cache" / "objects_raw"))
    except (OSError, ValueError):
        return 0, 0


def measure_resume(scan, kills: int, seed: int, clean: dict) -> list[dict]:
    """SIGKILL the run at random moments of its full-resolution pass; rerun; compare."""
    rng = random.Random(seed)
    rows = []
    pass_s = clean["steps"]["objects_raw"]
    for k in range(kills):
        out = DATA / "runs" / f"resume-{scan.path.parent.name}-{k}"
        shutil.rmtree(out, ignore_errors=True)
        cfg = _config(str(scan.path), out, 0)
        frac = rng.uniform(0.15, 0.85)
        proc = subprocess.Popen(_vf_run_argv(cfg), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        # wait until the pass has started, then for the chosen share of its clean duration
        while proc.poll() is None and _pass_progress(out)[1] == 0:
            time.sleep(0.05)
        time.sleep(frac * pass_s)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        done, total = _pass_progress(out)
        load_before = load()
        t0 = time.perf_counter()
        rerun = subprocess.run(_vf_run_argv(cfg), capture_output=True, text=True)
        wall = time.perf_counter() - t0
        row = {"kill": k, "killed_after_s": round(frac * pass_s, 1), "groups_done_at_kill": done,
               "groups_total": total, "unfinished_share": round(1 - done / total, 3) if total else None,
               "rerun_s": round(wall, 1), "load_before": load_before, "load_after": load()}
        if rerun.returncode != 0:
            row["error"] = rerun.stderr[-800:]
        else:
            run = json.loads((out / "run.json").read_text())
            rerun_pass = _step_seconds(run).get("objects_raw", float("nan"))
            row.update(rerun_pass_s=round(rerun_pass, 1), clean_pass_s=round(pass_s, 1),
                       pass_ratio=round(rerun_pass / pass_s, 3),
                       objects_equal_clean=_objects_equal(out, clean["out"]))
        rows.append(row)
        shutil.rmtree(out, ignore_errors=True)
    return rows


def _objects_equal(a: Path, b: Path) -> bool:
    import pandas as pd

    x, y = pd.read_parquet(a / "objects.parquet"), pd.read_parquet(b / "objects.parquet")
    return x.shape == y.shape and bool((x.fillna(-1).to_numpy() == y.fillna(-1).to_numpy()).all())


RUN_COLUMNS = [("scan_gvox", "GVox"), ("workers", "workers"), ("wall_s", "s"), ("mvox_s", "MVox/s"),
               ("cpu_s", "CPU s"), ("mvox_per_cpu_s", "MVox per CPU-s"),
               ("peak_rss_mb", "peak MB (tree)"), ("peak_main_mb", "main MB"), ("disk_written_mb", "written MB"),
               ("objects", "objects"), ("truth", "planted"), ("exact", "exact"), ("load_before", "load before"),
               ("load_after", "load after"), ("error", "error")]
READ_COLUMNS = [("scan_gvox", "GVox"), ("compressed_gb", "on disk GB"), ("zarr_read_s", "zarr read s"),
                ("zarr_read_mvox_s", "zarr MVox/s"), ("direct_read_s", "direct decode s"),
                ("direct_read_mvox_s", "direct MVox/s"), ("load_before", "load before"), ("error", "error")]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scans", default="0.27,2.1,8.6", help=f"comma-separated names of {sorted(SHAPES)}")
    p.add_argument("--workers", default="0", help="comma-separated compute.workers values (0 = threads)")
    p.add_argument("--resume", action="store_true", help="also the SIGKILL/resume benchmark (per scan)")
    p.add_argument("--kills", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip-read", action="store_true")
    p.add_argument("--tag", default="", help="suffix of the result file and run folders")
    p.add_argument("--memory", action="store_true", help="also the peak RSS during each step (one more run per scan)")
    p.add_argument("--pass-modes", default="", help="the streaming pass alone, e.g. t1,t2,p1,p2 (threads / worker "
                   "processes), on a run's cache; CPU seconds of every process")
    p.add_argument("--planes", type=int, default=128, help="planes of the scan the --pass-modes cases read")
    p.add_argument("--case", default=None, help=argparse.SUPPRESS)
    p.add_argument("--mode", default=None, help=argparse.SUPPRESS)
    p.add_argument("--url", default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.case == "read":
        emit(_case_read(args.url))
        return 0
    if args.case == "memory":
        emit(_case_memory(args.url, args.out))
        return 0
    if args.case == "pass":
        emit(_case_pass(args.url, args.out, args.mode, args.planes))
        return 0
    results = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "runs": [], "reads": [], "resume": [],
               "memory": [], "pass": []}
    for name in args.scans.split(","):
        scan = ensure_scan(DATA, name, log=print)
        if not args.skip_read:
            row = measure_read(scan)
            print("read", json.dumps(row), flush=True)
            results["reads"].append(row)
        for w in (int(v) for v in args.workers.split(",")):
            row = measure_run(scan, w, args.tag)
            print("run", json.dumps(row), flush=True)
            results["runs"].append(row)
            read = next((r for r in results["reads"] if r["scan_gvox"] == row["scan_gvox"] and "error" not in r), None)
            if read and "error" not in row:
                row["vs_zarr_read"] = round(row["wall_s"] / read["zarr_read_s"], 2)
                row["vs_direct_read"] = round(row["wall_s"] / read["direct_read_s"], 2)
        if args.pass_modes:
            cache = DATA / "runs" / f"run-{scan.path.parent.name}-w{results['runs'][-1]['workers']}{args.tag}" / "cache"
            for row in measure_pass(scan, cache, args.pass_modes, args.planes):
                print("pass", json.dumps(row), flush=True)
                results["pass"].append(row)
        if args.memory:
            row = measure_memory(scan)
            print("memory", json.dumps(row), flush=True)
            results["memory"].append(row)
        if args.resume:
            clean = dict(results["runs"][-1])
            clean["out"] = DATA / "runs" / f"run-{scan.path.parent.name}-w{clean['workers']}{args.tag}"
            for row in measure_resume(scan, args.kills, args.seed, clean):
                print("resume", json.dumps(row), flush=True)
                results["resume"].append(row)
    RESULTS.mkdir(exist_ok=True)
    name = f"pipeline_scale{('-' + args.tag) if args.tag else ''}"
    (RESULTS / f"{name}.json").write_text(json.dumps(results, indent=1, default=str))
    md = ["# voxelflow run at scale\n", results["date"], "", markdown_table(results["reads"], READ_COLUMNS), "",
          markdown_table(results["runs"], RUN_COLUMNS), ""]
    for r in results["runs"]:
        md.append(f"- {r['scan_gvox']} GVox, {r['workers']} workers, steps (s): {r.get('steps')}; "
                  f"per-process peak MB: {r.get('per_process_peak_mb')}")
    for r in results["pass"]:
        md.append(f"- pass alone, {r.get('gvox')} GVox, {r.get('mode')}: {r.get('wall_s')} s, CPU (user, system) "
                  f"{r.get('cpu_user_sys')} (load {r['load_before']})")
    for r in results["memory"]:
        md.append(f"- {r['scan_gvox']} GVox, peak RSS (MB) during each step, in process: {r.get('step_peak_mb')} "
                  f"(load {r['load_before']})")
    if results["resume"]:
        md += ["", "resume:", "", markdown_table(results["resume"], [(k, k) for k in results["resume"][0]])]
    (RESULTS / f"{name}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
