"""predict(): chunked ONNX inference against onnxruntime on the whole array, and peak memory against volume size.

The model is a small 3-D conv net (conv 3^3 1->8, ReLU, conv 3^3 8->2, softmax;
receptive-field radius 2) built with the ``onnx`` helper API. Cases, each in
its own subprocess:

* whole: onnxruntime (default threads: all cores) on the whole array in memory,
  padded by the halo (2 voxels, reflect) the way ``predict`` pads it (best of 3 runs);
* chunked: ``voxelflow.ops.predict`` on the same in-memory array, chunks
  64 x 128 x 128, halo 2, one single-threaded onnxruntime session shared by
  Dask's 2 worker threads, the output stored into a preallocated array (best of 3);
* store: the same, reading the array from an OME-Zarr on disk (float32, blosc),
  as a scan is read: every block reads its padded region from the store, so a
  chunk is decoded once per padded region that overlaps it;
* memory: ``predict`` on stored OME-Zarr volumes of growing size (uint16
  synthetic scans under ``benchmarks/.data``, written once, opened with
  ``voxelflow.open_ome_zarr``), the output reduced chunk by chunk (foreground
  voxel count): peak RSS should stay flat. The slope is fitted over the sizes.

Usage::

    python benchmarks/bench_predict.py                  # ~10 min on 2 cores (first run also writes the volumes)
    python benchmarks/bench_predict.py --sizes 64,256,256 --memory-sizes 64,256,256 128,512,512
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from _common import emit, ensure_volume, machine, markdown_table, run_measured

SIZES = ((64, 256, 256), (128, 256, 512))
MEMORY_SIZES = ((64, 256, 256), (128, 512, 512), (256, 512, 1024), (256, 1024, 1024))
CHUNKS = (64, 128, 128)
HALO = 2
REPEATS = 3  # best of: the first run also pays onnxruntime's warm-up; the machine is shared


def _net(folder: Path) -> Path:
    from models_helpers import conv_net

    return conv_net(folder / "bench.onnx", hidden=8)


def _volume(shape):
    import numpy as np

    rng = np.random.default_rng(0)
    return rng.normal(0, 1, shape).astype(np.float32)


def _case_whole(net, shape):
    import numpy as np
    import onnxruntime as ort

    x = _volume(shape)
    session = ort.InferenceSession(str(net), providers=["CPUExecutionProvider"])
    seconds = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        padded = np.pad(x, HALO, mode="reflect")[None, None]
        out = session.run(None, {"input": padded})[0][0][:, HALO:-HALO, HALO:-HALO, HALO:-HALO]
        seconds.append(time.perf_counter() - t0)
    seconds = min(seconds)
    return {"case": "whole", "shape": list(shape), "seconds": round(seconds, 3),
            "mvox_s": round(x.size / seconds / 1e6, 3), "checksum": float(out[1].sum())}


def _write_store(shape, folder: Path) -> Path:
    import dask

    from voxelflow.io.ome_zarr import write_ome_zarr

    path = folder / f"bench-{'x'.join(map(str, shape))}.ome.zarr"
    with dask.config.set(scheduler="threads"):
        write_ome_zarr(_volume(shape), str(path), levels=1, chunks=CHUNKS, overwrite=True)
    return path


def _case_chunked(net, shape, data=None):
    import dask
    import dask.array as da
    import numpy as np

    from voxelflow.io.models import load_model
    from voxelflow.io.ome_zarr import open_ome_zarr
    from voxelflow.ops import predict

    if data is None:
        image, case = da.from_array(_volume(shape), chunks=CHUNKS), "chunked"
    else:
        image, case = open_ome_zarr(data)[0], "store"
    model = load_model(net)
    out = predict(image, model, halo=HALO, dtype="float32")
    target = np.empty(out.shape, np.float32)
    seconds = []
    with dask.config.set(scheduler="threads", num_workers=2):
        for _ in range(REPEATS):
            t0 = time.perf_counter()
            da.store(out, target, lock=False)
            seconds.append(time.perf_counter() - t0)
    seconds = min(seconds)
    return {"case": case, "shape": list(shape), "seconds": round(seconds, 3),
            "mvox_s": round(target[1].size / seconds / 1e6, 3), "checksum": float(target[1].sum())}


def _case_memory(net, shape, data):
    import dask
    import numpy as np

    from voxelflow.io.models import load_model
    from voxelflow.io.ome_zarr import open_ome_zarr
    from voxelflow.ops import predict

    img = open_ome_zarr(data)[0]
    out = predict(img, load_model(net), halo=HALO, dtype="float32")
    with dask.config.set(scheduler="threads", num_workers=2):
        t0 = time.perf_counter()
        n = int((out[1] > 0.5).sum().compute())
        seconds = time.perf_counter() - t0
    size = int(np.prod(shape))
    return {"case": "memory", "shape": list(shape), "mvox": round(size / 1e6, 1), "seconds": round(seconds, 2),
            "mvox_s": round(size / seconds / 1e6, 3), "foreground": n}


def slope_mb_per_100_mvox(rows) -> float | None:
    """Least-squares slope of peak RSS (MB) against volume size, per 100 MVox."""
    import numpy as np

    done = [r for r in rows if "error" not in r]
    if len(done) < 2:
        return None
    mvox = np.array([r["mvox"] for r in done], float)
    rss = np.array([r["peak_rss_mb"] for r in done], float)
    return round(float(np.polyfit(mvox, rss, 1)[0]) * 100, 1)


def run(sizes, memory_sizes) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        net = _net(Path(tmp))
        me = [sys.executable, __file__, "--net", str(net)]
        rows = []
        for shape in sizes:
            arg = ",".join(map(str, shape))
            whole = run_measured(me + ["--case", "whole", "--shape", arg])
            chunked = run_measured(me + ["--case", "chunked", "--shape", arg])
            store = run_measured(me + ["--case", "chunked", "--shape", arg,
                                       "--data", str(_write_store(shape, Path(tmp)))])
            rows += [whole, chunked, store]
            for r in (chunked, store):
                if "error" not in whole and "error" not in r:
                    r["ratio_to_whole"] = round(r["mvox_s"] / whole["mvox_s"], 3)
                    r["same_result"] = abs(r["checksum"] - whole["checksum"]) <= 1e-4 * abs(whole["checksum"])
        memory = []
        for shape in memory_sizes:
            volume = ensure_volume(shape, kind="ome", dtype="uint16", chunks=CHUNKS)
            memory.append(run_measured(me + ["--case", "memory", "--shape", ",".join(map(str, shape)),
                                             "--data", str(volume.path)]))
    return {"machine": machine(), "throughput": rows, "memory": memory,
            "slope_mb_per_100_mvox": slope_mb_per_100_mvox(memory)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="*", default=[",".join(map(str, s)) for s in SIZES])
    parser.add_argument("--memory-sizes", nargs="*", default=[",".join(map(str, s)) for s in MEMORY_SIZES])
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--case", choices=["whole", "chunked", "memory"], help=argparse.SUPPRESS)
    parser.add_argument("--shape", help=argparse.SUPPRESS)
    parser.add_argument("--net", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.case:
        shape = tuple(int(v) for v in args.shape.split(","))
        if args.case == "whole":
            emit(_case_whole(args.net, shape))
        else:
            emit({"chunked": _case_chunked, "memory": _case_memory}[args.case](args.net, shape, args.data))
        return 0
    sizes = [tuple(int(v) for v in s.split(",")) for s in args.sizes]
    memory_sizes = [tuple(int(v) for v in s.split(",")) for s in args.memory_sizes]
    out = run(sizes, memory_sizes)
    print(markdown_table(out["throughput"], [("case", "case"), ("shape", "shape"), ("mvox_s", "MVox/s"),
                                              ("ratio_to_whole", "x whole"), ("same_result", "same result"),
                                              ("peak_rss_mb", "peak RSS MB")]))
    print()
    print(markdown_table(out["memory"], [("shape", "shape"), ("mvox", "MVox"), ("mvox_s", "MVox/s"),
                                          ("peak_rss_mb", "peak RSS MB")]))
    print(f"\npeak RSS slope: {out['slope_mb_per_100_mvox']} MB per 100 MVox")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    rows = out["throughput"] + out["memory"]
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
