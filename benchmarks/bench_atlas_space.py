"""Atlas-space outputs of a registered run: region assignment on lazily up-sampled labels, volumes from the
coarse grid, the imaged atlas voxels of a registration; each against its eager reference, same run.

Cases (every one prints wall time and the peak of traced memory, numpy arrays included):

- ``assign``: region of N objects on the full-resolution labels (a scan grid up-sampled from a
  coarse one by 4 x 8 x 8), lazily in chunk groups vs on the materialised full-size array;
- ``volumes``: region volumes of the full-resolution labels, from the coarse grid with
  weights vs counted on the full-size array;
- ``coverage``: atlas voxels imaged by a scan, inverted through an affine + B-spline
  registration, on a 50 um mouse-brain atlas grid (264 x 160 x 228, ~10 MVox); with
  ``--coverage-only`` just this case.

Usage::

    python benchmarks/bench_atlas_space.py [--shape 256,640,640] [--objects 100000]
"""

from __future__ import annotations

import argparse
import os
import time
import tracemalloc

import dask
import dask.array as da
import numpy as np
import pandas as pd

from voxelflow.ops import assign_regions, region_volumes
from voxelflow.ops._atlas_map import upsample_labels
from voxelflow.ops._atlas_part import atlas_coverage
from voxelflow.ops._atlas_space import upsampled_label_volumes


def _measure(fn):
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        out = fn()
        return out, time.perf_counter() - t0, tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()


def _row(case, lazy, eager):
    (_, t_l, m_l), (_, t_e, m_e) = lazy, eager
    print(f"{case:9s} lazy {t_l:7.2f} s {m_l:8.1f} MB | eager {t_e:7.2f} s {m_e:8.1f} MB | "
          f"time x{t_l / t_e:5.2f}, memory x{m_l / m_e:6.3f}")


def bench_assign_and_volumes(shape, n_objects):
    factors = (4, 8, 8)
    rng = np.random.default_rng(0)
    coarse = rng.choice(np.array([0, 315, 477, 512, 1009, 549], dtype=np.uint32),
                        size=tuple(-(-n // f) for n, f in zip(shape, factors)))
    lazy = upsample_labels(da.from_array(coarse, chunks=16), factors, shape, chunks=(64, 128, 128))
    lc = pd.DataFrame(rng.uniform(-0.5, np.asarray(shape) - 0.5, size=(n_objects, 3)), columns=["z", "y", "x"])
    scale = (5.0, 2.0, 2.0)
    print(f"scan grid {shape} ({np.prod(shape) / 1e6:.0f} MVox, {np.prod(shape) * 4 / 1e6:.0f} MB as uint32), "
          f"{n_objects} objects, coarse factors {factors}")
    assign_regions(lc.iloc[:3], lazy, scale, scale)
    lazy_assign = _measure(lambda: assign_regions(lc, lazy, scale, scale, block_bytes=2**26))
    eager_full = _measure(lambda: np.asarray(lazy))
    eager_assign = _measure(lambda: assign_regions(lc, eager_full[0], scale, scale))
    same = bool((lazy_assign[0] == eager_assign[0]).all())
    _row("assign", lazy_assign, (None, eager_full[1] + eager_assign[1], max(eager_full[2], eager_assign[2])))
    lazy_vol = _measure(lambda: upsampled_label_volumes(coarse, factors, shape, scale))
    eager_vol = _measure(lambda: region_volumes(eager_full[0], scale))
    print(f"volumes   coarse grid {lazy_vol[1]:7.2f} s {lazy_vol[2]:8.1f} MB | full array {eager_vol[1]:7.2f} s "
          f"(plus the {eager_full[2]:.0f} MB to hold it) | time x{lazy_vol[1] / eager_vol[1]:5.2f}")
    equal = np.allclose(lazy_vol[0].sort_index().to_numpy(), eager_vol[0].sort_index().to_numpy())
    print(f"          results equal: assignment {same}, volumes {equal}")


def bench_coverage():
    import SimpleITK as sitk

    from voxelflow.ops._atlas_map import ScanAtlasMap
    from voxelflow.ops._register import Registration

    atlas_shape, res = (264, 160, 228), (50.0, 50.0, 50.0)
    fixed_shape, fixed_spacing = (150, 260, 240), (100.0, 40.0, 45.0)  # a scan grid about the brain's size
    affine = sitk.AffineTransform(3)
    affine.SetMatrix((0.97, 0.12, 0.0, -0.1, 1.02, 0.05, 0.03, 0.0, 1.05))
    affine.SetTranslation((200.0, -300.0, 150.0))
    affine.SetCenter((5400.0, 5200.0, 7500.0))
    ref = sitk.Image([n for n in reversed(fixed_shape)], sitk.sitkUInt8)
    ref.SetSpacing(tuple(reversed(fixed_spacing)))
    ref.SetOrigin(tuple(s / 2 for s in reversed(fixed_spacing)))
    bspline = sitk.BSplineTransformInitializer(ref, [3, 3, 4], order=3)
    bspline.SetParameters(tuple(float(v) for v in np.random.default_rng(1).normal(0, 60.0,
                                                                                  len(bspline.GetParameters()))))
    reg = Registration(affine, bspline, fixed_shape, fixed_spacing, atlas_shape, res)
    mapping = ScanAtlasMap(reg, "asr", "asr", fixed_shape, fixed_spacing)
    cpu0 = time.process_time()
    cov, seconds, peak = _measure(lambda: atlas_coverage(mapping, atlas_shape))
    cpu = time.process_time() - cpu0
    print(f"coverage  {np.prod(atlas_shape) / 1e6:.1f} MVox atlas grid: {seconds:.1f} s ({cpu:.1f} s CPU), "
          f"peak {peak:.0f} MB, "
          f"{cov.mean():.1%} of the atlas box imaged")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", default="256,640,640")
    parser.add_argument("--objects", type=int, default=100_000)
    parser.add_argument("--coverage-only", action="store_true")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} (1 min), {os.cpu_count()} cores")
    if not args.coverage_only:
        with dask.config.set(scheduler="threads", num_workers=2):
            bench_assign_and_volumes(tuple(int(v) for v in args.shape.split(",")), args.objects)
    bench_coverage()
    print(f"load average {os.getloadavg()[0]:.1f} (1 min)")


if __name__ == "__main__":
    main()
