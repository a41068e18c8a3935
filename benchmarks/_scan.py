"""Generated whole-brain-like scans with planted plaques, written chunk by chunk to OME-Zarr.

A scan is a uint16 OME-Zarr 0.4 image (zarr v2, Blosc zstd, 64x256x256 chunks,
voxel size 4 x 2 x 2 um) with a pyramid (level 1 halves y and x, every further
level halves z, y and x, block means), written by zarr itself with NGFF metadata
from ome-zarr-py, so voxelflow reads a file it did not write. Nothing is held in
memory whole: level 0 is drawn chunk by chunk inside Dask and each pyramid level
is reduced from the stored level below it.

What the image holds (all deterministic in ``seed``):

* dark background (camera offset ~100) and a tissue ellipsoid (~400) whose far
  half along x is cut by the volume border (a crop touching the border);
* a smooth multiplicative illumination bias (0.65 .. 1.45), per-plane brightness
  steps (tiles of 16..40 planes, +-8 %) and stripes along x (+-6 %);
* a bright artefact shell (2.8 x tissue, 8 um thick) along the tissue surface,
  which the pipeline's edge mask must remove;
* dim vessels (1.35 x tissue tubes), which must stay below the threshold;
* shot-like noise (sigma = 1.5 sqrt(signal));
* plaques: solid ellipsoids of 6..12 um radius at 5..7 x tissue brightness,
  on a jittered 100-um lattice, only deeper than ``DEPTH_UM`` inside the tissue
  (so they never reach the edge shell), with their exact count as the truth.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SCALE_UM = (4.0, 2.0, 2.0)
CHUNKS = (64, 256, 256)
TISSUE = 400.0
BACKGROUND = 100.0
DEPTH_UM = 200.0
LATTICE_UM = 100.0
JITTER_UM = 20.0
PLAQUE_R_UM = (6.0, 12.0)
OCCUPANCY = 0.6
FORMAT = 4  # bump when the generator changes, so stale data is rewritten

#: Scans of the benchmark: name -> shape (z, y, x).
SHAPES = {
    "0.27": (256, 1024, 1024),
    "2.1": (512, 2048, 2048),
    "8.6": (1024, 2048, 4096),
}


@dataclass(frozen=True)
class Scan:
    """A stored scan: ``path`` of the OME-Zarr image and its planted truth."""

    path: Path
    shape: tuple
    n_plaques: int
    bytes_on_disk: int

    @property
    def gvox(self) -> float:
        return math.prod(self.shape) / 1e9


def _geometry(shape):
    """Tissue ellipsoid centre and semi-axes in um: x is cut by the far border."""
    ext = np.array(shape, dtype=np.float64) * SCALE_UM
    centre = ext * np.array([0.5, 0.5, 0.56])
    semi = ext * np.array([0.44, 0.45, 0.52])
    return centre, semi


def plant(shape, seed: int):
    """Plaque centres (n, 3) in um and radii (n,) in um, all deeper than DEPTH_UM."""
    rng = np.random.default_rng([seed, 1])
    ext = np.array(shape, dtype=np.float64) * SCALE_UM
    centre, semi = _geometry(shape)
    axes = [np.arange(LATTICE_UM / 2, e, LATTICE_UM) for e in ext]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    keep = rng.random(len(grid)) < OCCUPANCY
    pts = grid + rng.uniform(-JITTER_UM, JITTER_UM, size=grid.shape)
    radii = rng.uniform(*PLAQUE_R_UM, size=len(grid))
    rho = np.sqrt((((pts - centre) / semi) ** 2).sum(axis=1))
    depth = np.minimum((1 - rho) * semi.min(), np.minimum(pts, ext - pts).min(axis=1))
    keep &= depth > DEPTH_UM
    return pts[keep], radii[keep]


def _vessels(shape, seed: int):
    """Vessel segments: start points (n, 3) um, end points (n, 3) um, radii (n,) um."""
    rng = np.random.default_rng([seed, 2])
    ext = np.array(shape, dtype=np.float64) * SCALE_UM
    n = max(4, int(np.prod(ext) / 4e8))
    p0 = rng.uniform(0.2, 0.8, size=(n, 3)) * ext
    d = rng.normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    return p0, p0 + d * rng.uniform(600.0, 2000.0, size=(n, 1)), rng.uniform(4.0, 8.0, size=n)


def _plane_steps(nz: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, 3])
    out = np.ones(nz)
    z = 0
    while z < nz:
        n = int(rng.integers(16, 41))
        out[z:z + n] = 1 + rng.uniform(-0.08, 0.08)
        z += n
    return out


def _draw(block_info, shape, seed, plaques, vessels, steps):
    loc = block_info[None]["array-location"]
    start = np.array([a for a, _ in loc])
    stop = np.array([b for _, b in loc])
    bshape = tuple(stop - start)
    z, y, x = (((np.arange(a, b) + 0.5) * s) for a, b, s in zip(start, stop, SCALE_UM))
    ext = np.array(shape, dtype=np.float64) * SCALE_UM
    centre, semi = _geometry(shape)
    zz, yy, xx = z[:, None, None], y[None, :, None], x[None, None, :]
    rho = np.sqrt(((zz - centre[0]) / semi[0]) ** 2 + ((yy - centre[1]) / semi[1]) ** 2
                  + ((xx - centre[2]) / semi[2]) ** 2).astype(np.float32)
    tissue = rho < 1
    # distance to the surface, to first order: (1 - rho) / |grad rho|
    grad = np.sqrt(((zz - centre[0]) / semi[0] ** 2) ** 2 + ((yy - centre[1]) / semi[1] ** 2) ** 2
                   + ((xx - centre[2]) / semi[2] ** 2) ** 2) / np.maximum(rho, 1e-6)
    depth = ((1 - rho) / np.maximum(grad, 1e-12)).astype(np.float32)
    img = np.where(tissue, np.float32(TISSUE), np.float32(BACKGROUND)).astype(np.float32)
    img[tissue & (depth < 8.0)] *= 2.8
    lo, hi = start * SCALE_UM, stop * SCALE_UM
    for a, b, r in zip(*vessels):
        # only the part of the block within r of the segment's bounding box
        blo = np.maximum(np.minimum(a, b) - r, lo)
        bhi = np.minimum(np.maximum(a, b) + r, hi)
        if np.any(blo >= bhi):
            continue
        sl = tuple(slice(int(np.floor(u / s)) - a0, int(np.ceil(v / s)) - a0)
                   for u, v, s, a0 in zip(blo, bhi, SCALE_UM, start))
        u = b - a
        vz, vy, vx = zz[sl[0]] - a[0], yy[:, sl[1]] - a[1], xx[:, :, sl[2]] - a[2]
        t = np.clip((vz * u[0] + vy * u[1] + vx * u[2]) / (u @ u), 0, 1)
        dist2 = (vz - t * u[0]) ** 2 + (vy - t * u[1]) ** 2 + (vx - t * u[2]) ** 2
        sub = img[sl]
        sub[(dist2 < r * r) & tissue[sl] & (depth[sl] > 8.0)] = TISSUE * 1.35
    pc, pr = plaques
    near = np.all((pc + pr[:, None] >= lo) & (pc - pr[:, None] < hi), axis=1)
    rng = np.random.default_rng([seed, 4, *block_info[None]["chunk-location"]])
    for c, r in zip(pc[near], pr[near]):
        sl = tuple(slice(max(0, int((cc - r) / s) - a - 1), max(0, min(n, int((cc + r) / s) - a + 2)))
                   for cc, s, a, n in zip(c, SCALE_UM, start, bshape))
        sub = ((zz[sl[0]] - c[0]) ** 2 + (yy[:, sl[1]] - c[1]) ** 2 + (xx[:, :, sl[2]] - c[2]) ** 2) < r * r
        img[sl][sub] = TISSUE * rng.uniform(5.0, 7.0)
    nz = (zz / ext[0] - 0.5)
    ny = (yy / ext[1] - 0.5)
    nx = (xx / ext[2] - 0.5)
    bias = np.exp(0.22 * np.sin(2.2 * ny + 0.4) * np.cos(1.7 * nx) + 0.18 * np.sin(2.5 * nz + 0.2 * nx)
                  + 0.12 * nx).astype(np.float32)
    stripes = (1 + 0.06 * np.sin(y / 37.0))[None, :, None].astype(np.float32)
    img *= bias * stripes * steps[start[0]:stop[0], None, None].astype(np.float32)
    img += rng.standard_normal(bshape, dtype=np.float32) * (1.5 * np.sqrt(img))
    return np.clip(img, 0, 65535).astype(np.uint16)


def _compressor():
    from numcodecs import Blosc

    return Blosc(cname="zstd", clevel=1, shuffle=Blosc.BITSHUFFLE)


def _write_level(src, group, path: str, factors):
    import dask.array as da

    lvl = da.coarsen(np.mean, src.astype(np.float32), dict(enumerate(factors)), trim_excess=True)
    lvl = da.round(lvl).astype(np.uint16).rechunk(tuple(min(c, s) for c, s in zip(CHUNKS, lvl.shape)))
    arr = group.create_array(path, shape=lvl.shape, chunks=lvl.chunksize, dtype="uint16",
                             compressors=_compressor(), fill_value=0)
    da.store(lvl, arr, lock=False)
    return arr


def write_scan(folder: Path, shape, seed: int = 0, log=print) -> None:
    """Write the scan image to ``folder/scan.ome.zarr`` chunk by chunk, then its pyramid."""
    import dask
    import dask.array as da
    import zarr
    from ome_zarr.format import FormatV04
    from ome_zarr.writer import write_multiscales_metadata

    plaques = plant(shape, seed)
    vessels = _vessels(shape, seed)
    steps = _plane_steps(shape[0], seed)
    path = folder / "scan.ome.zarr"
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    lazy = da.map_blocks(_draw, shape=shape, seed=seed, plaques=plaques, vessels=vessels, steps=steps,
                         dtype=np.uint16, chunks=da.core.normalize_chunks(CHUNKS, shape),
                         meta=np.empty((0, 0, 0), np.uint16))
    level0 = group.create_array("0", shape=shape, chunks=CHUNKS, dtype="uint16",
                                compressors=_compressor(), fill_value=0)
    t0 = time.perf_counter()
    with dask.config.set(scheduler="threads"):
        da.store(lazy, level0, lock=False)
        log(f"   level 0 {shape} written in {time.perf_counter() - t0:.0f} s")
        scales = [list(SCALE_UM)]
        factors = (1, 2, 2)
        prev = da.from_zarr(level0)
        level = 1
        while math.prod(prev.shape) > 600_000 and min(prev.shape) >= 4:
            arr = _write_level(prev, group, str(level), factors)
            scales.append([s * f for s, f in zip(scales[-1], factors)])
            prev = da.from_zarr(arr)
            factors = (2, 2, 2)
            level += 1
    datasets = [{"path": str(i), "coordinateTransformations": [{"type": "scale", "scale": s}]}
                for i, s in enumerate(scales)]
    write_multiscales_metadata(group, datasets, fmt=FormatV04(), axes=["z", "y", "x"],
                               axes_units={"z": "micrometer", "y": "micrometer", "x": "micrometer"},
                               name="generated scan")
    log(f"   pyramid of {len(scales)} levels done in {time.perf_counter() - t0:.0f} s")


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def ensure_scan(root: Path, name: str, seed: int = 0, log=print) -> Scan:
    """Generate (once) the scan ``name`` of :data:`SHAPES` under ``root``; return it with its truth."""
    shape = SHAPES[name]
    folder = root / f"scan-{'x'.join(map(str, shape))}-s{seed}-f{FORMAT}"
    truth_file = folder / "truth.json"
    if not truth_file.is_file():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        log(f"   generating scan {name} GVox {shape} in {folder}")
        write_scan(folder, shape, seed, log)
        centres, radii = plant(shape, seed)
        truth = {"n_plaques": int(len(radii)), "shape": list(shape), "scale_um": list(SCALE_UM),
                 "bytes_on_disk": _du(folder / "scan.ome.zarr")}
        truth_file.write_text(json.dumps(truth))
    truth = json.loads(truth_file.read_text())
    return Scan(folder / "scan.ome.zarr", shape, truth["n_plaques"], truth["bytes_on_disk"])
