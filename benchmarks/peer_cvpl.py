"""voxelflow vs the original tool, cvpl-tools 1.0.0, on the same synthetic volume.

Chains compared (6-connectivity, no size filter, same threshold):

* cvpl-tools: ``in_to_bs_simple_threshold`` -> ``dask_label.label`` -> ``os_to_lc_direct``
  (``is_global=True``) -> ``lc_to_cc_count_lc_by_size`` (parameters of its own
  ``nnunet/api.py``). Every stage caches to disk, the only mode in which its
  ``os_to_lc_direct`` runs. It awaits ``client.scatter``, so the chain is started
  as a coroutine on the worker (``client.run``) with the worker's asynchronous client.
* voxelflow: ``threshold`` -> ``label`` -> ``object_table`` -> count (the rows of the
  object table: voxelflow's count is exact and chunk-invariant).

Both read the same zarr v2 array (64^3 chunks, float32) on a LocalCluster with
one worker process of 2 threads, each in its own subprocess; peak memory is the
summed RSS of that process tree. cvpl-tools needs ``zarr<3`` and an older dask,
so it runs in its own virtual environment, ``benchmarks/.peer-venv``, created
on first use from PyPI.

Usage::

    python benchmarks/peer_cvpl.py                      # 128x256x256
    python benchmarks/peer_cvpl.py --shape 256,512,512

The module imports only the standard library at top level: the venv's Python
runs this same file with ``--run-peer``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENV = HERE / ".peer-venv"
PINS = ["cvpl-tools==1.0.0", "zarr<3", "ome-zarr<0.11", "dask==2025.2.0", "distributed==2025.2.0",
        "psutil"]
# lc_to_cc_count_lc_by_size parameters as used by cvpl-tools' own nnunet/api.py.
COUNT_ARGS = dict(min_size=0, size_threshold=200.0, volume_weight=5.15e-3, border_params=(3.0, -0.5, 2.3))


def venv_python() -> Path:
    return VENV / "bin" / "python"


def ensure_venv(quiet: bool = True) -> Path:
    """Create ``benchmarks/.peer-venv`` with the pinned cvpl-tools stack unless it is there already."""
    py = venv_python()
    probe = "import importlib.metadata as m; print(m.version('cvpl-tools'), m.version('zarr'))"
    if py.exists():
        got = subprocess.run([str(py), "-c", probe], capture_output=True, text=True, check=False)
        if got.returncode == 0 and got.stdout.startswith("1.0.0 2."):
            return py
    print(f"creating {VENV} with {' '.join(PINS)} (one-time, a few minutes)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(py), "-m", "pip", "install", *(["-q"] if quiet else []), *PINS], check=True)
    return py


# --- runs inside the peer venv ------------------------------------------------------


async def _chain_on_worker(zarr_path: str, threshold: float, cache_dir: str, dask_worker=None) -> dict:
    """The cvpl-tools chain, run as a coroutine on a worker (its ops await the async client)."""
    import dask.array as da
    import numpy as np

    client = dask_worker._get_client()  # also makes Client.current() this asynchronous client
    import cvpl_tools.im.algs.dask_label as dask_label
    import cvpl_tools.im.process.base as seg_process
    import cvpl_tools.im.process.lc_to_cc as sp_lc_to_cc
    import cvpl_tools.im.process.os_to_lc as sp_os_to_lc
    from cvpl_tools.fsspec import RDirFileSystem
    from cvpl_tools.tools.dask_utils import compute

    fs = RDirFileSystem(cache_dir)
    fs.ensure_dir_exists(remove_if_already_exists=True)
    im = da.from_zarr(zarr_path)
    t0 = time.perf_counter()
    bs = await seg_process.in_to_bs_simple_threshold(threshold, im, context_args=dict(cache_url=fs["bs"]))
    t_bs = time.perf_counter()
    os_, nlbl = await dask_label.label(bs, output_dtype=np.int32, context_args=dict(cache_url=fs["os"]))
    t_os = time.perf_counter()
    lc = await sp_os_to_lc.os_to_lc_direct(os_, min_size=0, reduce=False, is_global=True,
                                           ex_statistics=["nvoxel", "edge_contact"],
                                           context_args=dict(cache_url=fs["lc"]))
    t_lc = time.perf_counter()
    cc = await sp_lc_to_cc.lc_to_cc_count_lc_by_size(lc, os_.ndim, reduce=False,
                                                     context_args=dict(cache_url=fs["cc"]), **COUNT_ARGS)
    block_sums = await compute(client, [block for block, _ in cc.arr.values()])
    cc_total = float(np.sum([np.sum(b) for b in block_sums]))
    t_cc = time.perf_counter()
    lc_rows = await lc.reduce(force_numpy=True)
    return {"seconds": t_cc - t0, "stages_s": {"threshold": t_bs - t0, "label": t_os - t_bs,
                                               "object_table": t_lc - t_os, "count": t_cc - t_lc},
            "n_labels": int(nlbl), "n_objects": int(len(lc_rows)), "count_estimate": cc_total}


def _run_peer(args) -> None:
    import shutil
    import tempfile

    from dask.distributed import Client, LocalCluster

    cache_dir = tempfile.mkdtemp(prefix="cvpl-cache-", dir=args.tmp)
    cluster = LocalCluster(n_workers=1, threads_per_worker=args.threads, processes=True,
                           dashboard_address=None)
    try:
        with Client(cluster) as client:
            client.wait_for_workers(1)
            (worker,) = client.scheduler_info()["workers"]
            out = client.run(_chain_on_worker, args.volume, args.threshold, cache_dir, workers=[worker])
            result = out[worker]
    finally:
        cluster.close()
        shutil.rmtree(cache_dir, ignore_errors=True)
    print("RESULT " + json.dumps(result), flush=True)


# --- runs in voxelflow's environment ------------------------------------------------


def measure_peer(volume, threads: int = 2, timeout: float = 3600) -> dict:
    """Run the cvpl-tools chain on ``volume`` (a ``_common.Volume``) in the venv; measured result dict."""
    from _common import DATA, run_measured, threshold_for

    py = ensure_venv()
    argv = [str(py), str(Path(__file__).resolve()), "--run-peer", "--volume", str(volume.path),
            "--threshold", str(threshold_for(volume.dtype)), "--threads", str(threads), "--tmp", str(DATA)]
    return run_measured(argv, timeout=timeout)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="128,256,256", help="z,y,x of the synthetic volume")
    parser.add_argument("--threads", type=int, default=2, help="threads of the one worker (default 2)")
    parser.add_argument("--run-peer", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--volume", help=argparse.SUPPRESS)
    parser.add_argument("--threshold", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--tmp", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run_peer:
        _run_peer(args)
        return 0

    sys.path.insert(0, str(HERE))
    from _common import ensure_volume
    from bench_peers import measure_voxelflow_chain, print_comparison

    volume = ensure_volume(tuple(int(s) for s in args.shape.split(",")))
    vf = measure_voxelflow_chain(volume, threads=args.threads)
    peer = measure_peer(volume, threads=args.threads)
    print_comparison(volume, vf, {"cvpl-tools 1.0.0": peer})
    return 0 if "error" not in vf and "error" not in peer else 1


if __name__ == "__main__":
    sys.exit(main())
