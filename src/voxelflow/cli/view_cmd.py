"""``voxelflow view PATH``: open an image, a run folder or a cache root in napari.

For a cache root the committed results are listed first; ``--steps`` picks
which to open (on a terminal you are asked, otherwise all are opened). Any
Dask client of the process is closed before a chunk is loaded, so napari gets
every thread (see ``benchmarks/bench_viewer_threads.py``).
"""

from __future__ import annotations

import sys


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "view",
        help="open an image (OME-Zarr, TIFF, Imaris, N5), a run folder or a cache root in napari",
        description=__doc__,
    )
    p.add_argument("path", help="image (OME-Zarr folder, .zip, URL, ?slices=[...]; TIFF plane folder or glob, "
                                "TIFF stack, .ims, N5, dataset.xml), run folder or cache root")
    p.add_argument("--scale-um", default=None,
                   help="voxel size in micrometres z,y,x (or one number) for images that do not state one")
    p.add_argument("--steps", default=None,
                   help="cache root only: comma-separated step names to open (default: ask, or all)")
    p.add_argument("--list", action="store_true", help="cache root only: list the committed steps and exit")
    p.add_argument("--merge-channels", action="store_true",
                   help="one layer with a channel slider instead of one layer per channel")
    p.add_argument("--ndisplay", type=int, choices=(2, 3), default=2, help="2D slices or 3D rendering")
    p.add_argument("--screenshot", metavar="PNG", default=None,
                   help="draw the layers, save a screenshot of the canvas and exit")
    p.add_argument("--no-show", action="store_true",
                   help="load the layers and print them without opening a window (checks a path)")
    p.set_defaults(func=run)


def _print_steps(steps, stream) -> None:
    width = max((len(s.name) for s in steps), default=4)
    for i, s in enumerate(steps, 1):
        kind = s.kind or ("step" if s.from_step else "saved")
        when = s.committed.strftime("%Y-%m-%d %H:%M:%S")
        print(f"  {i:3d}  {s.name:{width}s}  {kind:10s}  {','.join(s.outputs):16s}  {when}", file=stream)


def _ask(steps) -> list[str] | None:
    """On a terminal, ask which steps to open; None means all."""
    answer = input("steps to open (numbers or names, comma-separated; empty = all): ").strip()
    if not answer:
        return None
    chosen = []
    for part in (a.strip() for a in answer.split(",")):
        if part.isdigit() and 1 <= int(part) <= len(steps):
            chosen.append(steps[int(part) - 1].name)
        elif part:
            chosen.append(part)
    return chosen


def run(args) -> int:
    from voxelflow.viewer.sources import classify_path, layers_for_path, list_cached_steps
    from voxelflow.viewer.threads import release_dask_client

    what = classify_path(args.path)
    steps = [s.strip() for s in args.steps.split(",") if s.strip()] if args.steps else None
    if what == "cache":
        listed = list_cached_steps(args.path)
        print(f"committed results in {args.path}:")
        _print_steps(listed, sys.stdout)
        if args.list:
            return 0
        interactive = sys.stdin.isatty() and not (args.screenshot or args.no_show)
        if steps is None and interactive:
            steps = _ask([s for s in listed if s.viewable])
    elif args.list or steps:
        print(f"voxelflow: --steps/--list apply to a cache root; {args.path} is a {what}", file=sys.stderr)
        return 2

    # The hand-off: no distributed client may sit between napari and the chunks.
    release_dask_client()
    scale_um = None
    if args.scale_um:
        try:
            values = [float(v) for v in args.scale_um.split(",")]
        except ValueError:
            print(f"voxelflow: --scale-um expects numbers, got {args.scale_um!r}", file=sys.stderr)
            return 2
        scale_um = values[0] if len(values) == 1 else values
    layer_data = layers_for_path(args.path, steps=steps, split_channels=not args.merge_channels, scale_um=scale_um)
    if not layer_data:
        print(f"voxelflow: nothing to show in {args.path}", file=sys.stderr)
        return 1

    from voxelflow.viewer._deps import require_napari
    from voxelflow.viewer.add import add_layers

    napari = require_napari()
    headless = args.no_show
    viewer = napari.Viewer(show=not headless, ndisplay=args.ndisplay, title=f"voxelflow: {args.path}")
    layers = add_layers(viewer, layer_data, local_threads=False)
    for layer in layers:
        shape = layer.data[0].shape if getattr(layer, "multiscale", False) else layer.data.shape
        print(f"  {type(layer).__name__.lower():7s} {layer.name}  {tuple(shape)}")
    if args.screenshot:
        viewer.window.resize(1100, 900)  # napari reopens at the last window size, maybe tiny
        viewer.screenshot(path=args.screenshot, canvas_only=True, flash=False)
        print(f"screenshot saved to {args.screenshot}")
    if args.screenshot or headless:
        viewer.close()
        return 0
    napari.run()
    return 0
