"""``voxelflow convert INPUT.tif OUTPUT.ome.zarr``: TIFF stack to OME-Zarr with a pyramid."""

from __future__ import annotations

import argparse

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
        help="convert a TIFF stack to OME-Zarr (with a pyramid)",
        description="Convert a TIFF stack (ImageJ hyperstack, OME-TIFF or page stack) to OME-Zarr. "
        "Pages are read lazily; all pyramid levels are computed in one pass.",
    )
    p.add_argument("input", help="input .tif/.tiff file")
    p.add_argument("output", help="output .ome.zarr folder or .ome.zarr.zip archive (local or fsspec URL)")
    p.add_argument("--levels", type=int, default=4, help="pyramid levels including full resolution (default 4)")
    p.add_argument("--factors", type=_ints, default=2,
                   help="down-sampling per level: one int for all space axes, or one per axis, e.g. 1,2,2")
    p.add_argument("--method", default="mean", choices=("mean", "max", "min", "mode", "nearest"),
                   help="down-sampling method (mean for images, max for sparse bright, mode/nearest for labels)")
    p.add_argument("--chunks", type=_ints, default=None, help="chunk shape, one int per axis or one for space axes")
    p.add_argument("--shards", type=_ints, default=None, help="zarr v3 shard shape (or chunks per shard)")
    p.add_argument("--ngff-version", dest="version", default="0.5", choices=("0.4", "0.5"), help="NGFF version")
    p.add_argument("--scale", type=_floats, default=None,
                   help="voxel size per axis (or one number for all space axes); default from the TIFF metadata")
    p.add_argument("--units", default=None, help="unit of the space axes, e.g. micrometer")
    p.add_argument("--zip", action="store_true", help="write a .zip archive")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OME-Zarr image at OUTPUT")
    p.set_defaults(func=run)


def run(args) -> int:
    """Convert ``args.input`` to ``args.output``; returns the exit code."""
    from voxelflow.io.ome_zarr.write import default_chunks, write_ome_zarr
    from voxelflow.io.tiff import read_tiff

    arr, axes, tiff_scale, tiff_unit = read_tiff(args.input)
    if not 2 <= arr.ndim <= 5:
        raise InvalidInputError(f"{args.input} has {arr.ndim} dimensions; OME-Zarr holds 2 to 5")
    scale = args.scale if args.scale is not None else (tiff_scale or None)
    units = args.units or (tiff_unit if tiff_scale else None)
    chunks = args.chunks if args.chunks is not None else default_chunks(arr.shape, arr.dtype, axes)
    out = write_ome_zarr(
        arr,
        args.output,
        axes=axes,
        scale=scale,
        units=units,
        levels=args.levels,
        factors=args.factors,
        method=args.method,
        chunks=chunks,
        version=args.version,
        shards=args.shards,
        zip=args.zip,
        overwrite=args.overwrite,
    )
    print(f"wrote {out.url}: shape {arr.shape} {arr.dtype}, axes {''.join(axes)}, {args.levels} levels")
    return 0
