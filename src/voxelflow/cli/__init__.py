"""The ``voxelflow`` command line.

Each sub-command lives in its own module ``voxelflow.cli.<name>_cmd`` that
exposes ``register(subparsers)``; the registered parser sets ``func`` to a
callable taking the parsed arguments and returning an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from voxelflow.errors import VoxelflowError

_COMMANDS = ("demo", "run", "register", "evaluate", "sweep", "cache", "convert", "view", "train", "export")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command registered."""
    from voxelflow import __version__

    parser = argparse.ArgumentParser(
        prog="voxelflow",
        description="Find, list and count objects in lightsheet OME-Zarr scans.",
    )
    parser.add_argument("--version", action="version", version=f"voxelflow {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in _COMMANDS:
        importlib.import_module(f"voxelflow.cli.{name}_cmd").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except VoxelflowError as exc:
        print(f"voxelflow: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("voxelflow: interrupted; cached steps are kept, rerun to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
