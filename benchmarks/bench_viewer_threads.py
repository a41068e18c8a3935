"""How long napari takes to fetch visible chunks with and without a live Dask client.

The seed manual reports that napari loads image chunks slowly while a
``distributed.Client`` is alive in the same process, and that closing the client
first fixes it. This benchmark measures it: a multiscale uint16 volume is written
to disk, shown in a real napari canvas (run under Xvfb) zoomed so the full
resolution level is drawn, and the wall time to show fresh z planes is taken

1. with no client at all (reference),
2. with a live ``Client(LocalCluster(processes=False))`` using every core, and
   with the seed's ``Client(threads_per_worker=..., n_workers=1)`` (a worker process),
3. with the live client, but the layer reading through
   ``voxelflow.viewer.threads.LocalThreadsArray`` (what the ``add_*`` helpers
   do by default while a client is alive),
4. after the client was handed back (``voxelflow.viewer.release_dask_client``,
   what ``voxelflow view`` does),
5. the same with a ``PLComponents`` session and its ``hand_threads_to_viewer()``.

napari's chunk cache is disabled so every plane really reads and decodes chunks.

Run::

    xvfb-run -a -s "-screen 0 1280x1024x24" python benchmarks/bench_viewer_threads.py --size 512
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import dask
import dask.array as da
import numpy as np


def write_pyramid(folder: str, size: int, chunk: int, levels: int) -> list[da.Array]:
    """Write a smooth-plus-noise uint16 cube and its 2x mean pyramid as zarr arrays."""
    rng = da.random.default_rng(0)
    noise = rng.integers(0, 400, size=(size,) * 3, chunks=chunk, dtype=np.uint16)
    z, y, x = da.meshgrid(*(da.arange(size, chunks=chunk, dtype=np.float32),) * 3, indexing="ij")
    blobs = 2000 * (1 + da.sin(z / 17.0) * da.cos(y / 23.0) * da.sin(x / 29.0))
    level = (blobs + noise).astype(np.uint16).rechunk(chunk)
    out = []
    for i in range(levels):
        path = os.path.join(folder, str(i))
        with dask.config.set(scheduler="threads"):
            level.to_zarr(path, overwrite=True)
        out.append(da.from_zarr(path))
        level = da.coarsen(np.mean, out[-1], {0: 2, 1: 2, 2: 2}, trim_excess=True).astype(np.uint16)
        level = level.rechunk(chunk)
    return out


def time_planes(viewer, layer, planes: list[int]) -> list[float]:
    """Wall seconds from moving to each plane until its frame is drawn."""
    from qtpy.QtWidgets import QApplication

    times = []
    for z in planes:
        t0 = time.perf_counter()
        viewer.dims.set_current_step(0, z)
        QApplication.processEvents()
        frame = viewer.screenshot(canvas_only=True, flash=False)
        times.append(time.perf_counter() - t0)
        if frame[..., :3].max() == 0:
            raise RuntimeError(f"plane {z} drew an empty frame")
        if layer.data_level != 0:
            raise RuntimeError(f"expected full-resolution tiles, napari drew level {layer.data_level}")
    return times


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="edge of the cube in voxels")
    parser.add_argument("--chunk", type=int, default=64)
    parser.add_argument("--levels", type=int, default=4)
    parser.add_argument("--planes", type=int, default=12, help="fresh planes timed per setting")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="client threads")
    args = parser.parse_args(argv)

    import napari
    from distributed import Client, LocalCluster
    from napari.utils import resize_dask_cache

    from voxelflow.viewer.threads import local_threads, release_dask_client

    with tempfile.TemporaryDirectory(prefix="vf-bench-viewer-") as tmp:
        t0 = time.perf_counter()
        pyramid = write_pyramid(tmp, args.size, args.chunk, args.levels)
        print(f"wrote {args.size}^3 uint16, {args.levels} levels, chunks {args.chunk}^3 "
              f"in {time.perf_counter() - t0:.1f} s")
        resize_dask_cache(0)  # every plane must decode its chunks again
        viewer = napari.Viewer(show=True)
        layer = viewer.add_image(pyramid, multiscale=True, contrast_limits=(0, 4500))
        viewer.window.resize(1000, 800)
        cam = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera
        cam.zoom = 2.0  # >1 screen pixel per voxel forces level 0
        cam.center = (args.size / 2, args.size / 2)
        step = max(1, args.size // (3 * args.planes))
        rounds = {}
        offset = 0

        def run(name):
            nonlocal offset
            planes = [(offset + i * step) % args.size for i in range(args.planes)]
            offset += 1
            time_planes(viewer, layer, planes[:2])  # warm-up: Qt/GL first draws
            rounds[name] = time_planes(viewer, layer, planes)

        run("no client (warm-up, not reported)")
        del rounds["no client (warm-up, not reported)"]
        run("no client (reference)")
        cluster = LocalCluster(n_workers=1, threads_per_worker=args.threads, processes=False,
                               dashboard_address=None)
        client = Client(cluster)
        run(f"live Client(processes=False, {args.threads} threads)")
        plain = layer.data
        layer.data = local_threads(pyramid)
        run("live Client, layer reads via LocalThreadsArray")
        layer.data = plain
        release_dask_client()
        cluster.close()
        run("after release_dask_client()")
        assert client.status == "closed"

        seed = Client(n_workers=1, threads_per_worker=args.threads, dashboard_address=None)
        run(f"live Client(n_workers=1, {args.threads} threads), worker process (seed)")
        release_dask_client()
        assert seed.status == "closed"

        from voxelflow.runtime.session import PLComponents

        plc = PLComponents(os.path.join(tmp, "plc"), log_dir=tmp, tee=False, get_client=lambda: Client(
            processes=False, n_workers=1, threads_per_worker=args.threads, dashboard_address=None))
        run("live PLComponents client")
        plc.hand_threads_to_viewer()
        run("after PLComponents.hand_threads_to_viewer()")
        plc.close()
        viewer.close()

    # Both rounds without a client measure the same thing; the faster one is the least disturbed
    # by other load on the machine, so ratios are taken against it.
    ref = min(statistics.median(rounds[k]) for k in ("no client (reference)", "after release_dask_client()"))
    print(f"{'setting':64s} {'median ms/plane':>16s} {'max ms':>8s} {'vs no client':>13s}")
    for name, times in rounds.items():
        med = statistics.median(times)
        print(f"{name:64s} {1000 * med:16.1f} {1000 * max(times):8.1f} {med / ref:13.2f}")


if __name__ == "__main__":
    main()
