"""Shared benchmark helpers: planted-truth volumes written chunk by chunk, RSS sampling, tables.

The synthetic volume is dim noise with bright, well separated balls (radius 2-4
voxels) on a jittered lattice, so the planted truth is exact: every ball is one
6-connected object, no two balls touch (even diagonally), the noise never
crosses the threshold. It is generated chunk by chunk inside ``dask``, so a
2 GVox volume never exists in memory, and cached under ``benchmarks/.data``.

Every measured case runs in its own subprocess (:func:`run_measured`): peak
memory is the peak summed RSS of that process and all its children (Dask worker
processes included), sampled every 20 ms from outside.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE / ".data"
RESULTS = HERE / "results"

SPACING = 24  # lattice spacing of ball centres (voxels)
RADII = (2, 3, 4)
OCCUPANCY = 0.62  # ~3,000 balls in 256x512x512, as in the kernels issue
THRESHOLD = 0.5  # noise is < 0.3, balls are >= 0.8


# --- planted truth ----------------------------------------------------------------


def ball_offsets(radius: int) -> np.ndarray:
    """Integer offsets (k, 3) of the voxels of a discrete ball ``|d|^2 <= r^2``."""
    r = np.arange(-radius, radius + 1)
    dz, dy, dx = np.meshgrid(r, r, r, indexing="ij")
    keep = dz**2 + dy**2 + dx**2 <= radius**2
    return np.stack([dz[keep], dy[keep], dx[keep]], axis=1)


@dataclass(frozen=True)
class Planted:
    """Planted balls: ``centres`` (n, 3) int64 voxel coordinates, ``radii`` (n,) int64."""

    centres: np.ndarray
    radii: np.ndarray

    @property
    def n(self) -> int:
        return len(self.radii)

    @property
    def voxels(self) -> np.ndarray:
        """Voxel count of every ball, (n,) int64."""
        sizes = {r: len(ball_offsets(r)) for r in RADII}
        return np.array([sizes[int(r)] for r in self.radii], dtype=np.int64)


def plant(shape, seed: int = 0) -> Planted:
    """Balls on a jittered lattice; neighbours are >= 2 voxels apart, all fully inside ``shape``."""
    rng = np.random.default_rng(seed)
    rmax = max(RADII)
    jitter = SPACING // 2 - rmax - 1
    axes = [np.arange(SPACING // 2, s - SPACING // 2 + 1, SPACING) for s in shape]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    grid = grid[rng.random(len(grid)) < OCCUPANCY]
    centres = grid + rng.integers(-jitter, jitter + 1, size=grid.shape)
    radii = rng.choice(RADII, size=len(grid))
    return Planted(centres.astype(np.int64), radii.astype(np.int64))


def _draw_block(block_info, planted: Planted, seed: int, out_dtype):
    loc = block_info[None]["array-location"]
    start = np.array([s for s, _ in loc])
    stop = np.array([e for _, e in loc])
    shape = tuple(stop - start)
    chunk_id = block_info[None]["chunk-location"]
    rng = np.random.default_rng([seed, *chunk_id])
    out = (rng.random(shape, dtype=np.float32) * 0.3).astype(np.float32)
    near = np.all((planted.centres + planted.radii[:, None] >= start)
                  & (planted.centres - planted.radii[:, None] < stop), axis=1)
    for centre, radius in zip(planted.centres[near], planted.radii[near]):
        pts = ball_offsets(int(radius)) + centre - start
        inside = np.all((pts >= 0) & (pts < shape), axis=1)
        z, y, x = pts[inside].T
        out[z, y, x] = 0.8 + 0.2 * rng.random(len(z), dtype=np.float32)
    if np.dtype(out_dtype) == np.uint16:
        return (out * 1000).astype(np.uint16)
    return out.astype(out_dtype)


def synthetic_dask(shape, chunks=(64, 64, 64), dtype="float32", seed: int = 0):
    """Lazy synthetic volume and its planted truth.

    Returns
    -------
    (dask.array.Array of shape ``shape``, ``dtype``; :class:`Planted`)
        float32 values: noise in [0, 0.3), balls in [0.8, 1.0); uint16: the same x 1000.
    """
    import dask.array as da

    planted = plant(shape, seed)
    arr = da.map_blocks(_draw_block, planted=planted, seed=seed, out_dtype=np.dtype(dtype), dtype=np.dtype(dtype),
                        chunks=da.core.normalize_chunks(chunks, shape), meta=np.empty((0, 0, 0), dtype))
    return arr, planted


def threshold_for(dtype) -> float:
    return THRESHOLD * (1000 if np.dtype(dtype) == np.uint16 else 1)


@dataclass(frozen=True)
class Volume:
    """A stored synthetic volume: ``path`` (zarr v2 array or OME-Zarr image), its truth."""

    path: Path
    kind: str
    shape: tuple
    dtype: str
    chunks: tuple
    n_objects: int
    object_voxels: int

    @property
    def mvox(self) -> float:
        return math.prod(self.shape) / 1e6

    def as_dict(self) -> dict:
        return {"path": str(self.path), "kind": self.kind, "shape": list(self.shape), "dtype": self.dtype,
                "chunks": list(self.chunks), "n_objects": self.n_objects, "object_voxels": self.object_voxels}


def ensure_volume(shape, *, kind: str = "zarr2", dtype: str = "float32", chunks=(64, 64, 64),
                  seed: int = 0) -> Volume:
    """Write (once) and describe a synthetic volume under ``benchmarks/.data``.

    ``kind='zarr2'`` is a plain zarr v2 array, readable by zarr 2 (the peer's venv)
    and zarr 3; ``kind='ome'`` is a voxelflow-written OME-Zarr 0.5 image (no pyramid).
    A ``truth.json`` beside the data marks a finished write.
    """
    shape, chunks = tuple(int(s) for s in shape), tuple(int(c) for c in chunks)
    name = f"{kind}-{'x'.join(map(str, shape))}-{dtype}-c{chunks[0]}-s{seed}"
    folder = DATA / name
    truth_file = folder / "truth.json"
    if not truth_file.is_file():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        _write(folder / "data.zarr", kind, shape, chunks, dtype, seed)
        planted = plant(shape, seed)
        truth_file.write_text(json.dumps({"n_objects": planted.n,
                                          "object_voxels": int(planted.voxels.sum())}))
    truth = json.loads(truth_file.read_text())
    return Volume(folder / "data.zarr", kind, shape, dtype, chunks, truth["n_objects"], truth["object_voxels"])


def _write(path: Path, kind: str, shape, chunks, dtype, seed) -> None:
    import dask
    import dask.array as da

    arr, _ = synthetic_dask(shape, chunks, dtype, seed)
    with dask.config.set(scheduler="threads"):
        if kind == "ome":
            from voxelflow.io.ome_zarr import write_ome_zarr

            write_ome_zarr(arr, str(path), levels=1, chunks=chunks, overwrite=True)
        elif kind == "zarr2":
            import zarr
            from numcodecs import Blosc

            z = zarr.create_array(str(path), shape=shape, chunks=chunks, dtype=dtype, zarr_format=2,
                                  compressors=Blosc(cname="lz4", clevel=5, shuffle=Blosc.SHUFFLE))
            da.store(arr, z, lock=False)
        else:
            raise ValueError(f"unknown volume kind {kind!r}; expected 'zarr2' or 'ome'")


# --- measuring --------------------------------------------------------------------


class RssSampler:
    """Peak RSS (bytes) of process ``pid``: ``peak`` summed with all its descendants, ``peak_root`` alone."""

    def __init__(self, pid: int, interval: float = 0.02):
        import psutil

        self._proc = psutil.Process(pid)
        self._interval = interval
        self._stop = threading.Event()
        self.peak = 0
        self.peak_root = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> tuple[int, int]:
        import psutil

        try:
            root = self._proc.memory_info().rss
            children = self._proc.children(recursive=True)
        except psutil.Error:
            return 0, 0
        total = root
        for p in children:
            try:
                total += p.memory_info().rss
            except psutil.Error:
                pass  # a child exited between listing and sampling
        return total, root

    def _run(self):
        while not self._stop.is_set():
            total, root = self._sample()
            self.peak = max(self.peak, total)
            self.peak_root = max(self.peak_root, root)
            self._stop.wait(self._interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def emit(result: dict) -> None:
    """Print a case's result as the JSON last line that :func:`run_measured` parses."""
    print("RESULT " + json.dumps(result), flush=True)


def run_measured(argv: list[str], *, timeout: float = 1800, env: dict | None = None) -> dict:
    """Run one case in a subprocess; return its ``RESULT`` JSON plus peak RSS.

    ``peak_rss_mb``: the process tree (the case and its Dask worker processes);
    ``peak_main_mb``: the case's own process (the client, when there are workers).

    On failure the dict has ``error`` (the tail of stderr) instead of results; on
    timeout also ``timed_out_s``, and the whole process tree is killed.
    """
    import psutil

    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    timed_out = False
    with RssSampler(proc.pid) as rss:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            for child in psutil.Process(proc.pid).children(recursive=True):
                child.kill()
            proc.kill()
            out, err = proc.communicate()
    result = {"peak_rss_mb": round(rss.peak / 2**20, 1), "peak_main_mb": round(rss.peak_root / 2**20, 1),
              "wall_s_process": round(time.perf_counter() - t0, 2)}
    lines = [ln for ln in out.splitlines() if ln.startswith("RESULT ")]
    if timed_out:
        result.update(error=f"timed out after {timeout:.0f} s", timed_out_s=timeout)
    elif proc.returncode == 0 and lines:
        result.update(json.loads(lines[-1][len("RESULT "):]))
    else:
        result["error"] = "\n".join(err.strip().splitlines()[-15:]) or f"exit code {proc.returncode}"
    return result


def local_cluster(n_workers: int = 1, threads_per_worker: int = 2, memory_limit="auto", **kwargs):
    """A LocalCluster + Client with worker processes, no dashboard; caller closes both."""
    from dask.distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker, processes=True,
                           memory_limit=memory_limit, dashboard_address=None, **kwargs)
    return cluster, Client(cluster)


# --- tables -----------------------------------------------------------------------


def markdown_table(rows: list[dict], columns: list[tuple[str, str]]) -> str:
    """A Markdown table of ``rows`` with ``columns`` = [(key, heading)]; missing cells are blank."""
    def cell(v):
        if v is None:
            return ""
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"
        return str(v)

    head = "| " + " | ".join(h for _, h in columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(cell(r.get(k)) for k, _ in columns) + " |" for r in rows]
    return "\n".join([head, rule, *body])


def machine() -> dict:
    """Cores, memory and date of the run, for the result table."""
    import platform

    import psutil

    return {"cores": os.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "cpu": platform.processor() or platform.machine(), "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
