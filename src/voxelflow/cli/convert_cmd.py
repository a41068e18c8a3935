"""``voxelflow convert INPUT OUTPUT.ome.zarr``: any supported input to OME-Zarr with a pyramid.

INPUT is anything ``voxelflow.open_image`` reads: a folder or glob of TIFF planes, a
multi-page TIFF / BigTIFF / OME-TIFF / ImageJ hyperstack, an Imaris ``.ims`` file,
an N5 dataset or BigStitcher ``dataset.xml``, or an OME-Zarr image. Every input
chunk is read once and all pyramid levels are computed in the same pass, on the
Dask scheduler chosen with ``--workers`` / ``--scheduler``. A local folder OUTPUT is
written beside the target and swapped in at the end; rerunning a killed conversion
with the same arguments keeps the chunks it had finished.
"""

from __future__ import annotations

import argparse
import contextlib
import sys

from voxelflow.errors import InvalidInputError


def _ints(text: str) -> tuple[int, ...] | int:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    return values[0] if len(values) == 1 else values


def _floats(text: str) -> tuple[float, ...] | float:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    return values[0] if len(values) == 1 else values


def register(subparsers) -> None:
    """Add the ``convert`` sub-command."""
    p = subparsers.add_parser(
        "convert",
        help="convert TIFF planes/stacks, Imaris, N5 or OME-Zarr to OME-Zarr (with a pyramid)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", help="input image: plane folder or glob, .tif/.tiff, .ims, N5, dataset.xml, OME-Zarr")
    p.add_argument("output", help="output .ome.zarr folder or .ome.zarr.zip archive (local or fsspec URL)")
    p.add_argument("--levels", type=int, default=4, help="pyramid levels including full resolution (default 4)")
    p.add_argument("--factors", type=_ints, default=2,
                   help="down-sampling per level: one int for all space axes, or one per axis, e.g. 1,2,2")
    p.add_argument("--method", default="mean", choices=("mean", "max", "min", "mode", "nearest"),
                   help="down-sampling method (mean for images, max for sparse bright, mode/nearest for labels)")
    p.add_argument("--chunks", type=_ints, default=None, help="chunk shape, one int per axis or one for space axes")
    p.add_argument("--shards", type=_ints, default=None, help="zarr v3 shard shape (or chunks per shard)")
    p.add_argument("--shard", type=int, nargs="?", const=4, default=None, metavar="N",
                   help="sharded output: N x N x N chunks per shard file (default 4), for file-count quotas")
    p.add_argument("--ngff-version", dest="version", default="0.5", choices=("0.4", "0.5"), help="NGFF version")
    p.add_argument("--scale-um", "--scale", dest="scale_um", type=_floats, default=None,
                   help="voxel size in micrometres: z,y,x (or one number for every space axis); "
                        "overrides the input's, required when the input has none")
    p.add_argument("--channel", default=None,
                   help="convert only this channel: its name, or its index when no channel has that name")
    p.add_argument("--level", type=int, default=0, help="input pyramid level to convert (default 0)")
    p.add_argument("--zip", action="store_true", help="write a .zip archive")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OME-Zarr image at OUTPUT")
    p.add_argument("--scheduler", default="", help="Dask scheduler address, e.g. tcp://host:8786")
    p.add_argument("--workers", type=int, default=0, help="local Dask worker processes (default 0: threads)")
    p.add_argument("--memory-limit", default="4GB", help="memory limit of each local worker (default 4GB)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _progress(client, quiet: bool):
    if quiet:
        return contextlib.nullcontext()
    from voxelflow.pipelines.progress import ClusterProgressBar, dask_bar

    if client is None:
        return dask_bar(sys.stderr, 1.0)
    return ClusterProgressBar(client, stream=sys.stderr, minimum=1.0)


def run(args) -> int:
    """Convert ``args.input`` to ``args.output``; returns the exit code."""
    from voxelflow.io.convert import convert_to_ome_zarr
    from voxelflow.io.ome_zarr.stores import is_zip
    from voxelflow.paths import as_vpath
    from voxelflow.runtime.compute import compute_context

    if args.shard is not None and args.shards is not None:
        raise InvalidInputError("give --shard or --shards, not both")
    output = args.output
    if args.zip and not is_zip(as_vpath(output)):
        raise InvalidInputError(f"zip output needs a path ending in '.zip', got {output}")
    with compute_context(args.scheduler, args.workers, 1, args.memory_limit) as client, \
            _progress(client, args.quiet):
        out = convert_to_ome_zarr(
            args.input, output, level=args.level, scale_um=args.scale_um, channel=args.channel, levels=args.levels,
            factors=args.factors, method=args.method, chunks=args.chunks,
            shards=args.shards if args.shard is None else args.shard, version=args.version,
            overwrite=args.overwrite,
        )
    from voxelflow.io.ome_zarr import open_ome_zarr

    arr, meta = open_ome_zarr(out)
    print(f"wrote {out.url}: shape {arr.shape} {arr.dtype}, axes {''.join(meta.axes)}, {len(meta.levels)} levels, "
          f"voxel {meta.scale} {meta.units[-1] or ''}")
    return 0
